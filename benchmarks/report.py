# What every benchmark shares: the record of the machine it ran on (the CPU kind changes from day to day, so
# figures compare only within one run) and writing its JSON report.
import json
import os
import platform
import resource
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"  # every report's default folder (--output_dir)


# The environment variables that cap torch's kernels to an older ISA (how a fast machine imitates an AVX2-only one).
KERNEL_CAP_VARIABLES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def cpu_kind() -> dict:
    """The CPU model, its cores, whether the hardware has native bf16 (AVX512-BF16 / AMX), whether this process may
    use it (`native_bf16`: False under an AVX2 kernel cap), the kernel caps in force (`emulation`), the dtype the
    device policy picks here (`PROFVLM_DTYPE` included) and the load average."""
    from modeling_profvlm.device_policy import _x86_cpu_flags, cpu_has_native_bf16, resolve_device_policy

    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
    except OSError:
        names = []
    flags = _x86_cpu_flags() or set()
    caps = {name: os.environ[name] for name in KERNEL_CAP_VARIABLES if os.environ.get(name)}
    policy = resolve_device_policy("cpu")
    return {"cpu": names[0] if names else (platform.processor() or platform.machine()), "cores": os.cpu_count(),
            "hardware_native_bf16": bool(flags & {"avx512_bf16", "amx_bf16"}), "native_bf16": cpu_has_native_bf16(),
            "emulation": caps or None, "dtype": {"tower": str(policy.tower_dtype).removeprefix("torch."),
                                                 "language_model": str(policy.lm_dtype).removeprefix("torch.")},
            "profvlm_dtype_env": os.environ.get("PROFVLM_DTYPE") or None,
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def write_report(path: str | os.PathLike, report: dict, shown: dict | None = None) -> None:
    """Write `report` as indented JSON to `path` (folders created) and print it (or the part `shown`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report if shown is None else shown, indent=2))


def peak_rss_gb() -> float:
    """This process's peak resident memory so far, in GiB (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 3)


__all__ = ["RESULTS_DIR", "cpu_kind", "peak_rss_gb", "write_report"]
