# `profvlm app` and the Hugging Face Space: a Gradio page and a `/predict` API around the proficiency pipeline.
"""One Gradio Blocks app serves both `profvlm app --model DIR_OR_HUB_ID` and the Space entry point (`app.py`).

The page has one video input per view of the checkpoint (any subset may be left empty), an "Estimate" button, and
the result: the level in large type, the label probabilities, the feedback, its timed moments (each with the frame
at that time from the camera the model weighted most then), the camera weights, one sampled frame per given view
and the time taken. A synthetic example take is written on first launch so that one click shows a
result. The same handler is the `/predict` API endpoint (`gradio_client`): one file per view in the checkpoint's
view order (None when absent); its first output is the pipeline's dict as JSON.

gradio is imported only inside the functions that need it, so `profvlm --help` works without the `[app]` extra.
"""
from __future__ import annotations

import argparse
import html
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modeling_profvlm.answering import DEFAULT_MAX_NEW_TOKENS
from modeling_profvlm.device_policy import add_device_arguments
from profvlm.demo import demo_paths

if TYPE_CHECKING:  # only for annotations: gradio, numpy and the pipeline load lazily
    import gradio as gr
    import numpy as np

    from modeling_profvlm.device_policy import DevicePolicy
    from modeling_profvlm.pipeline_profvlm import ProficiencyEstimationPipeline

logger = logging.getLogger(__name__)

MODEL_ENV = "PROFVLM_MODEL"
# Where `make demo` leaves its trained checkpoints (the moments demo's first, then the label demo's); a Space or a
# local run without PROFVLM_MODEL serves the first one present.
DEMO_CHECKPOINTS = tuple(demo_paths(Path("demo_outputs"), moments)["run"] / "final" for moments in (True, False))
API_NAME = "predict"  # the button's endpoint, `/predict` for gradio_client, whatever else the page has
EXAMPLE_API_NAME = "run_example"  # the example's hidden run: its own name, never one the button could lose
# The Hub id the model card and `profvlm push` examples use; the Space falls back to it.
DEFAULT_HUB_MODEL = "org/profvlm"
# The example take matches `make demo`'s synthetic videos (64 px, 4 s), so the demo checkpoint sees familiar input.
EXAMPLE_SEED, EXAMPLE_SIZE, EXAMPLE_SECONDS = 0, 64, 4.0
# A GPU has headroom for a few takes at once; on a CPU one request already uses every core.
GPU_CONCURRENCY = 4
APP_EXTRA_HINT = "pip install -e '.[app]' (gradio and gradio_client)"
MOMENT_THUMBNAIL_PX = 160  # longer side of each moment's frame on the page (inline JPEG)
RANDOM_TOWER_CAVEAT = ("**Note:** this checkpoint's video tower is randomly initialised (no pretrained weights were "
                       "reachable when it was built), so treat the level as a demo, not an assessment.")


# ----------------------------------------------------------------------------------------------- model + inputs
def _looks_local(model: str) -> bool:
    """True when `model` names a folder rather than a Hub id ("org/name": exactly one slash, not a path)."""
    return Path(model).expanduser().exists() or model.startswith((".", "/", "~")) or model.count("/") != 1


def load_estimator(model: str, device: str | None = None,
                   dtype: str | None = None) -> tuple[ProficiencyEstimationPipeline, DevicePolicy]:
    """The pipeline for `model` (checkpoint folder or Hub id) and the device policy it runs under.

    The one place where the app picks its device and dtypes: the shared device policy decides (CUDA when
    available; bf16 where the hardware has it natively), `device`/`dtype` override it."""
    import processing  # noqa: F401  (registers ProfVLMProcessor with AutoProcessor: no remote code needed)
    from modeling_profvlm.configuration_profvlm import require_profvlm_checkpoint
    from modeling_profvlm.pipeline_profvlm import load_proficiency_pipeline

    if _looks_local(model):
        model = str(require_profvlm_checkpoint(Path(model).expanduser(), "--model"))
    # The installed class, not the checkpoint's copy (which transformers would pick from custom_pipelines), under the
    # shared device policy, with `device`/`dtype` as overrides and the weights cast once from float32.
    pipe = load_proficiency_pipeline(model, device, dtype)
    logger.info("ProfVLM app: model %s, %s", model, pipe.device_policy.describe())
    return pipe, pipe.device_policy


def default_concurrency(policy: DevicePolicy) -> int:
    """Requests that may run at once: 1 on a CPU (torch already uses all cores), GPU_CONCURRENCY on a GPU."""
    return GPU_CONCURRENCY if policy.device.type == "cuda" else 1


class ViewError(ValueError):
    """One view's upload is unusable (missing, empty, corrupt, no video stream); the message names view and file."""


def check_view(view: str, path: str | os.PathLike) -> np.ndarray:
    """Probe one uploaded video and return its middle frame (H, W, 3) uint8; a ViewError naming the view, the
    file and what is wrong otherwise. Checking here, before the model, keeps the error short and specific."""
    from processing.video_io import VideoReadError, describe_source, probe_video, read_frames

    name = Path(path).name  # gradio keeps the uploaded name; its temp folder means nothing to the visitor
    try:
        info = probe_video(path, view)  # refuses text files too (FFmpeg would draw them as frames)
        return read_frames(path, [info.num_frames // 2], view)[0]
    except FileNotFoundError as err:
        raise ViewError(f"View '{view}' ({name}): the uploaded file is gone from the server; upload it again.") from err
    except VideoReadError as err:
        # The message is "view 'x', file '<temp path>': <what> [: <decoder detail>]"; keep only <what>.
        reason = str(err).removeprefix(describe_source(path, view) + ": ")
        reason = reason.split(": ")[0].replace(str(path), name).rstrip(".")
        raise ViewError(f"View '{view}' ({name}): not a readable video — {reason}.") from err


@dataclass
class Estimate:
    """One request's outcome: the pipeline's dict, the sampled frame per given view and the timings."""

    result: dict
    frames: list[tuple[Any, str]] = field(default_factory=list)
    seconds_total: float = 0.0
    seconds_model: float = 0.0


def estimate_take(pipe: ProficiencyEstimationPipeline, view_names: Sequence[str], files: Sequence[str | None],
                  max_new_tokens: int, progress: Callable[..., Any] | None = None) -> Estimate:
    """Check every given view, then run the pipeline on them. `files` is one path (or None) per view in
    `view_names` order. Raises ViewError for a bad or missing input."""
    start = time.perf_counter()
    if len(files) != len(view_names):
        raise ViewError(f"Expected {len(view_names)} video inputs (views {list(view_names)}), got {len(files)}.")
    take = {view: str(path) for view, path in zip(view_names, files) if path}
    if not take:
        raise ViewError(f"No video given: upload at least one view ({', '.join(view_names)}).")
    frames = []
    for i, (view, path) in enumerate(take.items()):
        if progress:
            progress(0.3 * i / len(take), desc=f"Checking view '{view}'")
        frames.append((check_view(view, path), f"{view} · {Path(path).name}"))
    if progress:
        progress(0.35, desc="Running the video tower and the language model")
    model_start = time.perf_counter()
    result = pipe(take, max_new_tokens=max_new_tokens)
    end = time.perf_counter()
    return Estimate(result=result, frames=frames, seconds_total=end - start, seconds_model=end - model_start)


# ------------------------------------------------------------------------------------------------ example take
def ensure_example_take(folder: str | os.PathLike, view_names: Sequence[str]) -> tuple[list[str | None], str]:
    """Write (once) a 1-take synthetic Ego-Exo4D tree under `folder` and return its files in `view_names` order
    (None for views it has no file for) and a caption with the take's scenario and true level."""
    from dataset_scripts.synthetic_egoexo4d import generate_synthetic_egoexo4d, plan_takes
    from modeling_profvlm.profvlm_facts import PROFICIENCY_LABELS

    plan = plan_takes(1, EXAMPLE_SEED)[0]  # deterministic: the same plan the generator writes
    root = Path(folder) / f"seed{EXAMPLE_SEED}_{EXAMPLE_SIZE}px_{EXAMPLE_SECONDS:g}s"
    videos = root / "takes" / plan.take_name / "frame_aligned_videos" / "downscaled" / "448"
    files = [videos / f"{plan.ego_cam}_214-1.mp4"] + [videos / f"{cam}.mp4" for cam in plan.exo_cams]
    if not all(f.is_file() for f in files):
        # Written beside the final place and renamed, so a concurrent launch never sees half a take.
        scratch = root.with_name(f"{root.name}.tmp-{uuid.uuid4().hex[:8]}")
        generate_synthetic_egoexo4d(scratch, 1, seed=EXAMPLE_SEED, size=EXAMPLE_SIZE, seconds=EXAMPLE_SECONDS,
                                    workers=1, overwrite=True, progress=False)
        shutil.rmtree(root, ignore_errors=True)
        try:
            scratch.rename(root)
        except OSError:  # another process won the race; its take is identical
            shutil.rmtree(scratch, ignore_errors=True)
    # Ego-Exo4D views: the Aria video is "ego", the exo cameras fill the remaining views in order.
    if "ego" in view_names:
        slots = {"ego": files[0]} | dict(zip([v for v in view_names if v != "ego"], files[1:]))
    else:
        slots = dict(zip(view_names, files))
    row = [str(slots[v]) if v in slots else None for v in view_names]
    caption = f"Synthetic {plan.scenario} take (true level: {PROFICIENCY_LABELS[plan.level]})"
    return row, caption


def default_example_dir() -> Path:
    """`$PROFVLM_CACHE/app_example` (default ~/.cache/profvlm/app_example)."""
    from .assets import cache_dir

    return cache_dir() / "app_example"


# --------------------------------------------------------------------------------------------------- the page
def level_html(level: str | None, random_tower: bool = False) -> str:
    """The estimated level in large type (a placeholder before the first estimate)."""
    if level is None:
        return ('<div id="profvlm-level-value" style="font-size:1.1em;opacity:0.6">'
                "Upload one or more views and press Estimate.</div>")
    note = ' <span style="font-size:0.9rem;opacity:0.7">(random video tower: a demo)</span>' if random_tower else ""
    return ('<div style="font-size:0.95rem;opacity:0.7">Estimated proficiency</div>'
            f'<div id="profvlm-level-value" style="font-size:2.8rem;font-weight:700;line-height:1.15">'
            f"{html.escape(level)}</div>{note}")


def frame_at(path: str | os.PathLike, view: str, seconds: float) -> np.ndarray:
    """The frame (H, W, 3) uint8 of one view's video at `seconds` (the last frame for a time at or past its end)."""
    from processing.video_io import probe_video, read_frames

    import bisect

    info = probe_video(path, view)
    frame_times = getattr(info, "frame_times", None)  # per-frame times of a variable-frame-rate file, when known
    if frame_times:
        index = bisect.bisect_right(frame_times, seconds) - 1
    else:
        index = int(seconds * info.fps) if info.fps else 0
    return read_frames(path, [min(max(0, index), info.num_frames - 1)], view)[0]


def _inline_jpeg(frame: np.ndarray) -> str:
    """A frame as a small `data:` JPEG URL, so the moment list is one self-contained HTML fragment."""
    import base64
    import io

    from PIL import Image

    image = Image.fromarray(frame)
    image.thumbnail((MOMENT_THUMBNAIL_PX, MOMENT_THUMBNAIL_PX))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def moments_html(result: dict | None, take: dict[str, str] | None = None) -> str:
    """The feedback's moments as a list: per moment its time as text, the camera the model weighted most at that
    time (the answer's `camera`), that camera's frame at that time (when its video is in `take`) and the remark."""
    from .report import moment_remark, moment_time_text

    if result is None:
        return '<div class="profvlm-moments-empty" style="opacity:0.6">Timed moments appear here.</div>'
    if not result.get("moments"):
        return ('<div class="profvlm-moments-empty" style="opacity:0.6">No timed moments in this feedback (a model '
                "trained on timed commentary writes them).</div>")
    items = []
    for moment in result["moments"]:
        stamp, camera = moment_time_text(moment["time"]), moment.get("camera")
        probability = "" if moment.get("probability") is None else f", p {moment['probability']:.2f}"
        image = ""
        if camera and take and take.get(camera):
            src = _inline_jpeg(frame_at(take[camera], camera, moment["time"]))
            image = (f'<img class="profvlm-moment-frame" src="{src}" alt="{html.escape(camera)} at {stamp}" '
                     'style="height:72px;border-radius:4px;margin-right:10px;vertical-align:middle">')
        items.append(
            '<li class="profvlm-moment" style="display:flex;align-items:center;margin:6px 0">' + image
            + f'<div><b class="profvlm-moment-time" style="font-family:monospace;font-size:1.1em">{stamp}</b> '
            f'<span class="profvlm-moment-camera" style="opacity:0.7">({html.escape(camera or "no camera")})</span>'
            f'<span class="profvlm-moment-probability" style="opacity:0.7">{probability}</span>'
            f'<div class="profvlm-moment-text">{html.escape(moment_remark(moment))}</div></div></li>')
    return ('<div style="font-size:0.95rem;opacity:0.7">Moments (time, the camera weighted most then)</div>'
            '<ol class="profvlm-moment-list" style="list-style:none;padding-left:0">' + "".join(items) + "</ol>")


def weights_frame(view_weights: dict[str, float], view_names: Sequence[str]):
    """The camera weights as a DataFrame (view, weight) in the checkpoint's view order, for gr.BarPlot."""
    import pandas as pd

    views = [v for v in view_names if v in view_weights]
    return pd.DataFrame({"view": views, "weight": [float(view_weights[v]) for v in views]})


def build_app(model: str, *, device: str | None = None, dtype: str | None = None,
              max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, concurrency_limit: int | None = None,
              example: bool = True, example_dir: str | os.PathLike | None = None) -> gr.Blocks:
    """The ProfVLM Gradio app for `model` (checkpoint folder or Hub id); the model is loaded here, once.

    `device`/`dtype` override the device policy; `max_new_tokens` bounds the feedback; `concurrency_limit`
    defaults to what the device allows (1 on CPU); `example` offers a synthetic take written to `example_dir`
    (default `$PROFVLM_CACHE/app_example`). The returned Blocks is queued; call `.launch()`."""
    try:
        import gradio as gr
    except ImportError as err:
        raise ImportError(f"The ProfVLM app needs gradio: {APP_EXTRA_HINT}.") from err

    pipe, policy = load_estimator(model, device, dtype)
    config = pipe.model.config
    view_names = list(config.view_names)
    labels = list(config.proficiency_labels)
    random_tower = bool(config.vision_tower_random_init)

    def predict(*files: str | None, progress: gr.Progress = gr.Progress()) -> tuple:
        """The Estimate button and `/predict`: one file (or None) per view -> the pipeline's dict, then the page."""
        try:
            outcome = estimate_take(pipe, view_names, list(files), max_new_tokens, progress)
        except ViewError as err:
            logger.info("rejected request: %s", err)
            raise gr.Error(str(err), duration=30, print_exception=False) from None
        except Exception as err:  # never a traceback for the visitor; the server log keeps it
            from dataset_scripts.script_errors import one_line

            logger.exception("estimation failed")
            raise gr.Error(f"Estimation failed: {one_line(err)}", duration=30, print_exception=False) from None
        result = outcome.result
        timing = (f"Took {outcome.seconds_total:.2f} s ({outcome.seconds_model:.2f} s in the model) for "
                  f"{len(result['view_weights'])} view(s) on {policy.describe()}.")
        take = {view: str(path) for view, path in zip(view_names, files) if path}
        return (result, level_html(result["proficiency"], random_tower), result["probabilities"], result["feedback"],
                weights_frame(result["view_weights"], view_names), outcome.frames, timing, moments_html(result, take))

    # Uploads and sampled frames pile up in gradio's cache on a long-running server: drop those older than a day.
    with gr.Blocks(title="ProfVLM: proficiency estimation", delete_cache=(3600, 86400)) as demo:
        gr.Markdown("# ProfVLM: proficiency from several camera views\n"
                    f"Upload the videos of one take — any of the views {', '.join(view_names)} (leave the others "
                    "empty) — and press **Estimate**: the model rates the performer "
                    f"({' / '.join(labels)}) and writes feedback.")
        if random_tower:
            gr.Markdown(RANDOM_TOWER_CAVEAT, elem_id="profvlm-caveat")
        with gr.Row():
            videos = [gr.Video(label=view, sources=["upload"], elem_id=f"profvlm-video-{view}", height=180,
                               min_width=150)
                      for view in view_names]
        # Created unrendered so that the example take can sit right under the inputs; rendered below.
        result_json = gr.JSON(label="Result", elem_id="profvlm-json", render=False)
        level = gr.HTML(level_html(None), elem_id="profvlm-level", render=False)
        scores = gr.Label(label="Probabilities", num_top_classes=len(labels), show_heading=False,
                          elem_id="profvlm-scores", render=False)
        feedback = gr.Textbox(label="Feedback", lines=3, interactive=False, elem_id="profvlm-feedback", render=False)
        timing = gr.Markdown(elem_id="profvlm-timing", render=False)
        moments = gr.HTML(moments_html(None), elem_id="profvlm-moments", render=False)
        weights = gr.BarPlot(x="view", y="weight", title="Camera weights (share of the view attention)", y_lim=[0, 1],
                             label="Camera weights", elem_id="profvlm-weights", render=False)
        gallery = gr.Gallery(label="Sampled frame per view", columns=min(5, len(view_names)), object_fit="contain",
                             height=170, elem_id="profvlm-frames", render=False)
        outputs = [result_json, level, scores, feedback, weights, gallery, timing, moments]
        examples = None
        if example:
            try:
                row, caption = ensure_example_take(example_dir or default_example_dir(), view_names)
            except Exception as err:  # the app works without an example; say why it is missing
                logger.warning("no example take: %s", err)
            else:
                # No fn here: gradio would name the example's hidden run after `predict` and take the name `/predict`
                # from the button (which became `/predict_1`). It is chained below, under a name of its own.
                examples = gr.Examples(examples=[row], inputs=videos, example_labels=[caption],
                                       label="Example take (one click)", api_visibility="private")
        button = gr.Button("Estimate", variant="primary", elem_id="profvlm-estimate")
        with gr.Row():
            with gr.Column(scale=1):
                for component in (level, scores, feedback, moments, timing):
                    component.render()
            with gr.Column(scale=1):
                weights.render()
                gallery.render()
        with gr.Accordion("Result as JSON (what /predict returns first)", open=False):
            result_json.render()
        button.click(predict, inputs=videos, outputs=outputs, api_name=API_NAME,
                     api_description="One video file (or None) per view, in the checkpoint's view order "
                                     f"{view_names}; first output: the pipeline's dict.")
        if examples is not None:  # one click on the example loads its videos, then estimates
            examples.load_input_event.then(predict, inputs=videos, outputs=outputs, api_name=EXAMPLE_API_NAME,
                                           api_visibility="undocumented")
    demo.queue(default_concurrency_limit=concurrency_limit or default_concurrency(policy))
    return demo


# -------------------------------------------------------------------------------------- command line + Space
def space_model() -> str:
    """The model the Space serves: $PROFVLM_MODEL, else `make demo`'s checkpoint when present, else the Hub id."""
    present = next((str(path) for path in DEMO_CHECKPOINTS if path.is_dir()), DEFAULT_HUB_MODEL)
    return os.environ.get(MODEL_ENV) or present


def run(args: argparse.Namespace) -> int:
    """`profvlm app`: load the model once and serve the page (and `/predict`) until interrupted."""
    logger.setLevel(logging.INFO)  # the device line is worth seeing even without --verbose
    demo = build_app(args.model, device=args.device, dtype=args.dtype, max_new_tokens=args.max_new_tokens,
                     concurrency_limit=args.concurrency, example=not args.no_example)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share)
    return 0


def add_parser(sub) -> None:
    """Register `app` on the `profvlm` sub-command parser."""
    p = sub.add_parser("app", help="serve a web page (and a /predict API) that estimates proficiency for one take")
    p.add_argument("--model", required=True, help="checkpoint folder or Hub id")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--share", action="store_true", help="also open a temporary public gradio.live link")
    add_device_arguments(p)
    p.add_argument("--max_new_tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS,
                   help=f"feedback length limit (default {DEFAULT_MAX_NEW_TOKENS})")
    p.add_argument("--concurrency", type=int, default=None,
                   help=f"requests run at once (default: 1 on CPU, {GPU_CONCURRENCY} on GPU)")
    p.add_argument("--no_example", action="store_true", help="do not write or offer the synthetic example take")
    p.set_defaults(func=run)


__all__ = ["ViewError", "add_parser", "build_app", "check_view", "default_concurrency", "ensure_example_take",
           "estimate_take", "frame_at", "load_estimator", "moments_html", "run", "space_model"]
