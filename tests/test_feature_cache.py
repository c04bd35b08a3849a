"""[training] Feature cache: manifest pins tower + sampling, stale/foreign caches refused, corrupt files named,
extraction resumes and matches the model's own encoding, takes sharded across two ranks."""
import json
import logging
import re
import shutil
import sys

import pytest
import torch

from tests.tiny_assets import tiny_profvlm
from tests.training_helpers import run_script
from training.feature_cache import (
    CorruptFeatureCacheError,
    FeatureCache,
    FeatureCacheError,
    StaleFeatureCacheError,
    build_manifest,
    manifest_fingerprint,
    take_path,
    weights_sha256,
    write_manifest,
    write_take,
)

SAMPLING = {"sampler": "uniform", "num_frames": 4, "image_size": 32, "image_mean": [0.45] * 3,
            "image_std": [0.225] * 3, "snap_to_keyframes": False}


def _make_cache(path, model, takes=("take-a", "take-b"), sampling=SAMPLING, dtype=torch.float32):
    manifest = build_manifest(model, sampling, dtype)
    write_manifest(path, manifest)
    views = manifest["view_names"]
    for i, uid in enumerate(takes):
        mask = torch.tensor([1, 1, 0, 1, 0])
        features = torch.randn(len(views), 1, manifest["feature_dim"]) * mask[:, None, None]
        write_take(path, uid, features.to(dtype), mask, views, manifest_fingerprint(manifest))
    return manifest


def test_cache_round_trip_keyed_by_take_and_view(tmp_path):
    model = tiny_profvlm()
    manifest = _make_cache(tmp_path, model)
    cache = FeatureCache(tmp_path, expected_manifest=build_manifest(model, SAMPLING, torch.float32))
    features, mask = cache["take-a"]
    assert features.shape == (5, 1, 64) and features.dtype == torch.float32
    assert mask.tolist() == [1, 1, 0, 1, 0] and torch.all(features[2] == 0) and torch.all(features[4] == 0)
    from safetensors import safe_open

    with safe_open(str(take_path(tmp_path, "take-a")), framework="pt") as f:
        assert sorted(f.keys()) == ["ego", "exo1", "exo3"]  # one tensor per present view
        assert f.metadata()["take_uid"] == "take-a"
    assert manifest["tower"]["weights_sha256"] == weights_sha256(model.model.vision_tower)
    assert not list(tmp_path.rglob("*.pkl")) and not list(tmp_path.rglob("*.pt"))


def test_bf16_cache_is_read_as_float32(tmp_path):
    model = tiny_profvlm()
    _make_cache(tmp_path, model, dtype=torch.bfloat16)
    features, _ = FeatureCache(tmp_path)["take-b"]
    assert features.dtype == torch.float32
    assert json.loads((tmp_path / "manifest.json").read_text())["dtype"] == "bfloat16"


def test_cache_from_another_tower_is_refused(tmp_path):
    _make_cache(tmp_path, tiny_profvlm(seed=0))
    other = tiny_profvlm(seed=1)  # same config, different weights
    with pytest.raises(StaleFeatureCacheError, match="tower.weights_sha256") as err:
        FeatureCache(tmp_path, expected_manifest=build_manifest(other, SAMPLING, torch.float32))
    assert str(tmp_path / "manifest.json") in str(err.value)


def test_cache_from_another_sampling_or_tower_config_is_refused(tmp_path):
    model = tiny_profvlm()
    _make_cache(tmp_path, model)
    with pytest.raises(StaleFeatureCacheError, match="sampling.num_frames: cache has 4, expected 8"):
        FeatureCache(tmp_path, expected_manifest=build_manifest(model, {**SAMPLING, "num_frames": 8}, torch.float32))
    bigger = tiny_profvlm(vision_config={**model.config.vision_config.to_dict(), "num_hidden_layers": 3})
    with pytest.raises(StaleFeatureCacheError, match="tower.config"):
        FeatureCache(tmp_path, expected_manifest=build_manifest(bigger, SAMPLING, torch.float32))


def test_same_tower_with_other_dtype_is_accepted_for_training(tmp_path):
    model = tiny_profvlm()
    manifest = _make_cache(tmp_path, model, dtype=torch.bfloat16)
    # bf16 keeps 8 significant bits: 1 + 2**-10 is stored as 1.0; 3.0 and -0.5 are exact
    features = torch.zeros(5, 1, 64)
    features[0], features[1], features[3] = 1 + 2**-10, 3.0, -0.5
    mask = torch.tensor([1, 1, 0, 1, 0])
    write_take(tmp_path, "take-c", features.to(torch.bfloat16), mask, manifest["view_names"],
               manifest_fingerprint(manifest))
    cache = FeatureCache(tmp_path, expected_manifest=build_manifest(model, SAMPLING, torch.float32))
    loaded, loaded_mask = cache["take-c"]
    expected = torch.zeros(5, 1, 64)
    expected[0], expected[1], expected[3] = 1.0, 3.0, -0.5
    assert loaded.dtype == torch.float32 and torch.equal(loaded, expected)
    assert loaded_mask.tolist() == [1, 1, 0, 1, 0]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "nan", "wrong_shape", "foreign_file"])
def test_corrupt_take_file_is_reported_by_name(tmp_path, damage):
    model = tiny_profvlm()
    manifest = _make_cache(tmp_path, model)
    path = take_path(tmp_path, "take-b")
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:40])
    elif damage == "garbage":
        path.write_bytes(b"\x00\x01not a safetensors file" * 10)
    elif damage == "nan":
        write_take(tmp_path, "take-b", torch.full((5, 1, 64), float("nan")), torch.ones(5, dtype=torch.long),
                   manifest["view_names"], manifest_fingerprint(manifest))
    elif damage == "wrong_shape":
        from safetensors.torch import save_file

        save_file({"ego": torch.zeros(63)}, str(path), metadata={"fingerprint": manifest_fingerprint(manifest)})
    else:  # a file copied in from a cache of another tower
        write_take(tmp_path, "take-b", torch.zeros(5, 1, 64), torch.ones(5, dtype=torch.long),
                   manifest["view_names"], "0" * 64)
    cache = FeatureCache(tmp_path)
    cache["take-a"]  # the intact file still loads
    with pytest.raises(CorruptFeatureCacheError) as err:
        cache.preload(["take-a", "take-b"])
    assert str(path) in str(err.value)


def test_corrupt_manifest_and_missing_takes_are_reported(tmp_path):
    model = tiny_profvlm()
    _make_cache(tmp_path, model)
    with pytest.raises(FeatureCacheError, match="lacks 2 take") as err:
        FeatureCache(tmp_path).preload(["take-a", "take-x", "take-y"])
    assert "take-x" in str(err.value)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(CorruptFeatureCacheError, match="manifest.json"):
        FeatureCache(tmp_path)
    with pytest.raises(FileNotFoundError, match="extract_features.py"):
        FeatureCache(tmp_path / "nowhere")


# ------------- extraction on a synthetic tree (training/extract_features.py; `tree` and `feature_cache` in conftest)
def _all_takes(tree):
    from training.extract_features import collect_takes

    return collect_takes(str(tree), "demonstrator", ["train", "validation"])


def test_extracted_features_are_the_models_own_encoding_and_extraction_resumes(
        tiny_checkpoint, tree, feature_cache, tmp_path, caplog):
    from modeling_profvlm.modeling_profvlm import ProfVLMForConditionalGeneration
    from processing.processing_profvlm import ProfVLMProcessor
    from training.extract_features import main

    takes = _all_takes(tree)
    cache = tmp_path / "cache"
    shutil.copytree(feature_cache, cache)
    assert sorted(p.stem for p in (cache / "features").iterdir()) == sorted(takes)
    model = ProfVLMForConditionalGeneration.from_pretrained(tiny_checkpoint).eval()
    processor = ProfVLMProcessor.from_pretrained(tiny_checkpoint)
    uid, videos = next(iter(takes.items()))
    pixels = processor.process_videos([videos])
    expected = model.model.encode_views(pixels["pixel_values_videos"], pixels["view_mask"])[0]
    features, view_mask = FeatureCache(cache)[uid]
    torch.testing.assert_close(features, expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(view_mask, pixels["view_mask"][0])

    # Resume: a deleted and a corrupt file are extracted again (the corrupt one reported by name), the rest skipped.
    uids = sorted(takes)
    take_path(cache, uids[0]).unlink()
    corrupt = take_path(cache, uids[1])
    corrupt.write_bytes(corrupt.read_bytes()[:50])
    args = ["--model", str(tiny_checkpoint), "--data_dir", str(tree), "--output_dir", str(cache), "--dtype", "float32"]
    with caplog.at_level(logging.WARNING):
        summary = main(args)
    assert (summary["extracted"], summary["skipped"]) == (2, len(takes) - 2)
    assert str(corrupt) in caplog.text
    FeatureCache(cache).preload(uids)

    # A resume must not mix towers or dtypes: another dtype is refused, --overwrite starts over.
    with pytest.raises(StaleFeatureCacheError, match="dtype: cache has \"float32\", expected \"bfloat16\""):
        main([*args[:-1], "bfloat16"])
    assert main([*args[:-1], "bfloat16", "--overwrite"])["extracted"] == len(takes)


def test_training_refuses_a_cache_made_by_another_tower(tiny_checkpoint, feature_cache):
    from processing.processing_profvlm import ProfVLMProcessor
    from training.sft import load_feature_cache

    processor = ProfVLMProcessor.from_pretrained(tiny_checkpoint)
    with pytest.raises(StaleFeatureCacheError, match="tower.weights_sha256"):
        load_feature_cache(str(feature_cache), tiny_profvlm(seed=123), processor, ())


@pytest.mark.slow
def test_extraction_is_sharded_across_two_ranks(tiny_checkpoint, tree, feature_cache, tmp_path):
    cache = tmp_path / "cache"
    proc = run_script([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                       "training/extract_features.py", "--model", str(tiny_checkpoint), "--data_dir", str(tree),
                       "--output_dir", str(cache), "--dtype", "float32"], ACCELERATE_USE_CPU="1")
    log = proc.stdout + proc.stderr
    shards = {int(r): int(n) for r, n in re.findall(r"rank (\d): (\d+) takes in shard, 0 cached already", log)}
    takes = _all_takes(tree)
    assert sorted(shards) == [0, 1] and sum(shards.values()) == len(takes) and min(shards.values()) > 0
    sharded, single = FeatureCache(cache), FeatureCache(feature_cache)
    for uid in takes:
        torch.testing.assert_close(sharded[uid][0], single[uid][0], atol=1e-6, rtol=1e-6)


def test_an_unreadable_video_masks_its_view_and_a_take_with_none_readable_is_named(
        tiny_checkpoint, tree, feature_cache, tmp_path, caplog):
    """A truncated download must not stop a long extraction: its view is masked like a missing file, the rest of the
    take is encoded as before; a take with no readable view is named at the end, after every other take is cached."""
    from training.extract_features import main

    data = tmp_path / "tree"
    shutil.copytree(tree, data)
    takes = _all_takes(data)
    first, second = sorted(takes)[:2]
    truncated = takes[first]["exo2"]
    with open(truncated, "r+b") as f:  # a download cut short: the container cannot be opened
        f.truncate(300)
    cache = tmp_path / "cache"
    args = ["--model", str(tiny_checkpoint), "--data_dir", str(data), "--output_dir", str(cache), "--dtype", "float32"]
    with caplog.at_level(logging.WARNING):
        summary = main(args)
    assert (summary["extracted"], summary["masked_views"], summary["masked_per_view"]) == (len(takes), 1, {"exo2": 1})
    assert f"view 'exo2', file '{truncated}'" in caplog.text and "masked" in caplog.text
    features, view_mask = FeatureCache(cache)[first]
    reference, reference_mask = FeatureCache(feature_cache)[first]
    exo2 = list(takes[first]).index("exo2")
    assert view_mask[exo2] == 0 and reference_mask[exo2] == 1
    kept = [v for v in range(len(view_mask)) if v != exo2]
    assert view_mask[kept].tolist() == reference_mask[kept].tolist()
    torch.testing.assert_close(features[kept], reference[kept], atol=1e-5, rtol=1e-5)

    for path in takes[second].values():  # every view of a take unreadable: that take cannot be cached
        with open(path, "r+b") as f:
            f.truncate(300)
    take_path(cache, second).unlink()
    with pytest.raises(RuntimeError, match=rf"1 take\(s\) have no readable video of any view .* e\.g\. {second} "):
        main(args)
    assert not take_path(cache, second).exists() and take_path(cache, first).is_file()
