"""Inference latency side by side, one 5-view take (448-pixel videos, 8 frames per view), 64 new tokens:

(a) ProfVLM through the `proficiency-estimation` pipeline: base-size TimeSformer (random weights, bf16 where the
    CPU supports it) + the real SmolLM2-135M-Instruct; latency split into decode, tower, projector+LM label
    scoring and generation; plus classification only (`return_feedback=False`).
(b) a generic small video-LLM that sees the same 40 frames as images: the SmolVLM2-256M-Video-Instruct
    architecture (SigLIP-B/16 at 512 px, 64 tokens per frame, SmolLM2-135M) built from its config, random weights.

Same dtype policy for both: vision encoder in bf16 where supported, language model in fp32 (as SmolLM2 loads).
Each system runs in its own subprocess, so each peak RSS is its own.

    python benchmarks/bench_inference.py [--output benchmarks/results/bench_inference.json]
"""
import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # runnable as a plain script from anywhere
    sys.path.insert(0, str(REPO_ROOT))

TARGETS = {"speedup_vs_smolvlm2": 4.0, "classification_only_s": 8.0, "profvlm_peak_rss_gb": 2.5}
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


def _bf16_supported() -> bool:
    """True when the CPU has native bf16 matmul (AVX512-BF16 or AMX); otherwise bf16 would be emulated and slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _cpu_name() -> str:
    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else (platform.processor() or platform.machine())


def write_take(folder: Path, seconds: float, fps: int = 30) -> dict[str, str]:
    """An ego (448x448) and four exo (796x448) x264 videos, like EgoExo4D's downscaled/448 files."""
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
            stream = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
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
    code = ("from modeling_profvlm.assemble import build_base_checkpoint; "
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


def run_profvlm(checkpoint: str, take: dict[str, str], threads: int) -> dict:
    """(a): one end-to-end pipeline call with 64 new tokens, stage by stage, then one classification-only call."""
    import torch
    from transformers import pipeline

    from modeling_profvlm.pipeline_profvlm import ProficiencyEstimationPipeline

    torch.set_num_threads(threads)
    pipe = pipeline("proficiency-estimation", model=checkpoint, device="cpu", pipeline_class=ProficiencyEstimationPipeline)
    model = pipe.model
    tower_dtype = torch.bfloat16 if _bf16_supported() else torch.float32
    model.model.vision_tower.to(tower_dtype)
    cfg = model.config.vision_config
    with torch.inference_mode():  # warm-up: one clip through the tower, a few tokens through the LM
        model.model.vision_tower(pixel_values=torch.zeros(1, cfg.num_frames, 3, cfg.image_size, cfg.image_size, dtype=tower_dtype))
        model.model.language_model(input_ids=torch.ones(1, 8, dtype=torch.long))

    timer = StageTimer()
    pipe.preprocess = timer.wrap("decode_and_preprocess", pipe.preprocess)
    timer.hook("tower", model.model.vision_tower)
    module = sys.modules[type(pipe).__module__]
    module.score_labels = timer.wrap("tower_plus_label_scoring", module.score_labels)
    pipe._generate_feedback = timer.wrap("generation", pipe._generate_feedback)
    start = time.perf_counter()
    result = pipe(take, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS)
    total = time.perf_counter() - start
    stages = dict(timer.seconds)
    stages["projector_and_lm_label_scoring"] = stages.pop("tower_plus_label_scoring") - stages["tower"]

    start = time.perf_counter()
    classification = pipe(take, return_feedback=False)
    classification_s = time.perf_counter() - start
    return {
        "total_s": total, "stages_s": stages, "classification_only_s": classification_s,
        "tower_dtype": str(tower_dtype), "lm_dtype": str(model.model.language_model.dtype),
        "prediction": result["proficiency"], "classification_prediction": classification["proficiency"],
        "peak_rss_gb": _peak_rss_gb(),
    }


def run_smolvlm(take: dict[str, str], threads: int) -> dict:
    """(b): the same 40 frames as 512-px images through a SmolVLM2-256M-architecture model, 64 new tokens."""
    import torch
    import torch.nn.functional as F
    from transformers import SmolVLMConfig, SmolVLMForConditionalGeneration

    from processing.frame_sampling import sample_uniform_indices
    from processing.video_io import probe_video, read_frames

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = SmolVLMConfig(vision_config=SMOLVLM2_256M_VISION, text_config=SMOLVLM2_256M_TEXT,
                           scale_factor=SMOLVLM2_SCALE_FACTOR, image_token_id=SMOLVLM2_IMAGE_TOKEN_ID)
    model = SmolVLMForConditionalGeneration(config).eval()
    vision_dtype = torch.bfloat16 if _bf16_supported() else torch.float32
    model.model.vision_model.to(vision_dtype)
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
        "prompt_tokens": input_ids.shape[1], "vision_dtype": str(vision_dtype), "peak_rss_gb": _peak_rss_gb(),
    }


def _child(system: str, args) -> dict:
    cmd = [sys.executable, __file__, "--child", system, "--take_dir", str(args.take_dir), "--threads", str(args.threads),
           "--checkpoint", str(args.checkpoint)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"{system} benchmark failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    """Run both systems, each in a subprocess, and write the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=str(REPO_ROOT / "benchmarks" / "results" / "bench_inference.json"))
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each benchmark video")
    parser.add_argument("--work_dir", default=None, help="where the videos and the base checkpoint are kept")
    parser.add_argument("--child", choices=("profvlm", "smolvlm2"), help=argparse.SUPPRESS)
    parser.add_argument("--take_dir", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        take = write_take(Path(args.take_dir), args.seconds)
        result = run_profvlm(args.checkpoint, take, args.threads) if args.child == "profvlm" else run_smolvlm(take, args.threads)
        print(json.dumps(result))
        return 0

    from modeling_profvlm.assets import cache_dir

    work = Path(args.work_dir) if args.work_dir else cache_dir() / "bench_inference"
    args.take_dir = work / "take"
    write_take(args.take_dir, args.seconds)
    args.checkpoint = build_profvlm_checkpoint(work / "profvlm-random-base")
    load_before = os.getloadavg()
    profvlm = _child("profvlm", args)
    print(f"ProfVLM: {json.dumps(profvlm)}", file=sys.stderr)
    smolvlm2 = _child("smolvlm2", args)
    print(f"SmolVLM2-256M architecture: {json.dumps(smolvlm2)}", file=sys.stderr)
    speedup = smolvlm2["total_s"] / profvlm["total_s"]
    report = {
        "setup": {"views": 5, "frames_per_view": FRAMES_PER_VIEW, "video_height": 448, "new_tokens": NEW_TOKENS,
                  "threads": args.threads, "cpu": _cpu_name(), "native_bf16": _bf16_supported(),
                  "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "profvlm": profvlm,
        "smolvlm2_256m_architecture": smolvlm2,
        "speedup_vs_smolvlm2": speedup,
        "targets": TARGETS,
        "meets_targets": {
            "speedup_vs_smolvlm2": speedup >= TARGETS["speedup_vs_smolvlm2"],
            "classification_only_s": profvlm["classification_only_s"] <= TARGETS["classification_only_s"],
            "profvlm_peak_rss_gb": profvlm["peak_rss_gb"] <= TARGETS["profvlm_peak_rss_gb"],
        },
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
