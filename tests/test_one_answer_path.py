"""One take, every way in: `pipeline()`, `profvlm predict` on the take, `profvlm predict --data_dir` over a folder
holding it, and evaluation's predictions.jsonl give the same answer (level, probabilities, feedback, moments with
their cameras, timeline), because all four call `answer_takes`. The checkpoint has 2 temporal tokens and writes
timed feedback, so every part of the answer is exercised."""
import json

import pytest

from modeling_profvlm.pipeline_profvlm import load_proficiency_pipeline
from modeling_profvlm.profvlm_facts import PROFICIENCY_LABELS
from profvlm.cli import main
from tests.moments_checkpoint import EXPECTED_MOMENTS, MOMENTS_FEEDBACK, MOMENTS_LABEL
from tests.serving_helpers import check_result, timed
from tests.video_fixtures import write_pattern_video

VIEWS = ["ego", "exo1", "exo3"]  # exo2 and exo4 missing: cameras and timelines cover the present views only
MAX_NEW_TOKENS = "48"
DEVICE = ["--device", "cpu", "--dtype", "float32"]


@pytest.fixture(scope="module")
def folder_with_one_take(tmp_path_factory):
    """A multi-view folder dataset (EgoExo4D's views and levels) holding one 2.5 s validation take."""
    root = tmp_path_factory.mktemp("one_take")
    (root / "videos").mkdir()
    (root / "labels.json").write_text(json.dumps({"labels": list(PROFICIENCY_LABELS),
                                                  "views": ["ego", "exo1", "exo2", "exo3", "exo4"]}))
    row = {"take_id": "t1", "split": "validation", "label": "Novice", "scenario": "drill",
           "feedback": "Keep the elbow in."}
    for i, view in enumerate(VIEWS):
        path = f"videos/t1_{view}.mp4"
        write_pattern_video(root / path, num_frames=75, height=40, width=56, seed=7 + i)  # 2.5 s at 30 fps
        row[f"{view}_file_name"] = path
    (root / "metadata.jsonl").write_text(json.dumps(row) + "\n")
    return root, {view: str(root / f"videos/t1_{view}.mp4") for view in VIEWS}


def same_answer(expected: dict, got: dict, where: str) -> None:
    assert got["proficiency"] == expected["proficiency"], where
    assert list(got["probabilities"]) == list(expected["probabilities"]), where
    assert got["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-5), where
    assert got["feedback"] == expected["feedback"], where
    assert got["moments"] == expected["moments"], where  # time, text and camera
    assert [s["time"] for s in got["timeline"]] == pytest.approx([s["time"] for s in expected["timeline"]]), where
    for step, want in zip(got["timeline"], expected["timeline"]):
        assert step["view_weights"] == pytest.approx(want["view_weights"], abs=1e-5), where
    assert got["view_weights"] == pytest.approx(expected["view_weights"], abs=1e-5), where
    assert got["views"] == expected["views"] and got["duration"] == pytest.approx(expected["duration"]), where


def test_pipeline_predict_batch_and_evaluation_give_one_answer(tiny_moments_checkpoint, folder_with_one_take,
                                                               tmp_path, capsys):
    root, take = folder_with_one_take
    model = str(tiny_moments_checkpoint)
    pipe = load_proficiency_pipeline(model, "cpu", "float32")
    expected = pipe(take, max_new_tokens=int(MAX_NEW_TOKENS))
    check_result(expected, VIEWS, temporal_tokens=2, duration=2.5)
    assert expected["proficiency"] == MOMENTS_LABEL and expected["feedback"] == MOMENTS_FEEDBACK
    assert timed(expected["moments"]) == EXPECTED_MOMENTS and len(expected["timeline"]) == 2

    views = [arg for view, path in take.items() for arg in ("--view", f"{view}={path}")]
    assert main(["predict", "--model", model, *views, "--json", "--max_new_tokens", MAX_NEW_TOKENS, *DEVICE]) == 0
    one_take = json.loads(capsys.readouterr().out)
    assert one_take.pop("video_paths") == take
    same_answer(expected, one_take, "profvlm predict")

    out = tmp_path / "batch"
    assert main(["predict", "--model", model, "--data_dir", str(root), "--split", "validation", "--output_dir",
                 str(out), "--num_workers", "0", "--max_new_tokens", MAX_NEW_TOKENS, *DEVICE]) == 0
    [line] = [json.loads(text) for text in (out / "predictions.jsonl").read_text().splitlines()]
    assert line["take_name"] == "t1" and line["missing_views"] == ["exo2", "exo4"]
    same_answer(expected, line, "profvlm predict --data_dir")

    from training import evaluate_profvlm

    evaluate_profvlm.main(["--model", model, "--data_dir", str(root), "--split", "validation", "--output_dir",
                           str(tmp_path / "eval"), "--max_new_tokens", MAX_NEW_TOKENS, *DEVICE])
    lines = [json.loads(text) for text in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    [all_views] = [line for line in lines if line["view_setting"] == "all"]
    assert all_views["reference"] == "Novice"
    same_answer(expected, all_views, "evaluation's predictions.jsonl")
