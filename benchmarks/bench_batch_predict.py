"""Many takes at once: `profvlm predict --data_dir` from the shell against a loop over `pipeline()`, in one run.

24 synthetic 5-view Ego-Exo4D takes at 448 px (ego 448x448, exo 796x448), the base TimeSformer (random weights, 8
frames, 224 px) and the real SmolLM2, classification only, under the device policy:

- loop: `pipeline("proficiency-estimation")` called take after take in one process (model loaded once, untimed, and
  one warm-up call): decode, tower and label scoring one take at a time.
- in-process batched: `run_batch_predict` in this process, model load and take discovery included.
- shell: `profvlm predict --data_dir TREE --takes_file LIST --no_feedback` as a subprocess, its startup included.

Targets: shell >= 1.3x the loop's takes/s, and the shell's seconds per take within 1.1x of the in-process batched
figure. The JSON records the CPU kind and the load average before and after (the figures move with the load).

    python benchmarks/bench_batch_predict.py [--takes 24] [--output_dir benchmarks/results]
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # runnable as a plain script
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.report import RESULTS_DIR, cpu_kind, write_report  # noqa: E402

TARGETS = {"shell_over_loop": 1.3, "shell_over_in_process_s_per_take": 1.1}


def prepare(work: Path, takes: int, seconds: float) -> tuple[Path, Path, Path]:
    """(base checkpoint, synthetic tree, takes file listing every take), built once and reused."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    base = work / "base"
    if not (base / "config.json").is_file():
        subprocess.run([sys.executable, "-m", "profvlm.cli", "init", "--vision", "random-base", "--text",
                        "smollm2-offline", "--output_dir", str(base)], check=True, cwd=REPO_ROOT, env=env)
    tree = work / f"tree_{takes}x448_{seconds:g}s"
    if not (tree / "takes.json").is_file():
        from dataset_scripts.synthetic_egoexo4d import generate_synthetic_egoexo4d

        generate_synthetic_egoexo4d(tree, takes, seed=0, size=448, seconds=seconds, overwrite=True, progress=False)
    names = [t["take_name"] for t in json.loads((tree / "takes.json").read_text())]
    listing = work / f"takes_{takes}.json"
    listing.write_text(json.dumps(names))
    return base, tree, listing


def bench_loop(base: Path, tree: Path, listing: Path) -> dict:
    """Seconds for a loop of pipeline() calls over every take (one warm-up call first)."""
    from modeling_profvlm.pipeline_profvlm import load_proficiency_pipeline
    from modeling_profvlm.profvlm_facts import VIEW_NAMES
    from profvlm.batch_takes import find_takes

    _, jobs, _ = find_takes(tree, list(VIEW_NAMES), takes_file=str(listing))
    pipe = load_proficiency_pipeline(str(base))
    pipe(jobs[0].views, return_feedback=False)
    start = time.perf_counter()
    labels = {job.take_uid: pipe(job.views, return_feedback=False)["proficiency"] for job in jobs}
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "takes": len(jobs), "takes_per_s": len(jobs) / seconds,
            "policy": pipe.device_policy.describe(), "labels": labels}


def bench_in_process(base: Path, tree: Path, listing: Path, out: Path, batch_size: int, workers: int) -> dict:
    """Seconds for run_batch_predict in this process, model load included."""
    from profvlm.batch_predict import BatchOptions, run_batch_predict

    start = time.perf_counter()
    summary = run_batch_predict(str(base), str(tree), str(out), takes_file=str(listing),
                                options=BatchOptions(batch_size=batch_size, num_workers=workers, feedback=False))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "takes": summary.predicted, "takes_per_s": summary.predicted / seconds,
            "predict_loop_takes_per_s": summary.takes_per_second,
            "labels": {line["take_uid"]: line["proficiency"] for line in summary.lines}}


def bench_shell(base: Path, tree: Path, listing: Path, out: Path, batch_size: int, workers: int) -> dict:
    """Seconds for `profvlm predict --data_dir` as a subprocess, startup and model load included."""
    command = [str(Path(sys.executable).parent / "profvlm"), "predict", "--model", str(base), "--data_dir", str(tree),
               "--takes_file", str(listing), "--output_dir", str(out), "--no_feedback", "--batch_size",
               str(batch_size), "--num_workers", str(workers)]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=REPO_ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True,
                          text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"bench_batch_predict: the shell command failed:\n{proc.stderr[-3000:]}")
    lines = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    return {"seconds": seconds, "takes": len(lines), "takes_per_s": len(lines) / seconds,
            "command": " ".join(command[1:]), "summary": proc.stdout.strip().splitlines()[0],
            "labels": {line["take_uid"]: line["proficiency"] for line in lines}}


def main(argv: list[str] | None = None) -> int:
    """Build the data once, run the three ways in one run and write the JSON report."""
    from dataset_scripts.script_errors import reject_renamed_flags

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--takes", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each synthetic take")
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--num_workers", type=int, default=2)
    parser.add_argument("--output_dir", default=str(RESULTS_DIR), help="folder of bench_batch_predict.json")
    parser.add_argument("--work_dir", default=None, help="where the checkpoint, the tree and the outputs are kept")
    args = reject_renamed_flags(parser).parse_args(argv)

    import shutil

    from profvlm.assets import cache_dir

    work = Path(args.work_dir) if args.work_dir else cache_dir() / "bench_batch_predict"
    work.mkdir(parents=True, exist_ok=True)
    base, tree, listing = prepare(work, args.takes, args.seconds)
    for name in ("out_in_process", "out_shell"):  # every run predicts from scratch, never resumes
        shutil.rmtree(work / name, ignore_errors=True)
    report = {"cpu_kind": cpu_kind(),
              "data": {"takes": args.takes, "views": 5, "size": "448 px (ego 448x448, exo 796x448)",
                       "seconds": args.seconds, "synthetic": True},
              "model": "random-base TimeSformer (8 frames, 224 px) + SmolLM2-135M-Instruct, classification only",
              "batch_size": args.batch_size, "num_workers": args.num_workers}
    loop = bench_loop(base, tree, listing)
    in_process = bench_in_process(base, tree, listing, work / "out_in_process", args.batch_size, args.num_workers)
    shell = bench_shell(base, tree, listing, work / "out_shell", args.batch_size, args.num_workers)
    agree = f"{sum(shell['labels'].get(uid) == label for uid, label in loop['labels'].items())}/{len(loop['labels'])}"
    for part in (loop, in_process, shell):
        part.pop("labels")
    report.update(pipeline_loop=loop, in_process_batched=in_process, shell=shell,
                  labels_equal_to_the_loop=agree)
    report["shell_over_loop"] = shell["takes_per_s"] / loop["takes_per_s"]
    report["shell_over_in_process_s_per_take"] = (shell["seconds"] / shell["takes"]) / (
        in_process["seconds"] / in_process["takes"])
    report["targets"] = TARGETS
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    write_report(Path(args.output_dir) / "bench_batch_predict.json", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
