# The one contract between ProfVLM and a frozen Hugging Face video tower: for each supported family, the input
# keyword, where its config keeps the frame count and image size, how many frames one output time step covers,
# where its tokens sit in time, how to pool them per time step, and its documented normalisation.
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

# Normalisation defaults of transformers' own processors for each family (used only when a tower folder or Hub
# repo ships no preprocessor_config.json): TimeSformer's checkpoints use 0.45/0.225; transformers' VideoMAE and
# ViViT processors default to IMAGENET_STANDARD (0.5/0.5), its V-JEPA 2 processor to IMAGENET_DEFAULT.
_TIMESFORMER_MEAN, _TIMESFORMER_STD = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)
_IMAGENET_STANDARD_MEAN, _IMAGENET_STANDARD_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
_IMAGENET_DEFAULT_MEAN, _IMAGENET_DEFAULT_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class TowerFamily:
    """What ProfVLM needs to know about one family of Hugging Face video towers."""

    model_type: str  # the config's model_type
    name: str  # how people write it
    input_name: str  # the forward keyword of the clip tensor (B, T, 3, H, W)
    frames_key: str  # the config attribute holding the frame count
    image_size_key: str  # the config attribute holding the (square) input size
    has_cls: bool  # a leading CLS token that belongs to no time step
    frame_major: bool  # tokens ordered time step by time step (tubelets); False: patch by patch (TimeSformer)
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]
    hub_example: str  # a pretrained checkpoint on the Hub
    forward_kwargs: dict = field(default_factory=dict)


TOWER_FAMILIES: dict[str, TowerFamily] = {
    "timesformer": TowerFamily("timesformer", "TimeSformer", "pixel_values", "num_frames", "image_size", True, False,
                               _TIMESFORMER_MEAN, _TIMESFORMER_STD, "facebook/timesformer-base-finetuned-k600"),
    "videomae": TowerFamily("videomae", "VideoMAE", "pixel_values", "num_frames", "image_size", False, True,
                            _IMAGENET_STANDARD_MEAN, _IMAGENET_STANDARD_STD, "MCG-NJU/videomae-base"),
    # VJEPA2Model also runs its predictor unless told not to; ProfVLM wants the encoder's tokens only.
    "vjepa2": TowerFamily("vjepa2", "V-JEPA 2", "pixel_values_videos", "frames_per_clip", "crop_size", False, True,
                          _IMAGENET_DEFAULT_MEAN, _IMAGENET_DEFAULT_STD, "facebook/vjepa2-vitl-fpc64-256",
                          {"skip_predictor": True}),
    "vivit": TowerFamily("vivit", "ViViT", "pixel_values", "num_frames", "image_size", True, True,
                         _IMAGENET_STANDARD_MEAN, _IMAGENET_STANDARD_STD, "google/vivit-b-16x2-kinetics400"),
}

# Offline presets per family: "base" is the family's usual size, "tiny" a ~0.1M-parameter tower for tests and CPU demos.
TOWER_PRESETS: dict[str, dict[str, dict]] = {
    "timesformer": {
        # As facebook/timesformer-base-finetuned-k600 (8 frames, 224 px, hidden 768).
        "base": {"model_type": "timesformer", "image_size": 224, "patch_size": 16, "num_frames": 8, "hidden_size": 768,
                 "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072},
        "tiny": {"model_type": "timesformer", "image_size": 32, "patch_size": 8, "num_frames": 4, "hidden_size": 64,
                 "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128},
    },
    "videomae": {
        # As MCG-NJU/videomae-base (16 frames, tubelets of 2, 224 px).
        "base": {"model_type": "videomae", "image_size": 224, "patch_size": 16, "num_frames": 16, "tubelet_size": 2,
                 "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072},
        "tiny": {"model_type": "videomae", "image_size": 32, "patch_size": 8, "num_frames": 8, "tubelet_size": 2,
                 "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128},
    },
    "vjepa2": {
        # As facebook/vjepa2-vitl-fpc64-256 (ViT-L, 64 frames, tubelets of 2, 256 px).
        "base": {"model_type": "vjepa2", "crop_size": 256, "patch_size": 16, "frames_per_clip": 64, "tubelet_size": 2,
                 "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16},
        "tiny": {"model_type": "vjepa2", "crop_size": 32, "patch_size": 8, "frames_per_clip": 8, "tubelet_size": 2,
                 "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "mlp_ratio": 2.0,
                 "pred_hidden_size": 32, "pred_num_hidden_layers": 1, "pred_num_attention_heads": 2},
    },
    "vivit": {
        # As google/vivit-b-16x2-kinetics400 (32 frames, tubelets of 2x16x16, 224 px).
        "base": {"model_type": "vivit", "image_size": 224, "num_frames": 32, "tubelet_size": [2, 16, 16],
                 "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072},
        "tiny": {"model_type": "vivit", "image_size": 32, "num_frames": 8, "tubelet_size": [2, 8, 8], "hidden_size": 64,
                 "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128},
    },
}


def _get(config, key: str):
    return config.get(key) if isinstance(config, dict) else getattr(config, key)


def tower_family(vision_config) -> TowerFamily:
    """The family of a tower config (object or dict); a ValueError listing the supported ones otherwise."""
    model_type = _get(vision_config, "model_type")
    if model_type not in TOWER_FAMILIES:
        raise ValueError(f"unsupported video tower model_type {model_type!r}; supported: {', '.join(TOWER_FAMILIES)}.")
    return TOWER_FAMILIES[model_type]


def tower_num_frames(vision_config) -> int:
    """How many frames per clip the tower takes: the one owner of the frame count is the tower's config."""
    return int(_get(vision_config, tower_family(vision_config).frames_key))


def tower_image_size(vision_config) -> int:
    """The tower's square input size in pixels."""
    size = _get(vision_config, tower_family(vision_config).image_size_key)
    return int(size[0] if isinstance(size, (list, tuple)) else size)


def frames_per_time_step(vision_config) -> int:
    """Frames covered by one output time step: 1 for TimeSformer (a token set per frame), the tubelet depth else."""
    family = tower_family(vision_config)
    if family.model_type == "timesformer":
        return 1
    tubelet = _get(vision_config, "tubelet_size")
    return int(tubelet[0] if isinstance(tubelet, (list, tuple)) else tubelet)


def tower_time_steps(vision_config, num_frames: int | None = None) -> int:
    """Time steps of the tower's output for a clip of `num_frames` frames (default: the tower's own)."""
    frames = tower_num_frames(vision_config) if num_frames is None else num_frames
    return max(1, frames // frames_per_time_step(vision_config))


def check_temporal_tokens(vision_config, temporal_tokens: int) -> int:
    """`temporal_tokens` if 1 <= N <= the tower's time steps; else a one-line ValueError naming both numbers."""
    steps = tower_time_steps(vision_config)
    if not isinstance(temporal_tokens, int) or temporal_tokens < 1 or temporal_tokens > steps:
        family = tower_family(vision_config)
        raise ValueError(
            f"temporal_tokens={temporal_tokens} is not possible with this {family.name} tower: it gives {steps} time "
            f"step(s) per clip ({tower_num_frames(vision_config)} frames, {frames_per_time_step(vision_config)} per "
            f"step); choose 1 <= temporal_tokens <= {steps}."
        )
    return temporal_tokens


def time_bins(num_steps: int, num_bins: int) -> list[int]:
    """The bin of each of `num_steps` time steps when they are split into `num_bins` equal, ordered bins (every bin
    gets at least one step when num_bins <= num_steps). The one owner of how time steps become temporal tokens."""
    if not 1 <= num_bins <= num_steps:
        raise ValueError(f"cannot split {num_steps} time step(s) into {num_bins} bin(s); need 1 <= bins <= steps.")
    return [step * num_bins // num_steps for step in range(num_steps)]


def token_start_frames(num_frames: int, frames_per_step: int, temporal_tokens: int) -> list[int]:
    """For each temporal token, the index (into the T sampled frames) of the first frame it covers, given how many
    frames one tower time step covers (`frames_per_time_step`). The processor labels each token with that frame's
    time, so this must bin exactly as `pool_tokens` does (both use `time_bins`)."""
    bins = time_bins(max(1, num_frames // frames_per_step), temporal_tokens)
    return [bins.index(b) * frames_per_step for b in range(temporal_tokens)]


def run_tower(tower: torch.nn.Module, clips: torch.Tensor) -> torch.Tensor:
    """The tower's last hidden state for clips (n, T, 3, H, W): (n, tokens, D)."""
    family = tower_family(tower.config)
    return tower(**{family.input_name: clips}, **family.forward_kwargs).last_hidden_state


def pool_tokens(tokens: torch.Tensor, vision_config, temporal_tokens: int, num_frames: int) -> torch.Tensor:
    """(n, tokens, D) -> (n, N, D). N = 1: the mean over ALL of the tower's tokens (the paper's pooling, CLS
    included). N > 1: the patch tokens of each time step are averaged (a CLS token belongs to no step and is left
    out), then the steps are averaged into N equal, ordered time bins."""
    if temporal_tokens == 1:
        return tokens.mean(1, keepdim=True)
    family = tower_family(vision_config)
    patches = tokens[:, 1:] if family.has_cls else tokens
    steps = tower_time_steps(vision_config, num_frames)
    n, length, dim = patches.shape
    if length % steps:
        raise ValueError(f"{family.name} tower returned {length} patch tokens, not a multiple of its {steps} time steps.")
    if family.frame_major:  # [n, S * P, D]: all patches of step 0, then of step 1, ...
        per_step = patches.reshape(n, steps, length // steps, dim).mean(2)
    else:  # TimeSformer: [n, P * S, D], each patch's frames in a row
        per_step = patches.reshape(n, length // steps, steps, dim).mean(1)
    bins = torch.tensor(time_bins(steps, temporal_tokens), device=tokens.device)
    weights = torch.nn.functional.one_hot(bins, temporal_tokens).to(per_step.dtype)  # [S, N]
    weights = weights / weights.sum(0, keepdim=True)
    return torch.einsum("nsd,sk->nkd", per_step, weights)


def supported_families() -> Sequence[str]:
    """The model_types a ProfVLM tower may have."""
    return tuple(TOWER_FAMILIES)


__all__ = [
    "TowerFamily",
    "TOWER_FAMILIES",
    "TOWER_PRESETS",
    "tower_family",
    "tower_num_frames",
    "tower_image_size",
    "frames_per_time_step",
    "tower_time_steps",
    "check_temporal_tokens",
    "time_bins",
    "token_start_frames",
    "run_tower",
    "pool_tokens",
    "supported_families",
]
