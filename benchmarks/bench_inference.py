"""Inference latency side by side, one 5-view take (448-pixel videos, 8 frames per view), 64 new tokens:

(a) ProfVLM exactly as a user calls it: `pipeline("proficiency-estimation", model=DIR)` with no dtype or device,
    so the shared device policy decides (tower and LM in bf16 on a CPU with native bf16, fp32 elsewhere; CUDA when
    present). Base-size TimeSformer (random weights) + the real SmolLM2-135M-Instruct. Reported: the model load as
    its own stage; one end-to-end call split into decode, tower, projector+LM label scoring and generation;
    classification only (`return_feedback=False`), cold (first call) and warm; a bare TimeSformer-base forward over
    the same 5 clips in this machine's best native dtype, for comparison; and `profvlm predict --no_feedback` from
    the shell, load included.
(b) a generic small video-LLM that sees the same 40 frames as images: the SmolVLM2-256M-Video-Instruct
    architecture (SigLIP-B/16 at 512 px, 64 tokens per frame, SmolLM2-135M) built from its config, random weights,
    under the same device policy (its whole vision side, encoder and connector, in the tower dtype).

Each system runs in its own subprocess, so each peak RSS is its own. The JSON records the CPU kind.

    python benchmarks/bench_inference.py [--output_dir benchmarks/results]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # runnable as a plain script from anywhere
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.report import RESULTS_DIR  # noqa: E402
from dataset_scripts.script_errors import reject_renamed_flags  # noqa: E402

TARGETS = {"speedup_vs_smolvlm2": 4.0, "classification_vs_bare_tower": 1.2, "shell_vs_in_process": 2.0,
           "profvlm_peak_rss_gb": 2.5}
BARE_TOWER_REPEATS = 3
FRAMES_PER_VIEW, NEW_TOKENS = 8, 64
# The SmolVLM2-256M-Video-Instruct architecture (its config.json), random weights: no Hub needed.
SMOLVLM2_256M_VISION = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                            image_size=512, patch_size=16)
SMOLVLM2_256M_TEXT = dict(model_type="llama", vocab_size=49280, hidden_size=576, intermediate_size=1536,
                          num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3, head_dim=64,
                          max_position_embeddings=8192, rms_norm_eps=1e-5, rope_theta=100000.0, pad_token_id=2)
SMOLVLM2_IMAGE_TOKEN_ID, SMOLVLM2_SCALE_FACTOR = 49190, 4
SMOLVLM2_TEXT_TOKENS_PER_FRAME = 10  # "Frame from 00:05:" + <fake_token_around_image><global-img> ... around each frame


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux: KiB


def write_take(folder: Path, seconds: float, fps: int = 30, gop: int | None = None) -> dict[str, str]:
    """An ego (448x448) and four exo (796x448) x264 videos, like EgoExo4D's downscaled/448 files; `gop`: frames
    between keyframes (None: the encoder's default, 250)."""
    import av
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    take = {}
    for i, view in enumerate(("ego", "exo1", "exo2", "exo3", "exo4")):
        width = 448 if view == "ego" else 796
        path = folder / f"{view}.mp4"
        take[view] = str(path)
        if path.is_file():
            continue
        yy, xx = np.mgrid[0:448, 0:width]
        with av.open(str(path), "w") as container:
            options = {"preset": "ultrafast", **({"g": str(gop)} if gop else {})}
            stream = container.add_stream("libx264", rate=fps, options=options)
            stream.width, stream.height, stream.pix_fmt = width, 448, "yuv420p"
            for t in range(int(seconds * fps)):
                img = np.stack([(xx + 4 * t + 40 * i) % 256, (yy + 2 * t) % 256, (xx + yy + t) % 256], -1)
                for packet in stream.encode(av.VideoFrame.from_ndarray(img.astype(np.uint8), format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return take


def build_profvlm_checkpoint(out: Path) -> Path:
    """A base checkpoint (random base TimeSformer + real SmolLM2), built once in a subprocess and reused."""
    if (out / "config.json").is_file():
        return out
    code = ("from profvlm.assemble import build_base_checkpoint; "
            f"build_base_checkpoint('random-base', 'smollm2-offline', {str(out)!r})")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)
    return out


class StageTimer:
    """Accumulates wall time per named stage; `wrap` times a callable, `hook` times a module's forward."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
        return timed

    def hook(self, name: str, module) -> None:
        starts = []
        module.register_forward_pre_hook(lambda *a: starts.append(time.perf_counter()))
        module.register_forward_hook(
            lambda *a: self.seconds.__setitem__(name, self.seconds.get(name, 0.0) + time.perf_counter() - starts.pop()))


def bare_tower_seconds(threads: int) -> dict:
    """Median seconds of a bare TimeSformer-base forward over 5 clips (8 frames, 224 px) in the machine's best
    native dtype (the device policy's tower dtype), eager attention, under inference_mode."""
    import torch
    from transformers import TimesformerConfig, TimesformerModel

    from modeling_profvlm.configuration_profvlm import TIMESFORMER_BASE_VISION_CONFIG
    from modeling_profvlm.device_policy import resolve_device_policy

    torch.set_num_threads(threads)
    policy = resolve_device_policy()
    cfg = TimesformerConfig(**{k: v for k, v in TIMESFORMER_BASE_VISION_CONFIG.items() if k != "model_type"})
    tower = TimesformerModel(cfg).eval().to(policy.device, policy.tower_dtype)
    clips = torch.zeros(5, cfg.num_frames, 3, cfg.image_size, cfg.image_size, dtype=policy.tower_dtype,
                        device=policy.device)
    times = []
    with torch.inference_mode():
        tower(pixel_values=clips[:1])  # warm-up
        for _ in range(BARE_TOWER_REPEATS):
            start = time.perf_counter()
            tower(pixel_values=clips)
            times.append(time.perf_counter() - start)
    return {"seconds": sorted(times)[len(times) // 2], "runs_s": times, "dtype": str(policy.tower_dtype)}


SHELL_REPEATS = 3


def shell_predict_seconds(checkpoint: str, take: dict[str, str]) -> dict:
    """`profvlm predict --no_feedback` from the shell (the installed console script, else `python -m profvlm.cli`),
    Python start and model load included; the median of SHELL_REPEATS runs (one run is at the machine's mercy)."""
    script = Path(sys.executable).with_name("profvlm")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "profvlm.cli"]
    views = [arg for view, path in take.items() for arg in ("--view", f"{view}={path}")]
    runs = []
    for _ in range(SHELL_REPEATS):
        start = time.perf_counter()
        subprocess.run([*command, "predict", "--model", checkpoint, *views, "--no_feedback", "--json"], check=True,
                       cwd=REPO_ROOT, capture_output=True)
        runs.append(time.perf_counter() - start)
    return {"seconds": sorted(runs)[len(runs) // 2], "runs_s": runs, "command": " ".join(command[-2:])}


def run_profvlm(checkpoint: str, take: dict[str, str], threads: int) -> dict:
    """(a): the product path: load, classification only (cold), one end-to-end call with 64 new tokens stage by
    stage, classification only (warm)."""
    import torch
    from transformers import pipeline

    import processing  # noqa: F401  (registers the processor, as `profvlm predict` does)
    from modeling_profvlm.pipeline_profvlm import ProficiencyEstimationPipeline

    torch.set_num_threads(threads)
    start = time.perf_counter()
    pipe = pipeline("proficiency-estimation", model=checkpoint, pipeline_class=ProficiencyEstimationPipeline)
    load_s = time.perf_counter() - start
    model = pipe.model

    start = time.perf_counter()
    cold = pipe(take, return_feedback=False)
    classification_cold_s = time.perf_counter() - start

    timer = StageTimer()
    pipe.preprocess = timer.wrap("decode_and_preprocess", pipe.preprocess)
    timer.hook("tower", model.model.vision_tower)
    from modeling_profvlm import answering  # the one answer path the pipeline calls

    answering.score_labels = timer.wrap("tower_plus_label_scoring", answering.score_labels)
    answering.generate_after_labels = timer.wrap("generation", answering.generate_after_labels)
    start = time.perf_counter()
    result = pipe(take, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS)
    total = time.perf_counter() - start
    stages = dict(timer.seconds)
    stages["projector_and_lm_label_scoring"] = stages.pop("tower_plus_label_scoring") - stages["tower"]

    start = time.perf_counter()
    classification = pipe(take, return_feedback=False)
    classification_s = time.perf_counter() - start
    return {
        "load_s": load_s, "total_s": total, "stages_s": stages, "classification_only_s": classification_s,
        "classification_only_cold_s": classification_cold_s, "device_policy": pipe.device_policy.describe(),
        "tower_dtype": str(model.model.vision_tower.dtype), "lm_dtype": str(model.model.language_model.dtype),
        "prediction": result["proficiency"], "classification_prediction": classification["proficiency"],
        "cold_prediction": cold["proficiency"], "peak_rss_gb": _peak_rss_gb(),
    }


def run_smolvlm(take: dict[str, str], threads: int) -> dict:
    """(b): the same 40 frames as 512-px images through a SmolVLM2-256M-architecture model, 64 new tokens."""
    import torch
    import torch.nn.functional as F
    from transformers import SmolVLMConfig, SmolVLMForConditionalGeneration

    from processing.frame_sampling import sample_uniform_indices
    from processing.video_io import probe_video, read_frames

    from modeling_profvlm.device_policy import resolve_device_policy

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = SmolVLMConfig(vision_config=SMOLVLM2_256M_VISION, text_config=SMOLVLM2_256M_TEXT,
                           scale_factor=SMOLVLM2_SCALE_FACTOR, image_token_id=SMOLVLM2_IMAGE_TOKEN_ID)
    model = SmolVLMForConditionalGeneration(config).eval()
    policy = resolve_device_policy("cpu")  # the same policy ProfVLM runs under
    vision_dtype, lm_dtype = policy.tower_dtype, policy.lm_dtype
    # The whole vision side in one dtype (encoder AND connector: a connector left in fp32 crashes on bf16 input),
    # the language model in the LM dtype; the connector's output joins the text embeddings in that dtype.
    model.model.vision_model.to(vision_dtype)
    model.model.connector.to(vision_dtype)
    model.model.text_model.to(lm_dtype)
    model.lm_head.to(lm_dtype)
    model.model.connector.register_forward_hook(lambda module, args, out: out.to(lm_dtype))
    size = config.vision_config.image_size
    tokens_per_frame = (size // config.vision_config.patch_size) ** 2 // SMOLVLM2_SCALE_FACTOR**2  # 64
    with torch.inference_mode():  # warm-up: one frame through the encoder, a few tokens through the LM
        model.model.vision_model(pixel_values=torch.zeros(1, 3, size, size, dtype=vision_dtype))
        model.model.text_model(input_ids=torch.ones(1, 8, dtype=torch.long))

    timer = StageTimer()
    timer.hook("vision_encoder", model.model.vision_model)
    start = time.perf_counter()
    frames = []
    for view, path in take.items():  # the same decode as ProfVLM: 8 uniform frames per view
        indices = sample_uniform_indices(probe_video(path, view).num_frames, FRAMES_PER_VIEW).indices
        clip = torch.from_numpy(read_frames(path, indices, view)).permute(0, 3, 1, 2).float() / 255.0  # [8, 3, H, W]
        # Each frame becomes one 512x512 image (SmolVLM2 does not split video frames), normalised to [-1, 1].
        frames.append((F.interpolate(clip, size=(size, size), mode="bilinear", antialias=True) - 0.5) / 0.5)
    pixel_values = torch.cat(frames)[None]  # [1, 40, 3, 512, 512]
    per_frame = [5] * SMOLVLM2_TEXT_TOKENS_PER_FRAME + [SMOLVLM2_IMAGE_TOKEN_ID] * tokens_per_frame
    input_ids = torch.tensor([[1] * 30 + per_frame * pixel_values.shape[1] + [7] * 10])
    timer.seconds["decode_and_preprocess"] = time.perf_counter() - start
    with torch.inference_mode():
        t0 = time.perf_counter()
        model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), pixel_values=pixel_values,
                       max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=2)
        generate_s = time.perf_counter() - t0
    stages = dict(timer.seconds)
    stages["lm_prefill_and_generation"] = generate_s - stages["vision_encoder"]
    return {
        "total_s": time.perf_counter() - start, "stages_s": stages, "num_frames": pixel_values.shape[1],
        "prompt_tokens": input_ids.shape[1], "vision_dtype": str(vision_dtype), "lm_dtype": str(lm_dtype),
        "device_policy": policy.describe(), "peak_rss_gb": _peak_rss_gb(),
    }


def _child(system: str, args) -> dict:
    cmd = [sys.executable, __file__, "--child", system, "--take_dir", str(args.take_dir), "--threads", str(args.threads),
           "--model", str(args.model)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"{system} benchmark failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    """Run both systems, each in a subprocess, and write the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default=str(RESULTS_DIR), help="folder of the report bench_inference.json")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each benchmark video")
    parser.add_argument("--work_dir", default=None, help="where the videos and the base checkpoint are kept")
    parser.add_argument("--child", choices=("profvlm", "smolvlm2", "bare_tower", "shell"), help=argparse.SUPPRESS)
    parser.add_argument("--take_dir", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = reject_renamed_flags(parser).parse_args(argv)

    if args.child:
        take = write_take(Path(args.take_dir), args.seconds)
        if args.child == "profvlm":
            result = run_profvlm(args.model, take, args.threads)
        elif args.child == "smolvlm2":
            result = run_smolvlm(take, args.threads)
        elif args.child == "bare_tower":
            result = bare_tower_seconds(args.threads)
        else:
            result = shell_predict_seconds(args.model, take)
        print(json.dumps(result))
        return 0

    from profvlm.assets import cache_dir

    work = Path(args.work_dir) if args.work_dir else cache_dir() / "bench_inference"
    args.take_dir = work / "take"
    write_take(args.take_dir, args.seconds)
    args.model = build_profvlm_checkpoint(work / "profvlm-random-base")
    from benchmarks.report import cpu_kind, write_report

    load_before = os.getloadavg()
    results = {}
    for system in ("profvlm", "bare_tower", "shell", "smolvlm2"):
        results[system] = _child(system, args)
        print(f"{system}: {json.dumps(results[system])}", file=sys.stderr)
    profvlm, smolvlm2 = results["profvlm"], results["smolvlm2"]
    speedup = smolvlm2["total_s"] / profvlm["total_s"]
    vs_tower = profvlm["classification_only_s"] / results["bare_tower"]["seconds"]
    shell_ratio = results["shell"]["seconds"] / profvlm["classification_only_s"]
    report = {
        "setup": {"views": 5, "frames_per_view": FRAMES_PER_VIEW, "video_height": 448, "new_tokens": NEW_TOKENS,
                  "threads": args.threads, "cpu_kind": cpu_kind(),
                  "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "profvlm": profvlm,
        "bare_timesformer_base_5_clips": results["bare_tower"],
        "profvlm_predict_shell": results["shell"],
        "smolvlm2_256m_architecture": smolvlm2,
        "speedup_vs_smolvlm2": speedup,
        "classification_vs_bare_tower": vs_tower,
        "shell_vs_in_process": shell_ratio,
        "targets": TARGETS,
        "meets_targets": {
            "speedup_vs_smolvlm2": speedup >= TARGETS["speedup_vs_smolvlm2"],
            "classification_vs_bare_tower": vs_tower <= TARGETS["classification_vs_bare_tower"],
            "shell_vs_in_process": shell_ratio <= TARGETS["shell_vs_in_process"],
            "profvlm_peak_rss_gb": profvlm["peak_rss_gb"] <= TARGETS["profvlm_peak_rss_gb"],
        },
    }
    write_report(Path(args.output_dir) / "bench_inference.json", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
