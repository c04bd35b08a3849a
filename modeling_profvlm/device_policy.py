# The one device/dtype policy of ProfVLM: which device, and which dtype for the vision tower and the language model.
"""Every entry point (pipeline, `profvlm predict`, feature extraction, evaluation, demo, web app) asks
`resolve_device_policy()` what to run on and `apply_device_policy()` to put the model there.

The policy, decided at run time on the machine at hand:

* CUDA available -> `cuda`. Tower and language model in bfloat16 where the GPU has native bf16 (compute
  capability >= 8, or ROCm). On older GPUs (no native bf16) the tower runs in float16: it is the heavy part
  (12 ViT-B layers over 5 views x 8 frames x 197 tokens), float16 tensor cores are what those GPUs are fast at,
  and ViT-style encoders are routinely run in float16. The language model stays in float32 there: SmolLM2 was
  trained in bf16 and Llama-family residual streams can exceed float16's range (65504), while at 135M
  parameters float32 costs little on a GPU.
* CPU with native bf16 (AVX512-BF16 or AMX) -> tower AND language model in bfloat16: there a SmolLM2-shaped
  language model scores labels and generates faster in bfloat16 than in float32, with the same greedy tokens
  (measured: benchmarks/results/lm_dtype_cpu.json).
* Any other CPU (AVX2-only, or AVX512 without the bf16 instructions) -> float32 for both: there bf16 is
  emulated and several times slower than float32. A process whose kernels are capped below AVX512
  (`ATEN_CPU_CAPABILITY=avx2`/`default`, or `ONEDNN_MAX_CPU_ISA` naming an ISA without AVX512) counts as such a CPU
  too: oneDNN and ATen then emulate bf16 whatever the hardware has. That cap is how a fast machine imitates the
  common AVX2-only one.
* `PROFVLM_DTYPE=float32` (or `bfloat16`, `auto`) in the environment is the default of every `--dtype` of every
  command and of SFT's bf16 autocast: one switch forces a dtype everywhere; an explicit `--dtype` still wins.

The projector always stays float32 (`PROJECTOR_DTYPE`): it costs well under a millisecond per take, and it
standardises tower features whose take-to-take spread is a fraction of a large common component, so bf16's
8-bit mantissa would throw away part of exactly the signal the language model needs.
"""
from __future__ import annotations

import logging
import platform
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from .peft_unwrap import unwrap_peft

logger = logging.getLogger(__name__)

PROJECTOR_DTYPE = torch.float32
DTYPE_NAMES: dict[str, torch.dtype | None] = {
    "auto": None,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
}
_NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
DTYPE_ENV = "PROFVLM_DTYPE"  # the environment's default for every --dtype (and for SFT's bf16 autocast)
_logged: set[str] = set()  # policies already logged in this process


def _x86_cpu_flags() -> set[str] | None:
    """The CPU flags of an x86 Linux machine from /proc/cpuinfo; None elsewhere or when unreadable."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "i386"):
        return None
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return None


def _mkldnn_bf16() -> bool | None:
    """torch's own bf16 check (oneDNN); None when this torch build cannot answer."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # missing op (no oneDNN in the build) or a runtime failure: unknown, not "no"
        return None


def _kernels_capped_below_avx512() -> bool:
    """True when this process's ATen or oneDNN kernels are restricted to an ISA without AVX512 (the environment
    variables ATEN_CPU_CAPABILITY / ONEDNN_MAX_CPU_ISA, read by torch at start-up): bf16 is then emulated."""
    import os

    aten = os.environ.get("ATEN_CPU_CAPABILITY", "").strip().lower()
    onednn = os.environ.get("ONEDNN_MAX_CPU_ISA", os.environ.get("DNNL_MAX_CPU_ISA", "")).strip().upper()
    return aten in ("default", "avx2", "zvector") or (bool(onednn) and onednn != "ALL" and "AVX512" not in onednn
                                                         and "AMX" not in onednn and "AVX10" not in onednn)


def dtype_from_environment() -> torch.dtype | None:
    """The dtype `PROFVLM_DTYPE` names (None when unset or `auto`); a ValueError naming the variable and the allowed
    names for anything else."""
    import os

    value = os.environ.get(DTYPE_ENV, "").strip()
    if not value:
        return None
    if value.lower() not in DTYPE_NAMES:
        raise ValueError(f"{DTYPE_ENV}={value!r}: expected one of {sorted(DTYPE_NAMES)}.")
    return DTYPE_NAMES[value.lower()]


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bf16 natively (AVX512-BF16/AMX on x86, oneDNN's check elsewhere). Never raises.

    torch's check alone is not enough on x86: it has accepted any AVX512-BW/VL/DQ CPU (see
    `mkldnn_bf16_device_check` in pytorch aten/src/ATen/native/mkldnn/Utils.h), where bf16 is emulated and
    slower than fp32, so on x86 the avx512_bf16/amx_bf16 flags must be present too. When torch cannot answer,
    the flags alone decide. Kernels capped below AVX512 (`_kernels_capped_below_avx512`) mean no."""
    try:
        if _kernels_capped_below_avx512():
            return False
        native = _mkldnn_bf16()
        flags = _x86_cpu_flags()
        if flags is not None:
            hardware = any(flag in flags for flag in _NATIVE_BF16_CPU_FLAGS)
            return hardware if native is None else (native and hardware)
        return bool(native)
    except Exception:  # a capability probe must never take an entry point down
        return False


def cpu_description() -> str:
    """This CPU in a few words for logs and the demo's first line: its model name, cores and bf16 kind, e.g.
    "AMD EPYC, 2 cores, native bf16", "..., AVX2 only (no native bf16)", or "..., native bf16 in hardware, kernels
    capped to AVX2 (ATEN_CPU_CAPABILITY=avx2)" under the emulation of the slow kind."""
    import os

    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
    except OSError:
        names = []
    name = names[0] if names else (platform.processor() or platform.machine() or "unknown CPU")
    flags = _x86_cpu_flags() or set()
    hardware = bool(flags & set(_NATIVE_BF16_CPU_FLAGS))
    if hardware and _kernels_capped_below_avx512():
        caps = ", ".join(f"{k}={os.environ[k]}" for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA",
                                                          "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")
                         if os.environ.get(k))
        kind = f"native bf16 in hardware, kernels capped to AVX2 ({caps})"
    elif cpu_has_native_bf16():
        kind = "native bf16"
    elif "avx512f" in flags:
        kind = "AVX512 without native bf16"
    elif "avx2" in flags:
        kind = "AVX2 only (no native bf16)"
    else:
        kind = "no native bf16"
    return f"{name}, {os.cpu_count()} cores, {kind}"


def _cuda_has_native_bf16(device: torch.device) -> bool:
    """Whether the CUDA device computes bf16 natively (not merely emulates it)."""

    def ask() -> bool:
        try:
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
        except TypeError:  # a torch (or a test double) without the keyword
            return bool(torch.cuda.is_bf16_supported())

    if device.index is None:
        return ask()
    try:
        with torch.cuda.device(device):  # is_bf16_supported() asks the *current* device
            return ask()
    except (RuntimeError, AssertionError, AttributeError):
        return ask()


@dataclass(frozen=True)
class DevicePolicy:
    """Where ProfVLM runs: the device, the vision tower's dtype, the language model's (and LM head's) dtype, and
    why (a few words for logs)."""

    device: torch.device
    tower_dtype: torch.dtype
    lm_dtype: torch.dtype
    reason: str

    def describe(self) -> str:
        """One line for logs, e.g. "device cpu, tower bfloat16 (native bf16 CPU), language model bfloat16"."""
        return (f"device {self.device}, tower {_name(self.tower_dtype)} ({self.reason}), "
                f"language model {_name(self.lm_dtype)}")


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """A dtype name ("bfloat16", "bf16", "float32", "fp32", "float16", "fp16", "auto") or torch.dtype ->
    torch.dtype; None and "auto" -> None (= let the policy decide). Unknown names raise ValueError."""
    if dtype is None or isinstance(dtype, torch.dtype):
        if isinstance(dtype, torch.dtype) and dtype not in DTYPE_NAMES.values():
            raise ValueError(f"Unsupported dtype {dtype}; accepted: {', '.join(DTYPE_NAMES)} "
                             "or the matching torch.dtype.")
        return dtype
    if isinstance(dtype, str):
        key = dtype.strip().lower().removeprefix("torch.")
        if key in DTYPE_NAMES:
            return DTYPE_NAMES[key]
    raise ValueError(f"Unknown dtype {dtype!r}; accepted: {', '.join(DTYPE_NAMES)} or a torch.dtype.")


def _parse_device(device: str | torch.device | None) -> torch.device | None:
    if device is None or (isinstance(device, str) and device.strip().lower() == "auto"):
        return None
    try:
        return torch.device(device.strip() if isinstance(device, str) else device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"Unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'.") from err


def resolve_device_policy(
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    tower_dtype: str | torch.dtype | None = None,
    lm_dtype: str | torch.dtype | None = None,
) -> DevicePolicy:
    """The device and dtypes to run ProfVLM with on this machine (see the module docstring for the policy).

    `device`: None/"auto" = CUDA when available, else CPU; "cpu", "cuda", "cuda:1" are honoured.
    `dtype` sets both the tower and the language model; `tower_dtype`/`lm_dtype` win over it; None/"auto" = the
    environment's `PROFVLM_DTYPE`, else the policy."""
    both = parse_dtype(dtype) or dtype_from_environment()
    tower, lm = parse_dtype(tower_dtype), parse_dtype(lm_dtype)
    chosen = _parse_device(device)
    if chosen is None:
        chosen = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {str(device)!r} was requested but CUDA is not available on this machine.")

    if chosen.type == "cuda":
        if _cuda_has_native_bf16(chosen):
            auto_tower, auto_lm, reason = torch.bfloat16, torch.bfloat16, "GPU with native bf16"
        else:
            auto_tower, auto_lm, reason = torch.float16, torch.float32, "GPU without native bf16"
    elif chosen.type == "cpu":
        if cpu_has_native_bf16():
            auto_tower, auto_lm, reason = torch.bfloat16, torch.bfloat16, "native bf16 CPU"
        else:
            auto_tower, auto_lm, reason = torch.float32, torch.float32, "CPU without native bf16"
    else:  # mps, xpu, ...: float32 is the dtype every backend supports
        auto_tower, auto_lm, reason = torch.float32, torch.float32, f"{chosen.type} device"

    tower_dtype, lm_dtype = _first(tower, both, auto_tower), _first(lm, both, auto_lm)
    if (tower_dtype, lm_dtype) != (auto_tower, auto_lm):  # say so only when an override changed the choice
        reason = f"{reason}; dtype overridden"
    policy = DevicePolicy(device=chosen, tower_dtype=tower_dtype, lm_dtype=lm_dtype, reason=reason)
    line = policy.describe()
    if line not in _logged:  # once per process (per distinct policy), not on every call
        _logged.add(line)
        logger.info("ProfVLM device policy: %s", line)
    return policy


def policy_for_checkpoint(config, device: str | torch.device | None = None,
                          dtype: str | torch.dtype | None = None) -> DevicePolicy:
    """The policy for a ProfVLM checkpoint: without `dtype`, its tower runs in the dtype its training features were
    made in (`config.vision_feature_dtype`), so the projector sees features like those it learned from; the rest as
    `resolve_device_policy`. A bf16 feature dtype on a CPU without native bf16 is kept (it is what the checkpoint
    learned) but logged, since there it is emulated and several times slower than `--dtype float32`."""
    forced = parse_dtype(dtype) or dtype_from_environment()
    feature_dtype = getattr(config, "vision_feature_dtype", None) if forced is None else None
    policy = resolve_device_policy(device, dtype, tower_dtype=feature_dtype)
    if policy.device.type == "cpu" and policy.tower_dtype == torch.bfloat16 and not cpu_has_native_bf16():
        logger.warning("The tower runs in bfloat16 (the dtype this checkpoint's training features were made in), "
                       "which this CPU emulates slowly; pass --dtype float32 (dtype=\"float32\") for speed.")
    return policy


def add_device_arguments(parser) -> None:
    """`--device` and `--dtype` on an argparse parser: the command-line overrides of this policy, the same on
    every ProfVLM command (profvlm predict / app / demo, feature extraction, evaluation)."""
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: CUDA when available, else the CPU)")
    parser.add_argument("--dtype", default=None, choices=list(DTYPE_NAMES),
                        help="tower and language model dtype (default: $PROFVLM_DTYPE, else bf16 where the CPU/GPU "
                             "has it natively, else float32; the projector always stays float32)")


def _first(*dtypes: torch.dtype | None) -> torch.dtype:
    return next(d for d in dtypes if d is not None)


def _release_checkpoint_file(model: nn.Module, loaded: dict[int, int]) -> None:
    """Let go of the memory-mapped checkpoint file once its tensors were cast. from_pretrained's tensors share the
    file's mapping, and while any tensor does, the whole mapping stays, with every page read while casting the other
    parts still resident (the file's size again, on top of the cast copies). `loaded`: id -> data_ptr of each
    parameter and buffer before casting."""
    # A buffer is loaded as a view of the whole file's tensor, and `.to()` replaces its data but not the base the view
    # keeps, so it gets a tensor of its own (buffers are small).
    for module in model.modules():
        for name, buffer in module._buffers.items():
            if buffer is not None and buffer._base is not None:
                module._buffers[name] = buffer.detach().clone()
    # Once anything was cast, the tensors left as loaded (e.g. the float32 projector) get memory of their own too.
    tensors = (*model.parameters(), *model.buffers())
    if any(loaded.get(id(t)) != t.data_ptr() for t in tensors):
        for tensor in tensors:
            if loaded.get(id(tensor)) == tensor.data_ptr():
                tensor.data = tensor.data.clone()


def apply_device_policy(model: nn.Module, policy: DevicePolicy) -> nn.Module:
    """Move a ProfVLMForConditionalGeneration (anything with `.model.vision_tower` (None: no tower),
    `.model.multi_modal_projector`, `.model.language_model`, `.lm_head`) to `policy.device`: the tower in
    `tower_dtype`, the language model and LM head in `lm_dtype`, the projector in float32. Tied input/output
    embeddings stay tied. Returns `model`."""
    inner = unwrap_peft(model)
    embeddings = inner.model.language_model.get_input_embeddings()
    tied = embeddings.weight is inner.lm_head.weight
    loaded = {id(t): t.data_ptr() for t in (*inner.parameters(), *inner.buffers())}

    inner.to(policy.device)
    tower = inner.model.vision_tower  # None for a checkpoint whose inputs are released features
    if tower is not None:
        tower.to(policy.tower_dtype)
    inner.model.multi_modal_projector.to(PROJECTOR_DTYPE)
    inner.model.language_model.to(policy.lm_dtype)
    inner.lm_head.to(policy.lm_dtype)
    # Any other floating parameters/buffers a subclass adds follow the language model's dtype.
    parts = [part for part in (tower, inner.model.multi_modal_projector, inner.model.language_model, inner.lm_head)
             if part is not None]
    covered = {id(t) for part in parts for t in (*part.parameters(), *part.buffers())}
    for tensor in (*inner.parameters(), *inner.buffers()):
        if id(tensor) not in covered and tensor.is_floating_point() and tensor.dtype != policy.lm_dtype:
            tensor.data = tensor.data.to(policy.lm_dtype)
    _release_checkpoint_file(inner, loaded)

    # Module.to() converts parameters in place, so a shared Parameter stays shared; re-tie defensively in case a
    # future torch swaps parameters on conversion (torch.__future__.set_overwrite_module_params_on_conversion).
    if tied and inner.lm_head.weight is not embeddings.weight:
        inner.lm_head.weight = embeddings.weight
    return model


__all__ = [
    "DTYPE_NAMES",
    "add_device_arguments",
    "policy_for_checkpoint",
    "PROJECTOR_DTYPE",
    "DevicePolicy",
    "apply_device_policy",
    "cpu_has_native_bf16",
    "cpu_description",
    "DTYPE_ENV",
    "dtype_from_environment",
    "parse_dtype",
    "resolve_device_policy",
]
