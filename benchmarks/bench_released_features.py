"""[long-takes] Extraction from EgoExo4D's released features against extraction from the videos, on the same takes.

One synthetic tree carries both the videos and released-format `features/omnivore_video` files for every take and
camera (`synthetic_egoexo4d.py --released_features omnivore_video`). The same `training/extract_features.py` fills a
feature cache twice: once through a random tiny or base TimeSformer from the videos (decode + tower), once from the
feature files of a `profvlm init --vision egoexo4d:omnivore_video` checkpoint (no tower: read + pool). Reported: takes
per second and seconds in all, per way in, with the CPU kind.

    python benchmarks/bench_released_features.py [--takes 24] [--seconds 8] [--size 224] [--output_dir DIR]
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # runnable as a plain script from anywhere
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.report import RESULTS_DIR, cpu_kind, write_report  # noqa: E402
from dataset_scripts.script_errors import reject_renamed_flags  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", default=str(RESULTS_DIR), help="folder of bench_released_features.json")
    parser.add_argument("--work_dir", help="where the tree, checkpoints and caches go (default: a temp dir)")
    parser.add_argument("--takes", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each synthetic take")
    parser.add_argument("--size", type=int, default=224, help="shorter side of the synthetic videos (pixels)")
    parser.add_argument("--towers", nargs="+", default=["tiny", "base"], choices=["tiny", "base"],
                        help="random TimeSformer sizes for the way in from video")
    return reject_renamed_flags(parser).parse_args(argv)


def extract(checkpoint: Path, data: Path, cache: Path) -> dict:
    """One full extraction into an empty cache; its summary plus the call's wall time."""
    from training import extract_features

    began = time.perf_counter()
    summary = extract_features.main(["--model", str(checkpoint), "--data_dir", str(data), "--output_dir", str(cache)])
    wall = time.perf_counter() - began
    takes = summary["extracted"]
    # The same two rates for both ways: the extraction loop's own seconds, and the whole call (model load included).
    loop = round(takes / max(summary["seconds"], 1e-9), 2)
    return {**summary, "wall_s": round(wall, 2), "loop_takes_per_second": loop,
            "wall_takes_per_second": round(takes / wall, 3)}


def main(argv: list[str] | None = None) -> dict:
    """Write the tree, build the checkpoints, extract each way, write the JSON."""
    import shutil

    from dataset_scripts.synthetic_egoexo4d import generate_synthetic_egoexo4d
    from profvlm.cli import main as profvlm_cli

    args = parse_args(argv)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench_released_features_"))
    data = work / "tree"
    if not (data / "takes.json").is_file():
        generate_synthetic_egoexo4d(data, args.takes, seed=0, size=args.size, seconds=args.seconds,
                                    released_features=("omnivore_video",))
    ways = {f"video, random-{tower} TimeSformer": f"random-{tower}" for tower in args.towers}
    ways["released omnivore_video files"] = "egoexo4d:omnivore_video"
    runs = {}
    for way, vision in ways.items():
        checkpoint = work / f"ckpt-{vision.replace(':', '-')}"
        if not (checkpoint / "config.json").is_file():  # as a user makes it (views, labels and width from the tree)
            if profvlm_cli(["init", "--vision", vision, "--text", "smollm2-offline", "--data_dir", str(data),
                            "--output_dir", str(checkpoint)]) != 0:
                raise RuntimeError(f"profvlm init --vision {vision} failed (its message is above).")
        cache = work / f"cache-{vision.replace(':', '-')}"
        shutil.rmtree(cache, ignore_errors=True)  # every run extracts every take
        runs[way] = extract(checkpoint, data, cache)
        print(way, runs[way], flush=True)
    report = {"benchmark": "released_features", "date": time.strftime("%Y-%m-%d"), "cpu_kind": cpu_kind(),
              "settings": {k: v for k, v in vars(args).items() if k not in ("output_dir", "work_dir")},
              "runs": runs}
    write_report(Path(args.output_dir) / "bench_released_features.json", report,
                 {way: {k: r[k] for k in ("loop_takes_per_second", "wall_takes_per_second", "wall_s")}
                  for way, r in runs.items()})
    return report


if __name__ == "__main__":
    main()
