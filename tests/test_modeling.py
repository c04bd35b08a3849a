"""[model] ProfVLM model: config, projector, Auto classes, generation, masking, LoRA, errors."""
import json

import pytest
import torch
from peft import get_peft_model
from transformers import AutoModel, AutoModelForImageTextToText

import modeling_profvlm  # noqa: F401  (registers the Auto classes)
from modeling_profvlm.configuration_profvlm import PROFICIENCY_LABELS, ProfVLMConfig
from modeling_profvlm.lora import count_parameters, default_lora_config
from modeling_profvlm.modeling_profvlm import ProfVLMForConditionalGeneration
from tests.tiny_assets import TINY_VIDEO_TOKEN_ID, tiny_inputs, tiny_profvlm


def test_default_config_is_the_paper_model():
    cfg = ProfVLMConfig()
    text, vision = cfg.text_config, cfg.vision_config
    assert (text.model_type, vision.model_type) == ("llama", "timesformer")
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads, text.num_key_value_heads) == (576, 30, 9, 3)
    assert (text.intermediate_size, text.vocab_size, cfg.tie_word_embeddings) == (1536, 49152, True)
    assert (vision.hidden_size, vision.num_frames, vision.image_size) == (768, 8, 224)
    assert cfg.num_views == 5 and cfg.view_names == ["ego", "exo1", "exo2", "exo3", "exo4"]
    assert cfg.num_video_tokens == 1 and cfg.proficiency_labels == list(PROFICIENCY_LABELS)


def test_default_config_with_default_lora_has_the_papers_trainable_parameters():
    with torch.device("meta"):
        model = get_peft_model(ProfVLMForConditionalGeneration(ProfVLMConfig(video_token_id=49152)), default_lora_config())
    _, trainable = count_parameters(model)
    assert abs(trainable - 5_255_362) <= 0.01 * 5_255_362, trainable
    trainable_names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert all("lora_" in n or "multi_modal_projector.modules_to_save" in n for n in trainable_names)
    assert not any("vision_tower" in n for n in trainable_names)


def test_config_rejects_inconsistent_views():
    with pytest.raises(ValueError, match="num_views"):
        ProfVLMConfig(num_views=3, view_names=["ego", "exo1"])


def test_auto_classes_load_the_saved_model_with_equal_logits(tmp_path):
    model, inputs = tiny_profvlm(), tiny_inputs()
    model.save_pretrained(tmp_path)
    with torch.no_grad():
        expected = model(**inputs).logits
    for auto_cls in (AutoModel, AutoModelForImageTextToText):
        loaded = auto_cls.from_pretrained(tmp_path).eval()
        assert type(loaded) is ProfVLMForConditionalGeneration
        with torch.no_grad():
            torch.testing.assert_close(loaded(**inputs).logits, expected, atol=1e-5, rtol=0)


def test_save_pretrained_writes_weights_only_and_no_code_as_a_side_effect(tmp_path):
    tiny_profvlm().save_pretrained(tmp_path)
    files = {p.name for p in tmp_path.iterdir()}
    assert "model.safetensors" in files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".ckpt", ".pkl"))]
    assert not [f for f in files if f.endswith(".py")], "code is exported where a checkpoint is finalised, not on save"
    assert "auto_map" not in json.loads((tmp_path / "config.json").read_text())


def test_a_finalised_checkpoint_carries_auto_map_custom_pipelines_and_code(tiny_checkpoint):
    files = {p.name for p in tiny_checkpoint.iterdir()}
    config = json.loads((tiny_checkpoint / "config.json").read_text())
    for key in ("AutoConfig", "AutoModel", "AutoModelForImageTextToText"):
        module = config["auto_map"][key].split(".")[0]
        assert f"{module}.py" in files, f"{key} -> {config['auto_map'][key]} but {module}.py was not written"
    assert config["auto_map"]["AutoModel"].endswith("ProfVLMForConditionalGeneration")
    assert config["custom_pipelines"]["proficiency-estimation"]["impl"] == "pipeline_profvlm.ProficiencyEstimationPipeline"
    processor = json.loads((tiny_checkpoint / "processor_config.json").read_text())
    assert processor["auto_map"]["AutoProcessor"] == "processing_profvlm.ProfVLMProcessor"


def test_trust_remote_code_from_hub_cache_without_the_project(hub_space, tmp_path):
    from profvlm.code_export import add_auto_map_to_json, export_code_files

    model, inputs = tiny_profvlm(), tiny_inputs()
    model.save_pretrained(tmp_path / "ckpt")
    export_code_files(tmp_path / "ckpt")
    add_auto_map_to_json(tmp_path / "ckpt" / "config.json")
    torch.save(inputs, tmp_path / "inputs.pt")
    with torch.no_grad():
        torch.save(model(**inputs).logits, tmp_path / "expected.pt")
    repo = hub_space.add(tmp_path / "ckpt", "org/profvlm-random-tiny")
    hub_space.run_isolated(
        f"""
import torch
from transformers import AutoModel
model = AutoModel.from_pretrained({repo!r}, trust_remote_code=True).eval()
assert type(model).__name__ == "ProfVLMForConditionalGeneration", type(model)
assert "transformers_modules" in type(model).__module__, type(model).__module__
with torch.no_grad():
    logits = model(**torch.load("inputs.pt")).logits
torch.testing.assert_close(logits, torch.load("expected.pt"), atol=1e-5, rtol=0)
print("OK")
""",
        tmp_path,
    )


def _count_tower_calls(model):
    calls = []
    model.model.vision_tower.register_forward_hook(lambda *a: calls.append(1))
    return calls


def test_generate_from_pixels_and_from_features_runs_tower_once_with_equal_first_logits():
    model, inputs = tiny_profvlm(), tiny_inputs()
    calls = _count_tower_calls(model)
    kwargs = dict(max_new_tokens=5, do_sample=False, return_dict_in_generate=True, output_logits=True)
    from_pixels = model.generate(**inputs, **kwargs)
    assert len(calls) == 1, f"the tower ran {len(calls)} times during one generate()"
    features = model.model.encode_views(inputs["pixel_values_videos"], inputs["view_mask"])
    calls.clear()
    feature_inputs = {k: v for k, v in inputs.items() if k != "pixel_values_videos"}
    from_features = model.generate(**feature_inputs, video_features=features, **kwargs)
    assert calls == []
    assert torch.equal(from_pixels.logits[0], from_features.logits[0])
    assert from_pixels.sequences.shape == (2, inputs["input_ids"].shape[1] + 5)


def test_masked_view_pixels_do_not_change_logits_at_all():
    model, inputs = tiny_profvlm(), tiny_inputs()
    with torch.no_grad():
        before = model(**inputs)
        perturbed = dict(inputs, pixel_values_videos=inputs["pixel_values_videos"].clone())
        perturbed["pixel_values_videos"][0, 3:] = torch.randn_like(perturbed["pixel_values_videos"][0, 3:]) * 100
        after = model(**perturbed)
        unmasked = dict(inputs, view_mask=torch.ones_like(inputs["view_mask"]))
        with_all_views = model(**unmasked)
    assert torch.equal(before.logits, after.logits)
    # The mask is not a no-op: the same pixels with every view present give other logits.
    assert not torch.allclose(before.logits[0], with_all_views.logits[0])


def test_view_weights_are_a_distribution_over_present_views():
    model, inputs = tiny_profvlm(), tiny_inputs()
    with torch.no_grad():
        weights = model(**inputs).view_weights
    assert weights.shape == (2, 5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2))
    assert torch.all(weights[0, 3:] == 0) and torch.all(weights[0, :3] > 0)


def test_lora_with_gradient_checkpointing_trains_only_lora_and_projector():
    model = get_peft_model(tiny_profvlm(), default_lora_config())
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    model.train()
    inputs = tiny_inputs()
    out = model(**inputs, labels=inputs["input_ids"])
    out.loss.backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert with_grad, "no parameter received a gradient"
    assert all("lora_" in n or "multi_modal_projector.modules_to_save" in n for n in with_grad), with_grad
    assert any("lora_B" in n for n in with_grad) and any("modules_to_save" in n for n in with_grad)


def test_real_smollm2_inside_profvlm_answers_paris(smollm2_dir):
    from transformers import AutoTokenizer

    from profvlm.assemble import assemble_profvlm

    model, _ = assemble_profvlm("random-tiny", str(smollm2_dir))
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True, return_tensors="pt", return_dict=True,
    )
    out = model.generate(**prompt, max_new_tokens=16, do_sample=False)
    answer = tokenizer.decode(out[0, prompt["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer, answer


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda i: i.update(pixel_values_videos=i["pixel_values_videos"][0]), r"6-D .*got 5-D"),
        (lambda i: i.update(pixel_values_videos=i["pixel_values_videos"][:, :4], view_mask=i["view_mask"][:, :4]),
         r"4 views.*num_views=5"),
        (lambda i: i["input_ids"].__setitem__((1, 4), TINY_VIDEO_TOKEN_ID), r"3 `<video>` placeholder.*2 video sample"),
        (lambda i: i.update(view_mask=i["view_mask"][:, :3]), r"shape \(batch, num_views\) = \(2, 5\), got \(2, 3\)"),
        (lambda i: i["view_mask"].__setitem__(1, 0), r"Sample\(s\) \[1\] have every view masked"),
    ],
    ids=["rank", "views", "placeholders", "view_mask_shape", "all_masked"],
)
def test_bad_input_raises_value_error_with_expected_and_received(change, message):
    model, inputs = tiny_profvlm(), tiny_inputs()
    change(inputs)
    with pytest.raises(ValueError, match=message):
        model(**inputs)


def test_bad_video_features_shape_is_reported():
    model, inputs = tiny_profvlm(), tiny_inputs()
    inputs.pop("pixel_values_videos")
    with pytest.raises(ValueError, match=r"video_features must have shape \(batch, views, temporal_tokens, dim\) = \(batch, 5, 1, 64\), got \(2, 5, 10\)"):
        model(**inputs, video_features=torch.zeros(2, 5, 10))


@pytest.mark.parametrize("poison", [float("nan"), float("inf"), -float("inf"), 1e30])
def test_a_masked_view_is_inert_through_video_features(poison):
    model, inputs = tiny_profvlm(), tiny_inputs()
    with torch.no_grad():
        features = model.model.encode_views(inputs["pixel_values_videos"], inputs["view_mask"])
        clean = model(input_ids=inputs["input_ids"], video_features=features, view_mask=inputs["view_mask"])
        poisoned = features.clone()
        poisoned[inputs["view_mask"] == 0] = poison  # sample 0 has views 3 and 4 masked
        dirty = model(input_ids=inputs["input_ids"], video_features=poisoned, view_mask=inputs["view_mask"])
    assert torch.isfinite(dirty.logits).all()
    assert torch.equal(dirty.logits, clean.logits)
    assert torch.equal(dirty.view_weights, clean.view_weights)
    assert torch.equal(dirty.video_outputs.pooler_output, clean.video_outputs.pooler_output)


@pytest.mark.parametrize("poison", [float("nan"), float("inf"), 1e30])
def test_a_masked_view_is_inert_through_pixels(poison):
    model, inputs = tiny_profvlm(), tiny_inputs()
    poisoned = inputs["pixel_values_videos"].clone()
    poisoned[inputs["view_mask"] == 0] = poison
    with torch.no_grad():
        clean = model(**inputs)
        dirty = model(**{**inputs, "pixel_values_videos": poisoned})
    assert torch.equal(dirty.logits, clean.logits) and torch.equal(dirty.view_weights, clean.view_weights)


def test_view_mask_is_required_with_several_views():
    model, inputs = tiny_profvlm(), tiny_inputs()
    with torch.no_grad(), pytest.raises(ValueError, match="view_mask is required with num_views=5"):
        model(input_ids=inputs["input_ids"], pixel_values_videos=inputs["pixel_values_videos"])
    features = torch.zeros(2, 5, model.config.vision_config.hidden_size)
    with torch.no_grad(), pytest.raises(ValueError, match="view_mask is required"):
        model(input_ids=inputs["input_ids"], video_features=features)
    single = tiny_profvlm(num_views=1)
    with torch.no_grad():  # one view: nothing can be missing, so no mask is needed
        out = single(input_ids=inputs["input_ids"], pixel_values_videos=inputs["pixel_values_videos"][:, :1])
    assert torch.isfinite(out.logits).all()
