"""[speed] benchmarks/gpu_check.py: without CUDA it says so and completes a CPU dry run at tiny size, every stage."""
import json
import subprocess
import sys

import pytest

from tests.training_helpers import REPO_ROOT, script_env, script_python

pytestmark = pytest.mark.slow


def test_gpu_check_dry_run_runs_every_stage_and_writes_its_report(tiny_text_dir, tmp_path):
    out = tmp_path / "gpu_check.json"
    env = script_env()  # its stages are processes of sys.executable: preloaded too
    proc = subprocess.run([script_python(env), "benchmarks/gpu_check.py", "--dry-run", "--text", str(tiny_text_dir),
                           "--work_dir", str(tmp_path / "work"), "--output_dir", str(tmp_path)], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    report = json.loads(out.read_text())
    assert report["dry_run"] is True
    assert list(report["stages_s"]) == ["base_checkpoint", "synthetic_data", "feature_extraction", "sft", "evaluation",
                                        "prediction"]
    assert all(seconds > 0 for seconds in report["stages_s"].values())
    assert report["extraction_takes_per_s"] > 0 and report["sft_steps_per_s"] > 0 and report["inference_ms_per_take"] > 0
    assert report["evaluation"]["num_samples"] > 0 and report["prediction"]
    assert "device cpu" in report["device_policy"]
    # The time axis and a second tower family run end to end too, each predicting a level.
    variants = report["variants"]
    assert sorted(variants) == ["timesformer_n8", "videomae_n4"]
    assert (variants["timesformer_n8"]["temporal_tokens"], variants["videomae_n4"]["vision"]) == (8, "random-videomae-tiny")
    assert all(v["inference_ms_per_take"] > 0 and v["prediction"] for v in variants.values())
    if not report["machine"]["cuda"]:
        assert "no CUDA device here" in proc.stderr
