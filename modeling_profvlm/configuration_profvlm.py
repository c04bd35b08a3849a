# ProfVLM configuration: frozen TimeSformer per view -> AttentiveGatedProjector -> SmolLM2 (+LoRA).
import importlib

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

# The one place that knows the label set and its ordinal order (EgoExo4D demonstrator proficiency).
PROFICIENCY_LABELS: tuple[str, ...] = ("Novice", "Early Expert", "Intermediate Expert", "Late Expert")
# The one place that knows the camera views and their order: the Aria ego view first, then up to four GoPros.
VIEW_NAMES: tuple[str, ...] = ("ego", "exo1", "exo2", "exo3", "exo4")
VIDEO_TOKEN = "<video>"

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
# TimeSformer-base as in facebook/timesformer-base-finetuned-k600 (8 frames, 224 px, hidden 768).
TIMESFORMER_BASE_VISION_CONFIG = {
    "model_type": "timesformer",
    "image_size": 224,
    "patch_size": 16,
    "num_frames": 8,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
}
# A tiny tower for tests and quick demos (~0.2M parameters, ~1 ms per clip on a CPU).
TIMESFORMER_TINY_VISION_CONFIG = {
    "model_type": "timesformer",
    "image_size": 32,
    "patch_size": 8,
    "num_frames": 4,
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 128,
}


class ProfVLMConfig(PreTrainedConfig):
    """Configuration of ProfVLM. With no arguments it describes the paper model:
    TimeSformer-base (8 frames, 224 px) for each of 5 views, an AttentiveGatedProjector (hidden 1024, 4 heads)
    and SmolLM2-135M-Instruct. Sub-configs accept dicts, so a tiny test model is a dict away."""

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
    num_frames: int = 8
    num_video_tokens: int = 1
    video_token: str = VIDEO_TOKEN
    video_token_id: int | None = None
    projector_hidden_size: int = 1024
    projector_num_heads: int = 4
    projector_dropout: float = 0.1
    # "Adaptive self-calibration" initial statistics from SkillFormer's AttentiveProjector (PAPER.md §1a).
    projector_init_mean: float = 0.0007
    projector_init_std: float = 0.1168
    proficiency_labels: list[str] | None = None
    # Set to True by `profvlm init` when the tower was randomly initialised (no pretrained weights reachable).
    vision_tower_random_init: bool = False
    tie_word_embeddings: bool = True

    def __post_init__(self, **kwargs):
        if self.view_names is None:
            self.view_names = list(VIEW_NAMES[: self.num_views])
        if self.proficiency_labels is None:
            self.proficiency_labels = list(PROFICIENCY_LABELS)
        super().__post_init__(**kwargs)
        if len(self.view_names) != self.num_views:
            raise ValueError(
                f"ProfVLMConfig: view_names has {len(self.view_names)} entries ({self.view_names}) "
                f"but num_views is {self.num_views}; they must match."
            )
        if self.num_video_tokens < 1:
            raise ValueError(f"ProfVLMConfig: num_video_tokens must be >= 1, got {self.num_video_tokens}.")
        if type(self).__module__ == "modeling_profvlm.configuration_profvlm":
            # Installed package: the registered pipeline serves the task. transformers would otherwise prefer
            # config.json's `custom_pipelines` (remote code) and demand trust_remote_code. Saving writes it back.
            self.__dict__.pop("custom_pipelines", None)

    def save_pretrained(self, save_directory, push_to_hub: bool = False, **kwargs):
        """Save config.json; from an installed checkout also write `auto_map`, `custom_pipelines` and the
        code files, so the folder loads with `trust_remote_code=True` where this package is not installed."""
        super().save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)
        try:  # imported by name: code_export is not shipped next to checkpoints, so no static import
            code_export = importlib.import_module("modeling_profvlm.code_export")
        except ImportError:  # loaded from a Hub folder: transformers copies its own code files on save
            return
        code_export.export_code_files(save_directory)
        code_export.add_auto_map_to_json(f"{save_directory}/config.json")


__all__ = ["ProfVLMConfig", "PROFICIENCY_LABELS", "VIEW_NAMES", "VIDEO_TOKEN"]
