"""[time-axis] Per-view features with a time axis (B, V, N, D) behind any supported Hugging Face video tower: the
default stays the paper's, N > 1 pools per time step, masked views stay inert, prompts state the tokens' times,
old feature caches are read as N = 1, and every tower family runs init -> extract -> SFT -> pipeline."""
import json
import sys

import pytest
import torch

from tests.tiny_assets import tiny_inputs, tiny_profvlm
from tests.training_helpers import run_script


def _tower_tokens(model, clips):
    return model.model.vision_tower(pixel_values=clips).last_hidden_state


def test_one_temporal_token_is_the_mean_over_all_of_the_towers_tokens():
    model, inputs = tiny_profvlm(), tiny_inputs()
    features = model.model.encode_views(inputs["pixel_values_videos"], inputs["view_mask"])
    assert features.shape == (2, 5, 1, 64)
    with torch.no_grad():
        direct = _tower_tokens(model, inputs["pixel_values_videos"][1, 0:1]).mean(1)  # take 1, ego: CLS + all patches
    torch.testing.assert_close(features[1, 0, 0], direct[0], atol=1e-6, rtol=1e-6)
    assert torch.all(features[0, 3:] == 0)  # masked views hold zeros


def test_n_temporal_tokens_average_each_frames_patches_into_time_bins():
    model, inputs = tiny_profvlm(temporal_tokens=2), tiny_inputs()
    features = model.model.encode_views(inputs["pixel_values_videos"], inputs["view_mask"])
    assert features.shape == (2, 5, 2, 64)
    with torch.no_grad():
        tokens = _tower_tokens(model, inputs["pixel_values_videos"][0, 1:2])[0, 1:]  # drop CLS: [P * T, D]
    # TimeSformer orders tokens patch by patch, each patch's 4 frames in a row: frame t is every 4th token from t.
    per_frame = torch.stack([tokens[t::4].mean(0) for t in range(4)])
    torch.testing.assert_close(features[0, 1, 0], per_frame[:2].mean(0), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(features[0, 1, 1], per_frame[2:].mean(0), atol=1e-5, rtol=1e-5)


def test_n_tokens_reach_the_language_model_in_time_order_and_masked_views_stay_inert():
    model, inputs = tiny_profvlm(temporal_tokens=4), tiny_inputs()
    inputs["input_ids"][:, 2:6] = model.config.video_token_id  # 4 placeholders per take
    video = model.get_video_features(inputs["pixel_values_videos"], inputs["view_mask"])
    assert video.pooler_output.shape == (2, 4 * model.config.num_video_tokens, model.config.text_config.hidden_size)
    assert video.view_weights.shape == (2, 5) and video.step_view_weights.shape == (2, 4, 5)
    torch.testing.assert_close(video.view_weights, video.step_view_weights.mean(1))
    assert torch.all(video.step_view_weights[0, :, 3:] == 0)  # a missing camera gets no weight at any step
    features = video.last_hidden_state.clone()
    reference = model(input_ids=inputs["input_ids"], video_features=features, view_mask=inputs["view_mask"]).logits
    for poison in (float("nan"), float("inf"), 1e30):
        poisoned = features.clone()
        poisoned[0, 3:] = poison
        logits = model(input_ids=inputs["input_ids"], video_features=poisoned, view_mask=inputs["view_mask"]).logits
        assert torch.equal(logits, reference), poison


def test_placeholders_must_match_n_times_num_video_tokens():
    model, inputs = tiny_profvlm(temporal_tokens=2), tiny_inputs()  # one placeholder per take, two expected
    with pytest.raises(ValueError, match=r"temporal_tokens=2 x num_video_tokens=1 = 4 were expected"):
        model(**inputs)


def test_temporal_tokens_above_the_towers_time_steps_fail_in_one_line(tiny_text_dir, tmp_path, capsys):
    from profvlm.cli import main as profvlm

    with pytest.raises(ValueError, match=r"temporal_tokens=5 .* 4 time step\(s\) .* 1 <= temporal_tokens <= 4"):
        tiny_profvlm(temporal_tokens=5)
    code = profvlm(["init", "--vision", "random-tiny", "--text", str(tiny_text_dir), "--output_dir",
                    str(tmp_path / "ckpt"), "--temporal_tokens", "9"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "temporal_tokens=9" in err[0] and "<= 4" in err[0]


def test_an_unsupported_tower_type_lists_the_supported_ones():
    from modeling_profvlm.configuration_profvlm import ProfVLMConfig

    with pytest.raises(ValueError, match="unsupported video tower model_type 'vit'; supported: timesformer, videomae, "
                                         "vjepa2, vivit"):
        ProfVLMConfig(vision_config={"model_type": "vit"})


def test_the_prompt_states_each_tokens_time_and_the_duration(tiny_tokenizer):
    from processing.processing_profvlm import ProfVLMProcessor

    kwargs = dict(tokenizer=tiny_tokenizer, num_frames=8, image_size=32)
    one = ProfVLMProcessor(**kwargs)
    four = ProfVLMProcessor(**kwargs, temporal_tokens=4, frames_per_time_step=2)
    prompt = one.build_prompt()
    assert one.tokenizer.decode(one(text=prompt)["input_ids"][0]).count("<video>") == 1
    assert "[" not in one.tokenizer.decode(one(text=prompt)["input_ids"][0])  # N = 1: today's prompt, no times
    times = [{"times": [0.5, 7.0, 64.9, 3600.0], "duration": 3725.2}]
    text = four.tokenizer.decode(four(text=prompt, token_times=times)["input_ids"][0])
    assert "(1:02:05) [0:00]<video> [0:07]<video> [1:04]<video> [1:00:00]<video>" in text
    with pytest.raises(ValueError, match="temporal_tokens=4.*token_times"):
        four(text=prompt)


def test_token_times_come_from_the_sampled_frames_of_a_video(tiny_tokenizer, tmp_path):
    from processing.processing_profvlm import ProfVLMProcessor
    from tests.video_fixtures import write_pattern_video

    path = tmp_path / "v.mp4"
    write_pattern_video(path, num_frames=80, height=32, width=32, fps=10)  # 8 s
    processor = ProfVLMProcessor(tokenizer=tiny_tokenizer, num_frames=8, image_size=32, temporal_tokens=2,
                                 frames_per_time_step=2, view_names=["cam"])
    out = processor(text=processor.build_prompt(), videos=[{"cam": str(path)}], return_metadata=True)
    frame_times = out["video_metadata"][0][0]["times"]
    # 8 tower frames = 4 time steps of 2 frames; 2 tokens: steps {0, 1} and {2, 3}, starting at frames 0 and 4.
    assert processor.token_times(out["video_metadata"]) == [{"times": [frame_times[0], frame_times[4]],
                                                              "duration": pytest.approx(8.0, abs=0.11)}]
    text = processor.tokenizer.decode(out["input_ids"][0])
    assert "(0:08) [0:00]<video> [0:04]<video>" in text


def test_a_version_1_cache_is_read_as_one_token_and_refused_for_more(tmp_path):
    from safetensors.torch import save_file

    from training.feature_cache import (
        FeatureCache,
        StaleFeatureCacheError,
        build_manifest,
        manifest_fingerprint,
        take_path,
    )

    model = tiny_profvlm()
    sampling = {"sampler": "uniform", "num_frames": 4, "image_size": 32}
    manifest = build_manifest(model, sampling, torch.float32)
    legacy = {k: v for k, v in manifest.items() if k not in ("tower_type", "temporal_tokens")}
    legacy.update(version=1, pooling="mean over all tower tokens (CLS + T*patches)")
    (tmp_path / "manifest.json").write_text(json.dumps(legacy))
    vectors = {"ego": torch.randn(64), "exo2": torch.randn(64)}  # the old layout: one (D,) vector per view
    take_path(tmp_path, "old").parent.mkdir(parents=True)
    save_file(vectors, str(take_path(tmp_path, "old")), metadata={"fingerprint": manifest_fingerprint(legacy)})

    cache = FeatureCache(tmp_path, expected_manifest=manifest)
    features, mask = cache["old"]
    assert features.shape == (5, 1, 64) and mask.tolist() == [1, 0, 1, 0, 0]
    assert torch.equal(features[0, 0], vectors["ego"]) and torch.equal(features[2, 0], vectors["exo2"])
    two = build_manifest(tiny_profvlm(temporal_tokens=2), sampling, torch.float32)
    with pytest.raises(StaleFeatureCacheError, match=r"temporal_tokens: cache has 1, expected 2"):
        FeatureCache(tmp_path, expected_manifest=two)


# --------------------------------------------------- every tower family: init -> extract -> 2 SFT steps -> pipeline
UNUSUAL_MEAN, UNUSUAL_STD = [0.11, 0.22, 0.33], [0.61, 0.72, 0.83]


def _tower_folder(root, family: str):
    """A tiny random tower of `family` saved as a Hub-layout folder whose preprocessor config has unusual mean/std."""
    from transformers import AutoConfig, AutoModel

    from modeling_profvlm.tower_adapter import TOWER_PRESETS

    preset = dict(TOWER_PRESETS[family]["tiny"])
    torch.manual_seed(0)
    AutoModel.from_config(AutoConfig.for_model(preset.pop("model_type"), **preset)).save_pretrained(root)
    name = "video_preprocessor_config.json" if family == "vjepa2" else "preprocessor_config.json"
    (root / name).write_text(json.dumps({"image_mean": UNUSUAL_MEAN, "image_std": UNUSUAL_STD}))
    return root


@pytest.mark.parametrize("family", ["timesformer", "videomae", "vjepa2", "vivit"])
def test_every_tower_family_inits_extracts_trains_and_predicts(family, tiny_text_dir, tree, tmp_path):
    from profvlm.cli import main as profvlm
    from training.extract_features import main as extract

    tower = _tower_folder(tmp_path / f"{family}_tower", family)
    base = tmp_path / "base"
    assert profvlm(["init", "--vision", str(tower), "--text", str(tiny_text_dir), "--output_dir", str(base),
                    "--temporal_tokens", "2"]) == 0
    processor_config = json.loads((base / "processor_config.json").read_text())
    assert processor_config["image_mean"] == UNUSUAL_MEAN and processor_config["image_std"] == UNUSUAL_STD
    config = json.loads((base / "config.json").read_text())
    assert config["vision_config"]["model_type"] == family and config["temporal_tokens"] == 2

    cache = tmp_path / "cache"
    extract(["--model", str(base), "--data_dir", str(tree), "--output_dir", str(cache), "--dtype", "float32"])
    manifest = json.loads((cache / "manifest.json").read_text())
    assert (manifest["tower_type"], manifest["temporal_tokens"]) == (family, 2)
    assert manifest["sampling"]["image_mean"] == UNUSUAL_MEAN

    out = tmp_path / "run"
    run_script([sys.executable, "training/sft.py", "--model", str(base), "--data_dir", str(tree), "--features",
                str(cache), "--output_dir", str(out), "--max_steps", "2", "--per_device_train_batch_size", "2",
                "--eval_split", "none", "--report_to", "none", "--save_strategy", "no"])

    from modeling_profvlm.pipeline_profvlm import load_proficiency_pipeline
    from training.extract_features import collect_takes

    pipe = load_proficiency_pipeline(str(out / "final"), dtype="float32")
    take = next(iter(collect_takes(str(tree), "demonstrator", ["validation"]).values()))
    result = pipe(take, max_new_tokens=3)
    assert result["proficiency"] in config["proficiency_labels"]
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("source, family, expected", [
    ("MCG-NJU/videomae-base", "videomae", "cc-by-nc-4.0"),
    ("facebook/vjepa2-vitg-fpc64-384", "vjepa2", "apache-2.0"),
    ("google/vivit-b-16x2-kinetics400", "vivit", "other"),  # its card's licence is not recorded here: never a default
    ("/data/my_videomae", "videomae", "other"),
])
def test_the_cards_tower_licence_knows_each_family_or_says_other(source, family, expected):
    from modeling_profvlm.tower_adapter import TOWER_PRESETS
    from profvlm.card_licenses import tower_license
    from tests.tiny_assets import tiny_profvlm_config

    config = tiny_profvlm_config(vision_config=TOWER_PRESETS[family]["tiny"], vision_tower_source=source)
    licence = tower_license(config)
    assert licence.license == expected
    if expected == "other":
        assert family in licence.source and "not recorded" in licence.text
