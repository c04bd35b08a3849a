"""[moments] A multi-view folder dataset may carry a `moments` column (a JSON list of {"time": seconds, "text": ...,
"category": optional}; in CSV a JSON string): the rows then have the `moments` column (times as written, the category
or null) and their feedback is the moments rendered; a bad time (not a number, negative, past the take's videos) or
category is an error naming the metadata file, line and value."""
import json
from pathlib import Path

import datasets
import pytest
from datasets import load_dataset

from dataset_scripts.multiview_folder import export_parquet, load_multiview_folder
from tests.test_multiview_folder import LABELS, make_folder, take
from tests.video_fixtures import write_pattern_video

SECONDS = 12  # every video: 12 frames at 1 fps


def folder_with(root: Path, rows, fmt="jsonl") -> Path:
    for row in rows:
        for key, value in row.items():
            if key.endswith("_file_name"):
                (root / value).parent.mkdir(parents=True, exist_ok=True)
                write_pattern_video(root / value, num_frames=SECONDS, height=32, width=32, fps=1)
    return make_folder(root, rows, fmt=fmt)


MOMENTS = [{"time": 9.8, "text": "late  release"}, {"time": 2.5, "text": "good stance"}]
# times as written (the answer format floors them when it writes them), in time order, no category
EXPECTED = [{"time": 2.5, "text": "good stance", "category": None},
            {"time": 9.8, "text": "late release", "category": None}]
MOMENT_FEATURE = {"time": datasets.Value("float64"), "text": datasets.Value("string"),
                  "category": datasets.Value("string")}


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_moments_become_the_column_and_the_feedback(tmp_path, fmt):
    cell = json.dumps(MOMENTS)  # a JSON string, as a CSV cell holds it (JSONL accepts it too)
    rows = [take("t001", moments=MOMENTS if fmt == "jsonl" else cell),
            take("t002", label="advanced", feedback="plain text, no moments"),
            take("t003", split="validation", moments=cell)]
    ds = load_multiview_folder(folder_with(tmp_path / "d", rows, fmt), "train")
    assert ds.features["moments"].feature == MOMENT_FEATURE  # the EgoExo4D builder's schema
    assert ds.features["proficiency"].names == LABELS
    assert ds["moments"] == [EXPECTED, []]
    assert ds["feedback"] == ["[0:02] good stance [0:09] late release", "plain text, no moments"]
    assert load_multiview_folder(tmp_path / "d", "validation")["moments"] == [EXPECTED]


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_categorised_moments_keep_their_category_and_open_with_its_word(tmp_path, fmt):
    moments = [{"time": 7.25, "text": "bend the knees", "category": "needs_improvement"},
               {"time": 1.5, "text": "clean start", "category": "good_execution"}, {"time": 4, "text": "a remark"}]
    rows = [take("t001", moments=moments if fmt == "jsonl" else json.dumps(moments))]
    ds = load_multiview_folder(folder_with(tmp_path / "d", rows, fmt), "train")
    assert ds["moments"] == [[{"time": 1.5, "text": "clean start", "category": "good_execution"},
                              {"time": 4.0, "text": "a remark", "category": None},
                              {"time": 7.25, "text": "bend the knees", "category": "needs_improvement"}]]
    assert ds["feedback"] == ["[0:01] good: clean start [0:04] a remark [0:07] tip: bend the knees"]


def test_a_folder_without_moments_keeps_its_schema(tmp_path):
    ds = load_multiview_folder(folder_with(tmp_path / "d", [take("t001", feedback="ok")]), "train")
    assert "moments" not in ds.features and ds["feedback"] == ["ok"]


def test_export_keeps_the_moments_column(tmp_path):
    folder = folder_with(tmp_path / "d", [take("t001", moments=MOMENTS), take("t002", split="validation")])
    out = export_parquet(folder, tmp_path / "out")
    reloaded = load_dataset(str(out), cache_dir=str(tmp_path / "c"))
    assert reloaded["train"]["moments"] == [EXPECTED] and reloaded["validation"]["moments"] == [[]]


@pytest.mark.parametrize(
    "moments, message",
    [
        ([{"time": "0:04", "text": "x"}], "moment 0 has time '0:04'; expected a number of seconds"),
        ([{"time": 1, "text": "x"}, {"time": True, "text": "y"}], "moment 1 has time True; expected a number"),
        ([{"time": -0.5, "text": "x"}], "moment 0 has time -0.5; expected seconds >= 0"),
        ([{"time": 1, "text": "  "}], "moment 0 has text '  '; expected a non-empty string"),
        ([{"time": 1}], "moment 0 is {'time': 1}; expected"),
        ({"time": 1, "text": "x"}, "moments is {'time': 1, 'text': 'x'}; expected a list"),
        ("[{'time': 1}]", "moments is not valid JSON"),
        ([{"time": 1, "text": "x", "category": "great"}], "moment 0 has category 'great'; expected one of "
                                                          r"\['good_execution', 'needs_improvement'\] or none"),
    ],
)
def test_bad_moments_name_file_line_and_value(tmp_path, moments, message):
    rows = [take("t001"), take("t002", moments=moments)]
    folder = folder_with(tmp_path / "d", rows)
    with pytest.raises(ValueError, match=rf"metadata.jsonl line 2: {message}"):
        load_multiview_folder(folder, "train")


def test_a_moment_past_the_videos_end_names_the_line_and_the_time(tmp_path):
    rows = [take("t001", moments=json.dumps([{"time": 11.5, "text": "last second"}])),  # 11.5 < 12: fine
            take("t002", moments=json.dumps([{"time": 3, "text": "ok"}, {"time": 12.5, "text": "after the end"}]))]
    folder = folder_with(tmp_path / "d", rows, fmt="csv")
    with pytest.raises(ValueError, match=r"metadata.csv line 3: take 't002' has a moment at 12.5 s, past the end of "
                                         r"its videos \(12.00 s"):
        load_multiview_folder(folder, "train")


def test_feedback_and_moments_on_one_row_is_an_error(tmp_path):
    folder = folder_with(tmp_path / "d", [take("t001", feedback="text", moments=MOMENTS)])
    with pytest.raises(ValueError, match="metadata.jsonl line 1: take 't001' has both feedback and moments"):
        load_multiview_folder(folder, "train")
