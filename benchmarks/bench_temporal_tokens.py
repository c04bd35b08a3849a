"""What N = 8 temporal tokens cost next to N = 1 (the paper), side by side in one run, with the CPU kind recorded.

- pipeline: classification only (`return_feedback=False`) through the `proficiency-estimation` pipeline on one
  5-view take (EgoExo4D's 448-px layout), the base TimeSformer (random, 8 frames, 224 px) and the real SmolLM2;
  the tower does the same work for any N, so N = 8 should cost at most ~5 % more (8 prompt tokens and times).
- sft: one LoRA SFT step on cached features with the demo's recipe (training/configs/cpu_demo.yaml), a random tiny
  TimeSformer with 8 frames (N = 8 needs 8 time steps) and the real SmolLM2, in the device policy's precision.

    python benchmarks/bench_temporal_tokens.py [--parts pipeline sft] [--repeats 5]

Writes JSON (default benchmarks/results/bench_temporal_tokens.json). The learnability comparison is
`benchmarks/bench_learnability.py --temporal_tokens 8 --num_frames 8` (and `--temporal_tokens 1 --num_frames 8`).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # runnable as a plain script
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.report import RESULTS_DIR, cpu_kind, write_report  # noqa: E402

TOKENS = (1, 8)


def _init(out: Path, vision: str, temporal_tokens: int, num_frames: int | None = None) -> Path:
    """A base checkpoint (random tower, real SmolLM2), built once in a subprocess and reused; seed 0 for every N,
    so the towers are identical and only the pooling differs."""
    if (out / "config.json").is_file():
        return out
    cmd = [sys.executable, "-m", "profvlm.cli", "init", "--vision", vision, "--text", "smollm2-offline",
           "--output_dir", str(out), "--temporal_tokens", str(temporal_tokens)]
    if num_frames:
        cmd += ["--num_frames", str(num_frames)]
    subprocess.run(cmd, check=True, cwd=REPO_ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return out


def bench_pipeline(work: Path, repeats: int, seconds: float) -> dict:
    """Seconds per take of classification-only prediction for N = 1 and N = 8, interleaved run by run."""
    from benchmarks.bench_inference import write_take
    from modeling_profvlm.pipeline_profvlm import load_proficiency_pipeline

    take = write_take(work / "take", seconds)
    pipes = {n: load_proficiency_pipeline(str(_init(work / f"base_n{n}", "random-base", n))) for n in TOKENS}
    times: dict[int, list[float]] = {n: [] for n in TOKENS}
    for n, pipe in pipes.items():  # warm-up: first-call allocations and lazy imports
        pipe(take, return_feedback=False)
    for _ in range(repeats):
        for n, pipe in pipes.items():
            start = time.perf_counter()
            pipe(take, return_feedback=False)
            times[n].append(time.perf_counter() - start)
    medians = {n: statistics.median(t) for n, t in times.items()}
    return {"take": {"views": 5, "seconds": seconds, "size": "448 px (ego 448x448, exo 796x448)"},
            "tower": "random-base TimeSformer (8 frames, 224 px)",
            "policy": pipes[1].device_policy.describe(),
            **{f"n{n}_s_per_take": times[n] for n in TOKENS},
            **{f"n{n}_median_s": medians[n] for n in TOKENS},
            "n8_over_n1": medians[8] / medians[1]}


def bench_sft(work: Path, steps: int, warmup: int) -> dict:
    """Median seconds per SFT step on cached features for N = 1 and N = 8 (each case in its own subprocess)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    data = work / "data"
    if not (data / "takes.json").is_file():
        subprocess.run([sys.executable, "-m", "profvlm.cli", "synthetic", "--output_dir", str(data), "--takes", "40",
                        "--size", "32", "--seconds", "2", "--quiet"], check=True, cwd=REPO_ROOT, env=env)
    case = "bf16_autocast" if cpu_kind()["native_bf16"] else "float32"
    report = {"case": case, "recipe": "training/configs/cpu_demo.yaml", "tower": "random-tiny TimeSformer, 8 frames"}
    for n in TOKENS:
        base = _init(work / f"tiny_n{n}", "random-tiny", n, num_frames=8)
        features = work / f"features_n{n}"
        if not (features / "manifest.json").is_file():
            subprocess.run([sys.executable, "training/extract_features.py", "--model", str(base), "--data_dir",
                            str(data), "--output_dir", str(features), "--dtype", "float32"], check=True, cwd=REPO_ROOT,
                           env=env)
        code = ("import json, sys; from pathlib import Path; from benchmarks.bench_sft_step import time_steps; "
                f"print(json.dumps(time_steps({case!r}, Path({str(base)!r}), Path({str(data)!r}), "
                f"Path({str(features)!r}), {steps}, {warmup}, Path({str(work / f'sft_n{n}')!r}))))")
        proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"bench_temporal_tokens: the N = {n} SFT case failed:\n{proc.stderr[-3000:]}")
        report[f"n{n}"] = json.loads(proc.stdout.strip().splitlines()[-1])
    report["n8_over_n1"] = report["n8"]["step_s_median"] / report["n1"]["step_s_median"]
    return report


def main(argv: list[str] | None = None) -> int:
    """Run the chosen parts and write the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", choices=("pipeline", "sft"), default=["pipeline", "sft"])
    parser.add_argument("--output_dir", default=str(RESULTS_DIR), help="folder of bench_temporal_tokens.json")
    parser.add_argument("--work_dir", default=None, help="where checkpoints, data and caches are kept")
    parser.add_argument("--repeats", type=int, default=5, help="timed pipeline calls per N (after one warm-up)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the benchmark take")
    parser.add_argument("--steps", type=int, default=6, help="timed SFT steps per N (after --warmup)")
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args(argv)

    from profvlm.assets import cache_dir

    work = Path(args.work_dir) if args.work_dir else cache_dir() / "bench_temporal_tokens"
    work.mkdir(parents=True, exist_ok=True)
    report = {"cpu_kind": cpu_kind()}
    if "pipeline" in args.parts:
        report["pipeline_classification_only"] = bench_pipeline(work, args.repeats, args.seconds)
    if "sft" in args.parts:
        report["sft_step_on_cached_features"] = bench_sft(work, args.steps, args.warmup)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    write_report(Path(args.output_dir) / "bench_temporal_tokens.json", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
