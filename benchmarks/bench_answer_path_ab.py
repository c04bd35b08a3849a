"""The answer path's speed against an earlier commit, side by side in one run (issue [answer]: not slower, <= 1.02x).

Two code trees, BEFORE (a git worktree of `--before`) and AFTER (this checkout), each run with its own code
(PYTHONPATH points at the tree), alternating A B A B ... `--rounds` times so that drift in the machine's load hits
both alike:

- inference: the tree's own `benchmarks/bench_inference.py --child profvlm`: one 5-view 448-px take, the base
  TimeSformer (random) + the real SmolLM2, under the device policy: classification only (warm) and one end-to-end
  call with 64 new tokens;
- batch: `profvlm predict --data_dir` (as `python -m profvlm.cli`) over a small synthetic 5-view tree, classification
  only and with feedback, model load included.

The report (benchmarks/results/bench_answer_path_ab.json) has every run, the medians per tree and after/before ratios,
with the CPU kind.

    python benchmarks/bench_answer_path_ab.py --before d4e5423 [--rounds 2] [--takes 4] [--work_dir DIR]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # runnable as a plain script from anywhere
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.report import RESULTS_DIR, cpu_kind, write_report  # noqa: E402

TARGET_RATIO = 1.02


def tree_env(root: Path) -> dict:
    """The environment that runs `root`'s code: its folder first on the import path (ahead of the editable install)."""
    return {**os.environ, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def run_inference(root: Path, take_dir: Path, model: Path, threads: int) -> dict:
    """The tree's bench_inference child (its JSON line)."""
    cmd = [sys.executable, str(root / "benchmarks" / "bench_inference.py"), "--child", "profvlm", "--take_dir",
           str(take_dir), "--threads", str(threads), "--model", str(model)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=root, env=tree_env(root))
    if out.returncode != 0:
        raise RuntimeError(f"{root}: bench_inference child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_batch(root: Path, model: Path, tree: Path, takes_file: Path, out: Path, feedback: bool) -> float:
    """Seconds of `profvlm predict --data_dir` with the tree's code (a fresh output folder: nothing resumed)."""
    shutil.rmtree(out, ignore_errors=True)  # a rerun in the same work folder would otherwise resume every take
    cmd = [sys.executable, "-m", "profvlm.cli", "predict", "--model", str(model), "--data_dir", str(tree),
           "--takes_file", str(takes_file), "--output_dir", str(out)]
    cmd += ["--max_new_tokens", "32"] if feedback else ["--no_feedback"]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=root, env=tree_env(root))
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{root}: profvlm predict --data_dir failed:\n{done.stderr[-3000:]}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    """Build the inputs once, run both trees alternately, write the report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="the commit to compare against (a git revision)")
    parser.add_argument("--rounds", type=int, default=2, help="A B rounds (default 2)")
    parser.add_argument("--takes", type=int, default=4, help="takes of the batch tree (default 4)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--work_dir", default=None, help="where the worktree, videos and checkpoint go")
    parser.add_argument("--output_dir", default=str(RESULTS_DIR), help="folder of bench_answer_path_ab.json")
    args = parser.parse_args(argv)

    from benchmarks.bench_inference import build_profvlm_checkpoint, write_take
    from dataset_scripts.synthetic_egoexo4d import generate_synthetic_egoexo4d
    from profvlm.assets import cache_dir

    work = Path(args.work_dir) if args.work_dir else cache_dir() / "bench_answer_path_ab"
    work.mkdir(parents=True, exist_ok=True)
    before = work / "before"
    if not (before / ".git").exists():
        subprocess.run(["git", "worktree", "add", "--force", "--detach", str(before), args.before], check=True,
                       cwd=REPO_ROOT, capture_output=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=before, capture_output=True, text=True).stdout.strip()
    after_commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                                  text=True).stdout.strip()
    take_dir = work / "take"
    write_take(take_dir, 10.0)
    model = build_profvlm_checkpoint(work / "profvlm-random-base")
    tree = work / "tree"
    if not (tree / "takes.json").is_file():
        generate_synthetic_egoexo4d(tree, args.takes, seed=0, size=448, seconds=4.0, progress=False)
    takes_file = work / "takes.json"
    takes_file.write_text(json.dumps([t["take_name"] for t in json.loads((tree / "takes.json").read_text())]))

    trees = {"before": before, "after": REPO_ROOT}
    runs = {name: [] for name in trees}
    load_before = os.getloadavg()
    for round_index in range(args.rounds):
        for name, root in trees.items():
            inference = run_inference(root, take_dir, model, args.threads)
            batch = {mode: run_batch(root, model, tree, takes_file, work / f"out_{name}_{round_index}_{mode}",
                                     mode == "feedback") for mode in ("classification", "feedback")}
            runs[name].append({"inference_total_s": inference["total_s"],
                               "inference_classification_s": inference["classification_only_s"],
                               "batch_classification_s": batch["classification"], "batch_feedback_s": batch["feedback"],
                               "prediction": inference["prediction"]})
            print(f"round {round_index} {name}: {json.dumps(runs[name][-1])}", file=sys.stderr)
    keys = ("inference_total_s", "inference_classification_s", "batch_classification_s", "batch_feedback_s")
    medians = {name: {k: statistics.median(r[k] for r in rs) for k in keys} for name, rs in runs.items()}
    ratios = {k: medians["after"][k] / medians["before"][k] for k in keys}
    report = {
        "setup": {"before": commit, "after": after_commit, "rounds": args.rounds, "batch_takes": args.takes,
                  "threads": args.threads, "cpu_kind": cpu_kind(), "load_average_before": load_before,
                  "load_average_after": os.getloadavg()},
        "runs": runs, "medians_s": medians, "after_over_before": ratios, "target_ratio": TARGET_RATIO,
        "meets_target": {k: v <= TARGET_RATIO for k, v in ratios.items()},
    }
    write_report(Path(args.output_dir) / "bench_answer_path_ab.json", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
