"""ProfVLM model package. Importing it registers the Auto classes (config, model, image-text-to-text)."""
from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText

from .configuration_profvlm import PROFICIENCY_LABELS, VIDEO_TOKEN, VIEW_NAMES, ProfVLMConfig
from .modeling_profvlm import (
    AttentiveGatedProjector,
    ProfVLMForConditionalGeneration,
    ProfVLMModel,
    ProfVLMPreTrainedModel,
)

AutoConfig.register("profvlm", ProfVLMConfig, exist_ok=True)
# AutoModel maps to the generating model, as in other custom-code VLM repos (ARCHITECTURE.md).
AutoModel.register(ProfVLMConfig, ProfVLMForConditionalGeneration, exist_ok=True)
AutoModelForImageTextToText.register(ProfVLMConfig, ProfVLMForConditionalGeneration, exist_ok=True)

__all__ = [
    "PROFICIENCY_LABELS",
    "VIDEO_TOKEN",
    "VIEW_NAMES",
    "AttentiveGatedProjector",
    "ProfVLMConfig",
    "ProfVLMForConditionalGeneration",
    "ProfVLMModel",
    "ProfVLMPreTrainedModel",
]
