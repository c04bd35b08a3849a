"""ProfVLM model package. Importing it registers the Auto classes (config, model, image-text-to-text) and the
`proficiency-estimation` pipeline task."""
from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText
from transformers.pipelines import PIPELINE_REGISTRY

from .configuration_profvlm import ProfVLMConfig
from .modeling_profvlm import (
    AttentiveGatedProjector,
    ProfVLMForConditionalGeneration,
    ProfVLMModel,
    ProfVLMPreTrainedModel,
)
from .pipeline_profvlm import ProficiencyEstimationPipeline
from .profvlm_facts import PROFICIENCY_LABELS, VIDEO_TOKEN, VIEW_NAMES

AutoConfig.register("profvlm", ProfVLMConfig, exist_ok=True)
# AutoModel maps to the generating model, as in other custom-code VLM repos.
AutoModel.register(ProfVLMConfig, ProfVLMForConditionalGeneration, exist_ok=True)
AutoModelForImageTextToText.register(ProfVLMConfig, ProfVLMForConditionalGeneration, exist_ok=True)

PIPELINE_REGISTRY.register_pipeline(
    "proficiency-estimation",
    pipeline_class=ProficiencyEstimationPipeline,
    pt_model=AutoModelForImageTextToText,
    type="multimodal",
)

__all__ = [
    "PROFICIENCY_LABELS",
    "VIDEO_TOKEN",
    "VIEW_NAMES",
    "AttentiveGatedProjector",
    "ProficiencyEstimationPipeline",
    "ProfVLMConfig",
    "ProfVLMForConditionalGeneration",
    "ProfVLMModel",
    "ProfVLMPreTrainedModel",
]
