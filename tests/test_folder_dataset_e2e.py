"""[data-views] A user's own folder dataset (2 views "front"/"side", 3 ordered labels, one take without its side
video) goes through `profvlm init --data_dir`, 2 SFT steps, evaluation and the pipeline."""
import json
import sys

import pytest

from tests.training_helpers import run_script
from tests.video_fixtures import write_pattern_video

LABELS = ["beginner", "intermediate", "advanced"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("my_dataset")
    (root / "videos").mkdir()
    (root / "labels.json").write_text(json.dumps({"labels": LABELS}))
    lines = []
    for i in range(9):
        take, split = f"t{i:03d}", "train" if i < 6 else "validation"
        row = {"take_id": take, "split": split, "label": LABELS[i % 3], "feedback": f"Take {i} feedback.",
               "scenario": "court" if i % 2 else "field"}
        for j, view in enumerate(("front", "side")):
            path = root / "videos" / f"{take}_{view}.mp4"
            if not (take == "t001" and view == "side"):  # t001 has no side video on disk
                write_pattern_video(path, num_frames=8, height=32, width=32, seed=10 * i + j)
            row[f"{view}_file_name"] = f"videos/{take}_{view}.mp4"
        lines.append(json.dumps(row))
    (root / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return root


def test_init_sft_evaluate_and_pipeline_on_a_folder_dataset(folder, tiny_text_dir, tmp_path):
    from profvlm.cli import main as profvlm

    base = tmp_path / "base"
    assert profvlm(["init", "--vision", "random-tiny", "--text", str(tiny_text_dir), "--output_dir", str(base),
                    "--data_dir", str(folder)]) == 0
    config = json.loads((base / "config.json").read_text())
    assert config["view_names"] == ["front", "side"] and config["num_views"] == 2
    assert config["proficiency_labels"] == LABELS

    out = tmp_path / "run"
    run_script([sys.executable, "training/sft.py", "--model", str(base), "--data_dir", str(folder), "--output_dir",
                str(out), "--max_steps", "2", "--per_device_train_batch_size", "2", "--eval_split", "none",
                "--report_to", "none", "--save_strategy", "no"])
    final = out / "final"
    assert json.loads((final / "config.json").read_text())["proficiency_labels"] == LABELS

    evaluation = tmp_path / "eval"
    run_script([sys.executable, "training/evaluate_profvlm.py", "--model", str(final), "--data_dir", str(folder),
                "--split", "validation", "--output_dir", str(evaluation), "--max_new_tokens", "4"])
    metrics = json.loads((evaluation / "metrics.json").read_text())
    assert metrics["num_samples"] == 3

    from transformers import pipeline

    import modeling_profvlm  # noqa: F401
    from modeling_profvlm.pipeline_profvlm import ProficiencyEstimationPipeline

    pipe = pipeline("proficiency-estimation", model=str(final), pipeline_class=ProficiencyEstimationPipeline)
    take = {"front": str(folder / "videos" / "t006_front.mp4"), "side": str(folder / "videos" / "t006_side.mp4")}
    result = pipe(take, max_new_tokens=4)
    assert list(result["probabilities"]) == LABELS and result["proficiency"] in LABELS
    assert sorted(result["view_weights"]) == ["front", "side"]
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    only_front = pipe({"front": take["front"]}, return_feedback=False)
    assert list(only_front["view_weights"]) == ["front"]
    with pytest.raises(ValueError, match="unknown view name.*'ego'"):
        pipe({"ego": take["front"]}, return_feedback=False)


def test_a_checkpoint_with_other_labels_refuses_the_dataset_naming_both_lists(folder, tiny_checkpoint, tmp_path):
    proc = None
    with pytest.raises(AssertionError) as err:
        proc = run_script([sys.executable, "training/sft.py", "--model", str(tiny_checkpoint), "--data_dir",
                           str(folder), "--output_dir", str(tmp_path / "run"), "--max_steps", "1"])
    assert proc is None
    message = str(err.value)
    assert "['beginner', 'intermediate', 'advanced']" in message and "'Novice'" in message
    assert "Traceback" not in message  # a one-line error, not a trace


def test_a_folder_with_train_rows_only_trains_without_the_per_epoch_evaluation(tiny_text_dir, tmp_path):
    from profvlm.cli import main as profvlm

    root = tmp_path / "train_only"
    (root / "videos").mkdir(parents=True)
    (root / "labels.json").write_text(json.dumps({"labels": ["low", "high"]}))
    rows = []
    for i in range(4):
        write_pattern_video(root / "videos" / f"t{i}.mp4", num_frames=8, height=32, width=32, seed=i)
        rows.append(json.dumps({"take_id": f"t{i}", "split": "train", "label": ["low", "high"][i % 2],
                                "cam_file_name": f"videos/t{i}.mp4"}))
    (root / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    base = tmp_path / "base"
    assert profvlm(["init", "--vision", "random-tiny", "--text", str(tiny_text_dir), "--output_dir", str(base),
                    "--data_dir", str(root)]) == 0
    proc = run_script([sys.executable, "training/sft.py", "--model", str(base), "--data_dir", str(root),
                       "--output_dir", str(tmp_path / "run"), "--max_steps", "1", "--per_device_train_batch_size", "2",
                       "--report_to", "none", "--save_strategy", "no"])
    assert "has no split 'validation': no evaluation during training" in proc.stdout + proc.stderr
    assert (tmp_path / "run" / "final" / "config.json").is_file()
