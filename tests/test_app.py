# The web app (profvlm/app.py): a real browser on the page, gradio_client on /predict, bad uploads, CLI and Space files.
import argparse
import math
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.app_helpers import browser_unavailable, chromium_path, serving, write_text_as_video
from tests.moments_checkpoint import EXPECTED_MOMENTS
from tests.serving_helpers import check_result, timed, write_take
from tests.video_fixtures import write_audio_only, write_zero_byte

gr = pytest.importorskip("gradio", reason="the app needs the [app] extra: pip install -e '.[app]'")
gradio_client = pytest.importorskip("gradio_client", reason="the app tests need the [app] extra (gradio_client)")

ROOT = Path(__file__).resolve().parents[1]
VIEWS = ("ego", "exo1", "exo2", "exo3", "exo4")  # the tiny checkpoint's views, in its order
MAX_NEW_TOKENS = 48  # the moments checkpoint's answer is ~40 tiny-tokenizer tokens
TAKE_SECONDS = 2.5  # `take`: 75 frames at 30 fps
SCREENSHOT_ENV = "PROFVLM_WRITE_SCREENSHOT"  # set to a path to (re)write docs/app_screenshot.png
SCREENSHOT_MAX_BYTES = 200_000


@pytest.fixture(scope="module")
def app_url(tiny_moments_checkpoint, tmp_path_factory):
    """The app on the tiny moments checkpoint (its feedback has timed moments), served from a background thread on a
    free port (float32 on CPU, so that it matches the plain pipeline to 1e-5)."""
    import torch

    from profvlm.app import build_app

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 shared cores: one OpenMP thread is much faster than two fighting other processes
    demo = build_app(str(tiny_moments_checkpoint), device="cpu", dtype="float32", max_new_tokens=MAX_NEW_TOKENS,
                     example_dir=tmp_path_factory.mktemp("app_example"))
    try:
        with serving(demo) as url:
            yield url
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def take(tmp_path_factory) -> dict[str, str]:
    """A small 5-view take on disk, 2.5 s long: two of the checkpoint's three moments lie inside it."""
    return write_take(tmp_path_factory.mktemp("app_take"), views=VIEWS, seed=3, num_frames=75)


@pytest.fixture(scope="module")
def reference(tiny_moments_checkpoint, take) -> dict:
    """The pipeline's result for `take`, called in-process the way `profvlm predict` builds it."""
    from transformers import pipeline

    import processing  # noqa: F401  (registers the processor)
    from modeling_profvlm.pipeline_profvlm import ProficiencyEstimationPipeline

    pipe = pipeline("proficiency-estimation", model=str(tiny_moments_checkpoint),
                    pipeline_class=ProficiencyEstimationPipeline)
    result = pipe(take, max_new_tokens=MAX_NEW_TOKENS)
    assert timed(result["moments"]) == EXPECTED_MOMENTS  # the page has moments to show
    return result


def reference_policy_dtype() -> str:
    """The language model dtype the device policy picks on this machine (bf16 only where it is native)."""
    from modeling_profvlm.device_policy import resolve_device_policy

    return str(resolve_device_policy().lm_dtype).removeprefix("torch.")


def client_predict(url: str, files: dict[str, str]):
    """Call /predict with one file per view in the checkpoint's order (None where absent); all outputs."""
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    return client.predict(*[handle_file(files[v]) if v in files else None for v in VIEWS], api_name="/predict")


# ------------------------------------------------------------------------------------------------ gradio_client
def camera_then(reference: dict, time: float) -> str:
    """The camera the pipeline weighted most in the temporal token covering `time` (the last token starting at or
    before it, else the first), read from the pipeline's own timeline (the checkpoint has 2 temporal tokens)."""
    steps = reference["timeline"]
    assert len(steps) == 2
    step = ([s for s in steps if s["time"] <= time] or steps[:1])[-1]
    return max(step["view_weights"], key=step["view_weights"].get)


def test_predict_matches_the_pipeline(app_url, take, reference):
    outputs = client_predict(app_url, take)
    result = outputs[0]  # the first output is the pipeline's dict
    check_result(result, VIEWS, temporal_tokens=2, duration=TAKE_SECONDS)
    assert result["proficiency"] == reference["proficiency"]
    assert list(result["probabilities"]) == list(reference["probabilities"])
    # Same model, same policy; on a native-bf16 CPU the bf16 matmuls of a server thread may sum in another order.
    tol = 1e-5 if reference_policy_dtype() == "float32" else 5e-3
    for label, p in reference["probabilities"].items():
        assert math.isclose(result["probabilities"][label], p, abs_tol=tol), (label, result["probabilities"], reference["probabilities"])
    for view, w in reference["view_weights"].items():
        assert math.isclose(result["view_weights"][view], w, abs_tol=tol), (view, result["view_weights"])
    assert result["feedback"] == reference["feedback"]
    assert reference["proficiency"] in outputs[1]  # the level in large type
    assert len(outputs[5]) == len(VIEWS)  # one sampled frame per given view
    assert "Took" in outputs[6]
    first, second = camera_then(reference, 0.0), camera_then(reference, 2.0)
    for moment in ("<b class=\"profvlm-moment-time\" style=\"font-family:monospace;font-size:1.1em\">0:00</b>",
                   ">clean rep</div>", ">0:02</b>", ">slip</div>", f"({first})", f'alt="{first} at 0:00"',
                   f"({second})", f'alt="{second} at 0:02"'):
        assert moment in outputs[7], outputs[7][:300]
    assert outputs[7].count('<li class="profvlm-moment"') == 2 and "9:59" not in outputs[7]


def test_predict_is_the_button_even_with_the_example_take(app_url):
    """The app under test has the one-click example, whose hidden run once took the name `predict` and pushed the
    button to `/predict_1`: `/predict` must be the Estimate button's event, and the only documented endpoint."""
    import json
    import urllib.request

    from gradio_client import Client

    with urllib.request.urlopen(app_url + "config") as response:
        config = json.load(response)
    ids = {c.get("props", {}).get("elem_id"): c["id"] for c in config["components"]}
    by_name = {d["api_name"]: d for d in config["dependencies"]}
    assert "load_example" in by_name, "the app under test must have the example take"
    assert [t[0] for t in by_name["predict"]["targets"]] == [ids["profvlm-estimate"]]
    named = Client(app_url, verbose=False).view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert list(named) == ["/predict"]


def test_three_concurrent_clients_all_get_answers(app_url, take):
    subsets = [("ego",), ("exo1", "exo3"), VIEWS]  # any subset of views may be given
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda views: client_predict(app_url, {v: take[v] for v in views})[0], subsets))
    for views, result in zip(subsets, results):
        check_result(result, views, temporal_tokens=2, duration=TAKE_SECONDS)


@pytest.mark.parametrize("kind, view, expected", [
    ("text", "exo2", r"View 'exo2' \(notes\.txt\): not a readable video — not a video, it is a text file"),
    ("text_as_mp4", "ego", r"View 'ego' \(notes\.mp4\): not a readable video — cannot be opened as a video"),
    ("empty", "exo4", r"View 'exo4' \(empty\.mp4\): not a readable video — .*empty \(0-byte\)"),
    ("audio", "exo1", r"View 'exo1' \(audio_only\.wav\): not a readable video — expected a video stream"),
    ("none", None, r"No video given: upload at least one view \(ego, exo1, exo2, exo3, exo4\)"),
])
def test_bad_upload_is_an_error_naming_the_view(app_url, take, tmp_path, kind, view, expected):
    from gradio_client.exceptions import AppError

    writers = {"text": lambda: write_text_as_video(tmp_path / "notes.txt"),
               "text_as_mp4": lambda: write_text_as_video(tmp_path / "notes.mp4"),
               "empty": lambda: write_zero_byte(tmp_path / "empty.mp4"),
               "audio": lambda: write_audio_only(tmp_path / "audio_only.wav")}
    files = {} if kind == "none" else {view: str(writers[kind]())}
    with pytest.raises(AppError, match=expected) as info:
        client_predict(app_url, files)
    assert "Traceback" not in str(info.value)
    # The app keeps serving after a rejected request.
    check_result(client_predict(app_url, {"exo3": take["exo3"]})[0], ("exo3",), temporal_tokens=2,
                 duration=TAKE_SECONDS)


# ------------------------------------------------------------------------------------------------------ browser
def _save_small_png(page, path: Path) -> None:
    """A full-page screenshot as a palette PNG (well under SCREENSHOT_MAX_BYTES for a page this size)."""
    from PIL import Image

    raw = path.with_suffix(".raw.png")
    page.screenshot(path=str(raw), full_page=True)
    with Image.open(raw) as image:
        image.convert("RGB").quantize(colors=96, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    raw.unlink()


def test_browser_upload_estimate_and_error(app_url, take, reference, tmp_path):
    reason = browser_unavailable()
    if reason:
        pytest.skip(f"browser test skipped: {reason}")
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(app_url)
            estimate = page.get_by_role("button", name="Estimate")
            estimate.wait_for(timeout=60_000)
            for view in VIEWS:
                expect(page.locator(f"#profvlm-video-{view}")).to_contain_text(view)  # labelled by view name
            expect(page.locator("#profvlm-caveat")).to_contain_text("randomly initialised")

            # A real take: one upload per view, then Estimate.
            for view in VIEWS:
                page.locator(f"#profvlm-video-{view} input[type=file]").set_input_files(take[view])
            for view in VIEWS:
                page.locator(f"#profvlm-video-{view} video").wait_for(timeout=30_000)
            estimate.click()
            page.locator("#profvlm-level-value").get_by_text(reference["proficiency"], exact=True).wait_for(
                timeout=120_000)
            scores = page.locator("#profvlm-scores")
            for label in reference["probabilities"]:
                expect(scores).to_contain_text(label)
            expect(scores).to_contain_text(f"{round(100 * max(reference['probabilities'].values()))}%")
            expect(page.locator("#profvlm-feedback textarea")).to_have_value(reference["feedback"])
            expect(page.locator("#profvlm-frames img")).to_have_count(len(VIEWS))
            expect(page.locator("#profvlm-timing")).to_contain_text("Took")
            # The moments: each with its time as text, the most weighted camera and that camera's frame then.
            moments = page.locator("#profvlm-moments li.profvlm-moment")
            expect(moments).to_have_count(len(EXPECTED_MOMENTS))
            for item, moment in zip(moments.all(), EXPECTED_MOMENTS):
                stamp = f"0:{int(moment['time']):02d}"  # the times are under a minute
                expect(item.locator(".profvlm-moment-time")).to_have_text(stamp)
                expect(item.locator(".profvlm-moment-text")).to_have_text(moment["text"])
                top = camera_then(reference, moment["time"])
                expect(item.locator(".profvlm-moment-camera")).to_have_text(f"({top})")
                frame = item.locator("img.profvlm-moment-frame")
                expect(frame).to_have_attribute("alt", f"{top} at {stamp}")
                assert frame.evaluate("img => img.complete && img.naturalWidth > 0"), "the frame did not load"
            page.wait_for_timeout(500)  # let the bar chart finish drawing before the screenshot
            shot = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path / "app_screenshot.png")
            shot.parent.mkdir(parents=True, exist_ok=True)
            _save_small_png(page, shot)
            assert 0 < shot.stat().st_size < SCREENSHOT_MAX_BYTES, shot.stat().st_size

            # A text file uploaded as a video: a visible message naming the view, no traceback.
            page.goto(app_url)
            bad = write_text_as_video(tmp_path / "notes.mp4")
            page.locator("#profvlm-video-exo2 input[type=file]").set_input_files(str(bad))
            page.locator("#profvlm-video-exo2 video").wait_for(timeout=30_000)
            page.get_by_role("button", name="Estimate").click()
            page.get_by_text("View 'exo2' (notes.mp4): not a readable video").first.wait_for(timeout=60_000)
            assert "Traceback" not in page.content()

            # The example take: one click and a result.
            page.goto(app_url)
            page.get_by_text("Synthetic").first.click()
            expect(page.locator("#profvlm-level-value")).to_have_text(
                re.compile("|".join(map(re.escape, reference["probabilities"]))), timeout=120_000)
        finally:
            browser.close()


# --------------------------------------------------------------------------------------------- no server needed
def test_cli_parser_defaults():
    from profvlm import app

    parser = argparse.ArgumentParser()
    app.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["app", "--model", "org/profvlm"])
    assert (args.model, args.host, args.port, args.share) == ("org/profvlm", "127.0.0.1", 7860, False)
    assert args.func is app.run
    args = parser.parse_args(["app", "--model", "m", "--host", "0.0.0.0", "--port", "8000", "--share"])
    assert (args.host, args.port, args.share) == ("0.0.0.0", 8000, True)


def test_cli_run_builds_and_launches(tiny_checkpoint, monkeypatch, one_thread):
    from profvlm import app

    launched = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: launched.update(kwargs, blocks=self))
    parser = argparse.ArgumentParser()
    app.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["app", "--model", str(tiny_checkpoint), "--port", "7999", "--no_example"])
    assert app.run(args) == 0
    assert (launched["server_name"], launched["server_port"], launched["share"]) == ("127.0.0.1", 7999, False)
    assert isinstance(launched["blocks"], gr.Blocks)


def test_missing_local_model_is_one_clear_error(tmp_path):
    from profvlm.app import build_app

    with pytest.raises(FileNotFoundError, match=r"--model .*no config\.json"):
        build_app(str(tmp_path / "no_such_checkpoint"))


def test_concurrency_fits_the_device():
    import torch

    from modeling_profvlm.device_policy import DevicePolicy
    from profvlm.app import GPU_CONCURRENCY, default_concurrency

    cpu = DevicePolicy(torch.device("cpu"), torch.float32, torch.float32, "test")
    gpu = DevicePolicy(torch.device("cuda"), torch.bfloat16, torch.bfloat16, "test")
    assert default_concurrency(cpu) == 1
    assert default_concurrency(gpu) == GPU_CONCURRENCY > 1


def test_space_model_comes_from_the_environment(monkeypatch):
    from profvlm import app

    monkeypatch.setenv(app.MODEL_ENV, "someone/profvlm-egoexo4d")
    assert app.space_model() == "someone/profvlm-egoexo4d"
    monkeypatch.delenv(app.MODEL_ENV)
    monkeypatch.chdir(ROOT / "tests")  # no demo_outputs here
    assert app.space_model() == app.DEFAULT_HUB_MODEL


def test_space_model_serves_make_demos_checkpoint_the_moments_one_first(monkeypatch, tmp_path):
    from profvlm import app

    monkeypatch.delenv(app.MODEL_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo_outputs" / "sft_run" / "final").mkdir(parents=True)  # `make demo --no-moments`
    assert app.space_model() == "demo_outputs/sft_run/final"
    (tmp_path / "demo_outputs" / "sft_run_moments" / "final").mkdir(parents=True)  # `make demo`
    assert app.space_model() == "demo_outputs/sft_run_moments/final"


def test_space_files():
    import yaml

    text = (ROOT / "space" / "README.md").read_text()
    front = yaml.safe_load(text.split("---")[1])
    assert front["sdk"] == "gradio"
    assert (ROOT / front["app_file"]).is_file()
    assert front["sdk_version"].split(".")[0] == gr.__version__.split(".")[0]
    # The Space pins what constraints.txt (the tested set) pins; gradio comes from sdk_version, so it is not listed.
    def pins(path: Path) -> dict[str, str]:
        return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", path.read_text(), re.M))

    space, tested = pins(ROOT / "space" / "requirements.txt"), pins(ROOT / "constraints.txt")
    assert {"torch", "transformers", "av", "numpy"} <= set(space)
    assert space == {name: tested.get(name) for name in space}
    assert "gradio" not in space
    entry = (ROOT / "app.py").read_text()
    assert "space_model()" in entry and "build_app" in entry


def test_moment_list_shows_each_moments_frame_from_the_camera_weighted_most_then(tmp_path):
    """Each moment shows the camera its answer names (the top one of the token covering its time: answer_takes'
    job, tested with the pipeline) and that camera's frame at the moment's time (decoded here independently)."""
    import av
    import numpy as np

    from profvlm.app import frame_at, moments_html

    files = write_take(tmp_path / "take", views=("ego", "exo1"), seed=5, num_frames=75)
    result = {"moments": [{"time": 0.0, "text": "clean <rep>", "camera": "exo1", "probability": 0.8,
                           "category": "good_execution"},
                          {"time": 2.3, "text": "slip", "camera": "ego", "probability": None}],
              "view_weights": {"ego": 0.5, "exo1": 0.5},
              "timeline": [{"time": 0.0, "view_weights": {"ego": 0.2, "exo1": 0.8}},
                           {"time": 1.5, "view_weights": {"ego": 0.9, "exo1": 0.1}}]}
    page = moments_html(result, files)
    assert page.count('<li class="profvlm-moment"') == 2
    assert 'alt="exo1 at 0:00"' in page and 'alt="ego at 0:02.3"' in page  # a sub-second time as written
    assert "good: clean &lt;rep&gt;" in page  # remarks are text, not markup; the category word first
    assert '<span class="profvlm-moment-probability" style="opacity:0.7">, p 0.80</span>' in page
    assert page.count("p 0.") == 1  # no probability, none shown
    with av.open(files["ego"]) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert np.array_equal(frame_at(files["ego"], "ego", 2.0), decoded[60])  # 2.0 s at 30 fps
    assert np.array_equal(frame_at(files["ego"], "ego", 9.0), decoded[-1])  # past the end: the last frame
    assert "No timed moments" in moments_html({**result, "moments": []}, files)
