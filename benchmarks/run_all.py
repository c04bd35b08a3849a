"""Run every benchmark under benchmarks/ one after the other (never in parallel: they measure time on a shared CPU)
and write one summary JSON. `make bench` runs this.

    python -m benchmarks.run_all [--output_dir benchmarks/results] [--only NAME ...]
"""
import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.report import RESULTS_DIR
from dataset_scripts.script_errors import reject_renamed_flags

BENCH_DIR = Path(__file__).resolve().parent


def discover() -> list[str]:
    """The benchmark names: every benchmarks/bench_*.py."""
    return sorted(p.stem.removeprefix("bench_") for p in BENCH_DIR.glob("bench_*.py"))


def run_one(name: str, output_dir: Path) -> dict:
    """Run benchmarks/bench_<name>.py in its own process, its report into `output_dir`, and return its JSON (or the
    failure)."""
    output = output_dir / f"bench_{name}.json"
    start = time.time()
    print(f"== bench_{name} ...", flush=True)
    result = subprocess.run([sys.executable, str(BENCH_DIR / f"bench_{name}.py"), "--output_dir", str(output_dir)])
    entry = {"returncode": result.returncode, "wall_seconds": round(time.time() - start, 1), "output": str(output)}
    if result.returncode == 0 and output.is_file():
        entry["result"] = json.loads(output.read_text())
    return entry


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks and write the summary; non-zero exit when any benchmark failed to run."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default=str(RESULTS_DIR), help="folder of every report and of summary.json")
    parser.add_argument("--only", nargs="+", choices=discover(), help="run only these benchmarks")
    args = reject_renamed_flags(parser).parse_args(argv)
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    from benchmarks.report import cpu_kind

    summary = {"machine": {"platform": platform.platform(), "cpu_kind": cpu_kind(), "python": sys.version.split()[0]},
               "benchmarks": {name: run_one(name, output_dir) for name in (args.only or discover())}}
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    failed = [n for n, e in summary["benchmarks"].items() if e["returncode"] != 0]
    print(f"summary: {output_dir / 'summary.json'}" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
