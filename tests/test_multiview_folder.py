"""Multi-view folder loader: exact rows, view order and selection, masked and missing views, every bad input, export."""
import csv
import json
import logging
import subprocess
from pathlib import Path

import pytest
from datasets import load_dataset

from dataset_scripts.dataset_export import push_dataset_folder
from dataset_scripts.egoexo4d_proficiency import FEATURES
from dataset_scripts.multiview_folder import (
    FOLDER_FILE_SUFFIX,
    export_parquet,
    folder_views,
    is_multiview_folder,
    load_multiview_folder,
    load_multiview_folder_with_report,
    main as folder_main,
    read_labels,
)
from tests.video_fixtures import write_pattern_video

LABELS = ["beginner", "intermediate", "advanced"]  # not alphabetical: the ClassLabel must keep this order
REPO_ROOT = Path(__file__).resolve().parents[1]


def take(take_id, split="train", label="beginner", views=("front", "side"), **extra):
    row = {"take_id": take_id, "split": split, "label": label}
    row.update({f"{v}{FOLDER_FILE_SUFFIX}": f"videos/{take_id}_{v}.mp4" for v in views})
    row.update(extra)
    return row


def default_rows():
    return [
        take("t001", feedback="Good stance.", scenario="cooking"),
        take("t002", label="advanced", views=("front",)),  # no side cell: the side view is masked
        take("t003", split="validation", label="intermediate", scenario="music"),
        take("t004", split="test", label="advanced"),
    ]


def make_folder(root: Path, rows=None, labels=LABELS, views=None, fmt="jsonl", skip_videos=()) -> Path:
    """Write labels.json, metadata.<fmt> and every referenced video except `skip_videos` (paths as in the rows)."""
    rows = default_rows() if rows is None else rows
    (root / "videos").mkdir(parents=True, exist_ok=True)
    spec = {"labels": labels} if views is None else {"labels": labels, "views": views}
    (root / "labels.json").write_text(json.dumps(spec))
    for row in rows:
        for key, value in row.items():
            if key.endswith(FOLDER_FILE_SUFFIX) and value and value not in skip_videos:
                path = Path(value) if Path(value).is_absolute() else root / value
                if not path.exists():
                    write_pattern_video(path, num_frames=8, height=32, width=32)
    if fmt == "jsonl":
        (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        columns = list(dict.fromkeys(k for r in rows for k in r))
        with open(root / "metadata.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)  # absent keys become empty cells
    return root


@pytest.fixture
def folder(tmp_path) -> Path:
    return make_folder(tmp_path / "my_dataset")


# ----------------------------------------------------------------------------------------------------- rows
def test_rows_are_exact_and_a_take_without_side_has_only_front(folder):
    ds = load_multiview_folder(folder, "train")
    videos = (folder / "videos").absolute()
    assert ds.to_list() == [
        {"take_uid": "t001", "take_name": "t001", "scenario": "cooking", "task_name": "", "university_id": None,
         "participant_id": None, "proficiency": 0, "view_names": ["front", "side"],
         "video_paths": [str(videos / "t001_front.mp4"), str(videos / "t001_side.mp4")], "best_exo": None,
         "feedback": "Good stance.", "expert_uid": None, "expert_rating": None},
        {"take_uid": "t002", "take_name": "t002", "scenario": "", "task_name": "", "university_id": None,
         "participant_id": None, "proficiency": 2, "view_names": ["front"],
         "video_paths": [str(videos / "t002_front.mp4")], "best_exo": None,
         "feedback": "", "expert_uid": None, "expert_rating": None},
    ]


def test_schema_is_the_builders_with_the_folder_labels(folder):
    features = load_multiview_folder(folder).features
    assert features["proficiency"].names == LABELS == read_labels(folder)
    assert list(features) == list(FEATURES)
    assert {k: v for k, v in features.items() if k != "proficiency"} == {
        k: v for k, v in FEATURES.items() if k != "proficiency"}


@pytest.mark.parametrize("split, expected", [("validation", ["t003"]), ("val", ["t003"]), ("test", ["t004"])])
def test_splits_and_the_val_alias(folder, split, expected):
    assert load_multiview_folder(folder, split)["take_uid"] == expected


def test_csv_and_jsonl_give_the_same_rows(tmp_path):
    # the videos are shared, so the absolute paths must be equal too
    jsonl = make_folder(tmp_path / "d")
    expected = {s: load_multiview_folder(jsonl, s).to_list() for s in ("train", "validation", "test")}
    (jsonl / "metadata.jsonl").unlink()
    csv_folder = make_folder(tmp_path / "d", fmt="csv")
    assert "t002,train,advanced,videos/t002_front.mp4,," in (csv_folder / "metadata.csv").read_text()
    for split, rows in expected.items():
        assert load_multiview_folder(csv_folder, split).to_list() == rows


def test_absolute_video_paths_are_allowed(tmp_path):
    outside = tmp_path / "elsewhere" / "cam.mp4"
    outside.parent.mkdir()
    root = make_folder(tmp_path / "d", rows=[take("t1", views=()) | {"front_file_name": str(outside)}])
    assert load_multiview_folder(root)["video_paths"] == [[str(outside)]]


def test_is_multiview_folder(tmp_path, folder):
    assert is_multiview_folder(folder)
    assert not is_multiview_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    assert not is_multiview_folder(tmp_path / "empty")


# ------------------------------------------------------------------------------------------------------- views
def test_view_order_from_first_appearance(tmp_path):
    rows = [take("t1", views=("side",)), take("t2", views=("top", "front", "side"))]
    root = make_folder(tmp_path / "d", rows=rows)
    assert folder_views(root) == ["side", "top", "front"]
    assert load_multiview_folder(root)["view_names"] == [["side"], ["side", "top", "front"]]


def test_view_order_from_labels_json(tmp_path):
    rows = [take("t1", views=("side",)), take("t2", views=("top", "front", "side"))]
    root = make_folder(tmp_path / "d", rows=rows, views=["front", "side", "top"])
    assert folder_views(root) == ["front", "side", "top"]
    ds = load_multiview_folder(root)
    assert ds["view_names"] == [["side"], ["front", "side", "top"]]
    assert [Path(p).name for p in ds[1]["video_paths"]] == ["t2_front.mp4", "t2_side.mp4", "t2_top.mp4"]


def test_views_selection_keeps_a_subset_and_skips_takes_left_without_views(folder):
    ds, report = load_multiview_folder_with_report(folder, "train", views=["side"])
    assert ds["take_uid"] == ["t001"] and ds["view_names"] == [["side"]]
    assert ds[0]["video_paths"][0].endswith("t001_side.mp4")
    assert report.takes_without_video == 1 and report.missing_files == {}  # t002 had no side cell: masked, not missing


def test_unknown_view_in_selection_lists_the_known_views(folder):
    with pytest.raises(ValueError, match=r"\['top'\].*\['front', 'side'\]"):
        load_multiview_folder(folder, views=["top"])
    with pytest.raises(ValueError, match=r"views=\[\] is not a non-empty selection"):
        load_multiview_folder(folder, views=[])


# ------------------------------------------------------------------------------------------------- bad inputs
BAD_ROWS = {
    "unknown label": ([take("t1"), take("t2", label="expert")],
                      r"metadata\.jsonl line 2: unknown label 'expert'; expected one of \['beginner', 'intermediate'"),
    "duplicate take_id": ([take("t1"), take("t2"), take("t1", label="advanced")],
                          r"metadata\.jsonl line 3: duplicate take_id 't1' \(also on line 1\)"),
    "no video": ([take("t1"), take("t2", views=())], r"metadata\.jsonl line 2: take 't2' has no video"),
    "no take_id": ([take("t1"), {k: v for k, v in take("t2").items() if k != "take_id"}],
                   r"metadata\.jsonl line 2: missing 'take_id'"),
    "no label": ([{k: v for k, v in take("t1").items() if k != "label"}], r"metadata\.jsonl line 1: missing 'label'"),
    "empty split": ([take("t1"), take("t2", split="")], r"metadata\.jsonl line 2: missing 'split'"),
    "unknown split": ([take("t1"), take("t2", split="dev")], r"metadata\.jsonl line 2: unknown split 'dev'"),
    "label not a string": ([take("t1", label=2)], r"metadata\.jsonl line 1: label is 2; expected a string"),
    "column not a view": ([take("t1", views=("front", "top"))], r"metadata\.jsonl line 1: column 'top_file_name'"),
}


@pytest.mark.parametrize("case", list(BAD_ROWS))
def test_bad_row_names_file_line_and_value(tmp_path, case):
    rows, message = BAD_ROWS[case]
    root = make_folder(tmp_path / "d", rows=rows, views=["front", "side"])
    with pytest.raises(ValueError, match=message):
        load_multiview_folder(root)


def test_bad_row_in_csv_counts_the_header_line(tmp_path):
    root = make_folder(tmp_path / "d", rows=[take("t1"), take("t2", label="Beginner")], fmt="csv")
    with pytest.raises(ValueError, match=r"metadata\.csv line 3: unknown label 'Beginner'"):
        load_multiview_folder(root)


def test_invalid_json_line(folder):
    path = folder / "metadata.jsonl"
    path.write_text(path.read_text() + '{"take_id": "t9", "split": "train",\n')
    with pytest.raises(ValueError, match=r"metadata\.jsonl line 5: not valid JSON .*'\{\"take_id\": \"t9\""):
        load_multiview_folder(folder)


@pytest.mark.parametrize("spec, message", [
    ({"labels": ["only"]}, r"labels\.json: 'labels' is \['only'\]; expected a list of at least 2"),
    ({"labels": ["a", "b", "a"]}, r"labels\.json: 'labels' lists \['a'\] more than once"),
    ({"labels": ["a", ""]}, r"labels\.json: 'labels' is \['a', ''\]"),
    ({"labels": "a,b"}, r"labels\.json: 'labels' is 'a,b'"),
    ({"label": ["a", "b"]}, r"labels\.json: unknown keys \['label'\]"),
    ({"labels": ["a", "b"], "views": []}, r"labels\.json: 'views' is \[\]"),
])
def test_bad_labels_json(folder, spec, message):
    (folder / "labels.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match=message):
        load_multiview_folder(folder)


def test_metadata_without_any_view_column(tmp_path):
    root = make_folder(tmp_path / "d", rows=[{"take_id": "t1", "split": "train", "label": "beginner"}])
    with pytest.raises(ValueError, match=r"metadata\.jsonl: no <view>_file_name column"):
        load_multiview_folder(root)


def test_labels_json_not_json(folder):
    (folder / "labels.json").write_text("labels: [a, b]")
    with pytest.raises(ValueError, match=r"labels\.json: not valid JSON"):
        read_labels(folder)


def test_missing_labels_json(folder):
    (folder / "labels.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"my_dataset/labels\.json not found"):
        load_multiview_folder(folder)


def test_missing_or_ambiguous_metadata(folder):
    (folder / "metadata.csv").write_text("take_id\n")
    with pytest.raises(ValueError, match="both metadata.jsonl and metadata.csv"):
        load_multiview_folder(folder)
    (folder / "metadata.csv").unlink()
    (folder / "metadata.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match="no metadata.jsonl or metadata.csv"):
        load_multiview_folder(folder)


def test_requested_split_without_rows_names_the_present_splits(tmp_path):
    root = make_folder(tmp_path / "d", rows=[take("t1"), take("t2", split="val")])
    with pytest.raises(ValueError, match=r"metadata\.jsonl: no rows in split 'test'; .* \['train', 'validation'\]"):
        load_multiview_folder(root, "test")
    with pytest.raises(ValueError, match=r"unknown split 'dev'"):
        load_multiview_folder(root, "dev")


# ---------------------------------------------------------------------------------------------- missing videos
def test_missing_video_masks_the_view_and_is_reported(tmp_path, caplog):
    rows = [take("t1"), take("t2"), take("t3", views=("side",))]
    root = make_folder(tmp_path / "d", rows=rows, skip_videos=("videos/t1_side.mp4", "videos/t3_side.mp4"))
    with caplog.at_level(logging.WARNING):
        ds, report = load_multiview_folder_with_report(root)
    assert ds["take_uid"] == ["t1", "t2"] and ds["view_names"] == [["front"], ["front", "side"]]
    assert report.missing_files == {"side": 2} and report.takes_without_video == 1 and report.rows == 2
    assert "side: 2 files missing" in caplog.text and "t1_side.mp4" in caplog.text
    assert "skipped 1 take because no view remained" in caplog.text


def test_missing_video_strict_names_file_take_and_view(tmp_path):
    root = make_folder(tmp_path / "d", rows=[take("t1"), take("t2")], skip_videos=("videos/t2_side.mp4",))
    with pytest.raises(FileNotFoundError, match=r"metadata\.jsonl line 2: video not found: .*/videos/t2_side\.mp4 "
                                                r"\(take 't2', view 'side'\)"):
        load_multiview_folder(root, strict=True)


def test_rebuild_after_deleting_a_video_gives_the_new_rows(folder):
    assert load_multiview_folder(folder)["view_names"] == [["front", "side"], ["front"]]
    (folder / "videos" / "t001_side.mp4").unlink()
    ds, report = load_multiview_folder_with_report(folder)
    assert ds["view_names"] == [["front"], ["front"]] and report.missing_files == {"side": 1}


def test_one_missing_file_is_singular_in_the_message(folder, caplog):
    (folder / "videos" / "t001_side.mp4").unlink()
    with caplog.at_level(logging.WARNING):
        load_multiview_folder(folder)
    assert "side: 1 file missing" in caplog.text


# ------------------------------------------------------------------------------------------------------ export
def test_export_parquet_reloads_with_class_labels_and_license(folder, tmp_path):
    out = export_parquet(folder, tmp_path / "out", license="apache-2.0")
    reloaded = load_dataset(str(out), cache_dir=str(tmp_path / "c"))
    assert set(reloaded) == {"train", "validation", "test"}
    for split in reloaded:
        assert reloaded[split].features["proficiency"].names == LABELS
        assert reloaded[split].to_list() == load_multiview_folder(folder, split).to_list()
    card = (out / "README.md").read_text()
    assert "\nlicense: apache-2.0\n" in card and "configs:" in card


def test_export_default_license_is_unknown_and_only_present_splits(tmp_path):
    root = make_folder(tmp_path / "d", rows=[take("t1"), take("t2", split="val", label="advanced")])
    out = export_parquet(root, tmp_path / "out")
    assert "\nlicense: unknown\n" in (out / "README.md").read_text()
    assert sorted(p.name for p in (out / "data").glob("*.parquet")) == [
        "train-00000-of-00001.parquet", "validation-00000-of-00001.parquet"]
    assert set(load_dataset(str(out), cache_dir=str(tmp_path / "c"))) == {"train", "validation"}


def test_push_is_private_by_default(folder, tmp_path, fake_hub):
    out = export_parquet(folder, tmp_path / "out")
    url = push_dataset_folder(out, "me/my-dataset", license="cc-by-4.0")
    assert url == "https://huggingface.co/datasets/me/my-dataset"
    (create, repo, kwargs), (upload, _, up_kwargs) = fake_hub
    assert (create, repo, kwargs["private"], kwargs["repo_type"]) == ("create_repo", "me/my-dataset", True, "dataset")
    assert upload == "upload_folder" and up_kwargs["folder_path"] == str(out)
    card = (out / "README.md").read_text()
    assert 'load_dataset("me/my-dataset")' in card and "\nlicense: cc-by-4.0\n" in card


def test_script_exports_and_pushes_public(folder, tmp_path, fake_hub, capsys):
    folder_main(["--data_dir", str(folder), "--output_dir", str(tmp_path / "o"), "--license", "mit",
                 "--views", "front", "--push_to_hub", "me/ds", "--public"])
    assert "parquet" in capsys.readouterr().out
    assert fake_hub[0][2]["private"] is False
    ds = load_dataset(str(tmp_path / "o"), split="train", cache_dir=str(tmp_path / "c"))
    assert ds["view_names"] == [["front"], ["front"]] and ds.features["proficiency"].names == LABELS
    assert "\nlicense: mit\n" in (tmp_path / "o" / "README.md").read_text()


def test_script_runs_from_a_checkout_with_help():
    from tests.training_helpers import script_env, script_python

    env = {k: v for k, v in script_env().items() if k != "PYTHONPATH"}  # as a user runs it from the checkout
    result = subprocess.run([script_python(env), "dataset_scripts/multiview_folder.py", "--help"], cwd=REPO_ROOT,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for option in ("--data_dir", "--output_dir", "--license", "--push_to_hub", "--public", "--views", "--strict"):
        assert option in result.stdout
    assert "front_file_name" in result.stdout and "labels.json" in result.stdout
