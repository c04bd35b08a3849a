"""How fast the data side is: (1) building the `demonstrator` config from an annotation set the size of the real
one (1,983 train + 561 val takes, videos not checked) and (2) generating 200 synthetic takes x 5 views at 112 px
and 10 s. Writes JSON (default benchmarks/results/bench_dataset.json).

    python benchmarks/bench_dataset.py [--output_dir DIR] [--takes 200 --size 112 --seconds 10 --workers 2]
"""
import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import datasets  # noqa: E402

from benchmarks.report import RESULTS_DIR, cpu_kind, write_report  # noqa: E402
from dataset_scripts.egoexo4d_proficiency import EgoExo4DProficiency  # noqa: E402
from dataset_scripts.script_errors import reject_renamed_flags  # noqa: E402
from dataset_scripts.synthetic_egoexo4d import generate_synthetic_egoexo4d  # noqa: E402

REAL_TAKES = {"train": 1983, "validation": 561}  # the v2 demonstrator-proficiency annotation files
BUILD_TARGET_S, GENERATE_TARGET_S = 10.0, 90.0


def real_sized_annotations(work: Path) -> Path:
    """takes.json and annotation files for 2,544 takes (no videos); the generator's val share gives 1,983 + 561."""
    return generate_synthetic_egoexo4d(work / "annotations_only", sum(REAL_TAKES.values()), seed=0, seconds=10.0,
                                       progress=False, write_videos=False)


def bench_build(root: Path, work: Path, config: str = "demonstrator") -> dict:
    """Time instantiating the builder, download_and_prepare and as_dataset for both splits (videos not checked)."""
    start = time.perf_counter()
    builder = EgoExo4DProficiency(config_name=config, data_dir=str(root), cache_dir=str(work / f"cache_{config}"),
                                  verify_files=False)
    builder.download_and_prepare()
    splits = {s: len(builder.as_dataset(split=s)) for s in REAL_TAKES}
    seconds = time.perf_counter() - start
    return {"config": config, "seconds": round(seconds, 2), "rows": splits, "verify_files": False,
            "target_s": BUILD_TARGET_S if config == "demonstrator" else None,
            "meets_target": seconds <= BUILD_TARGET_S if config == "demonstrator" else None,
            "takes_json_mb": round((root / "takes.json").stat().st_size / 2**20, 1)}


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the generator's worker processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def bench_generate(work: Path, takes: int, size: int, seconds: float, workers: int) -> dict:
    """Time the generator writing the whole tree, videos included. Wall time depends on what else runs on the
    machine; CPU time divided by the workers is what an otherwise idle machine would take."""
    start, cpu_start = time.perf_counter(), cpu_seconds()
    root = generate_synthetic_egoexo4d(work / "generated", takes, seed=0, size=size, seconds=seconds, workers=workers,
                                       progress=False)
    elapsed, cpu = time.perf_counter() - start, cpu_seconds() - cpu_start
    videos = list(root.rglob("*.mp4"))
    return {"takes": takes, "views": len(videos), "size": size, "seconds_per_take": seconds, "workers": workers,
            "seconds": round(elapsed, 2), "cpu_seconds": round(cpu, 2),
            "idle_machine_estimate_s": round(cpu / workers, 2),
            "frames_per_second": round(len(videos) * round(seconds * 30) / elapsed),
            "video_mb": round(sum(v.stat().st_size for v in videos) / 2**20, 1),
            "target_s": GENERATE_TARGET_S if (takes, size, seconds) == (200, 112, 10.0) else None,
            "meets_target": elapsed <= GENERATE_TARGET_S if (takes, size, seconds) == (200, 112, 10.0) else None}


def main(argv=None) -> dict:
    """Run both benchmarks and write the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default=str(RESULTS_DIR), help="folder of the report bench_dataset.json")
    parser.add_argument("--takes", type=int, default=200, help="takes to generate")
    parser.add_argument("--size", type=int, default=112, help="shorter video side in pixels")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per take")
    parser.add_argument("--workers", type=int, default=2, help="generator processes")
    parser.add_argument("--skip_generate", action="store_true", help="only the builder benchmark")
    args = reject_renamed_flags(parser).parse_args(argv)
    datasets.disable_progress_bars()

    report = {"machine": {"cpu_kind": cpu_kind(), "cpus": os.cpu_count(), "load_average_before": [round(x, 2) for x in os.getloadavg()],
                          "python": platform.python_version(), "datasets": datasets.__version__}}
    with tempfile.TemporaryDirectory() as tmp:
        root = real_sized_annotations(Path(tmp))
        report["build_demonstrator"] = bench_build(root, Path(tmp))
        report["build_demonstrator_commentary"] = bench_build(root, Path(tmp), "demonstrator_commentary")
        if not args.skip_generate:
            report["generate"] = bench_generate(Path(tmp), args.takes, args.size, args.seconds, args.workers)
    report["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    write_report(Path(args.output_dir) / "bench_dataset.json", report)
    return report


if __name__ == "__main__":
    main()
