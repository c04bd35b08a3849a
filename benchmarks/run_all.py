"""Run every benchmark under benchmarks/ one after the other (never in parallel: they measure time on a shared CPU)
and write one summary JSON. `make bench` runs this.

    python -m benchmarks.run_all [--output benchmarks/results/summary.json] [--only NAME ...]
"""
import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"


def discover() -> list[str]:
    """The benchmark names: every benchmarks/bench_*.py."""
    return sorted(p.stem.removeprefix("bench_") for p in BENCH_DIR.glob("bench_*.py"))


def run_one(name: str) -> dict:
    """Run benchmarks/bench_<name>.py in its own process and return its JSON (or the failure)."""
    output = RESULTS / f"bench_{name}.json"
    start = time.time()
    print(f"== bench_{name} ...", flush=True)
    result = subprocess.run([sys.executable, str(BENCH_DIR / f"bench_{name}.py"), "--output", str(output)])
    entry = {"returncode": result.returncode, "wall_seconds": round(time.time() - start, 1), "output": str(output)}
    if result.returncode == 0 and output.is_file():
        entry["result"] = json.loads(output.read_text())
    return entry


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks and write the summary; non-zero exit when any benchmark failed to run."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=str(RESULTS / "summary.json"))
    parser.add_argument("--only", nargs="+", choices=discover(), help="run only these benchmarks")
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    from benchmarks.report import cpu_kind

    summary = {"machine": {"platform": platform.platform(), "cpu_kind": cpu_kind(), "python": sys.version.split()[0]},
               "benchmarks": {name: run_one(name) for name in (args.only or discover())}}
    Path(args.output).write_text(json.dumps(summary, indent=2) + "\n")
    failed = [n for n, e in summary["benchmarks"].items() if e["returncode"] != 0]
    print(f"summary: {args.output}" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
