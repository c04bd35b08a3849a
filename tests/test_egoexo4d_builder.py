"""EgoExo4DProficiency builder: exact rows on a synthetic tree, every layout quirk, missing inputs, parquet export."""
import json
import logging
from collections import Counter
from pathlib import Path

import datasets
import pytest
from datasets import load_dataset

from dataset_scripts.egoexo4d_proficiency import (
    EgoExo4DProficiency,
    collect_rows,
    export_parquet,
    load_egoexo4d_proficiency,
    main as builder_main,
    truncate_words,
)
from dataset_scripts.synthetic_egoexo4d import generate_synthetic_egoexo4d
from modeling_profvlm.configuration_profvlm import PROFICIENCY_LABELS, VIEW_NAMES
from tests.egoexo4d_fixtures import FixtureTake, entry, write_tree

SPLIT_FILES = {"train": "train", "validation": "val"}


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> Path:
    return generate_synthetic_egoexo4d(tmp_path_factory.mktemp("egoexo") / "root", 14, seed=3, size=32, seconds=0.5,
                                       workers=1, progress=False)


def load(root, config="demonstrator", split="train", tmp=None, **kw):
    return load_egoexo4d_proficiency(root, config, split, cache_dir=str(Path(root).parent / "hf_cache"), **kw)


def records_of(path: Path) -> list[dict]:
    # Written independently of the builder on purpose: the expectation must not reuse the code under test.
    data = json.loads(path.read_text())
    return data["annotations"] if isinstance(data, dict) else data


# ------------------------------------------------------------------------------------------ synthetic tree, exact
@pytest.mark.parametrize("split", ["train", "validation"])
def test_demonstrator_rows_match_annotation_files(synthetic_root, split):
    records = records_of(synthetic_root / "annotations" / f"proficiency_demonstrator_{SPLIT_FILES[split]}.json")
    ds = load(synthetic_root, "demonstrator", split)
    label = ds.features["proficiency"]
    assert len(ds) == len(records) > 0
    assert Counter((r["scenario"], label.int2str(r["proficiency"])) for r in ds) == Counter(
        (r["scenario_name"], r["proficiency_score"]) for r in records)
    assert {r["take_uid"] for r in ds} == {r["take_uid"] for r in records}
    assert all(r["feedback"] == "" and r["expert_uid"] is None and r["expert_rating"] is None for r in ds)


@pytest.mark.parametrize("split", ["train", "validation"])
def test_commentary_rows_match_annotation_files(synthetic_root, split):
    ann = synthetic_root / "annotations"
    labels = {r["take_uid"]: r for r in records_of(ann / f"proficiency_demonstrator_{SPLIT_FILES[split]}.json")}
    commentary = json.loads((ann / f"expert_commentary_{SPLIT_FILES[split]}.json").read_text())["annotations"]
    expected = {}
    for uid, experts in commentary.items():
        for e in experts:
            texts = sorted((x["video_time"], x["text"].strip()) for x in e["commentary_data"] if not x["error"])
            if uid in labels and texts:
                expected[(uid, e["commentary"].split("/")[1])] = " ".join(t for _, t in texts)
    ds = load(synthetic_root, "demonstrator_commentary", split)
    assert len(ds) == len(expected) > 0
    assert {(r["take_uid"], r["expert_uid"]): r["feedback"] for r in ds} == {
        k: truncate_words(v, 200) for k, v in expected.items()}
    label = ds.features["proficiency"]
    assert Counter((r["scenario"], label.int2str(r["proficiency"])) for r in ds) == Counter(
        (labels[uid]["scenario_name"], labels[uid]["proficiency_score"]) for uid, _ in expected)
    # ratings come from the per-expert data.json where it was written, else None
    for r in ds:
        data = ann / "expert_commentary" / r["take_name"] / r["expert_uid"] / "data.json"
        rating = json.loads(data.read_text())["proficiency"]["rating"] if data.exists() else None
        assert r["expert_rating"] == (int(rating) if str(rating).isdigit() else None)


def test_every_video_path_exists_and_views_are_ordered(synthetic_root):
    for config in ("demonstrator", "demonstrator_commentary"):
        for split in SPLIT_FILES:
            for r in load(synthetic_root, config, split):
                assert r["view_names"] == list(VIEW_NAMES)
                assert len(r["video_paths"]) == 5
                for p in r["video_paths"]:
                    assert Path(p).is_absolute() and Path(p).is_file(), p
                    assert "/downscaled/448/" in p


def test_class_label_names_are_the_shared_labels(synthetic_root):
    assert load(synthetic_root).features["proficiency"].names == list(PROFICIENCY_LABELS)


# ------------------------------------------------------------------------------------------------------- quirks
def build(root, takes, config="demonstrator", split="train", tree_kw=None, **kw):
    write_tree(root, takes, **(tree_kw or {}))
    return load(root, config, split, **kw)


def test_bare_list_and_wrapped_proficiency_files(tmp_path):
    takes = [FixtureTake("unc_basketball_a", split="train"), FixtureTake("unc_basketball_b", split="val")]
    write_tree(tmp_path / "r", takes, bare_list_splits=("val",))
    assert load(tmp_path / "r", split="train")["take_name"] == ["unc_basketball_a"]
    assert load(tmp_path / "r", split="validation")["take_name"] == ["unc_basketball_b"]


def test_double_takes_prefix_in_video_paths(tmp_path):
    ds = build(tmp_path / "r", [FixtureTake("unc_basketball_a", path_prefix="takes/takes")])
    assert len(ds) == 1
    expected = tmp_path / "r/takes/unc_basketball_a/frame_aligned_videos/downscaled/448/aria01_214-1.mp4"
    assert ds[0]["video_paths"][0] == str(expected)


def test_double_takes_folder_on_disk(tmp_path):
    ds = build(tmp_path / "r", [FixtureTake("unc_basketball_a")], tree_kw={"takes_dir": "takes/takes"})
    assert len(ds) == 1 and all(Path(p).is_file() for p in ds[0]["video_paths"])
    assert "/takes/takes/unc_basketball_a/" in ds[0]["video_paths"][0]


@pytest.mark.parametrize("ego_cam", ["aria02", "aria", "aria1"])
def test_ego_camera_other_than_aria01(tmp_path, ego_cam):
    # without video_paths in the record the views come from takes.json, where the ego cam must be found by role
    ds = build(tmp_path / "r", [FixtureTake("iiith_soccer_022_3", ego_cam=ego_cam, with_video_paths=False)])
    assert ds[0]["view_names"] == list(VIEW_NAMES)
    assert ds[0]["video_paths"][0].endswith(f"/{ego_cam}_214-1.mp4")


def test_gopro_exo_cameras_and_best_exo(tmp_path):
    take = FixtureTake("upenn_0710_Piano_1_2", exo_cams=("gp01", "gp02", "gp03", "gp04"), best_exo="gp03",
                       with_video_paths=False)
    ds = build(tmp_path / "r", [take])
    assert [Path(p).name for p in ds[0]["video_paths"][1:]] == ["gp01.mp4", "gp02.mp4", "gp03.mp4", "gp04.mp4"]
    assert ds[0]["best_exo"] == "exo3"


@pytest.mark.parametrize("with_video_paths", [True, False])
def test_take_without_cam02(tmp_path, with_video_paths):
    take = FixtureTake("sfu_cooking_012_7", exo_cams=("cam01", "cam03", "cam04", "cam05"), best_exo="cam03",
                       with_video_paths=with_video_paths)
    ds = build(tmp_path / "r", [take])
    assert [Path(p).name for p in ds[0]["video_paths"][1:]] == ["cam01.mp4", "cam03.mp4", "cam04.mp4", "cam05.mp4"]
    assert ds[0]["view_names"] == ["ego", "exo1", "exo2", "exo3", "exo4"]
    assert ds[0]["best_exo"] == "exo2"


def test_best_exo_null(tmp_path):
    takes = [FixtureTake("unc_basketball_a", best_exo=None), FixtureTake("unc_basketball_b", best_exo="cam04")]
    ds = build(tmp_path / "r", takes)
    assert dict(zip(ds["take_name"], ds["best_exo"])) == {"unc_basketball_a": None, "unc_basketball_b": "exo4"}


def test_pseudo_cameras_and_walkaround_are_not_views(tmp_path):
    # 3 real exo cams: a `collage`, `best_exo` (here with a path) or `moblie` entry taken as a camera would show up
    moblie = {"moblie": {"0": {"cam_id": "moblie", "stream_id": "0",
                               "relative_path": "frame_aligned_videos/moblie.mp4"}}}
    take = FixtureTake("unc_basketball_a", exo_cams=("cam01", "cam02", "cam03"), with_video_paths=False,
                       best_exo_pseudo_path="best_exo.mp4", extra_cams=moblie)
    ds = build(tmp_path / "r", [take])
    assert ds[0]["view_names"] == ["ego", "exo1", "exo2", "exo3"]
    assert [Path(p).name for p in ds[0]["video_paths"]] == ["aria01_214-1.mp4", "cam01.mp4", "cam02.mp4", "cam03.mp4"]


def test_whisper_leading_spaces_error_entries_and_video_time_order(tmp_path):
    experts = {"qfbn5o": [
        entry(" Second, the follow-through is smooth.", 20.0, recording=0),
        entry(None, 5.0, recording=1, error=True),  # transcription failed: no text key at all
        entry(" garbage from a failed transcription", 7.0, recording=2, error=True),
        entry("  First, good stance.", 2.5, recording=3),
    ], "6jm95g": [entry(None, 1.0, error=True)]}  # nothing usable: no row for this expert
    ds = build(tmp_path / "r", [FixtureTake("unc_basketball_a", experts=experts)], config="demonstrator_commentary")
    assert ds["expert_uid"] == ["qfbn5o"]
    assert ds[0]["feedback"] == "First, good stance. Second, the follow-through is smooth."


def test_origin_participant_id_int_or_str(tmp_path):
    takes = [FixtureTake("unc_basketball_a", participant_id=133), FixtureTake("unc_basketball_b", participant_id="134")]
    ds = build(tmp_path / "r", takes)
    assert dict(zip(ds["take_name"], ds["participant_id"])) == {"unc_basketball_a": "133", "unc_basketball_b": "134"}
    # the rows themselves carry str (Arrow would coerce an int silently, other consumers of the rows would not)
    rows, _ = collect_rows(tmp_path / "r", "train", False, 200, True, False)
    assert [r["participant_id"] for r in rows] == ["133", "134"]


def test_downscaled_preferred_full_resolution_as_fallback(tmp_path):
    takes = [FixtureTake("unc_basketball_a", downscaled=False, full_resolution=True),
             FixtureTake("unc_basketball_b", full_resolution=True)]
    paths = dict(zip(*(lambda ds: (ds["take_name"], ds["video_paths"]))(build(tmp_path / "r", takes))))
    assert paths["unc_basketball_a"][0].endswith("unc_basketball_a/frame_aligned_videos/aria01_214-1.mp4")
    assert paths["unc_basketball_b"][0].endswith("b/frame_aligned_videos/downscaled/448/aria01_214-1.mp4")


def test_expert_rating_from_data_json(tmp_path):
    experts = {e: [entry(" Fine.", 1.0)] for e in ("aaaaaa", "bbbbbb", "cccccc", "dddddd")}
    take = FixtureTake("unc_basketball_a", experts=experts, ratings={"aaaaaa": "7", "bbbbbb": 8, "cccccc": "N/A"})
    ds = build(tmp_path / "r", [take], config="demonstrator_commentary")
    ratings = dict(zip(ds["expert_uid"], ds["expert_rating"]))
    assert ratings == {"aaaaaa": 7, "bbbbbb": 8, "cccccc": None, "dddddd": None}


def test_feedback_truncated_at_a_sentence_boundary():
    text = "One two three. Four five six seven. Eight nine ten eleven twelve."
    assert truncate_words(text, 9) == "One two three. Four five six seven."
    assert truncate_words("no sentence end here at all", 3) == "no sentence end"
    assert truncate_words(text, 50) == text


def test_max_feedback_words_option(tmp_path):
    long = [entry(" " + " ".join(["word"] * 30) + ".", 1.0), entry(" Short end.", 2.0)]
    take = FixtureTake("unc_basketball_a", experts={"qfbn5o": long})
    ds = build(tmp_path / "r", [take], config="demonstrator_commentary", max_feedback_words=31)
    assert ds[0]["feedback"] == " ".join(["word"] * 30) + "."


# ------------------------------------------------------------------------------------------------ missing inputs
@pytest.mark.parametrize("missing, config, command", [
    ("takes.json", "demonstrator", "--parts metadata"),
    ("annotations/proficiency_demonstrator_val.json", "demonstrator", "--benchmarks proficiency_demonstrator"),
    ("annotations/expert_commentary_train.json", "demonstrator_commentary", "--parts annotations"),
])
def test_missing_annotation_file_names_path_and_command(tmp_path, missing, config, command):
    write_tree(tmp_path / "r", [FixtureTake("unc_basketball_a")], skip_files=(missing,))
    with pytest.raises(FileNotFoundError) as err:
        load(tmp_path / "r", config)
    assert str(tmp_path / "r" / missing) in str(err.value)
    assert "egoexo -o" in str(err.value) and command in str(err.value)


def test_commentary_file_not_needed_for_demonstrator(tmp_path):
    write_tree(tmp_path / "r", [FixtureTake("unc_basketball_a")],
               skip_files=("annotations/expert_commentary_train.json",))
    assert len(load(tmp_path / "r", "demonstrator")) == 1


def test_a_missing_video_masks_its_view_not_the_take(tmp_path, caplog):
    takes = [FixtureTake("unc_basketball_a", skip_videos=("cam03.mp4",)), FixtureTake("unc_basketball_b")]
    write_tree(tmp_path / "r", takes)
    builder = EgoExo4DProficiency(config_name="demonstrator", data_dir=str(tmp_path / "r"),
                                  cache_dir=str(tmp_path / "c"))
    with caplog.at_level(logging.WARNING):
        builder.download_and_prepare()
    rows = {r["take_name"]: r for r in builder.as_dataset("train")}
    assert sorted(rows) == ["unc_basketball_a", "unc_basketball_b"]
    assert rows["unc_basketball_a"]["view_names"] == ["ego", "exo1", "exo2", "exo4"]  # cam03 = exo3 is masked
    assert not any(p.endswith("cam03.mp4") for p in rows["unc_basketball_a"]["video_paths"])
    assert rows["unc_basketball_b"]["view_names"] == list(VIEW_NAMES)
    assert builder.reports["train"].missing_files == {"exo3": 1}
    assert "exo3: 1 file missing" in caplog.text and "cam03.mp4" in caplog.text


EXOS = ("cam01.mp4", "cam02.mp4", "cam03.mp4", "cam04.mp4")


def test_partial_downloads_keep_every_take_and_rebuilds_follow_the_disk(tmp_path, monkeypatch):
    # The default datasets cache (as a user has it) is where a stale split size used to raise NonMatchingSplitsSizesError.
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "default_cache"))

    def load(root, **kw):
        return load_egoexo4d_proficiency(root, "demonstrator", "train", **kw)

    names = ["unc_basketball_a", "unc_basketball_b", "unc_basketball_c"]
    root = write_tree(tmp_path / "r", [FixtureTake(n) for n in names])
    assert [len(r["view_names"]) for r in load(root)] == [5, 5, 5]
    victim = next(root.rglob("unc_basketball_a/**/cam02.mp4"))
    victim.unlink()  # one exo file gone: the take stays, with 4 views
    rows = load(root)
    assert len(rows) == 3 and rows[0]["view_names"] == ["ego", "exo1", "exo3", "exo4"]
    for exo in (p for p in root.rglob("*.mp4") if p.name in EXOS):
        exo.unlink()  # only the ego downloads left: every take is kept, ego only
    rows = load(root)
    assert len(rows) == 3 and all(r["view_names"] == ["ego"] for r in rows)
    (next(root.rglob("unc_basketball_c/**/aria01_214-1.mp4"))).unlink()  # no view at all: that take is skipped
    assert load(root)["take_name"] == names[:2]  # 3 -> 2 rows: the rebuild follows the disk, no split-size error


def test_views_option_selects_views(tmp_path):
    write_tree(tmp_path / "r", [FixtureTake("unc_basketball_a", skip_videos=EXOS)])
    assert load(tmp_path / "r", views=["ego"])[0]["view_names"] == ["ego"]
    write_tree(tmp_path / "s", [FixtureTake("unc_basketball_a")])
    assert load(tmp_path / "s", views=["exo2", "ego"])[0]["view_names"] == ["ego", "exo2"]  # in view order
    with pytest.raises(ValueError, match="expected some of"):
        load(tmp_path / "s", views=["front"])


def test_strict_still_refuses_any_missing_file(tmp_path):
    write_tree(tmp_path / "r", [FixtureTake("unc_basketball_a", skip_videos=("cam02.mp4",))])
    with pytest.raises(FileNotFoundError, match="exo2 video not found.*cam02.mp4"):
        load(tmp_path / "r", strict=True)


def test_missing_video_strict_is_an_error(tmp_path):
    write_tree(tmp_path / "r", [FixtureTake("unc_basketball_a", skip_videos=("cam03.mp4",))])
    with pytest.raises(FileNotFoundError) as err:
        load(tmp_path / "r", strict=True)
    assert "unc_basketball_a" in str(err.value) and "cam03.mp4" in str(err.value)


def test_verify_files_false_does_not_check_videos(tmp_path):
    write_tree(tmp_path / "r", [FixtureTake("unc_basketball_a", skip_videos=("cam03.mp4",))])
    ds = load(tmp_path / "r", verify_files=False)
    assert len(ds) == 1 and ds[0]["video_paths"][3].endswith("downscaled/448/cam03.mp4")


@pytest.mark.parametrize("bad", ["Expert", "novice", "", None, 2])
def test_unknown_label_is_an_error_naming_take_and_value(tmp_path, bad):
    take = FixtureTake("unc_basketball_a", label=bad)
    write_tree(tmp_path / "r", [take])
    with pytest.raises(ValueError) as err:
        load(tmp_path / "r")
    assert take.uid in str(err.value) and repr(bad) in str(err.value)


# ------------------------------------------------------------------------------------------------ parquet export
def test_parquet_export_reloads_with_class_labels(synthetic_root, tmp_path):
    out = export_parquet(synthetic_root, "demonstrator_commentary", tmp_path / "out", cache_dir=str(tmp_path / "c"))
    reloaded = load_dataset(str(out), cache_dir=str(tmp_path / "c2"))
    assert set(reloaded) == {"train", "validation"}
    assert reloaded["train"].features["proficiency"].names == list(PROFICIENCY_LABELS)
    for split in ("train", "validation"):
        assert reloaded[split].to_list() == load(synthetic_root, "demonstrator_commentary", split).to_list()
    assert "configs:" in (out / "README.md").read_text()


def test_script_mode_writes_a_loadable_folder(synthetic_root, tmp_path, capsys):
    builder_main(["--data_dir", str(synthetic_root), "--dataset_config", "demonstrator", "--output_dir", str(tmp_path / "o"),
                  "--cache_dir", str(tmp_path / "c"), "--no_verify_files"])
    assert "parquet" in capsys.readouterr().out
    ds = load_dataset(str(tmp_path / "o"), split="validation", cache_dir=str(tmp_path / "c2"))
    assert ds.features["proficiency"].names == list(PROFICIENCY_LABELS)
    assert len(ds) == len(records_of(synthetic_root / "annotations/proficiency_demonstrator_val.json"))


def test_script_help(capsys):
    with pytest.raises(SystemExit):
        builder_main(["--help"])
    out = capsys.readouterr().out
    assert "--data_dir" in out and "--push_to_hub" in out and "egoexo -o" in out


@pytest.mark.parametrize("public", [False, True])
def test_an_egoexo4d_export_pushes_private_with_a_licence_card_unless_public(tmp_path, fake_hub, caplog, public):
    from dataset_scripts.egoexo4d_proficiency import main

    write_tree(tmp_path / "r", [FixtureTake("unc_basketball_a"), FixtureTake("unc_basketball_v", split="val")])
    out = tmp_path / "out"
    main(["--data_dir", str(tmp_path / "r"), "--dataset_config", "demonstrator", "--output_dir", str(out),
          "--cache_dir", str(tmp_path / "c"), "--push_to_hub", "me/egoexo-prof", *(["--public"] if public else [])])
    (_, repo, create), (_, _, upload) = fake_hub
    assert repo == "me/egoexo-prof" and create["private"] is (not public) and create["repo_type"] == "dataset"
    card = (out / "README.md").read_text()
    assert "https://ego4d.dev/request/ego-exo4d" in card and "not ours to republish" in card
    assert "license_name: ego-exo4d" in card and 'load_dataset("me/egoexo-prof")' in card
    caveat = "publishing its labels or commentary may breach those terms"
    assert (caveat in caplog.text) is public
