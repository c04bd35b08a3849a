"""[released features] EgoExo4D's released pre-extracted features as a checkpoint's per-view input, with no video tower:
`profvlm init --vision egoexo4d:omnivore_video`, the feature cache filled from the files (both layouts, both shapes, an
Aria id other than aria01, missing and unreadable files masked and reported), 2 SFT steps and `profvlm predict
--data_dir` on it, raw video refused in one line, and the synthetic tree's released-format files."""
import json
import logging
import sys

import pytest
import torch
from safetensors import safe_open

from dataset_scripts.egoexo4d_features import (
    UnreadableFeatureFile,
    read_feature_file,
    released_feature_width,
    take_timing,
    vector_count,
    vector_times,
)
from dataset_scripts.synthetic_egoexo4d import generate_synthetic_egoexo4d, plan_takes
from modeling_profvlm.configuration_profvlm import ProfVLMConfig
from modeling_profvlm.profvlm_facts import RELEASED_FEATURE_SOURCES
from tests.training_helpers import run_script

SOURCE = "egoexo4d:omnivore_video"
OMNIVORE = RELEASED_FEATURE_SOURCES[SOURCE]
PART = "features/omnivore_video"
TAKES, SECONDS, WIDTH = 8, 4.0, 1536
# A 4 s take has 7 windows (every 16/30 s, the last one [4 - 32/30, 4)); their centres fall 3 in [0, 2) and 4 in [2, 4].
WINDOWS = 7


def _windows(offset: float) -> torch.Tensor:
    """(7, WIDTH): window i holds offset + i in every channel."""
    return (offset + torch.arange(WINDOWS, dtype=torch.float32))[:, None].expand(WINDOWS, WIDTH).clone()


@pytest.fixture(scope="module")
def released_tree(tmp_path_factory):
    """A synthetic tree (no videos) with released-format files from `--released_features`, then edited by hand: the
    aria02 take's ego file (T, 1, C) and its exo1 file moved to the flat features/ layout (T, C) hold known values;
    four other views are missing, corrupt, not a tensor, or of the wrong shape."""
    root = tmp_path_factory.mktemp("released") / "egoexo"
    generate_synthetic_egoexo4d(root, TAKES, seed=0, size=32, seconds=SECONDS, progress=False, write_videos=False,
                                released_features=("omnivore_video",))
    plans = plan_takes(TAKES, 0)
    hand = next(p for p in plans if p.ego_cam == "aria02")
    part = root / PART
    torch.save(_windows(0.0)[:, None], part / f"{hand.take_uid}_aria02_rgb.pt")  # (T, 1, C)
    (part / f"{hand.take_uid}_{hand.exo_cams[0]}_0.pt").unlink()
    torch.save(_windows(10.0), root / "features" / f"{hand.take_uid}_{hand.exo_cams[0]}_0.pt")  # flat layout, (T, C)
    others = [p for p in plans if p is not hand]
    broken = {
        "missing": (others[0], 2),
        "corrupt": (others[1], 3),
        "not_a_tensor": (others[2], 4),
        "wrong_shape": (others[3], 1),
    }
    for kind, (plan, exo) in broken.items():
        path = part / f"{plan.take_uid}_{plan.exo_cams[exo - 1]}_0.pt"
        if kind == "missing":
            path.unlink()
        elif kind == "corrupt":
            path.write_bytes(b"not a torch file")
        elif kind == "not_a_tensor":
            torch.save({"features": torch.zeros(WINDOWS, WIDTH)}, path)
        else:
            torch.save(torch.zeros(WINDOWS, 2, WIDTH), path)
    return root, plans, hand, broken


@pytest.fixture(scope="module")
def released_checkpoint(tiny_text_dir, released_tree, tmp_path_factory):
    """`profvlm init --vision egoexo4d:omnivore_video --data_dir ROOT --temporal_tokens 2` with the tiny LM."""
    from profvlm.cli import main

    out = tmp_path_factory.mktemp("released_ckpt") / "ckpt"
    assert main(["init", "--vision", SOURCE, "--text", str(tiny_text_dir), "--output_dir", str(out),
                 "--data_dir", str(released_tree[0]), "--temporal_tokens", "2"]) == 0
    return out


@pytest.fixture(scope="module")
def released_cache(released_checkpoint, released_tree, tmp_path_factory):
    """The feature cache extract_features.py fills from the files; (cache folder, its summary, its log)."""
    from training.extract_features import main

    cache = tmp_path_factory.mktemp("released_cache") / "cache"
    handler = _Records()
    logging.getLogger().addHandler(handler)
    try:
        summary = main(["--model", str(released_checkpoint), "--data_dir", str(released_tree[0]),
                        "--output_dir", str(cache)])
    finally:
        logging.getLogger().removeHandler(handler)
    return cache, summary, "\n".join(handler.lines)


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def _cached(cache, take_uid):
    with safe_open(str(cache / "features" / f"{take_uid}.safetensors"), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, json.loads(f.metadata()["token_times"])


def test_windows_sit_where_the_docs_put_them_and_frames_at_their_rate():
    assert vector_count(OMNIVORE, 4.0, 30.0) == WINDOWS
    assert vector_count(OMNIVORE, 4 * 16 / 30 + 16 / 30, 30.0) == 4  # the stride ends exactly at the take's end
    assert vector_count(OMNIVORE, 0.5, 30.0) == 1
    centres = vector_times(OMNIVORE, WINDOWS, 4.0, 30.0)
    assert centres[:6] == pytest.approx([(i * 16 + 16) / 30 for i in range(6)])
    assert centres[6] == pytest.approx(4.0 - 16 / 30)  # the last window is [4 - 32/30, 4)
    maws = RELEASED_FEATURE_SOURCES["egoexo4d:maws_clip_2b"]
    assert take_timing({"duration_sec": 4.0, "timesync_start_idx": 10, "timesync_end_idx": 110}) == (4.0, 25.0)
    assert take_timing({}) == (None, 30.0)
    assert vector_times(maws, 3, 4.0, 25.0) == pytest.approx([0.0, 0.04, 0.08])


def test_files_of_both_shapes_are_read_and_bad_ones_refused(tmp_path):
    torch.save(torch.ones(3, 1, 8), tmp_path / "a.pt")
    torch.save(torch.ones(3, 8, dtype=torch.float16), tmp_path / "b.pt")
    assert read_feature_file(tmp_path / "a.pt", 8).shape == (3, 8)
    assert read_feature_file(tmp_path / "b.pt").dtype == torch.float32
    torch.save([torch.ones(3, 8)], tmp_path / "c.pt")
    (tmp_path / "d.pt").write_text("garbage")
    for name, expected in (("a.pt", "(T, 4)"), ("c.pt", "not a tensor"), ("d.pt", "cannot be read")):
        with pytest.raises(UnreadableFeatureFile, match=expected):
            read_feature_file(tmp_path / name, 4)
    nan, inf = torch.ones(3, 8), torch.ones(3, 1, 8)
    nan[1, 2], inf[2, 0, 5] = float("nan"), float("inf")
    bad = {"nan": (nan, "1 non-finite"), "inf": (inf, "1 non-finite"), "empty": (torch.ones(0, 8), "T >= 1"),
           "empty3": (torch.ones(0, 1, 8), "T >= 1"), "int": (torch.ones(3, 8, dtype=torch.int64), "torch.int64"),
           "bool": (torch.ones(3, 1, 8, dtype=torch.bool), "torch.bool"), "rank1": (torch.ones(8), r"shape \(8,\)")}
    for name, (tensor, expected) in bad.items():
        torch.save(tensor, tmp_path / f"{name}.pt")
        with pytest.raises(UnreadableFeatureFile, match=expected) as caught:
            read_feature_file(tmp_path / f"{name}.pt", 8)
        assert str(tmp_path / f"{name}.pt") in str(caught.value)
    # `profvlm init --data_dir` reads the width from the first readable file (flat features/ layout here)
    flat = tmp_path / "root" / "features"
    flat.mkdir(parents=True)
    (flat / "x_cam01_0.pt").write_text("garbage")
    torch.save(torch.ones(2, 1, 12), flat / "y_cam01_0.pt")
    assert released_feature_width(tmp_path / "root", OMNIVORE) == 12


def test_the_config_names_the_source_and_width_and_refuses_what_it_cannot_be():
    assert ProfVLMConfig(video_feature_source=SOURCE).video_feature_size == 1536  # the documented width
    maws = ProfVLMConfig(video_feature_source="egoexo4d:maws_clip_2b")
    assert maws.video_feature_dim == 2560  # a fallback, not confirmed: init reads the width from the files
    assert not RELEASED_FEATURE_SOURCES[maws.video_feature_source].feature_dim_confirmed
    assert ProfVLMConfig(video_feature_source=SOURCE, clip_seconds=4.0).clip_seconds == 4.0  # clips: pooled per window
    with pytest.raises(ValueError, match="egoexo4d:omnivore_video"):
        ProfVLMConfig(video_feature_source="egoexo4d:slowfast")


def test_init_makes_a_checkpoint_with_no_tower(released_checkpoint):
    config = json.loads((released_checkpoint / "config.json").read_text())
    assert (config["video_feature_source"], config["video_feature_dim"]) == (SOURCE, WIDTH)  # read from the files
    with safe_open(str(released_checkpoint / "model.safetensors"), framework="pt") as f:
        keys = list(f.keys())
    assert keys and not any("vision_tower" in key for key in keys)
    assert any("multi_modal_projector.fc_in" in key for key in keys)


def test_extraction_pools_each_window_into_its_token_span_and_masks_bad_files(released_cache, released_tree):
    cache, summary, log = released_cache
    root, plans, hand, broken = released_tree
    assert summary["extracted"] == TAKES and summary["takes_without_features"] == 0
    assert summary["masked_views"] == 4 and summary["masked_per_view"] == {"exo1": 1, "exo2": 1, "exo3": 1, "exo4": 1}
    # the skip report counts the masked views per camera; each unreadable file is named with why
    assert "exo1: 1 file missing, exo2: 1 file missing, exo3: 1 file missing, exo4: 1 file missing" in log
    reasons = {"corrupt": "cannot be read", "not_a_tensor": "not a tensor", "wrong_shape": "(7, 2, 1536)"}
    for kind, reason in reasons.items():
        plan, exo = broken[kind]
        assert any(f"{plan.take_uid}_{plan.exo_cams[exo - 1]}_0.pt" in line and reason in line
                   for line in log.splitlines()), kind
    tensors, times = _cached(cache, hand.take_uid)
    # ego (aria02, (T, 1, C)): windows 0-2 in the first 2 s, 3-6 in the last; exo1 from the flat layout: 10 + the same
    assert torch.equal(tensors["ego"], torch.tensor([[1.0], [4.5]]).expand(2, WIDTH))
    assert torch.equal(tensors["exo1"], torch.tensor([[11.0], [14.5]]).expand(2, WIDTH))
    assert times == {"times": [1.0, 3.0], "duration": 4.0}
    for kind, (plan, exo) in broken.items():
        tensors, _ = _cached(cache, plan.take_uid)
        assert sorted(tensors) == sorted({"ego", "exo1", "exo2", "exo3", "exo4"} - {f"exo{exo}"}), kind


def test_two_sft_steps_evaluate_and_predict_read_the_released_features(released_checkpoint, released_cache, released_tree,
                                                               tmp_path, capsys):
    from profvlm.cli import main

    root, plans, hand, broken = released_tree
    run_script([sys.executable, "training/sft.py", "--model", str(released_checkpoint), "--data_dir", str(root),
                "--features", str(released_cache[0]), "--output_dir", str(tmp_path / "sft"), "--dataset_config",
                "demonstrator", "--eval_split", "none", "--max_steps", "2", "--per_device_train_batch_size", "2",
                "--report_to", "none", "--save_strategy", "no"])
    final = tmp_path / "sft" / "final"
    assert json.loads((final / "config.json").read_text())["video_feature_source"] == SOURCE
    run_script([sys.executable, "training/evaluate_profvlm.py", "--model", str(final), "--data_dir", str(root),
                "--split", "validation", "--features", str(released_cache[0]), "--output_dir", str(tmp_path / "eval"),
                "--max_new_tokens", "2"])
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["num_samples"] == sum(p.split == "val" for p in plans)  # the videos are not on disk: features only
    assert main(["predict", "--model", str(final), "--data_dir", str(root), "--split", "train", "--output_dir",
                 str(tmp_path / "pred"), "--num_workers", "0", "--no_feedback"]) == 0
    lines = {json.loads(line)["take_uid"]: json.loads(line)
             for line in (tmp_path / "pred" / "predictions.jsonl").read_text().splitlines()}
    train = [p for p in plans if p.split == "train"]
    assert sorted(lines) == sorted(p.take_uid for p in train)
    assert [step["time"] for step in lines[hand.take_uid]["timeline"]] == [1.0, 3.0]
    for kind, (plan, exo) in broken.items():
        if plan.split == "train":
            assert lines[plan.take_uid]["missing_views"] == [f"exo{exo}"], kind


def test_raw_video_is_refused_in_one_line_naming_the_source(released_checkpoint, tmp_path, capsys):
    from modeling_profvlm.modeling_profvlm import ProfVLMForConditionalGeneration
    from processing.processing_profvlm import ProfVLMProcessor
    from profvlm.cli import main

    assert main(["predict", "--model", str(released_checkpoint), "--ego", str(tmp_path / "ego.mp4")]) == 1
    # one line (the weight-loading progress bar aside), naming the feature source and what to give instead
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip() and "Loading weights" not in line]
    assert len(err) == 1 and err[0].startswith("profvlm predict: ") and SOURCE in err[0] and "--data_dir" in err[0]
    processor = ProfVLMProcessor.from_pretrained(released_checkpoint)
    with pytest.raises(ValueError, match=SOURCE):
        processor(text=["<video>"], videos=[{"ego": str(tmp_path / "ego.mp4")}])
    model = ProfVLMForConditionalGeneration.from_pretrained(released_checkpoint)
    assert model.model.vision_tower is None
    with pytest.raises(ValueError, match=SOURCE):
        model.get_video_features(pixel_values_videos=torch.zeros(1, 5, 2, 3, 8, 8), view_mask=torch.ones(1, 5))


def test_the_synthetic_flag_writes_deterministic_learnable_files(tmp_path):
    roots = [generate_synthetic_egoexo4d(tmp_path / name, TAKES, seed=0, size=32, seconds=SECONDS, progress=False,
                                         write_videos=False, released_features=("omnivore_video",))
             for name in ("a", "b")]
    plans = plan_takes(TAKES, 0)
    means = []
    for plan in plans:
        names = [f"{plan.take_uid}_{plan.ego_cam}_rgb.pt"] + [f"{plan.take_uid}_{cam}_0.pt" for cam in plan.exo_cams]
        for name in names:
            assert (roots[0] / PART / name).read_bytes() == (roots[1] / PART / name).read_bytes()
        ego = torch.load(roots[0] / PART / names[0], weights_only=True)
        exo = torch.load(roots[0] / PART / names[1], weights_only=True)
        assert ego.shape == (WINDOWS, 1, WIDTH) and exo.shape == (WINDOWS, WIDTH)
        means.append(exo.mean(0))
    assert len(list((roots[0] / PART).iterdir())) == sum(1 + len(p.exo_cams) for p in plans)
    # The label is in the vectors: every take's nearest other take (mean exo1 vector) is of the same level.
    distances = torch.cdist(torch.stack(means), torch.stack(means)).fill_diagonal_(float("inf"))
    assert [plans[int(j)].level for j in distances.argmin(1)] == [p.level for p in plans]


def test_clips_over_the_take_pool_each_window_and_train_evaluate_and_predict(tiny_text_dir, released_tree, tmp_path):
    """`--clip_seconds 1.5` on 4 s takes: windows [0, 1.5), [1.5, 3), [3, 4], one token each (N = 1); each token is the
    mean of the released vectors whose window centre falls in its window, the cache is ragged with the clip settings in
    its manifest, and SFT, evaluation and `profvlm predict --data_dir` run on it."""
    from profvlm.cli import main
    from training.extract_features import main as extract
    from training.feature_cache import FeatureCache

    root, plans, hand, broken = released_tree
    checkpoint = tmp_path / "ckpt"
    assert main(["init", "--vision", SOURCE, "--text", str(tiny_text_dir), "--output_dir", str(checkpoint),
                 "--data_dir", str(root), "--clip_seconds", "1.5", "--max_clips", "8"]) == 0
    cache = tmp_path / "cache"
    summary = extract(["--model", str(checkpoint), "--data_dir", str(root), "--output_dir", str(cache)])
    assert summary["extracted"] == TAKES
    assert FeatureCache(cache).manifest["clips"] == {"clip_seconds": 1.5, "max_clips": 8}
    tensors, times = _cached(cache, hand.take_uid)
    centres = vector_times(OMNIVORE, WINDOWS, SECONDS, 30.0)  # the documented window times, not the pooling code
    windows = [(0.0, 1.5), (1.5, 3.0), (3.0, 4.0)]
    expected = [sum(i for i, c in enumerate(centres) if start <= c < end or (end == 4.0 and c == end)) /
                sum(1 for c in centres if start <= c < end or (end == 4.0 and c == end)) for start, end in windows]
    assert torch.allclose(tensors["ego"][:, 0], torch.tensor(expected))  # window i of the ego file holds i
    assert torch.allclose(tensors["exo1"][:, 0], 10 + torch.tensor(expected))
    assert len(times["times"]) == 3 and all(start <= t < end for t, (start, end) in zip(times["times"], windows))

    run_script([sys.executable, "training/sft.py", "--model", str(checkpoint), "--data_dir", str(root), "--features",
                str(cache), "--output_dir", str(tmp_path / "sft"), "--dataset_config", "demonstrator", "--eval_split",
                "none", "--max_steps", "2", "--per_device_train_batch_size", "2", "--report_to", "none",
                "--save_strategy", "no"])
    final = tmp_path / "sft" / "final"
    run_script([sys.executable, "training/evaluate_profvlm.py", "--model", str(final), "--data_dir", str(root),
                "--split", "validation", "--features", str(cache), "--output_dir", str(tmp_path / "eval"),
                "--max_new_tokens", "2"])
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["num_samples"] == sum(
        p.split == "val" for p in plans)
    assert main(["predict", "--model", str(final), "--data_dir", str(root), "--split", "train", "--output_dir",
                 str(tmp_path / "pred"), "--num_workers", "0", "--no_feedback", "--batch_size", "4"]) == 0
    lines = {json.loads(line)["take_uid"]: json.loads(line)
             for line in (tmp_path / "pred" / "predictions.jsonl").read_text().splitlines()}
    assert sorted(lines) == sorted(p.take_uid for p in plans if p.split == "train")
    assert [step["time"] for step in lines[hand.take_uid]["timeline"]] == times["times"]  # one step per clip


def test_a_take_with_no_feature_file_is_left_out_of_training_with_a_warning(released_checkpoint, released_tree,
                                                                           tmp_path, caplog):
    import shutil

    from training.extract_features import main as extract
    from training.sft import build_trainer, parse_args

    root, plans, hand, broken = released_tree
    copy = tmp_path / "egoexo"
    shutil.copytree(root, copy)
    gone = next(p for p in plans if p.split == "train" and p is not hand and p not in [b for b, _ in broken.values()])
    for path in list((copy / "features").rglob(f"{gone.take_uid}_*.pt")):
        path.unlink()
    summary = extract(["--model", str(released_checkpoint), "--data_dir", str(copy), "--output_dir",
                       str(tmp_path / "cache")])
    assert summary["takes_without_features"] == 1
    # A rerun resumes: only that take is left to do and it has no file, yet the cache is not empty, so no error.
    again = extract(["--model", str(released_checkpoint), "--data_dir", str(copy), "--output_dir",
                     str(tmp_path / "cache")])
    assert (again["extracted"], again["takes_without_features"]) == (0, 1) and again["skipped"] > 0
    with caplog.at_level(logging.WARNING, logger="training.sft"):
        trainer = build_trainer(*parse_args(["--model", str(released_checkpoint), "--data_dir", str(copy),
                                             "--features", str(tmp_path / "cache"), "--output_dir",
                                             str(tmp_path / "sft"), "--dataset_config", "demonstrator",
                                             "--eval_split", "none", "--max_steps", "1"]))
    uids = set(trainer.train_dataset["take_uid"])
    assert gone.take_uid not in uids and uids == {p.take_uid for p in plans if p.split == "train"} - {gone.take_uid}
    assert any("1 take(s) have no released feature file" in r.getMessage() and gone.take_uid in r.getMessage()
               for r in caplog.records)


def test_a_feature_file_is_found_in_either_layout_and_the_ego_by_any_aria_id(tmp_path):
    from dataset_scripts.egoexo4d_features import find_feature_file

    uid, folder = "take-uid", tmp_path / PART
    aria01_video = "/data/takes/t/frame_aligned_videos/downscaled/448/aria01_214-1.mp4"
    assert find_feature_file(tmp_path, OMNIVORE, uid, "ego", aria01_video) == (
        None, folder / f"{uid}_aria01_rgb.pt")  # nothing there: the expected path, in the part's folder
    flat = tmp_path / "features"
    flat.mkdir()
    torch.save(_windows(0.0), flat / f"{uid}_aria07_rgb.pt")  # the flat layout, an Aria id the video does not name
    assert find_feature_file(tmp_path, OMNIVORE, uid, "ego", aria01_video)[0] == flat / f"{uid}_aria07_rgb.pt"
    torch.save(_windows(0.0), flat / f"{uid}_aria03_rgb.pt")
    aria07_video = aria01_video.replace("aria01", "aria07")
    assert find_feature_file(tmp_path, OMNIVORE, uid, "ego", aria07_video)[0] == flat / f"{uid}_aria07_rgb.pt"
    exo_video = "/data/takes/t/frame_aligned_videos/downscaled/448/cam02.mp4"
    torch.save(_windows(10.0), flat / f"{uid}_cam02_0.pt")
    assert find_feature_file(tmp_path, OMNIVORE, uid, "exo2", exo_video)[0] == flat / f"{uid}_cam02_0.pt"
    folder.mkdir()
    torch.save(_windows(10.0), folder / f"{uid}_cam02_0.pt")  # both layouts: the part's own folder wins
    assert find_feature_file(tmp_path, OMNIVORE, uid, "exo2", exo_video)[0] == folder / f"{uid}_cam02_0.pt"


class _RunsCode:
    """A pickle that creates a file when unpickled by a loader that runs arbitrary code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_feature_files_are_loaded_with_weights_only_so_no_pickled_code_runs(tmp_path):
    marker, path = tmp_path / "ran", tmp_path / "take_aria01_rgb.pt"
    torch.save(_RunsCode(marker), path)
    with pytest.raises(UnreadableFeatureFile, match=r"weights_only=True"):
        read_feature_file(path, WIDTH)
    assert not marker.exists()


def test_init_reads_the_width_from_the_files_else_takes_the_documented_one(tiny_text_dir, released_tree, tmp_path):
    from profvlm.cli import main
    from training.extract_features import main as extract

    part = tmp_path / "root" / PART
    part.mkdir(parents=True)
    torch.save(torch.zeros(WINDOWS, 1, 48), part / "take_aria02_rgb.pt")
    (tmp_path / "root" / "takes.json").write_text("[]")  # an EgoExo4D root: metadata and that one feature file
    assert main(["init", "--vision", SOURCE, "--text", str(tiny_text_dir), "--output_dir", str(tmp_path / "read"),
                 "--data_dir", str(tmp_path / "root")]) == 0
    assert ProfVLMConfig.from_pretrained(tmp_path / "read").video_feature_dim == 48
    # That checkpoint on files of another width: no take can be extracted, and extraction says why, not SFT later.
    with pytest.raises(RuntimeError, match=r"none of the \d+ take\(s\).*\(T, 48\).*--data_dir ROOT` reads it"):
        extract(["--model", str(tmp_path / "read"), "--data_dir", str(released_tree[0]), "--output_dir",
                 str(tmp_path / "cache")])
    assert main(["init", "--vision", SOURCE, "--text", str(tiny_text_dir), "--output_dir", str(tmp_path / "doc")]) == 0
    assert ProfVLMConfig.from_pretrained(tmp_path / "doc").video_feature_dim == 1536  # the Omnivore Swin-L width


def test_the_model_card_says_what_a_checkpoint_on_released_features_needs(released_checkpoint):
    from profvlm.model_card import build_model_card

    card = build_model_card(released_checkpoint).content
    assert "no video tower" in card and SOURCE in card and "cannot take video files" in card
    assert f"{PART}/<take_uid>_<cam_id>_<stream_id>.pt" in card and "flat `ROOT/features/`" in card
    assert f"egoexo -o ROOT --parts metadata annotations {PART}" in card


def test_a_take_longer_than_max_clips_windows_says_so_in_its_token_times(released_checkpoint):
    from processing.processing_profvlm import ProfVLMProcessor
    from training.released_features import token_spans

    processor = ProfVLMProcessor.from_pretrained(released_checkpoint)  # 2 temporal tokens per clip
    processor.clip_seconds, processor.max_clips = 1.5, 2  # a 4 s take needs 3 windows: 2 windows of 2 s instead
    spans, times = token_spans(processor, SECONDS, 30.0)
    assert [bound for span in spans for bound in span] == pytest.approx([0, 1, 1, 2, 2, 3, 3, 4])
    assert times["clips_capped"] is True
    processor.max_clips = 3
    spans, times = token_spans(processor, SECONDS, 30.0)
    assert len(spans) == 6 and spans[-1] == pytest.approx((3.5, 4.0)) and times["clips_capped"] is False


def test_predict_refuses_another_dataset_than_egoexo4d_in_one_line(released_checkpoint, tmp_path, capsys):
    from profvlm.cli import main

    (tmp_path / "takes").mkdir()
    (tmp_path / "takes" / "metadata.jsonl").write_text('{"file_name": "t1/ego.mp4", "proficiency": "Novice"}\n')
    assert main(["predict", "--model", str(released_checkpoint), "--data_dir", str(tmp_path / "takes"),
                 "--output_dir", str(tmp_path / "out")]) != 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip() and "Loading weights" not in line]
    assert len(err) == 1 and "features exist for EgoExo4D roots (takes.json) only" in err[0], err
    assert not (tmp_path / "out" / "predictions.jsonl").exists()


def test_maws_per_frame_vectors_are_pooled_into_each_window(tiny_text_dir, tmp_path):
    from profvlm.cli import main
    from profvlm.model_card import build_model_card
    from training.extract_features import main as extract

    root = tmp_path / "egoexo"
    generate_synthetic_egoexo4d(root, 4, seed=1, size=32, seconds=SECONDS, progress=False, write_videos=False,
                                released_features=("maws_clip_2b",))
    ckpt = tmp_path / "ckpt"
    assert main(["init", "--vision", "egoexo4d:maws_clip_2b", "--text", str(tiny_text_dir), "--output_dir", str(ckpt),
                 "--data_dir", str(root), "--clip_seconds", "1"]) == 0
    width = ProfVLMConfig.from_pretrained(ckpt).video_feature_dim
    card = build_model_card(ckpt).content  # the card of released features with clips says they are pooled per window
    assert "`features/maws_clip_2b` vectors pooled per 1-s window" in card and "span(s) of each window" in card
    ego_file = sorted((root / "features" / "maws_clip_2b").glob("*_rgb.pt"))[0]
    frames = torch.load(ego_file, weights_only=True).reshape(-1, width)  # one vector per frame: the width read from it
    summary = extract(["--model", str(ckpt), "--data_dir", str(root), "--output_dir", str(tmp_path / "cache")])
    assert summary["extracted"] == 4 and summary["masked_views"] == 0
    take = next(t for t in json.loads((root / "takes.json").read_text()) if ego_file.name.startswith(t["take_uid"]))
    fps = (take["timesync_end_idx"] - take["timesync_start_idx"]) / take["duration_sec"]
    tensors, times = _cached(tmp_path / "cache", take["take_uid"])
    assert tensors["ego"].shape == (4, width)  # 4 s in windows of 1 s, one token each
    assert times["times"] == pytest.approx([0.5, 1.5, 2.5, 3.5])  # each token at its window's centre
    for k in range(4):  # frame i is at i / fps: window k pools the frames of [k, k + 1)
        inside = [i for i in range(len(frames)) if k <= i / fps < k + 1 or (k == 3 and i / fps == 4.0)]
        torch.testing.assert_close(tensors["ego"][k], frames[inside].mean(0))
