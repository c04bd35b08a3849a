"""One LoRA SFT step on cached features, as training/sft.py takes it, side by side in one run: float32; float32 with
the kernels capped to AVX2 (`avx2_float32`: how the common AVX2-only CPU is imitated on a faster one, the caps in
`AVX2_EMULATION`), also with length-grouped batches (`avx2_float32_grouped`: less padding); and, where the CPU has native bf16 (elsewhere bf16 is emulated, so those cases are skipped and say
why), bf16 autocast, also with transformers' SDPA everywhere instead of the CPU training attention
(modeling_profvlm/cpu_attention.py) and with LoRA dropout 0.1 instead of the recipe's 0.

The demo's recipe (training/configs/cpu_demo.yaml) on the demo's kind of data (synthetic takes of 4 s with timed
events, the moments config, 4 temporal tokens), the real SmolLM2-135M-Instruct and a random tiny tower; the median
of the timed steps after warm-up, each case in its own subprocess, with the tokens a step processed. Writes JSON
(default benchmarks/results/bench_sft_step.json) with the CPU kind.

    python benchmarks/bench_sft_step.py [--steps 6] [--warmup 2]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # runnable as a plain script
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.report import RESULTS_DIR  # noqa: E402
from dataset_scripts.script_errors import reject_renamed_flags  # noqa: E402

RECIPE = REPO_ROOT / "training" / "configs" / "cpu_demo.yaml"
# Each case: the options it adds to the recipe. "sdpa" also undoes build_trainer's CPU training attention; the last
# case is the recipe's LoRA dropout before it went to 0 (drawing the masks is a visible part of a CPU step).
CASES = {
    "float32": ["--bf16", "false"],
    "avx2_float32": ["--bf16", "false"],
    "avx2_float32_grouped": ["--bf16", "false", "--train_sampling_strategy", "group_by_length"],
    "bf16_autocast": ["--bf16", "true"],
    "bf16_autocast_sdpa": ["--bf16", "true"],
    "bf16_autocast_lora_dropout_0.1": ["--bf16", "true", "--lora_dropout", "0.1"],
}


# The environment that caps torch's kernels to AVX2 (ATen, oneDNN, MKL): the slow CPU kind, imitated on a fast one.
AVX2_EMULATION = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
                  "PROFVLM_DTYPE": "float32"}
MOMENTS_CONFIG = "demonstrator_moments"  # the demo's data: timed commentary as the answer


def prepare(work: Path) -> tuple[Path, Path, Path]:
    """(base checkpoint, synthetic tree, feature cache), built once under `work` and reused. 200 takes, as the demo:
    Trainer's LengthGroupedSampler sorts within groups of min(rows // (4 x batch), 50) batches, so a tree of a few
    dozen takes would leave the grouped case nothing to group."""
    base, data, features = work / "base", work / "data", work / "features"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    if not (base / "config.json").is_file():
        subprocess.run([sys.executable, "-m", "profvlm.cli", "init", "--vision", "random-tiny", "--text",
                        "smollm2-offline", "--temporal_tokens", "4", "--output_dir", str(base)], check=True,
                       cwd=REPO_ROOT, env=env)
    if not (data / "takes.json").is_file():
        subprocess.run([sys.executable, "-m", "profvlm.cli", "synthetic", "--output_dir", str(data), "--takes", "200",
                        "--size", "32", "--seconds", "4", "--events", "--quiet"], check=True, cwd=REPO_ROOT, env=env)
    if not (features / "manifest.json").is_file():
        subprocess.run([sys.executable, "training/extract_features.py", "--model", str(base), "--data_dir", str(data),
                        "--output_dir", str(features), "--dtype", "float32"], check=True, cwd=REPO_ROOT, env=env)
    return base, data, features


def time_steps(case: str, base: Path, data: Path, features: Path, steps: int, warmup: int, out: Path) -> dict:
    """Seconds per `trainer.training_step` for one of `CASES`."""
    import torch

    from training.sft import build_trainer, parse_args

    torch.manual_seed(0)
    argv = ["--config", str(RECIPE), "--model", str(base), "--data_dir", str(data), "--features", str(features),
            "--output_dir", str(out), "--eval_split", "none", "--report_to", "none", "--max_steps", str(steps + warmup),
            "--dataset_config", MOMENTS_CONFIG, *CASES[case]]
    script_args, training_args = parse_args(argv)
    trainer = build_trainer(script_args, training_args)
    text_config = trainer.model.get_base_model().config.text_config  # the language model's own config object
    if case == "bf16_autocast_sdpa":  # undo build_trainer's CPU training attention
        text_config._attn_implementation = "sdpa"
    trainer.create_optimizer_and_scheduler(num_training_steps=steps + warmup)
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer's own loop, which we step by hand
    # prepare_model is where accelerate wraps the forward in autocast when mixed precision is bf16
    model = trainer.accelerator.prepare_model(trainer.model).train()
    loader = trainer.get_train_dataloader()
    batches = (batch for _ in range(steps + warmup) for batch in loader)  # epochs after epochs, as training does
    times, losses, tokens, real = [], [], [], []
    for i in range(steps + warmup):
        batch = next(batches)
        if i >= warmup:
            tokens.append(int(batch["input_ids"].numel()))
            real.append(int(batch["attention_mask"].sum()))
        start = time.perf_counter()
        loss = trainer.training_step(model, batch)
        trainer.optimizer.step()
        trainer.optimizer.zero_grad()
        if i >= warmup:
            times.append(time.perf_counter() - start)
            losses.append(float(loss))
    return {"step_s_median": statistics.median(times), "step_s": times, "losses": losses,
            "tokens_per_step": tokens, "real_tokens_per_step": real,
            "sampling": training_args.train_sampling_strategy, "max_feedback_words": script_args.max_feedback_words,
            "batch": training_args.per_device_train_batch_size, "autocast_bf16": training_args.bf16,
            "lora_dropout": script_args.lora_dropout,
            "attention": text_config._attn_implementation}


def main(argv: list[str] | None = None) -> int:
    """Both cases, each in a subprocess; the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default=str(RESULTS_DIR), help="folder of the report bench_sft_step.json")
    parser.add_argument("--work_dir", default=None, help="where the checkpoint, data and features are kept")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--case", choices=list(CASES), help=argparse.SUPPRESS)
    args = reject_renamed_flags(parser).parse_args(argv)

    from profvlm.assets import cache_dir

    work = Path(args.work_dir) if args.work_dir else cache_dir() / "bench_sft_step_moments_200"
    base, data, features = prepare(work)
    if args.case:
        print(json.dumps(time_steps(args.case, base, data, features, args.steps, args.warmup, work / args.case)))
        return 0

    from benchmarks.report import cpu_kind, write_report

    native = cpu_kind()["native_bf16"]
    report = {"cpu_kind": cpu_kind(), "recipe": str(RECIPE.relative_to(REPO_ROOT)), "avx2_emulation": AVX2_EMULATION}
    for case in CASES:
        if "float32" not in case and not native:
            report[case] = {"skipped": "this CPU has no native bf16: autocast would emulate it, several times slower"}
            continue
        env = {**os.environ, **(AVX2_EMULATION if case.startswith("avx2") else {})}
        proc = subprocess.run([sys.executable, __file__, "--case", case, "--steps", str(args.steps), "--warmup",
                               str(args.warmup), "--work_dir", str(work)], cwd=REPO_ROOT, capture_output=True,
                              text=True, env=env)
        if proc.returncode != 0:
            raise SystemExit(f"bench_sft_step: case {case} failed:\n{proc.stderr[-3000:]}")
        report[case] = json.loads(proc.stdout.strip().splitlines()[-1])
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    report["avx2_emulation_slowdown"] = report["avx2_float32"]["step_s_median"] / report["float32"]["step_s_median"]
    report["grouped_batches_speedup_avx2"] = (report["avx2_float32"]["step_s_median"]
                                              / report["avx2_float32_grouped"]["step_s_median"])
    if "step_s_median" in report.get("bf16_autocast", {}):
        report["bf16_speedup"] = report["float32"]["step_s_median"] / report["bf16_autocast"]["step_s_median"]
        for case, key in (("bf16_autocast_sdpa", "cpu_attention_speedup"),
                          ("bf16_autocast_lora_dropout_0.1", "lora_dropout_0_speedup")):
            report[key] = report[case]["step_s_median"] / report["bf16_autocast"]["step_s_median"]
    write_report(Path(args.output_dir) / "bench_sft_step.json", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
