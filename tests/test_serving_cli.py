"""`profvlm predict | card | push`: the report, the model card round trip, and exactly what an upload contains."""
import json
import shutil

import pytest
from huggingface_hub import ModelCard

from modeling_profvlm.cli import main
from modeling_profvlm.configuration_profvlm import PROFICIENCY_LABELS
from tests.serving_helpers import TINY_MAX_NEW_TOKENS, check_result, write_take

METRICS = {
    "accuracy": 0.4821,
    "macro_f1": 0.4117,
    "per_scenario": {"Basketball": 0.61, "Cooking": 0.5, "Dance": 0.25, "Music": 0.55, "Bouldering": 0.33, "Soccer": 0.75},
    "per_view_setting": {"ego": 0.41, "exos": 0.45, "ego_exos": 0.4821},
    "feedback": {"rouge_l": 0.4312, "bleu": 0.1234, "bertscore_f1": 0.8553},
    "generation_label_accuracy": 0.47,
    "num_samples": 466,
}


@pytest.fixture
def checkpoint_copy(tiny_checkpoint, tmp_path):
    """A private copy of the tiny checkpoint (card and push write into the folder)."""
    return shutil.copytree(tiny_checkpoint, tmp_path / "ckpt")


@pytest.fixture
def eval_dir(tmp_path):
    """metrics.json with both plots next to it, as training/evaluate_profvlm.py writes them."""
    out = tmp_path / "eval"
    out.mkdir()
    (out / "metrics.json").write_text(json.dumps(METRICS))
    for name in ("confusion_matrix.png", "per_scenario.png"):
        (out / name).write_bytes(b"\x89PNG\r\n\x1a\n" + name.encode())
    return out


def test_predict_prints_level_probability_bars_feedback_and_cameras(tiny_checkpoint, tmp_path, capsys):
    take = write_take(tmp_path / "take", views=("ego", "exo1", "exo2"))
    code = main(["predict", "--model", str(tiny_checkpoint), "--ego", take["ego"], "--exo", take["exo1"], take["exo2"],
                 "--max_new_tokens", str(TINY_MAX_NEW_TOKENS)])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("Proficiency: ") and out.splitlines()[0].split(": ", 1)[1] in PROFICIENCY_LABELS
    for label in PROFICIENCY_LABELS:
        assert any(line.strip().startswith(label) and "%" in line for line in out.splitlines()), label
    assert "█" in out or "░" in out
    assert "Cameras" in out and "exo2.mp4" in out
    assert "randomly initialised" in out  # the tiny checkpoint has a random tower


def test_predict_json_is_the_pipeline_output(tiny_checkpoint, tmp_path, capsys):
    take = write_take(tmp_path / "take", views=("exo1", "exo2"))
    assert main(["predict", "--model", str(tiny_checkpoint), "--exo", take["exo1"], take["exo2"], "--json",
                 "--no_feedback"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result.pop("views") == take
    check_result(result, ["exo1", "exo2"])
    assert result["feedback"] == ""


def test_predict_missing_file_names_view_and_file(tiny_checkpoint, tmp_path, capsys):
    missing = tmp_path / "nowhere" / "cam03.mp4"
    take = write_take(tmp_path / "take", views=("ego",))
    assert main(["predict", "--model", str(tiny_checkpoint), "--ego", take["ego"], "--exo", str(missing)]) == 2
    err = capsys.readouterr().err
    assert "exo1" in err and str(missing) in err


def test_card_round_trips_eval_results_plots_and_random_tower_warning(checkpoint_copy, eval_dir):
    assert main(["card", "--model", str(checkpoint_copy), "--eval", str(eval_dir / "metrics.json"),
                 "--repo", "org/profvlm"]) == 0
    card = ModelCard.load(checkpoint_copy / "README.md")
    data = card.data
    assert data.pipeline_tag == "video-text-to-text" and data.library_name == "transformers"
    assert "custom_code" in data.tags and data.license
    values = {r.metric_name: r.metric_value for r in data.eval_results}
    expected = {"Accuracy": METRICS["accuracy"], "Macro F1": METRICS["macro_f1"],
                "Accuracy (Ego)": 0.41, "Accuracy (Exos)": 0.45, "Accuracy (Ego+Exos)": 0.4821,
                "Label accuracy of free generation": 0.47, "ROUGE-L": 0.4312, "BLEU": 0.1234, "BERTScore F1": 0.8553}
    expected |= {f"Accuracy ({s})": v for s, v in METRICS["per_scenario"].items()}
    assert values == expected
    assert {r.dataset_split for r in data.eval_results} == {"validation"}
    text = card.text
    assert "randomly initialised" in text
    assert "![confusion matrix](confusion_matrix.png)" in text and "![per scenario](per_scenario.png)" in text
    assert (checkpoint_copy / "confusion_matrix.png").is_file() and (checkpoint_copy / "per_scenario.png").is_file()
    assert "| Basketball | 0.6100 |" in text
    assert 'pipeline(model="org/profvlm", trust_remote_code=True)' in text and "AutoProcessor" in text
    assert "arXiv:2509.26278" in text and "@article{" in text


def test_card_without_eval_and_with_a_broken_eval(checkpoint_copy, tmp_path, capsys):
    assert main(["card", "--model", str(checkpoint_copy)]) == 0
    assert ModelCard.load(checkpoint_copy / "README.md").data.eval_results is None
    bad = tmp_path / "metrics.json"
    bad.write_text(json.dumps({"accuracy": 0.5}))
    assert main(["card", "--model", str(checkpoint_copy), "--eval", str(bad)]) == 2
    assert "macro_f1" in capsys.readouterr().err


def _listed(out: str) -> set[str]:
    return {line.split()[0] for line in out.splitlines()[1:] if line.startswith("  ")}


def test_push_dry_run_lists_exactly_the_checkpoint_files(checkpoint_copy, eval_dir, capsys):
    main(["card", "--model", str(checkpoint_copy), "--eval", str(eval_dir / "metrics.json")])
    (checkpoint_copy / "checkpoint-5").mkdir()  # trainer leftovers and caches are not uploaded
    (checkpoint_copy / "checkpoint-5" / "optimizer.pt").write_bytes(b"x")
    (checkpoint_copy / "__pycache__").mkdir(exist_ok=True)
    (checkpoint_copy / "__pycache__" / "x.pyc").write_bytes(b"x")
    capsys.readouterr()
    assert main(["push", "--model", str(checkpoint_copy), "--repo", "org/profvlm", "--dry-run"]) == 0
    out = capsys.readouterr().out
    listed = _listed(out)
    config = json.loads((checkpoint_copy / "config.json").read_text())
    processor_config = json.loads((checkpoint_copy / "processor_config.json").read_text())
    code = {ref.split(".")[0] + ".py" for ref in config["auto_map"].values()}
    code |= {p["impl"].split(".")[0] + ".py" for p in config["custom_pipelines"].values()}
    code |= {ref.split(".")[0] + ".py" for ref in processor_config.get("auto_map", {}).values()}
    required = {"config.json", "model.safetensors", "processor_config.json", "README.md", "confusion_matrix.png"} | code
    assert required <= listed, required - listed
    assert "pipeline_profvlm.py" in listed and "processing_profvlm.py" in listed
    on_disk = {str(p.relative_to(checkpoint_copy)) for p in checkpoint_copy.rglob("*") if p.is_file()}
    assert listed == on_disk - {"checkpoint-5/optimizer.pt", "__pycache__/x.pyc"}
    assert "org/profvlm" in out and "public" in out


def test_push_refuses_an_incomplete_checkpoint_and_reports_offline_failure(tiny_checkpoint, checkpoint_copy, capsys):
    assert main(["push", "--model", str(checkpoint_copy), "--repo", "org/profvlm", "--dry-run"]) == 2
    assert "profvlm card" in capsys.readouterr().err  # README.md is missing
    main(["card", "--model", str(checkpoint_copy)])
    (checkpoint_copy / "pipeline_profvlm.py").unlink()
    assert main(["push", "--model", str(checkpoint_copy), "--repo", "org/profvlm", "--dry-run"]) == 2
    assert "pipeline_profvlm.py" in capsys.readouterr().err
    shutil.copy(tiny_checkpoint / "pipeline_profvlm.py", checkpoint_copy / "pipeline_profvlm.py")
    assert main(["push", "--model", str(checkpoint_copy), "--repo", "org/profvlm"]) == 1  # HF_HUB_OFFLINE=1
    assert "upload to org/profvlm failed" in capsys.readouterr().err
