# What every benchmark shares: the record of the machine it ran on (the CPU kind changes from day to day, so
# figures compare only within one run) and writing its JSON report.
import json
import os
import platform
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"  # every report's default folder (--output_dir)


def cpu_kind() -> dict:
    """The CPU model, its cores and whether it has native bf16 (AVX512-BF16 / AMX: bf16 there is ~3x faster than
    fp32; elsewhere it is emulated and ~7x slower), plus the load average when asked."""
    from modeling_profvlm.device_policy import cpu_has_native_bf16

    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
    except OSError:
        names = []
    return {"cpu": names[0] if names else (platform.processor() or platform.machine()), "cores": os.cpu_count(),
            "native_bf16": cpu_has_native_bf16(), "load_average": [round(x, 2) for x in os.getloadavg()]}


def write_report(path: str | os.PathLike, report: dict, shown: dict | None = None) -> None:
    """Write `report` as indented JSON to `path` (folders created) and print it (or the part `shown`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report if shown is None else shown, indent=2))


__all__ = ["RESULTS_DIR", "cpu_kind", "write_report"]
