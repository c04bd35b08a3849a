"""TimeSformer attention, eager vs SDPA, side by side in one process: the base tower (random weights) on 5 clips
(batch 5) of 8x3x224x224 under torch.inference_mode, in float32 and, only where the CPU has native bf16, bfloat16.
Median of 3 timed runs after 1 warm-up each, runs interleaved so load drift hits every variant alike.
Also one self-attention module alone at the tower's two shapes (spatial: clips*frames x 197 tokens; temporal:
clips*196 patches x 8 frames), median of 7 after a warm-up: milliseconds-long, so far less exposed to the noise
of a shared CPU than the 5-clip tower runs.

    python benchmarks/bench_attention.py [--output_dir benchmarks/results] [--threads N] [--clips N]

On a busy shared CPU, `--threads 1 --clips 1` gives a quieter (same-shaped per clip) comparison in ~1-2 minutes.
"""
import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # runnable as a plain script from anywhere
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.report import RESULTS_DIR, cpu_kind, write_report  # noqa: E402
from dataset_scripts.script_errors import reject_renamed_flags  # noqa: E402

CLIPS, REPEATS, MODULE_REPEATS = 5, 3, 7


def time_attention_module(config, dtypes, use_sdpa, use_eager, clips: int = CLIPS) -> dict:
    """Milliseconds of one TimesformerSelfAttention (qkv projection included) at the tower's shapes, eager vs SDPA."""
    import torch
    from transformers.models.timesformer.modeling_timesformer import TimesformerSelfAttention

    patches = (config.image_size // config.patch_size) ** 2
    shapes = {"spatial": (clips * config.num_frames, patches + 1, config.hidden_size),
              "temporal": (clips * patches, config.num_frames, config.hidden_size)}
    torch.manual_seed(0)
    reference = TimesformerSelfAttention(config).eval()
    result = {}
    for dtype in dtypes:
        module = reference.to(dtype)
        for shape_name, shape in shapes.items():
            x = torch.randn(*shape).to(dtype)
            times = {"eager": [], "sdpa": []}
            with torch.inference_mode():
                for _ in range(1 + MODULE_REPEATS):  # the first round is the warm-up
                    for impl in times:
                        (use_sdpa if impl == "sdpa" else use_eager)(module)
                        start = time.perf_counter()
                        module(x)
                        times[impl].append(time.perf_counter() - start)
            medians = {impl: statistics.median(t[1:]) * 1000 for impl, t in times.items()}
            result[f"{shape_name}_{str(dtype).removeprefix('torch.')}"] = {
                "shape": list(shape), "eager_ms": round(medians["eager"], 2), "sdpa_ms": round(medians["sdpa"], 2),
                "speedup": round(medians["eager"] / medians["sdpa"], 3)}
    return result


def main(argv: list[str] | None = None) -> int:
    """Time the four (or two) variants and write the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default=str(RESULTS_DIR), help="folder of the report bench_attention.json")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--clips", type=int, default=CLIPS, help="batch of 8x3x224x224 clips per tower run")
    args = reject_renamed_flags(parser).parse_args(argv)

    import torch
    from transformers import AutoModel, TimesformerConfig

    from modeling_profvlm.configuration_profvlm import TIMESFORMER_BASE_VISION_CONFIG
    from modeling_profvlm.device_policy import cpu_has_native_bf16
    from modeling_profvlm.timesformer_sdpa import use_eager_attention, use_sdpa_attention

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = TimesformerConfig(**{k: v for k, v in TIMESFORMER_BASE_VISION_CONFIG.items() if k != "model_type"})
    towers = {torch.float32: AutoModel.from_config(config).eval()}
    native_bf16 = cpu_has_native_bf16()
    if native_bf16:  # emulated bf16 would only measure the emulation
        towers[torch.bfloat16] = copy.deepcopy(towers[torch.float32]).to(torch.bfloat16)
    pixels = torch.randn(args.clips, config.num_frames, 3, config.image_size, config.image_size,
                         generator=torch.Generator().manual_seed(1))

    def run(dtype, impl: str):
        tower = towers[dtype]
        (use_sdpa_attention if impl == "sdpa" else use_eager_attention)(tower)
        with torch.inference_mode():
            return tower(pixel_values=pixels.to(dtype)).last_hidden_state.float()

    variants = [(dtype, impl) for dtype in towers for impl in ("eager", "sdpa")]
    name = {v: f"{v[1]}_{str(v[0]).removeprefix('torch.')}" for v in variants}
    outputs = {name[v]: run(*v) for v in variants}  # the warm-up run, kept to compare outputs
    times: dict[str, list[float]] = {name[v]: [] for v in variants}
    load_before = os.getloadavg()
    for _ in range(REPEATS):
        for v in variants:
            start = time.perf_counter()
            run(*v)
            times[name[v]].append(time.perf_counter() - start)
    modules = time_attention_module(config, list(towers), use_sdpa_attention, use_eager_attention, args.clips)
    load_after = os.getloadavg()

    medians = {k: statistics.median(t) for k, t in times.items()}
    dtypes = [str(d).removeprefix("torch.") for d in towers]
    report = {
        "setup": {"tower": "timesformer-base (random weights)", "clips": args.clips, "frames": config.num_frames,
                  "image_size": config.image_size, "repeats": REPEATS, "warmup": 1,
                  "threads": torch.get_num_threads(), "cpu_kind": cpu_kind(),
                  "torch": torch.__version__, "load_average_before": load_before, "load_average_after": load_after},
        "seconds": {k: {"median": round(medians[k], 4), "runs": [round(t, 4) for t in times[k]]} for k in times},
        "clips_per_second": {k: round(args.clips / m, 3) for k, m in medians.items()},
        "sdpa_speedup_vs_eager": {d: round(medians[f"eager_{d}"] / medians[f"sdpa_{d}"], 3) for d in dtypes},
        "attention_module": modules,
        # each layer has one spatial and one temporal self-attention: what SDPA should save on the whole tower
        "expected_tower_saving_s_from_module_timings": {
            d: round(config.num_hidden_layers * sum(modules[f"{s}_{d}"]["eager_ms"] - modules[f"{s}_{d}"]["sdpa_ms"]
                                                    for s in ("spatial", "temporal")) / 1000, 3) for d in dtypes},
        "sdpa_max_abs_diff_vs_eager": {
            d: float((outputs[f"sdpa_{d}"] - outputs[f"eager_{d}"]).abs().max()) for d in dtypes},
        # for scale: the tower's largest output, and how far bf16 itself moves eager's output
        "max_abs_output_eager_float32": float(outputs["eager_float32"].abs().max()),
        **({"bf16_vs_fp32_eager_max_abs_diff":
            float((outputs["eager_bfloat16"] - outputs["eager_float32"]).abs().max())} if "eager_bfloat16" in outputs else {}),
    }
    write_report(Path(args.output_dir) / "bench_attention.json", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
