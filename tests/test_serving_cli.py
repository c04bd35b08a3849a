"""`profvlm predict | card | push`: the report, the model card round trip, and exactly what an upload contains."""
import json
import shutil

import pytest

from dataset_scripts.script_errors import EXPECTED_ERROR_EXIT
from huggingface_hub import ModelCard

from profvlm.cli import main
from modeling_profvlm.configuration_profvlm import PROFICIENCY_LABELS
from tests.serving_helpers import TINY_MAX_NEW_TOKENS, check_result, write_take

ORDINAL = {"mean_absolute_error": 0.71, "within_one_accuracy": 0.86, "quadratic_weighted_kappa": 0.42,
           "expected_calibration_error": 0.09}
ORDINAL_NAMES = {"mean_absolute_error": "Mean absolute error (label steps)", "within_one_accuracy": "Within-one accuracy",
                 "quadratic_weighted_kappa": "Quadratic weighted kappa",
                 "expected_calibration_error": "Expected calibration error (10 bins)"}
SETTING_TITLES = {"ego": "Ego", "exos": "Exos", "ego_exos": "Ego+Exos"}
PER_SETTING = {"ego": {"accuracy": 0.41, "num_samples": 466, "mean_absolute_error": 0.9, "within_one_accuracy": 0.8,
                       "quadratic_weighted_kappa": 0.2, "expected_calibration_error": 0.15},
               "exos": {"accuracy": 0.45, "num_samples": 460, "mean_absolute_error": 0.8, "within_one_accuracy": 0.82,
                        "quadratic_weighted_kappa": 0.3, "expected_calibration_error": 0.12},
               "ego_exos": {"accuracy": 0.4821, "num_samples": 466, **ORDINAL}}
METRICS = {
    "accuracy": 0.4821,
    "macro_f1": 0.4117,
    **ORDINAL,
    "per_scenario": {"Basketball": 0.61, "Cooking": 0.5, "Dance": 0.25, "Music": 0.55, "Bouldering": 0.33, "Soccer": 0.75},
    "per_view_setting": {"ego": 0.41, "exos": 0.45, "ego_exos": 0.4821},
    "per_view_setting_metrics": PER_SETTING,
    "main_view_setting": "ego_exos",
    "feedback": {"rouge_l": 0.4312, "bleu": 0.1234, "bertscore_f1": 0.8553},
    "generation_label_accuracy": 0.47,
    "num_samples": 466,
    "provenance": {"dataset": {"name": "EgoExo4D demonstrator proficiency", "id": "egoexo4d_proficiency",
                               "kind": "egoexo4d", "synthetic": False, "split": "validation",
                               "annotation_sha256": "ab" * 32},
                   "split": "validation", "max_feedback_words": 200, "date": "2026-01-31T12:00:00+00:00"},
}
PLOTS = ("confusion_matrix.png", "per_scenario.png", "reliability_diagram.png")


@pytest.fixture
def checkpoint_copy(tiny_checkpoint, tmp_path):
    """A private copy of the tiny checkpoint (card and push write into the folder)."""
    return shutil.copytree(tiny_checkpoint, tmp_path / "ckpt")


@pytest.fixture
def eval_dir(tmp_path):
    """metrics.json with its three plots next to it, as training/evaluate_profvlm.py writes them."""
    out = tmp_path / "eval"
    out.mkdir()
    (out / "metrics.json").write_text(json.dumps(METRICS))
    for name in PLOTS:
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
    assert result.pop("video_paths") == take
    check_result(result, ["exo1", "exo2"])
    assert result["feedback"] is None and result["moments"] == []


def test_predict_missing_file_names_view_and_file(tiny_checkpoint, tmp_path, capsys):
    missing = tmp_path / "nowhere" / "cam03.mp4"
    take = write_take(tmp_path / "take", views=("ego",))
    assert main(["predict", "--model", str(tiny_checkpoint), "--ego", take["ego"], "--exo", str(missing)]) == EXPECTED_ERROR_EXIT
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
    expected |= {ORDINAL_NAMES[k]: v for k, v in ORDINAL.items()}
    expected |= {f"{ORDINAL_NAMES[k]} ({SETTING_TITLES[s]})": m[k] for s, m in PER_SETTING.items() for k in ORDINAL}
    expected |= {f"Accuracy ({s})": v for s, v in METRICS["per_scenario"].items()}
    assert values == expected
    assert {r.dataset_split for r in data.eval_results} == {"validation"}
    # the dataset is the one metrics.json's provenance names, not a command-line default
    assert {(r.dataset_name, r.dataset_type) for r in data.eval_results} == {
        ("EgoExo4D demonstrator proficiency", "egoexo4d_proficiency")}
    text = card.text
    assert "randomly initialised" in text
    for plot in PLOTS:
        assert f"![{plot[:-4].replace('_', ' ')}]({plot})" in text and (checkpoint_copy / plot).is_file()
    assert "| Basketball | 0.6100 |" in text
    assert "| Ego+Exos | 466 | 0.4821 | 0.7100 | 0.8600 | 0.4200 | 0.0900 |" in text  # the per-view-setting table
    assert "the paper's numbers, not this checkpoint's" in text  # the paper's 48.2% is never passed off as ours
    assert 'pipeline(model="org/profvlm", trust_remote_code=True)' in text and "AutoProcessor" in text
    assert "arXiv:2509.26278" in text and "@article{" in text


def test_card_options_override_the_recorded_dataset_and_an_unrecorded_one_is_not_guessed(checkpoint_copy, tmp_path):
    old = {k: v for k, v in METRICS.items() if k != "provenance"}  # an evaluation file from before provenance
    (tmp_path / "metrics.json").write_text(json.dumps(old))
    assert main(["card", "--model", str(checkpoint_copy), "--eval", str(tmp_path / "metrics.json")]) == 0
    names = {r.dataset_name for r in ModelCard.load(checkpoint_copy / "README.md").data.eval_results}
    assert len(names) == 1 and "EgoExo4D" not in names.pop()  # no default claims EgoExo4D
    assert main(["card", "--model", str(checkpoint_copy), "--eval", str(tmp_path / "metrics.json"),
                 "--dataset_name", "My rehearsal takes", "--dataset", "org/rehearsals", "--split", "test"]) == 0
    results = ModelCard.load(checkpoint_copy / "README.md").data.eval_results
    assert {(r.dataset_name, r.dataset_type, r.dataset_split) for r in results} == {
        ("My rehearsal takes", "org/rehearsals", "test")}


def test_card_without_eval_and_with_a_broken_eval(checkpoint_copy, tmp_path, capsys):
    assert main(["card", "--model", str(checkpoint_copy)]) == 0
    assert ModelCard.load(checkpoint_copy / "README.md").data.eval_results is None
    bad = tmp_path / "metrics.json"
    bad.write_text(json.dumps({"accuracy": 0.5}))
    assert main(["card", "--model", str(checkpoint_copy), "--eval", str(bad)]) == EXPECTED_ERROR_EXIT
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
    assert "org/profvlm" in out and "(private)" in out  # every push is private unless --public


def test_push_refuses_an_incomplete_checkpoint_and_reports_offline_failure(tiny_checkpoint, checkpoint_copy, capsys):
    assert main(["push", "--model", str(checkpoint_copy), "--repo", "org/profvlm", "--dry-run"]) == EXPECTED_ERROR_EXIT
    assert "profvlm card" in capsys.readouterr().err  # README.md is missing
    main(["card", "--model", str(checkpoint_copy)])
    (checkpoint_copy / "pipeline_profvlm.py").unlink()
    assert main(["push", "--model", str(checkpoint_copy), "--repo", "org/profvlm", "--dry-run"]) == EXPECTED_ERROR_EXIT
    assert "pipeline_profvlm.py" in capsys.readouterr().err
    shutil.copy(tiny_checkpoint / "pipeline_profvlm.py", checkpoint_copy / "pipeline_profvlm.py")
    assert main(["push", "--model", str(checkpoint_copy), "--repo", "org/profvlm"]) == 1  # HF_HUB_OFFLINE=1
    assert "upload to org/profvlm failed" in capsys.readouterr().err
