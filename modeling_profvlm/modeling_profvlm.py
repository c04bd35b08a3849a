# ProfVLM: a frozen video tower per camera view -> AttentiveGatedProjector -> SmolLM2 (LLaVA layout and names).
from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoModel, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import (
    BaseModelOutputWithPooling,
    MultimodalBaseModelOutputWithPast,
    MultimodalCausalLMOutputWithPast,
)
from transformers.modeling_utils import slice_logits_to_keep

from .configuration_profvlm import ProfVLMConfig, raw_video_refused
from .tower_adapter import pool_tokens, run_tower


# Clips the frozen tower encodes at once when a view is K clips (`encode_views`): bounds its activation memory on a
# long take (5 views x 30 clips of a 2-minute take would otherwise be one batch of 150 clips). 4 rather than 16: on a
# CPU the base TimeSformer's peak memory stayed at the decoded batch's and its encoding was faster
# (benchmarks/results/bench_tower_chunk.json).
TOWER_CLIPS_PER_CHUNK = 4


@dataclass
class ProfVLMVideoOutput(BaseModelOutputWithPooling):
    """Video encoder output: `last_hidden_state` (B, V, S, D_vision) per-view features over S time steps (N temporal
    tokens; K x N with K clips per view), `pooler_output` the projected video tokens in time order, (B, S x
    num_video_tokens, D_text) — or, when a `time_mask` was given (clips over takes of different lengths), a list of B
    tensors (K_b x N x num_video_tokens, D_text) holding each take's own tokens only, as transformers' variable-size
    image features are — `view_weights` (B, V) how much each camera contributed (mean over the take's own steps),
    `step_view_weights` (B, S, V) the same per time step (zeros at padded steps) and `step_mask` (B, S) bool, which
    steps are a take's own (None: all)."""

    view_weights: torch.FloatTensor | None = None
    step_view_weights: torch.FloatTensor | None = None
    step_mask: torch.BoolTensor | None = None


@dataclass
class ProfVLMModelOutputWithPast(MultimodalBaseModelOutputWithPast):
    """ProfVLMModel output: the language model's outputs plus `view_weights` (B, V) and `step_view_weights`
    (B, N, V), the camera weights per temporal token."""

    view_weights: torch.FloatTensor | None = None
    step_view_weights: torch.FloatTensor | None = None


@dataclass
class ProfVLMCausalLMOutputWithPast(MultimodalCausalLMOutputWithPast):
    """ProfVLMForConditionalGeneration output: loss, logits, cache, plus `view_weights` (B, V)."""

    view_weights: torch.FloatTensor | None = None


class ViewFeatureStandardizer(nn.Module):
    """Per-dimension standardisation of per-view tower features with statistics of the training data: a
    BatchNorm without affine parameters whose statistics cover present views only, and which standardises with
    its stored statistics in training too. Each training batch first updates a cumulative average (the tower is
    frozen, so the feature distribution is fixed and every batch counts equally) and is then standardised with
    it; in eval the stored statistics are used as they are (before any training mean 0, variance 1: the identity).

    Why not BatchNorm's own training mode (the batch's statistics): proficiency shows in absolute feature values
    (how much of the frame the limbs and their motion cover), and subtracting a small batch's mean makes a take
    look like the opposite of its batch-mates (an Intermediate take among Novices looks Late), while eval saw
    it against the whole data: training and eval saw different inputs. With the stored statistics in both, the
    moments runs on the same data, seeds and recipe moved by a take or two either way (measured:
    benchmarks/results/learnability_moments_runs.json, moments_findings.json): the consistency is the point, not a
    gain."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, features: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """features (B, V, D), valid (B, V) bool -> standardised features (statistics from present views only;
        the projector folds time steps into B, so each present view at each step counts once)."""
        x = features.float()
        if self.training and int(valid.sum()) > 1:
            present = x[valid]
            with torch.no_grad():
                seen = self.num_batches_tracked.add_(1).to(x.dtype)
                self.running_mean.add_((present.mean(0) - self.running_mean) / seen)
                self.running_var.add_((present.var(0, unbiased=True) - self.running_var) / seen)
        mean, var = self.running_mean, self.running_var
        return ((x - mean) * torch.rsqrt(var + self.eps)).to(features.dtype)


# Reconstructed from SkillFormer's `AttentiveProjector` (EdoWhite/SkillFormer, model.py), plus the
# input standardisation above (ours): a frozen tower's mean-pooled features share a large common component
# (the take-to-take spread is a small fraction of it: benchmarks/results/moments_findings.json),
# so without it every take looks nearly the same to the language model and the label takes far longer to learn.
class AttentiveGatedProjector(nn.Module):
    """Fuses V per-view features into `num_video_tokens` LM embeddings at each of N time steps: per-dimension
    standardisation, per-view LayerNorm, self-attention across the views of the same step (missing views masked
    out), masked mean, Linear-GELU-LayerNorm-Dropout, sigmoid gate, Linear-LayerNorm, and a learned re-scaling of
    the output statistics. The same weights serve every step, so N changes no parameter count; N = 1 is the
    paper's projector exactly."""

    def __init__(self, config: ProfVLMConfig):
        super().__init__()
        d_in, d_hidden = config.video_feature_size, config.projector_hidden_size
        self.d_out, self.num_tokens = config.text_config.hidden_size, config.num_video_tokens
        self.feature_norm = ViewFeatureStandardizer(d_in)
        self.view_norm = nn.LayerNorm(d_in)
        self.view_attention = nn.MultiheadAttention(
            d_in, config.projector_num_heads, dropout=config.projector_dropout, batch_first=True
        )
        self.fc_in = nn.Linear(d_in, d_hidden)
        self.act = nn.GELU()
        self.hidden_norm = nn.LayerNorm(d_hidden)
        self.dropout = nn.Dropout(config.projector_dropout)
        self.gate = nn.Linear(d_hidden, d_hidden)
        self.fc_out = nn.Linear(d_hidden, self.d_out * self.num_tokens)
        self.out_norm = nn.LayerNorm(self.d_out)
        # "Adaptive self-calibration": match the scale of the LM's token embeddings.
        self.output_scale = nn.Parameter(torch.tensor(config.projector_init_std))
        self.output_shift = nn.Parameter(torch.tensor(config.projector_init_mean))

    def forward(
        self, view_features: torch.Tensor, view_mask: torch.Tensor, step_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """view_features (B, V, S, D_in), view_mask (B, V) with 1 = present -> tokens (B, S x num_tokens, D_out) in
        time order, view weights (B, V) (mean over steps) and per-step view weights (B, S, V). `step_mask` (B, S)
        bool: the steps that are a take's own; the others (padding after a shorter take) are never computed: their
        tokens and weights are 0, and the view weights are the mean over the take's own steps."""
        batch, views, steps, dim = view_features.shape
        # Fold the time steps into the batch: the views are fused within each step, never across steps.
        x = view_features.transpose(1, 2).reshape(batch * steps, views, dim)
        # Missing views must hold finite values (get_video_features makes them 0).
        valid = view_mask.bool().unsqueeze(1).expand(batch, steps, views).reshape(batch * steps, views)
        if step_mask is None:
            out, step_weights = self._fuse(x, valid)
            step_weights = step_weights.view(batch, steps, views)
            return out.reshape(batch, steps * self.num_tokens, self.d_out), step_weights.mean(1), step_weights
        rows = step_mask.reshape(batch * steps)
        fused, fused_weights = self._fuse(x[rows], valid[rows])  # only the takes' own steps
        out = fused.new_zeros(batch * steps, self.num_tokens, self.d_out)
        out[rows] = fused
        step_weights = fused_weights.new_zeros(batch * steps, views)
        step_weights[rows] = fused_weights
        step_weights = step_weights.view(batch, steps, views)
        own = step_mask.sum(1, keepdim=True).to(step_weights.dtype)
        return out.reshape(batch, steps * self.num_tokens, self.d_out), step_weights.sum(1) / own, step_weights

    def _fuse(self, x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The views of each row fused: x (R, V, D_in), valid (R, V) -> tokens (R, num_tokens, D_out) and the view
        weights of each row (R, V). A row is one time step of one take."""
        x = self.view_norm(self.feature_norm(x, valid))
        # Missing views are excluded as keys, so they cannot influence any present view.
        attended, attn = self.view_attention(
            x, x, x, key_padding_mask=~valid, need_weights=True, average_attn_weights=True
        )  # attn: [B*N, V_query, V_key]
        weights = valid.unsqueeze(-1).to(attended.dtype)
        fused = (attended * weights).sum(1) / weights.sum(1)  # masked mean over views: [B*N, D_in]
        # How much each camera was attended to, averaged over the present query views: [B*N, V]
        step_weights = (attn * weights).sum(1) / weights.sum(1)

        h = self.dropout(self.hidden_norm(self.act(self.fc_in(fused))))
        h = h * torch.sigmoid(self.gate(h))
        out = self.out_norm(self.fc_out(h).view(-1, self.num_tokens, self.d_out))  # [B*N, tokens, D_out]
        mean, std = out.mean(-1, keepdim=True), out.std(-1, keepdim=True)
        out = (out - mean) / (std + 1e-6) * self.output_scale + self.output_shift
        return out, step_weights


class ProfVLMPreTrainedModel(PreTrainedModel):
    """Flags and weight init shared by the ProfVLM classes."""

    config: ProfVLMConfig
    base_model_prefix = "model"
    input_modalities = ("video", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _skip_keys_device_placement = ["past_key_values", "cache"]
    # No hard-coded layer names: post_init gathers `_no_split_modules` from the children, so whatever tower family
    # and language model the config names bring their own (TimesformerLayer, VideoMAELayer, ..., LlamaDecoderLayer).
    _no_split_modules = []

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        # Raw nn.Parameters are not initialised by transformers' generic `_init_weights`.
        if isinstance(module, AttentiveGatedProjector):
            init.constant_(module.output_scale, self.config.projector_init_std)
            init.constant_(module.output_shift, self.config.projector_init_mean)
        if isinstance(module, ViewFeatureStandardizer):  # buffers: identity until training has seen data
            init.zeros_(module.running_mean)
            init.ones_(module.running_var)
            init.zeros_(module.num_batches_tracked)

    def enable_input_require_grads(self):
        """Hook only the text embeddings: a tower's patch embedding may return a tuple (TimeSformer's does) and
        would crash the generic hook, and the frozen tower needs no input gradients anyway."""
        hook = self.get_input_embeddings().register_forward_hook(lambda m, i, o: o.requires_grad_(True))
        self._require_grads_hooks = [hook]
        self._require_grads_hook = hook


class ProfVLMModel(ProfVLMPreTrainedModel):
    """Vision tower (frozen), multi-view projector and language model, without the LM head. A checkpoint whose inputs
    are released features (`config.video_feature_source`) has no tower (`vision_tower` is None) and takes
    `video_features` only."""

    def __init__(self, config: ProfVLMConfig):
        super().__init__(config)
        self.vision_tower = None
        if config.video_feature_source is None:
            self.vision_tower = AutoModel.from_config(config.vision_config)
            self.vision_tower.requires_grad_(False)  # frozen: ProfVLM never trains the tower
        self.multi_modal_projector = AttentiveGatedProjector(config)
        self.language_model = AutoModel.from_config(config.text_config)
        self.post_init()

    def get_input_embeddings(self):
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.language_model.set_input_embeddings(value)

    def _check_view_mask(self, view_mask: torch.Tensor | None, batch: int, device) -> torch.Tensor:
        views = self.config.num_views
        if view_mask is None:
            if views == 1:
                return torch.ones(batch, 1, dtype=torch.long, device=device)
            # No silent "all present": a zero-filled absent view would count as a black camera.
            raise ValueError(
                f"view_mask is required with num_views={views} ({list(self.config.view_names)}): pass a (batch, "
                f"{views}) tensor with 1 for each view that is present and 0 for each missing one (the processor "
                "returns it as `view_mask`)."
            )
        if tuple(view_mask.shape) != (batch, views):
            raise ValueError(
                f"view_mask must have shape (batch, num_views) = ({batch}, {views}), got {tuple(view_mask.shape)}."
            )
        empty = (view_mask == 0).all(-1).nonzero().flatten().tolist()
        if empty:
            raise ValueError(f"Sample(s) {empty} have every view masked in view_mask; at least one view is needed.")
        return view_mask

    def _check_time_mask(self, time_mask: torch.Tensor | None, batch: int, clips: int, device) -> torch.Tensor:
        """`time_mask` (B, K) as bool (all True when None): each take's own clips first, then its padding."""
        if time_mask is None:
            return torch.ones(batch, clips, dtype=torch.bool, device=device)
        if tuple(time_mask.shape) != (batch, clips):
            raise ValueError(f"time_mask must have shape (batch, clips) = ({batch}, {clips}), got "
                             f"{tuple(time_mask.shape)}.")
        own = time_mask.bool()
        counts = own.sum(1)
        prefix = torch.arange(clips, device=own.device)[None, :] < counts[:, None]
        bad = ((counts == 0) | (own != prefix).any(1)).nonzero().flatten().tolist()
        if bad:
            raise ValueError(f"time_mask rows {bad}: each take needs >= 1 clip and its clips first (1s, then the 0s "
                             f"of the padding after it), got {time_mask[bad[0]].tolist()}.")
        return own

    def _check_clip_inputs(self, what: str) -> None:
        """A one-line ValueError when clip inputs (`what`) reach a model without clips over the take."""
        if self.config.clip_seconds is None:
            raise ValueError(f"{what}: this model's config has clip_seconds=None (one clip over the whole take, the "
                             "paper), so it takes one clip per view and no time_mask; clips over the take need a "
                             "checkpoint made with `profvlm init --clip_seconds S`.")

    @torch.no_grad()
    def encode_views(self, pixel_values_videos: torch.Tensor, view_mask: torch.Tensor | None = None,
                     time_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Run the frozen tower on the present views only and pool its tokens into `temporal_tokens` time bins
        (N = 1: the mean over all of its tokens). (B, V, T, 3, H, W) -> (B, V, N, D_vision), zeros for missing
        views. This is what the feature cache stores.

        Clips over the take (`config.clip_seconds`): (B, V, K, T, 3, H, W) with `time_mask` (B, K) (1: a take's own
        clip, 0: padding after a shorter take; None: all K are the take's) -> (B, V, K x N, D_vision) in time order.
        The tower runs on the present (view, clip) pairs only, TOWER_CLIPS_PER_CHUNK clips at a time; missing views
        and padded clips hold zeros whatever their pixels were."""
        if self.vision_tower is None:
            raise raw_video_refused(self.config.video_feature_source, "pixel_values_videos")
        if pixel_values_videos.ndim == 7:
            return self._encode_clips(pixel_values_videos, view_mask, time_mask)
        if pixel_values_videos.ndim != 6:
            raise ValueError(
                "pixel_values_videos must be 6-D (batch, views, frames, 3, height, width), or 7-D (batch, views, "
                f"clips, frames, 3, height, width) with clips over the take, got {pixel_values_videos.ndim}-D with "
                f"shape {tuple(pixel_values_videos.shape)}."
            )
        if time_mask is not None:
            raise ValueError("time_mask goes with clips, 7-D pixel_values_videos (batch, views, clips, frames, 3, "
                             f"height, width); got 6-D pixels of shape {tuple(pixel_values_videos.shape)}.")
        batch, views, frames = pixel_values_videos.shape[:3]
        if views != self.config.num_views:
            raise ValueError(f"pixel_values_videos has {views} views, but the config expects num_views={self.config.num_views}.")
        present = self._check_view_mask(view_mask, batch, pixel_values_videos.device).bool()
        clips = pixel_values_videos[present]  # [B, V, T, C, H, W] -> [n_present, T, C, H, W]
        tokens = run_tower(self.vision_tower, clips.to(self.vision_tower.dtype))  # [n, tokens, D]
        pooled = pool_tokens(tokens, self.config.vision_config, self.config.temporal_tokens, frames)  # [n, N, D]
        features = pooled.new_zeros(batch, views, *pooled.shape[1:])
        features[present] = pooled
        return features

    def encode_clip(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """One clip of one view, (T, 3, H, W) -> (N, D_vision): what `encode_views` computes for each (view, clip)
        pair of a take with clips over it. For callers that stream a long take clip by clip instead of holding all
        its pixels (`ProfVLMProcessor(..., clip_encoder=model.model.encode_clip)`)."""
        if self.vision_tower is None:
            raise raw_video_refused(self.config.video_feature_source, "pixel_values")
        if pixel_values.ndim != 4:
            raise ValueError(f"encode_clip takes one clip (frames, 3, height, width), got shape "
                             f"{tuple(pixel_values.shape)}.")
        tower = self.vision_tower
        tokens = run_tower(tower, pixel_values[None].to(device=tower.device, dtype=tower.dtype))
        return pool_tokens(tokens, self.config.vision_config, self.config.temporal_tokens, pixel_values.shape[0])[0]

    def _encode_clips(self, pixel_values_videos: torch.Tensor, view_mask: torch.Tensor | None,
                      time_mask: torch.Tensor | None) -> torch.Tensor:
        """`encode_views` for (B, V, K, T, 3, H, W) clips: (B, V, K x N, D_vision)."""
        self._check_clip_inputs("7-D pixel_values_videos (clips over the take)")
        batch, views, clips, frames = pixel_values_videos.shape[:4]
        if views != self.config.num_views:
            raise ValueError(f"pixel_values_videos has {views} views, but the config expects num_views={self.config.num_views}.")
        device = pixel_values_videos.device
        present_views = self._check_view_mask(view_mask, batch, device).bool()
        own = self._check_time_mask(time_mask, batch, clips, device)
        pairs = (present_views[:, :, None] & own[:, None, :]).nonzero()  # [n, 3]: (take, view, clip)
        steps, dim = self.config.temporal_tokens, self.config.video_feature_size
        features = None
        for chunk in pairs.split(TOWER_CLIPS_PER_CHUNK):
            b, v, k = chunk.unbind(1)
            tokens = run_tower(self.vision_tower, pixel_values_videos[b, v, k].to(self.vision_tower.dtype))
            pooled = pool_tokens(tokens, self.config.vision_config, steps, frames)  # [c, N, D]
            if features is None:
                features = pooled.new_zeros(batch, views, clips, steps, dim)
            features[b, v, k] = pooled
        return features.reshape(batch, views, clips * steps, dim)

    def get_video_features(
        self,
        pixel_values_videos: torch.Tensor | None = None,
        view_mask: torch.Tensor | None = None,
        video_features: torch.Tensor | None = None,
        time_mask: torch.Tensor | None = None,
        **kwargs,
    ) -> ProfVLMVideoOutput:
        """Encode the views (or take cached per-view `video_features` (B, V, N, D_vision)) and project them to
        N x `num_video_tokens` LM embeddings per sample, in time order. With N = 1, (B, V, D_vision) is accepted
        too (features cached before the time axis).

        Clips over the take (`config.clip_seconds`): pixels (B, V, K, T, 3, H, W) or features (B, V, K x N, D_vision),
        and `time_mask` (B, K) for takes of different lengths (1: a take's own clip, 0: padding after it). Padded
        steps are inert whatever they hold (NaN, inf): they are zeroed before any arithmetic and never reach the
        projector; with a `time_mask`, `pooler_output` is a list of each take's own K_b x N x num_video_tokens
        tokens."""
        if (pixel_values_videos is None) == (video_features is None):
            raise ValueError("Pass exactly one of pixel_values_videos or video_features.")
        if video_features is None:
            video_features = self.encode_views(pixel_values_videos, view_mask, time_mask)
        if self.config.clip_seconds is not None:
            return self._project_clips(video_features, view_mask, time_mask)
        if time_mask is not None:
            self._check_clip_inputs("time_mask")
        steps, given = self.config.temporal_tokens, tuple(video_features.shape)
        if video_features.ndim == 3 and steps == 1:
            video_features = video_features.unsqueeze(2)
        expected = (self.config.num_views, steps, self.config.video_feature_size)
        if video_features.ndim != 4 or tuple(video_features.shape[1:]) != expected:
            raise ValueError(
                f"video_features must have shape (batch, views, temporal_tokens, dim) = (batch, {expected[0]}, "
                f"{expected[1]}, {expected[2]}), got {given}."
            )
        view_mask = self._check_view_mask(view_mask, video_features.shape[0], video_features.device)
        projector_dtype = self.multi_modal_projector.fc_in.weight.dtype
        # The one place masked views are made inert: whatever they hold (NaN, inf, 1e30) becomes 0 before any
        # arithmetic, since NaN * 0 is still NaN and would leak through the view attention into every present view.
        present = view_mask.bool()[:, :, None, None]
        video_features = torch.where(present, video_features.to(projector_dtype), torch.zeros((), dtype=projector_dtype))
        tokens, view_weights, step_weights = self.multi_modal_projector(video_features, view_mask)
        return ProfVLMVideoOutput(last_hidden_state=video_features, pooler_output=tokens, view_weights=view_weights,
                                  step_view_weights=step_weights)

    def _project_clips(self, video_features: torch.Tensor, view_mask: torch.Tensor | None,
                       time_mask: torch.Tensor | None) -> ProfVLMVideoOutput:
        """`get_video_features` for features of K clips per view: (B, V, K x N, D_vision) and `time_mask` (B, K)."""
        per_clip, dim, given = self.config.temporal_tokens, self.config.video_feature_size, tuple(video_features.shape)
        clips = given[2] // per_clip if video_features.ndim == 4 else 0
        if (video_features.ndim != 4 or given[1] != self.config.num_views or given[3] != dim
                or given[2] % per_clip or not 1 <= clips <= self.config.max_clips):
            raise ValueError(
                f"video_features must have shape (batch, views, clips x temporal_tokens, dim) = (batch, "
                f"{self.config.num_views}, K x {per_clip}, {dim}) with 1 <= K <= max_clips={self.config.max_clips}, "
                f"got {given}."
            )
        batch = given[0]
        view_mask = self._check_view_mask(view_mask, batch, video_features.device)
        own = self._check_time_mask(time_mask, batch, clips, video_features.device)
        step_mask = own.repeat_interleave(per_clip, 1)  # [B, K x N]
        projector_dtype = self.multi_modal_projector.fc_in.weight.dtype
        # Masked views and padded steps are made inert here, before any arithmetic (NaN * 0 is still NaN).
        keep = view_mask.bool()[:, :, None, None] & step_mask[:, None, :, None]
        video_features = torch.where(keep, video_features.to(projector_dtype), torch.zeros((), dtype=projector_dtype))
        tokens, view_weights, step_weights = self.multi_modal_projector(video_features, view_mask, step_mask)
        if time_mask is not None:  # each take's own tokens: takes of different lengths have prompts of different lengths
            per_step = self.config.num_video_tokens
            tokens = [take[mask.repeat_interleave(per_step)] for take, mask in zip(tokens, step_mask)]
        return ProfVLMVideoOutput(last_hidden_state=video_features, pooler_output=tokens, view_weights=view_weights,
                                  step_view_weights=step_weights, step_mask=None if time_mask is None else step_mask)

    def get_placeholder_mask(self, input_ids: torch.LongTensor | None, inputs_embeds: torch.Tensor,
                             video_features: torch.Tensor | list[torch.Tensor]):
        """Where the `<video>` placeholders are; checks there is exactly one per video token: samples x
        temporal_tokens x num_video_tokens of them, or with clips over the take (a list of each take's tokens) as many
        as the takes' tokens together."""
        if input_ids is None:
            video_embed = self.get_input_embeddings()(
                torch.tensor(self.config.video_token_id, dtype=torch.long, device=inputs_embeds.device)
            )
            mask = (inputs_embeds == video_embed).all(-1)
        else:
            mask = input_ids == self.config.video_token_id
        if isinstance(video_features, (list, tuple)):
            n_tokens, per_take = int(mask.sum()), [len(take) for take in video_features]
            if n_tokens != sum(per_take):
                raise ValueError(
                    f"The text has {n_tokens} `{self.config.video_token}` placeholder tokens, but the takes' clips give "
                    f"{sum(per_take)} video tokens ({per_take} per take: clips x temporal_tokens="
                    f"{self.config.temporal_tokens} x num_video_tokens={self.config.num_video_tokens})."
                )
            return mask.unsqueeze(-1).expand_as(inputs_embeds)
        n_tokens, n_features = int(mask.sum()), video_features.shape[0] * video_features.shape[1]
        if n_tokens != n_features:
            raise ValueError(
                f"The text has {n_tokens} `{self.config.video_token}` placeholder tokens, but {video_features.shape[0]} "
                f"video sample(s) x temporal_tokens={self.config.temporal_tokens} x num_video_tokens="
                f"{self.config.num_video_tokens} = {n_features} were expected."
            )
        return mask.unsqueeze(-1).expand_as(inputs_embeds)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        video_features: torch.Tensor | None = None,
        view_mask: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache=None,
        inputs_embeds: torch.Tensor | None = None,
        mm_encoder_outputs: dict | None = None,
        time_mask: torch.Tensor | None = None,
        **kwargs,
    ) -> ProfVLMModelOutputWithPast:
        """Embed the text, write the projected video tokens into the `<video>` placeholders, run the LM."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("You must specify exactly one of input_ids or inputs_embeds.")
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)
        video_outputs = (mm_encoder_outputs or {}).get("video")
        if video_outputs is not None and (pixel_values_videos is not None or video_features is not None):
            raise ValueError("Pass either mm_encoder_outputs['video'] or pixel_values_videos/video_features, not both.")
        if video_outputs is None and (pixel_values_videos is not None or video_features is not None):
            video_outputs = self.get_video_features(pixel_values_videos, view_mask, video_features, time_mask)
        if video_outputs is not None:
            tokens = video_outputs.pooler_output
            mask = self.get_placeholder_mask(input_ids, inputs_embeds, tokens)
            if isinstance(tokens, (list, tuple)):  # each take's own tokens, in batch order as the placeholders are
                tokens = torch.cat(list(tokens))
            inputs_embeds = inputs_embeds.masked_scatter(mask, tokens.to(inputs_embeds.device, inputs_embeds.dtype))

        outputs = self.language_model(
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            **kwargs,
        )
        return ProfVLMModelOutputWithPast(
            last_hidden_state=outputs.last_hidden_state,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            video_outputs=video_outputs,
            view_weights=None if video_outputs is None else video_outputs.view_weights,
            step_view_weights=None if video_outputs is None else video_outputs.step_view_weights,
        )


class ProfVLMForConditionalGeneration(ProfVLMPreTrainedModel, GenerationMixin):
    """ProfVLM with the LM head: answers "Proficiency: <label>\\nFeedback: <text>" for a multi-view take."""

    _tied_weights_keys = {"lm_head.weight": "model.language_model.embed_tokens.weight"}
    _tp_plan = {"lm_head": "colwise_gather_output"}

    def __init__(self, config: ProfVLMConfig):
        super().__init__(config)
        self.model = ProfVLMModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, new_embeddings):
        self.lm_head = new_embeddings

    def get_video_features(self, pixel_values_videos=None, view_mask=None, video_features=None, time_mask=None,
                           **kwargs):
        """See `ProfVLMModel.get_video_features`."""
        return self.model.get_video_features(pixel_values_videos, view_mask, video_features, time_mask, **kwargs)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        video_features: torch.Tensor | None = None,
        view_mask: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache=None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        mm_encoder_outputs: dict | None = None,
        time_mask: torch.Tensor | None = None,
        **kwargs,
    ) -> ProfVLMCausalLMOutputWithPast:
        """Inputs: token ids with `<video>` placeholders and either `pixel_values_videos` (B, V, T, 3, H, W) or
        cached `video_features` (B, V, N, D_vision), a `view_mask` (B, V), and unshifted `labels` (-100 = ignored).
        Clips over the take (`config.clip_seconds`): pixels (B, V, K, T, 3, H, W) or features (B, V, K x N, D_vision)
        and `time_mask` (B, K), 0 for the clips padded after a shorter take (`ProfVLMModel.get_video_features`)."""
        outputs = self.model(
            input_ids=input_ids,
            pixel_values_videos=pixel_values_videos,
            video_features=video_features,
            view_mask=view_mask,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            mm_encoder_outputs=mm_encoder_outputs,
            time_mask=time_mask,
            **kwargs,
        )
        logits = self.lm_head(slice_logits_to_keep(outputs.last_hidden_state, logits_to_keep))
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.text_config.vocab_size, **kwargs)
        return ProfVLMCausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            video_outputs=outputs.video_outputs,
            view_weights=outputs.view_weights,
        )

    @torch.no_grad()
    def generate(self, inputs=None, **kwargs):
        """GenerationMixin.generate; cached `video_features` are projected once before prefill, exactly as
        generate() itself encodes `pixel_values_videos`, so neither the tower nor the projector runs per token."""
        if kwargs.get("video_features") is not None:
            video = self.model.get_video_features(
                video_features=kwargs.pop("video_features"), view_mask=kwargs.pop("view_mask", None),
                time_mask=kwargs.pop("time_mask", None),
            )
            kwargs["mm_encoder_outputs"] = {**(kwargs.get("mm_encoder_outputs") or {}), "video": video}
        return super().generate(inputs, **kwargs)


__all__ = [
    "AttentiveGatedProjector",
    "ProfVLMPreTrainedModel",
    "ProfVLMModel",
    "ProfVLMForConditionalGeneration",
]
