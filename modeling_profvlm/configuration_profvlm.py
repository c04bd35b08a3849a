# ProfVLM configuration: frozen TimeSformer per view -> AttentiveGatedProjector -> SmolLM2 (+LoRA).
import json
import os
from pathlib import Path

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .profvlm_facts import (
    DEFAULT_MAX_CLIPS,
    PROFICIENCY_LABELS,
    VIDEO_TOKEN,
    VIEW_NAMES,
    check_clip_options,
    check_label_list,
    check_time_decimals,
    released_feature_source,
)
from .tower_adapter import TOWER_PRESETS, check_temporal_tokens, tower_family, tower_num_frames

# SmolLM2-135M-Instruct (HF config.json of HuggingFaceTB/SmolLM2-135M-Instruct).
SMOLLM2_135M_TEXT_CONFIG = {
    "model_type": "llama",
    "vocab_size": 49152,
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "head_dim": 64,
    "hidden_act": "silu",
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5,
    "rope_parameters": {"rope_type": "default", "rope_theta": 100000.0},
    "tie_word_embeddings": True,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 2,
}
# The paper's tower and the tiny test tower: the TimeSformer presets of the tower adapter (their one owner).
TIMESFORMER_BASE_VISION_CONFIG = TOWER_PRESETS["timesformer"]["base"]
TIMESFORMER_TINY_VISION_CONFIG = TOWER_PRESETS["timesformer"]["tiny"]


class ProfVLMConfig(PreTrainedConfig):
    """Configuration of ProfVLM. With no arguments it describes the paper model:
    TimeSformer-base (8 frames, 224 px) for each of 5 views, one temporal token, an AttentiveGatedProjector
    (hidden 1024, 4 heads) and SmolLM2-135M-Instruct. The tower may be any family of `tower_adapter`
    (TimeSformer, VideoMAE, V-JEPA 2, ViViT). Sub-configs accept dicts, so a tiny test model is a dict away."""

    model_type = "profvlm"
    sub_configs_defaults = {
        "vision_config": SubConfigSpec(
            config_class=AutoConfig, model_type="timesformer", init_kwargs=TIMESFORMER_BASE_VISION_CONFIG
        ),
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama", init_kwargs=SMOLLM2_135M_TEXT_CONFIG),
    }

    vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    num_views: int = len(VIEW_NAMES)
    view_names: list[str] | None = None
    num_video_tokens: int = 1
    # Temporal tokens per view: 1 is the paper (one mean over all of the tower's tokens); N > 1 pools the tower's
    # tokens per time step into N equal time bins, and the projector emits N x num_video_tokens tokens in time order.
    temporal_tokens: int = 1
    # Digits after the second in the times the model reads and writes (the prompt's token times and the answer's
    # moments, `profvlm_facts.format_timestamp`): 0 is whole seconds, `[m:ss]` (config.json files from before this key
    # mean 0); 1 gives `[m:ss.d]`, for moments located to a fraction of a second (the demonstration task).
    time_decimals: int = 0
    # Clips over the whole take. None (the default, the paper): each view is ONE clip of the tower's T frames spread
    # over the whole take. S seconds: each view is covered by K = ceil(duration / S) windows of S seconds laid end to
    # end from 0 to the take's end (the last one shorter), each giving one clip of T frames spread over it by
    # presentation time; a view's features are then (K x temporal_tokens, D) in time order and the prompt states
    # each token's time. A take needing more than `max_clips` windows gets `max_clips` equal ones instead (its
    # metadata says so: `clips_capped`). config.json files from before these keys mean None / DEFAULT_MAX_CLIPS.
    clip_seconds: float | None = None
    max_clips: int = DEFAULT_MAX_CLIPS
    # The tower's input normalisation (3 values each, RGB): `profvlm init` stores the tower's own (its Hub repo's
    # preprocessor config, else its family's default). None: not recorded (config.json files from before these
    # keys), which means the tower family's default (`tower_adapter.TOWER_FAMILIES`).
    image_mean: list[float] | None = None
    image_std: list[float] | None = None
    video_token: str = VIDEO_TOKEN
    video_token_id: int | None = None
    projector_hidden_size: int = 1024
    projector_num_heads: int = 4
    projector_dropout: float = 0.1
    # "Adaptive self-calibration" initial statistics of SkillFormer's AttentiveProjector (EdoWhite/SkillFormer, model.py).
    projector_init_mean: float = 0.0007
    projector_init_std: float = 0.1168
    # The checkpoint's ordered labels (low -> high): the one owner of the label order for everything that uses it.
    proficiency_labels: list[str] | None = None
    # Set to True by `profvlm init` when the tower was randomly initialised (no pretrained weights reachable).
    vision_tower_random_init: bool = False
    # Where the weights came from (`profvlm init --vision/--text`: a Hub id, a folder, random-base...): the model
    # card names the components and their licences from these.
    vision_tower_source: str | None = None
    language_model_source: str | None = None
    # Facts of the training run, written by training/sft.py into the final checkpoint so that evaluation, the card
    # and the demo need not be told again: the feedback word limit (and each moment's, None = the dataset's), the
    # label, moment-time and end tokens' loss weights and the training data's provenance.
    max_feedback_words: int | None = None
    max_moment_words: int | None = None
    label_loss_weight: float | None = None
    time_loss_weight: float | None = None
    end_loss_weight: float | None = None
    training_data: dict | None = None
    # The dtype the training's cached tower features were made in ("bfloat16" / "float32"): inference runs the
    # tower in it unless told otherwise, so the projector sees features like those it was trained on.
    vision_feature_dtype: str | None = None
    # A checkpoint with NO video tower: its per-view inputs are EgoExo4D's released pre-extracted vectors, named by
    # their source (`profvlm_facts.RELEASED_FEATURE_SOURCES`, e.g. "egoexo4d:omnivore_video") and mean-pooled into the
    # temporal tokens' spans by training/extract_features.py; `video_feature_dim` is their width (read from the files
    # by `profvlm init --data_dir`, else the documented one). `vision_config` is then unused: no tower is built.
    # None (the default, and config.json files from before these keys): a video tower per `vision_config`.
    video_feature_source: str | None = None
    video_feature_dim: int | None = None
    tie_word_embeddings: bool = True

    def __post_init__(self, **kwargs):
        # The frame count has one owner, the tower's config (`num_frames` below reads it); older config.json files
        # still carry a copy, which is dropped here rather than kept as a second truth.
        kwargs.pop("num_frames", None)
        if self.view_names is None:
            self.view_names = list(VIEW_NAMES[: self.num_views])
        if self.proficiency_labels is None:
            self.proficiency_labels = list(PROFICIENCY_LABELS)
        super().__post_init__(**kwargs)
        self.proficiency_labels = check_label_list(self.proficiency_labels, "ProfVLMConfig.proficiency_labels")
        self.view_names = check_label_list(self.view_names, "ProfVLMConfig.view_names") if self.num_views > 1 else list(self.view_names)
        if len(self.view_names) != self.num_views:
            raise ValueError(
                f"ProfVLMConfig: view_names has {len(self.view_names)} entries ({self.view_names}) "
                f"but num_views is {self.num_views}; they must match."
            )
        if self.num_video_tokens < 1:
            raise ValueError(f"ProfVLMConfig: num_video_tokens must be >= 1, got {self.num_video_tokens}.")
        self.time_decimals = check_time_decimals(self.time_decimals, "ProfVLMConfig.time_decimals")
        self.clip_seconds, self.max_clips = check_clip_options(self.clip_seconds, self.max_clips, "ProfVLMConfig")
        if self.video_feature_source is None:
            check_temporal_tokens(self.vision_config, self.temporal_tokens)  # also: the tower family is supported
        else:
            self.video_feature_dim = self._check_feature_source()
        self.image_mean, self.image_std = _check_normalisation(self.image_mean, self.image_std)
        if type(self).__module__ == "modeling_profvlm.configuration_profvlm":
            # Installed package: the registered pipeline serves the task. transformers would otherwise prefer
            # config.json's `custom_pipelines` (remote code) and demand trust_remote_code. Only the checkpoint tooling
            # (profvlm init / push, the final SFT save) writes it, into config.json, where pipeline() reads it.
            self.__dict__.pop("custom_pipelines", None)


    def _check_feature_source(self) -> int:
        """The released vectors' width, after one-line ValueErrors for what a tower-less checkpoint cannot be."""
        source = released_feature_source(self.video_feature_source, "ProfVLMConfig.video_feature_source")
        tokens = self.temporal_tokens
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
            raise ValueError(f"ProfVLMConfig: temporal_tokens={self.temporal_tokens!r}; expected a whole number >= 1.")
        dim = source.feature_dim if self.video_feature_dim is None else self.video_feature_dim
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"ProfVLMConfig: video_feature_dim={dim!r} for {source.name}; expected a width >= 1.")
        return dim

    @property
    def num_frames(self) -> int:
        """Frames per clip: the tower's (its config is the one owner of this number). Without a tower (released
        features) one per temporal token: the processor's token spans are then N equal parts of the take."""
        if self.video_feature_source is not None:
            return int(self.temporal_tokens)
        return tower_num_frames(self.vision_config)

    @property
    def video_feature_size(self) -> int:
        """Width of the per-view features the projector takes: the released vectors' or the tower's hidden size."""
        if self.video_feature_source is not None:
            return int(self.video_feature_dim)
        return int(self.vision_config.hidden_size)

    @property
    def num_tokens_per_take(self) -> int:
        """Language-model tokens one clip of a take becomes: temporal_tokens x num_video_tokens (the whole take with
        `clip_seconds` unset; K clips make K times as many)."""
        return self.temporal_tokens * self.num_video_tokens

    @property
    def states_token_times(self) -> bool:
        """Whether the prompt states each video token's time: with N > 1 temporal tokens or clips over the take."""
        return self.temporal_tokens > 1 or self.clip_seconds is not None

    @property
    def tower_normalisation(self) -> tuple[list[float], list[float]]:
        """(image_mean, image_std) the tower's pixels are normalised with: the recorded ones, else the tower family's
        default."""
        if self.image_mean is not None:
            return list(self.image_mean), list(self.image_std)
        family = tower_family(self.vision_config)
        return list(family.image_mean), list(family.image_std)


def _check_normalisation(mean, std) -> tuple[list[float] | None, list[float] | None]:
    """(mean, std) as lists of 3 floats, both None, or a one-line ValueError naming the values."""
    if mean is None and std is None:
        return None, None
    try:
        checked = [float(x) for x in mean], [float(x) for x in std]
    except (TypeError, ValueError):
        checked = None
    if checked is None or len(checked[0]) != 3 or len(checked[1]) != 3 or min(checked[1]) <= 0:
        raise ValueError(f"ProfVLMConfig: image_mean {mean!r} / image_std {std!r}: expected 3 numbers each (RGB), "
                         "std > 0, or both None (the tower family's default).")
    return checked


def raw_video_refused(feature_source: str, what: str) -> ValueError:
    """The one-line error for raw video (`what`) given to a checkpoint whose per-view inputs are released features:
    it names the feature source and what to pass instead."""
    source = released_feature_source(feature_source)
    return ValueError(f"{what}: this checkpoint has no video tower; its per-view inputs are EgoExo4D's released "
                      f"{source.model} features ({source.name}), not video. Give it ROOT/{source.part}/"
                      "<take_uid>_<cam_id>_<stream_id>.pt files instead: `profvlm predict --data_dir ROOT`, or a feature "
                      "cache from `training/extract_features.py --data_dir ROOT` (video_features).")


def require_profvlm_checkpoint(path: str | os.PathLike, what: str = "--model") -> Path:
    """`path` as a Path if it is a local ProfVLM checkpoint folder (config.json with model_type "profvlm"), else a
    FileNotFoundError / ValueError naming the option, the folder and what was expected."""
    folder = Path(path)
    config = folder / "config.json"
    if not config.is_file():
        raise FileNotFoundError(f"{what} {folder}: no config.json there; expected a ProfVLM checkpoint folder "
                                "(written by `profvlm init` or training/sft.py as OUTPUT_DIR/final).")
    try:
        model_type = json.loads(config.read_text()).get("model_type")
    except json.JSONDecodeError as err:
        raise ValueError(f"{what} {config}: not valid JSON ({err}).") from err
    if model_type != ProfVLMConfig.model_type:
        raise ValueError(f"{what} {folder}: model_type is {model_type!r}, not 'profvlm'; expected a ProfVLM checkpoint "
                         "(a plain language model or tower goes to `profvlm init --text/--vision`).")
    return folder


__all__ = ["ProfVLMConfig", "raw_video_refused", "require_profvlm_checkpoint", "PROFICIENCY_LABELS", "VIEW_NAMES", "VIDEO_TOKEN"]
