"""[processor] A checkpoint's processor is its model's own: its tower facts come from the ProfVLMConfig, and a
processor_config.json that disagrees with config.json is refused at load in one line naming both values."""
import json
import shutil

import pytest
from transformers import AutoProcessor

import processing  # noqa: F401  (registers ProfVLMProcessor with AutoProcessor)
from modeling_profvlm.configuration_profvlm import ProfVLMConfig
from modeling_profvlm.tower_adapter import TOWER_PRESETS
from processing.processing_profvlm import MODEL_FACTS, ProfVLMProcessor, model_facts


@pytest.fixture
def checkpoint(tiny_checkpoint, tmp_path):
    """A copy of the session's tiny checkpoint (as `profvlm init` writes it) that a test may edit."""
    return shutil.copytree(tiny_checkpoint, tmp_path / "ckpt")


def edit_json(path, **changes) -> dict:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))
    return data


def test_init_records_the_towers_normalisation_and_the_processor_takes_every_fact_from_the_config(tiny_checkpoint):
    config = json.loads((tiny_checkpoint / "config.json").read_text())
    saved = json.loads((tiny_checkpoint / "processor_config.json").read_text())
    assert config["image_mean"] == saved["image_mean"] == [0.45] * 3  # random-tiny: TimeSformer's
    assert config["image_std"] == saved["image_std"] == [0.225] * 3
    facts = model_facts(ProfVLMConfig.from_pretrained(tiny_checkpoint))
    assert {key: saved[key] for key in MODEL_FACTS} == facts
    assert (facts["num_frames"], facts["image_size"]) == (4, 32)  # the tiny tower's, not a processor default


@pytest.mark.parametrize("loader", [AutoProcessor, ProfVLMProcessor])
@pytest.mark.parametrize(("key", "value", "model_says"), [
    ("num_frames", 16, "vision_config.num_frames=4"),
    ("image_size", 224, "vision_config.image_size=32"),
    ("image_mean", [0.485, 0.456, 0.406], "image_mean=[0.45, 0.45, 0.45]"),
])
def test_a_processor_config_that_disagrees_with_the_model_is_refused_in_one_line(checkpoint, loader, key, value,
                                                                                  model_says):
    edit_json(checkpoint / "processor_config.json", **{key: value})
    with pytest.raises(ValueError) as err:
        loader.from_pretrained(checkpoint)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{checkpoint}/processor_config.json {key}={value!r} disagrees with the model's "
                              f"config.json ({model_says})"), message
    assert "from_model_config" in message


def test_an_override_at_load_that_disagrees_with_the_model_is_refused(checkpoint):
    with pytest.raises(ValueError, match=r"^from_pretrained\(image_mean=\[0\.5, 0\.5, 0\.5\]\) disagrees with the "
                                         r"model's config\.json \(image_mean=\[0\.45, 0\.45, 0\.45\]\)"):
        ProfVLMProcessor.from_pretrained(checkpoint, image_mean=[0.5] * 3)
    # A processing choice that is no model fact may be overridden.
    assert ProfVLMProcessor.from_pretrained(checkpoint, frame_sampler="segments").frame_sampler == "segments"


def test_an_unedited_checkpoint_loads_with_the_models_facts(checkpoint):
    processor = AutoProcessor.from_pretrained(checkpoint)
    assert type(processor) is ProfVLMProcessor
    config = ProfVLMConfig.from_pretrained(checkpoint)
    assert {key: getattr(processor, key) for key in MODEL_FACTS} == model_facts(config)


def test_an_old_config_without_a_normalisation_loads_and_its_processors_own_is_kept(checkpoint):
    # config.json files from before image_mean/image_std were recorded: nothing to compare the normalisation with.
    config = json.loads((checkpoint / "config.json").read_text())
    for key in ("image_mean", "image_std"):
        config.pop(key)
    (checkpoint / "config.json").write_text(json.dumps(config))
    edit_json(checkpoint / "processor_config.json", image_mean=[0.11, 0.22, 0.33])
    assert ProfVLMConfig.from_pretrained(checkpoint).image_mean is None
    assert ProfVLMProcessor.from_pretrained(checkpoint).image_mean == [0.11, 0.22, 0.33]
    # The tower's facts are still checked against such a config.
    edit_json(checkpoint / "processor_config.json", num_frames=16)
    with pytest.raises(ValueError, match=r"num_frames=16 disagrees .*\(vision_config\.num_frames=4\)"):
        ProfVLMProcessor.from_pretrained(checkpoint)


def test_a_processor_saved_without_a_model_loads_unchecked(tiny_tokenizer, tmp_path):
    processor = ProfVLMProcessor(tiny_tokenizer, num_frames=3, image_size=24)
    processor.save_pretrained(tmp_path)
    assert ProfVLMProcessor.from_pretrained(tmp_path).num_frames == 3


def test_from_model_config_takes_each_fact_from_the_config(tiny_tokenizer):
    videomae = dict(TOWER_PRESETS["videomae"]["tiny"], num_frames=12, image_size=40)
    config = ProfVLMConfig(vision_config=videomae, num_views=2, view_names=["left", "right"], temporal_tokens=3,
                           num_video_tokens=2, text_config={"model_type": "llama", "vocab_size": 64,
                                                            "hidden_size": 16, "intermediate_size": 32,
                                                            "num_hidden_layers": 1, "num_attention_heads": 2})
    processor = ProfVLMProcessor.from_model_config(config, tiny_tokenizer, frame_sampler="segments")
    assert (processor.num_frames, processor.image_size, processor.frames_per_time_step) == (12, 40, 2)
    assert (processor.temporal_tokens, processor.num_video_tokens, processor.view_names) == (3, 2, ["left", "right"])
    assert processor.image_mean == [0.5] * 3 and processor.image_std == [0.5] * 3  # VideoMAE's default: not recorded
    assert processor.frame_sampler == "segments"
    config.image_mean, config.image_std = [0.1, 0.2, 0.3], [0.4, 0.5, 0.6]
    assert ProfVLMProcessor.from_model_config(config, tiny_tokenizer).image_mean == [0.1, 0.2, 0.3]


def test_a_processor_has_no_frame_count_or_size_of_its_own(tiny_tokenizer):
    with pytest.raises(ValueError, match=r"needs its tower's num_frames and image_size .*from_model_config"):
        ProfVLMProcessor(tiny_tokenizer)


def test_post_process_feedback_reads_the_continuation_after_the_label(tiny_tokenizer):
    processor = ProfVLMProcessor(tiny_tokenizer, num_frames=2, image_size=16)
    generated = ["\nFeedback: Keep the elbow in.", "\n feedback : Steady. \n", "off format ", ""]
    assert processor.post_process_feedback(generated) == ["Keep the elbow in.", "Steady.", "off format", ""]
