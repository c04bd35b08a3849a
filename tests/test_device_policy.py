# Device/dtype policy on mocked machines (native-bf16 CPU, AVX2-only CPU, CUDA), explicit overrides, apply().
import logging
from pathlib import Path

import pytest
import torch

from modeling_profvlm import device_policy as dp
from modeling_profvlm.device_policy import DevicePolicy, apply_device_policy, parse_dtype, resolve_device_policy


@pytest.fixture
def machine(monkeypatch):
    """Pretend to be a given machine: `machine(cuda=..., cuda_bf16=..., cpu_bf16=...)`."""

    def set_machine(cuda: bool = False, cuda_bf16: bool = False, cpu_bf16: bool = False) -> None:
        monkeypatch.delenv("PROFVLM_DTYPE", raising=False)  # the suite may run with it set (the slow-CPU emulation)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: cuda_bf16)
        monkeypatch.setattr(dp, "cpu_has_native_bf16", lambda: cpu_bf16)

    return set_machine


def test_native_bf16_cpu(machine):
    machine(cpu_bf16=True)
    policy = resolve_device_policy()
    assert policy.device == torch.device("cpu")
    assert policy.tower_dtype == torch.bfloat16
    assert policy.lm_dtype == torch.bfloat16  # measured faster than fp32 on a native-bf16 CPU (module docstring)
    assert policy.describe() == "device cpu, tower bfloat16 (native bf16 CPU), language model bfloat16"


def test_avx2_only_cpu(machine):
    machine(cpu_bf16=False)
    policy = resolve_device_policy("auto", "auto")
    assert (policy.device, policy.tower_dtype, policy.lm_dtype) == (torch.device("cpu"), torch.float32, torch.float32)
    assert "without native bf16" in policy.describe()


def test_cuda_with_bf16(machine):
    machine(cuda=True, cuda_bf16=True, cpu_bf16=False)
    policy = resolve_device_policy()
    assert policy.device.type == "cuda"
    assert (policy.tower_dtype, policy.lm_dtype) == (torch.bfloat16, torch.bfloat16)


def test_cuda_without_bf16(machine):
    machine(cuda=True, cuda_bf16=False)
    policy = resolve_device_policy()
    assert policy.device.type == "cuda"
    assert (policy.tower_dtype, policy.lm_dtype) == (torch.float16, torch.float32)


def test_explicit_device_wins(machine):
    machine(cuda=True, cuda_bf16=True, cpu_bf16=False)
    assert resolve_device_policy("cpu").device == torch.device("cpu")
    assert resolve_device_policy("cpu").tower_dtype == torch.float32  # the CPU's policy, not the GPU's
    assert resolve_device_policy("cuda:1").device == torch.device("cuda", 1)
    assert resolve_device_policy(torch.device("cuda")).device == torch.device("cuda")


def test_cuda_requested_without_cuda(machine):
    machine(cuda=False)
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        resolve_device_policy("cuda")


def test_explicit_dtypes_win(machine):
    machine(cpu_bf16=True)
    both = resolve_device_policy(dtype="fp32")
    assert (both.tower_dtype, both.lm_dtype) == (torch.float32, torch.float32)
    assert "dtype overridden" in both.reason
    same = resolve_device_policy(dtype="bf16")  # what the policy would pick anyway: nothing was overridden
    assert "overridden" not in same.reason
    mixed = resolve_device_policy(dtype="float32", tower_dtype=torch.bfloat16)
    assert (mixed.tower_dtype, mixed.lm_dtype) == (torch.bfloat16, torch.float32)
    only_lm = resolve_device_policy(lm_dtype="float32")
    assert (only_lm.tower_dtype, only_lm.lm_dtype) == (torch.bfloat16, torch.float32)
    machine(cpu_bf16=False)
    forced = resolve_device_policy(dtype=torch.bfloat16)
    assert (forced.tower_dtype, forced.lm_dtype) == (torch.bfloat16, torch.bfloat16)


@pytest.mark.parametrize("name,expected", [("bfloat16", torch.bfloat16), ("bf16", torch.bfloat16),
                                           ("float32", torch.float32), ("fp32", torch.float32),
                                           ("float16", torch.float16), ("torch.bfloat16", torch.bfloat16),
                                           ("auto", None), (None, None), (torch.float16, torch.float16)])
def test_parse_dtype(name, expected):
    assert parse_dtype(name) == expected


@pytest.mark.parametrize("bad", ["float64x", "int8", "half-ish", torch.int64])
def test_bad_dtype_name(machine, bad):
    machine(cpu_bf16=True)
    with pytest.raises(ValueError, match="accepted: auto, bfloat16, bf16, float32, fp32, float16"):
        resolve_device_policy(dtype=bad)


def test_bad_dtype_in_part(machine):
    machine()
    with pytest.raises(ValueError, match="accepted"):
        resolve_device_policy(tower_dtype="bfloat")


def test_logged_once_per_process(machine, caplog):
    machine(cpu_bf16=True)
    dp._logged.clear()
    with caplog.at_level(logging.INFO, logger=dp.__name__):
        for _ in range(3):
            resolve_device_policy()
    assert sum("device policy" in r.getMessage() for r in caplog.records) == 1


def test_policy_is_frozen():
    policy = DevicePolicy(torch.device("cpu"), torch.float32, torch.float32, "test")
    with pytest.raises(AttributeError):
        policy.lm_dtype = torch.bfloat16


@pytest.fixture
def uncapped(monkeypatch):
    """No kernel cap in the environment (the suite may run under the AVX2 emulation). oneDNN and MKL read their cap
    once, at their first use in the process: that use happens here first, under the process's own caps, or a real
    probe below would latch them uncapped and every later test in this process would run unemulated (a worker whose
    first module this is trained with AVX-512 in-process against AVX2 in its subprocesses)."""
    dp._mkldnn_bf16()
    torch.ones(8, 8) @ torch.ones(8, 8)
    for name in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS"):
        monkeypatch.delenv(name, raising=False)
    dp.cpu_has_native_bf16.cache_clear()
    yield
    dp.cpu_has_native_bf16.cache_clear()


def test_cpu_has_native_bf16_never_raises(monkeypatch, uncapped):
    dp.cpu_has_native_bf16.cache_clear()
    try:
        assert isinstance(dp.cpu_has_native_bf16(), bool)
        dp.cpu_has_native_bf16.cache_clear()
        # torch cannot answer: /proc/cpuinfo decides
        monkeypatch.setattr(dp, "_mkldnn_bf16", lambda: None)
        monkeypatch.setattr(dp, "_x86_cpu_flags", lambda: {"avx2", "avx512_bf16"})
        assert dp.cpu_has_native_bf16() is True
        dp.cpu_has_native_bf16.cache_clear()
        # AVX512 without the bf16 instructions: torch may say yes, but bf16 would be emulated there
        monkeypatch.setattr(dp, "_mkldnn_bf16", lambda: True)
        monkeypatch.setattr(dp, "_x86_cpu_flags", lambda: {"avx2", "avx512f", "avx512bw"})
        assert dp.cpu_has_native_bf16() is False
        dp.cpu_has_native_bf16.cache_clear()

        def broken():
            raise OSError("no cpuinfo")

        monkeypatch.setattr(dp, "_x86_cpu_flags", broken)
        assert dp.cpu_has_native_bf16() is False
    finally:
        dp.cpu_has_native_bf16.cache_clear()


def _tiny_model():
    from modeling_profvlm.modeling_profvlm import ProfVLMForConditionalGeneration
    from tests.tiny_assets import tiny_profvlm_config

    torch.manual_seed(0)
    return ProfVLMForConditionalGeneration(tiny_profvlm_config()).eval()


def _dtypes(module: torch.nn.Module) -> set[torch.dtype]:
    return {p.dtype for p in module.parameters()} | {b.dtype for b in module.buffers() if b.is_floating_point()}


@pytest.mark.parametrize("lm_dtype", [torch.bfloat16, torch.float32])
def test_apply_device_policy_on_tiny_model(lm_dtype):
    from tests.tiny_assets import tiny_inputs

    model = _tiny_model()
    assert model.lm_head.weight is model.get_input_embeddings().weight
    policy = DevicePolicy(torch.device("cpu"), torch.bfloat16, lm_dtype, "test")
    assert apply_device_policy(model, policy) is model
    assert _dtypes(model.model.vision_tower) == {torch.bfloat16}
    assert _dtypes(model.model.language_model) == {lm_dtype}
    assert model.lm_head.weight.dtype == lm_dtype
    assert _dtypes(model.model.multi_modal_projector) == {dp.PROJECTOR_DTYPE}
    assert model.model.multi_modal_projector.feature_norm.num_batches_tracked.dtype == torch.long
    assert model.lm_head.weight is model.get_input_embeddings().weight  # still tied
    assert all(p.device.type == "cpu" for p in model.parameters())

    inputs = tiny_inputs()
    with torch.inference_mode():  # the mixed-dtype model still runs end to end
        out = model(**inputs)
        generated = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert out.logits.dtype == lm_dtype and torch.isfinite(out.logits.float()).all()
    assert generated.shape == (2, inputs["input_ids"].shape[1] + 3)


def test_a_checkpoint_keeps_its_feature_dtype_and_an_emulated_bf16_is_said(machine, caplog):
    import logging
    from types import SimpleNamespace

    from modeling_profvlm.device_policy import policy_for_checkpoint

    machine(cpu_bf16=False)
    config = SimpleNamespace(vision_feature_dtype="bfloat16")
    with caplog.at_level(logging.WARNING, logger="modeling_profvlm.device_policy"):
        policy = policy_for_checkpoint(config)
    assert (policy.tower_dtype, policy.lm_dtype) == (torch.bfloat16, torch.float32)
    assert "emulates slowly" in caplog.text and "--dtype float32" in caplog.text
    told = policy_for_checkpoint(config, dtype="float32")  # told otherwise: the feature dtype no longer decides
    assert told.tower_dtype == torch.float32
    assert policy_for_checkpoint(SimpleNamespace(vision_feature_dtype=None)).tower_dtype == torch.float32


@pytest.mark.parametrize("variable, value, capped", [
    ("ATEN_CPU_CAPABILITY", "avx2", True), ("ATEN_CPU_CAPABILITY", "default", True),
    ("ATEN_CPU_CAPABILITY", "avx512", False), ("ONEDNN_MAX_CPU_ISA", "AVX2", True),
    ("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16", False), ("ONEDNN_MAX_CPU_ISA", "ALL", False),
    ("DNNL_MAX_CPU_ISA", "SSE41", True),
])
def test_kernels_capped_below_avx512_mean_no_native_bf16(variable, value, capped, monkeypatch, uncapped):
    # the hardware has it, and torch says yes: only the cap in the environment decides
    monkeypatch.setattr(dp, "_mkldnn_bf16", lambda: True)
    monkeypatch.setattr(dp, "_x86_cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})
    assert dp.cpu_has_native_bf16() is True
    dp.cpu_has_native_bf16.cache_clear()
    monkeypatch.setenv(variable, value)
    assert dp.cpu_has_native_bf16() is (not capped)
    description = dp.cpu_description()
    if capped:
        assert description.endswith(f"native bf16 in hardware, kernels capped to AVX2 ({variable}={value})")
    else:
        assert description.endswith("cores, native bf16")


def test_cpu_description_names_the_kind(monkeypatch, uncapped):
    monkeypatch.setattr(dp, "_mkldnn_bf16", lambda: False)
    monkeypatch.setattr(dp, "_x86_cpu_flags", lambda: {"avx2", "fma"})
    assert dp.cpu_description().endswith(", AVX2 only (no native bf16)")
    dp.cpu_has_native_bf16.cache_clear()
    monkeypatch.setattr(dp, "_x86_cpu_flags", lambda: {"avx2", "avx512f", "avx512bw"})
    assert dp.cpu_description().endswith(", AVX512 without native bf16")


@pytest.mark.parametrize("value, expected", [("float32", torch.float32), ("fp32", torch.float32),
                                             ("bfloat16", torch.bfloat16), ("auto", None), ("", None)])
def test_profvlm_dtype_is_every_commands_default(value, expected, machine, monkeypatch):
    machine(cpu_bf16=True)
    monkeypatch.setenv("PROFVLM_DTYPE", value)
    policy = resolve_device_policy()
    want = expected or torch.bfloat16  # unset/auto: the policy's own choice on this native-bf16 machine
    assert (policy.tower_dtype, policy.lm_dtype) == (want, want)
    # an explicit --dtype still wins over the environment
    assert resolve_device_policy(dtype="bfloat16" if expected == torch.float32 else "float32").lm_dtype == (
        torch.bfloat16 if expected == torch.float32 else torch.float32)


def test_profvlm_dtype_overrides_the_checkpoints_feature_dtype(machine, monkeypatch):
    from types import SimpleNamespace

    machine(cpu_bf16=False)
    config = SimpleNamespace(vision_feature_dtype="bfloat16")
    assert dp.policy_for_checkpoint(config).tower_dtype == torch.bfloat16  # what the checkpoint learned from
    monkeypatch.setenv("PROFVLM_DTYPE", "float32")
    assert dp.policy_for_checkpoint(config).tower_dtype == torch.float32


def test_a_wrong_profvlm_dtype_names_the_variable(machine, monkeypatch):
    machine(cpu_bf16=False)
    monkeypatch.setenv("PROFVLM_DTYPE", "float64")
    with pytest.raises(ValueError, match=r"PROFVLM_DTYPE='float64': expected one of"):
        resolve_device_policy()


@pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="reads the process's memory map (Linux)")
@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_a_loaded_checkpoint_lets_go_of_its_memory_mapped_file_once_cast(tiny_checkpoint, tmp_path, dtype):
    """from_pretrained's tensors share the checkpoint file's memory map; while one does (the float32 projector, or a
    buffer that is a view of the whole file), the whole map stays resident beside the cast copies."""
    import gc
    import shutil

    from modeling_profvlm.pipeline_profvlm import load_proficiency_pipeline

    checkpoint = tmp_path / "ckpt"  # a file of its own, which no other test maps
    shutil.copytree(tiny_checkpoint, checkpoint)
    weights = str((checkpoint / "model.safetensors").resolve())

    def mapped() -> bool:
        gc.collect()
        return any(line.rstrip().endswith(weights) for line in Path("/proc/self/maps").read_text().splitlines())

    pipe = load_proficiency_pipeline(str(checkpoint), dtype=dtype)
    model = pipe.model
    assert all(buffer._base is None for buffer in model.buffers())  # no buffer is a view of the file's tensor
    if dtype == "bfloat16":  # cast: nothing may keep the file's pages
        assert not mapped()
    expected = dict(model.named_parameters())
    reloaded = load_proficiency_pipeline(str(tiny_checkpoint), dtype=dtype).model  # the weights are unchanged
    for name, tensor in reloaded.named_parameters():
        assert torch.equal(tensor, expected[name]), name
    del pipe, model, expected
    assert not mapped()
