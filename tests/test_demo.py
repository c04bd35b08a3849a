"""[demo] `make demo`'s job (python -m profvlm.demo) at a small size: every stage runs and writes its output, the
evaluation line reports what predictions.jsonl holds (accuracy, MAE, QWK, ECE), evaluation cuts references with the
word limit the checkpoint was trained with, the card calls the data synthetic, the prediction is printed, and a second
run reuses what the first one made."""
import json
import re
import subprocess
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from modeling_profvlm.configuration_profvlm import PROFICIENCY_LABELS
from profvlm.demo import sft_config_value
from tests.training_helpers import script_env, script_python

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parent.parent
# two training steps leave the model writing to its cap: 16 new tokens keep evaluation and prediction short
SMALL = ["--takes", "16", "--size", "32", "--seconds", "1", "--max_steps", "2", "--max_new_tokens", "16"]


def _demo(out: Path, *extra: str) -> subprocess.CompletedProcess:
    # offline, one thread, the session's Hugging Face folders; the demo and each of its stages forked from a
    # preloaded interpreter (tests/preloaded_python.py) instead of importing torch and transformers every time
    env = script_env(PROFVLM_DTYPE="float32")
    return subprocess.run([script_python(env), "-m", "profvlm.demo", "--output_dir", str(out), *SMALL, *extra],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1200)


def test_the_label_demo_runs_every_stage(smollm2_dir, tmp_path):
    out = tmp_path / "demo"
    # the paper's label + feedback demo; one training step is enough to write and evaluate its checkpoint
    first = _demo(out, "--no-moments", "--max_steps", "1")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    for number in range(1, 8):
        assert f"[{number}/7]" in first.stdout
    assert "RANDOMLY INITIALISED" in first.stdout and "SYNTHETIC" in first.stdout  # honest about the setting
    # the first line says which CPU kind this is and the dtype the policy chose for it (the test runs the demo with
    # PROFVLM_DTYPE=float32, the documented switch, so the dtype is known whatever the machine)
    head = first.stdout.splitlines()[0]
    assert head.startswith("ProfVLM demo — offline; on CPU: ") and "; float32 (training in float32)" in head, head
    assert any(kind in head for kind in ("native bf16", "AVX2 only", "AVX512 without", "no native bf16")), head

    metrics = json.loads((out / "evaluation" / "metrics.json").read_text())
    lines = [json.loads(line) for line in (out / "evaluation" / "predictions.jsonl").read_text().splitlines()]
    main = [line for line in lines if line["view_setting"] == "ego_exos"]
    # the printed accuracy is the share of right all-views predictions in predictions.jsonl, over every take
    assert len(main) == metrics["num_samples"] > 0
    assert metrics["accuracy"] == pytest.approx(sum(line["proficiency"] == line["reference"] for line in main) / len(main))
    steps = [abs(PROFICIENCY_LABELS.index(line["proficiency"]) - PROFICIENCY_LABELS.index(line["reference"]))
             for line in main]
    assert metrics["mean_absolute_error"] == pytest.approx(sum(steps) / len(steps))
    evaluation_line = next(line for line in first.stdout.splitlines() if "held-out accuracy" in line)
    assert (f"held-out accuracy {metrics['accuracy']:.1%} on {metrics['num_samples']} takes" in evaluation_line
            and f"MAE {metrics['mean_absolute_error']:.3f}" in evaluation_line
            and f"QWK {metrics['quadratic_weighted_kappa']:.3f}" in evaluation_line
            and f"ECE {metrics['expected_calibration_error']:.3f}" in evaluation_line), evaluation_line
    assert "time_grounding" not in metrics and "moments F1" not in evaluation_line  # the label demo
    # evaluation was not told --max_feedback_words: it used the value the checkpoint was trained with
    provenance = metrics["provenance"]
    assert (provenance["max_feedback_words"], provenance["max_feedback_words_source"]) == (
        sft_config_value("max_feedback_words", None), "checkpoint")
    assert provenance["dataset"]["synthetic"] is True
    for png in ("confusion_matrix.png", "per_scenario.png", "reliability_diagram.png"):
        assert (out / "evaluation" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    final = out / "sft_run" / "final"
    assert (final / "config.json").is_file() and (final / "README.md").is_file()  # checkpoint + model card
    card = ModelCard.load(final / "README.md")
    assert card.data.eval_results and all("synthetic" in r.dataset_name.lower() for r in card.data.eval_results)
    # the prediction's level line (the probability bars list every label, so they would not prove it)
    levels = re.findall(r"^Proficiency: (.+)$", first.stdout, flags=re.MULTILINE)
    assert levels and levels[-1] in PROFICIENCY_LABELS



def test_the_moments_demo_is_the_default_scores_time_grounding_then_reuses_every_stage(smollm2_dir, tmp_path):
    out = tmp_path / "demo"
    run = _demo(out)  # what `make demo` runs: no flag
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "with timed events" in run.stdout and "4 temporal tokens per take" in run.stdout
    assert json.loads((out / "base_checkpoint_moments" / "config.json").read_text())["temporal_tokens"] == 4
    metrics = json.loads((out / "evaluation_moments" / "metrics.json").read_text())
    # one token's length (1 s / 4 tokens) is the finest tolerance; the line reports F1 at each
    assert metrics["time_grounding"]["tolerances"] == pytest.approx([0.25, 2.0, 5.0])
    evaluation_line = next(line for line in run.stdout.splitlines() if "held-out accuracy" in line)
    assert "moments F1" in evaluation_line and "within 0.25 s" in evaluation_line
    blind = next(line for line in run.stdout.splitlines() if "blind" in line)  # the base rate beside it
    assert "would score F1" in blind and "within 0.25 s" in blind and "within 5 s" in blind
    lines = [json.loads(line) for line in (out / "evaluation_moments" / "predictions.jsonl").read_text().splitlines()]
    assert all("reference_moments" in line for line in lines if line["view_setting"] == "ego_exos")
    # trained with the label's and the times' tokens weighted up as cpu_demo.yaml says, and the checkpoint records it
    final_config = json.loads((out / "sft_run_moments" / "final" / "config.json").read_text())
    assert final_config["label_loss_weight"] == sft_config_value("label_loss_weight", None) > 1.0
    assert final_config["time_loss_weight"] == sft_config_value("time_loss_weight", None) > 1.0

    # the demo passed its --max_new_tokens on to evaluation, whose provenance records the cap
    assert metrics["provenance"]["max_new_tokens"] == 16

    second = _demo(out)  # a second run (or a resumed one) reuses every stage the first one finished
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    for reused in ("reusing the existing tree", "reusing the existing checkpoint", "reusing the trained checkpoint",
                   "reusing the evaluation"):
        assert reused in second.stdout
    assert "0 to extract" in second.stdout + second.stderr  # the feature cache is complete: nothing recomputed
