"""ProfVLMProcessor: multi-view batches, pixels against an independent reference, text expansion, save/load, errors."""

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoProcessor

import processing  # noqa: F401  (registers ProfVLMProcessor with AutoProcessor)
from profvlm.code_export import flatten_imports
from modeling_profvlm.configuration_profvlm import VIEW_NAMES
from processing.processing_profvlm import ProfVLMProcessor
from modeling_profvlm.profvlm_facts import format_target
from processing.text_format import build_messages
from tests.video_fixtures import (
    pattern_frames,
    phone_vfr_times,
    read_time_code,
    stored_for_display,
    write_alpha_video,
    write_audio_only,
    write_corrupt,
    write_gray_video,
    write_pattern_video,
    write_timed_video,
    write_video,
    write_zero_byte,
)

T, S = 4, 32
MEAN, STD = 0.45, 0.225


@pytest.fixture(scope="module")
def views(tmp_path_factory):
    """Five views of different sizes, aspect ratios and pixel formats (the shape of one EgoExo4D take)."""
    d = tmp_path_factory.mktemp("take")
    return {
        "ego": write_pattern_video(d / "aria.mp4", 30, 48, 48, seed=1),
        "exo1": write_pattern_video(d / "cam01.mp4", 24, 36, 64, seed=2),  # landscape
        "exo2": write_pattern_video(d / "cam02.mp4", 20, 64, 40, seed=3),  # portrait
        "exo3": write_gray_video(d / "cam03.mkv", 12, 32, 48),
        "exo4": write_alpha_video(d / "cam04.mov", 12, 40, 56),
    }


@pytest.fixture(scope="module")
def processor(tiny_tokenizer):
    return ProfVLMProcessor(tiny_tokenizer, num_frames=T, image_size=S)


def decode_all(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def reference_pixels(frames: np.ndarray) -> torch.Tensor:
    """Written independently of the processor: uniform centres, shorter side to S (uint8 bilinear antialiased, as
    PIL), centre crop, normalise."""
    n = len(frames)
    picked = frames[[int((i + 0.5) * n / T) for i in range(T)]]
    x = torch.tensor(picked).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    h, w = x.shape[2:]
    new_h, new_w = (S, int(S * w / h)) if h <= w else (int(S * h / w), S)
    x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
    assert x.dtype == torch.uint8
    top, left = (new_h - S) // 2, (new_w - S) // 2
    return (x[:, :, top : top + S, left : left + S].double() / 255 - MEAN) / STD


def test_pixels_equal_an_independent_reference(processor, views):
    out = processor(videos=[views])["pixel_values_videos"]
    assert out.shape == (1, 5, T, 3, S, S) and out.dtype == torch.float32
    for v, name in enumerate(VIEW_NAMES):
        torch.testing.assert_close(out[0, v].double(), reference_pixels(decode_all(views[name])), atol=1e-5, rtol=0)


def test_pixels_match_the_timesformer_pil_preprocessing(processor, views):
    # transformers' PIL VideoMAE processor is the TimeSformer checkpoints' preprocessing; it rounds to uint8
    # after resizing, hence the small tolerance.
    from transformers.models.videomae import VideoMAEImageProcessorPil

    pil = VideoMAEImageProcessorPil(size={"shortest_edge": S}, crop_size={"height": S, "width": S},
                                    image_mean=[MEAN] * 3, image_std=[STD] * 3)
    out = processor(videos=[views])["pixel_values_videos"]
    for v, name in enumerate(("ego", "exo1", "exo2")):
        frames = decode_all(views[name])
        picked = list(frames[[int((i + 0.5) * len(frames) / T) for i in range(T)]])
        expected = pil([picked], return_tensors="pt")["pixel_values"][0]
        assert (out[0, v] - expected).abs().max() < 0.03


def test_mixed_batch_masks_exactly_the_missing_views(processor, views):
    full = dict(views)
    missing_two = {k: p for k, p in views.items() if k not in ("exo2", "exo4")}
    as_list = [views["ego"], views["exo1"], None, views["exo3"]]  # list form, exo2 and exo4 absent
    out = processor(text=["<video> a", "b <video>", "<video>"], videos=[full, missing_two, as_list])
    assert out["pixel_values_videos"].shape == (3, 5, T, 3, S, S)
    expected_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 1, 0], [1, 1, 0, 1, 0]])
    assert torch.equal(out["view_mask"], expected_mask) and out["view_mask"].dtype == torch.long
    pixels = out["pixel_values_videos"]
    for b in range(3):
        for v in range(5):
            is_zero = bool((pixels[b, v] == 0).all())
            assert is_zero == (expected_mask[b, v] == 0), (b, v)
    # The same view gives the same pixels whichever form the take came in.
    torch.testing.assert_close(pixels[1], pixels[2], atol=0, rtol=0)
    torch.testing.assert_close(pixels[0, 0], pixels[1, 0], atol=0, rtol=0)


def test_decoded_frames_in_every_form_give_the_file_pixels(processor, views):
    frames = decode_all(views["exo2"])  # (T, H, W, 3) uint8
    from_file = processor(videos=[{"exo2": views["exo2"]}])["pixel_values_videos"][0, 2]
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        pil = None
    else:
        pil = [Image.fromarray(f) for f in frames]
    forms = [frames, torch.from_numpy(frames), torch.from_numpy(frames).permute(0, 3, 1, 2), list(frames)]
    forms += [pil] if pil is not None else []
    for form in forms:
        out = processor(videos=[{"exo2": form}])
        torch.testing.assert_close(out["pixel_values_videos"][0, 2], from_file, atol=0, rtol=0)
        assert out["view_mask"].tolist() == [[0, 0, 1, 0, 0]]
    # A bare clip (not in a dict or list) is the ego view; so is a list of PIL images.
    assert processor(videos=[frames])["view_mask"].tolist() == [[1, 0, 0, 0, 0]]
    if pil is not None:
        assert processor(videos=[pil])["view_mask"].tolist() == [[1, 0, 0, 0, 0]]


def test_gray_and_alpha_views_are_converted(processor, views):
    out = processor(videos=[{"exo3": views["exo3"], "exo4": views["exo4"]}])
    assert out["view_mask"].tolist() == [[0, 0, 0, 1, 1]]
    gray = out["pixel_values_videos"][0, 3]
    torch.testing.assert_close(gray[:, 0], gray[:, 1])
    torch.testing.assert_close(gray[:, 1], gray[:, 2])


def test_text_expands_the_video_token(tiny_tokenizer, views):
    proc = ProfVLMProcessor(tiny_tokenizer, num_frames=T, image_size=S, num_video_tokens=3)
    video_id = tiny_tokenizer.convert_tokens_to_ids("<video>")
    out = proc(text=["a <video> b", "<video>"], videos=[{"ego": views["ego"]}, [views["ego"]]])
    counts = (out["input_ids"] == video_id).sum(dim=1).tolist()
    assert counts == [3, 3]
    assert out["attention_mask"].shape == out["input_ids"].shape
    assert proc.video_token == "<video>" and proc.num_video_tokens == 3 and proc.video_token_id == video_id
    text_only = proc(text="<video><video>")
    assert (text_only["input_ids"] == video_id).sum().item() == 6 and "pixel_values_videos" not in text_only
    with pytest.raises(ValueError, match="got 2 takes in `videos` and 1"):
        proc(text=["<video>"], videos=[[views["ego"]], [views["ego"]]])


def test_metadata_and_seeded_sampling(processor, views):
    take = {"ego": views["ego"], "exo1": views["exo1"]}
    a = processor(videos=[take, take], frame_sampler="random_window", seed=7, return_metadata=True)
    b = processor(videos=[take, take], frame_sampler="random_window", seed=7, return_metadata=True)
    torch.testing.assert_close(a["pixel_values_videos"], b["pixel_values_videos"], atol=0, rtol=0)
    meta = a["video_metadata"]
    assert meta[0][2] is None and meta[0][0]["sampler"] == "random_window"
    assert meta[0][0]["num_frames"] == 30 and meta[0][0]["source"] == str(views["ego"])
    assert meta == b["video_metadata"]
    assert "video_metadata" not in processor(videos=[take])
    short = processor(videos=[{"ego": np.zeros((2, 8, 8, 3), np.uint8)}], return_metadata=True)["video_metadata"]
    assert short[0][0]["repeated"] and short[0][0]["indices"] == [0, 0, 1, 1]


def test_metadata_gives_each_samples_time_and_the_views_duration(processor, views):
    meta = processor(videos=[{"ego": views["ego"]}], return_metadata=True)["video_metadata"][0][0]
    assert meta["indices"] == [3, 11, 18, 26]  # 30 frames at 30 fps: the centres of 4 equal parts
    assert meta["times"] == pytest.approx([i / 30 for i in meta["indices"]], abs=1e-6)
    assert meta["duration"] == pytest.approx(1.0) and meta["times_assumed_fps"] is None
    frames = processor(videos=[{"ego": np.zeros((60, 8, 8, 3), np.uint8)}], return_metadata=True)["video_metadata"]
    assert frames[0][0]["times_assumed_fps"] == 30.0  # decoded frames carry no time: index / DEFAULT_FPS
    assert frames[0][0]["times"] == pytest.approx([i / 30 for i in frames[0][0]["indices"]])
    assert frames[0][0]["duration"] == pytest.approx(2.0)


def to_uint8(pixels: torch.Tensor) -> np.ndarray:
    """(T, 3, S, S) normalised processor pixels back to (T, S, S, 3) values in [0, 255]."""
    return (pixels * STD + MEAN).mul(255).permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("rotation, hflip", [(90, False), (270, False), (90, True)])
def test_a_portrait_phone_video_goes_in_upright(tiny_tokenizer, tmp_path, rotation, hflip):
    """Stored sideways with a 90/270-degree display matrix (mirrored too), the take reaches the tower as the same
    content written upright would: equal within codec noise, and far from the sideways picture."""
    upright, quality = pattern_frames(16, 48, 80, seed=4), {"crf": "12"}  # lossy, as a phone writes
    proc = ProfVLMProcessor(tiny_tokenizer, num_frames=T, image_size=S, view_names=["ego"])
    reference = write_video(tmp_path / "upright.mp4", upright, options=quality)
    reference = proc(videos=[{"ego": reference}])["pixel_values_videos"]
    phone = write_video(tmp_path / "phone.mp4", stored_for_display(upright, rotation, hflip), options=quality,
                        display_rotation=rotation, hflip=hflip)
    out = proc(videos=[{"ego": phone}])["pixel_values_videos"]
    noise = np.abs(to_uint8(out[0, 0]) - to_uint8(reference[0, 0])).mean()
    assert noise < 4.0, f"mean difference {noise:.2f} of 255 from the upright reference"  # measured: ~1.8
    for turns in (1, 2):  # the check tells orientations apart: sideways or upside down differ by ~50-70
        wrong = np.rot90(to_uint8(reference[0, 0]), turns, axes=(1, 2))
        assert np.abs(to_uint8(out[0, 0]) - wrong).mean() > 25


def test_vfr_take_is_sampled_uniformly_in_seconds(tiny_tokenizer, tmp_path):
    """25 fps for 4 s, then 2.5 fps to 24 s: the 8 samples sit at the centres of 8 equal parts of the 24 s (within
    one frame interval: the frame on screen at each centre), and the returned times are those frames' times."""
    times = phone_vfr_times(4.0, 24.0)
    path = write_timed_video(tmp_path / "vfr.mp4", times)
    proc = ProfVLMProcessor(tiny_tokenizer, num_frames=8, image_size=64, view_names=["cam"])
    out = proc(videos=[{"cam": path}], return_metadata=True)
    shown = [read_time_code(frame) for frame in to_uint8(out["pixel_values_videos"][0, 0])]
    meta = out["video_metadata"][0][0]
    centres = [(i + 0.5) * 24.0 / 8 for i in range(8)]
    for centre, when in zip(centres, shown):
        interval = 0.04 if when < 4.0 else 0.4
        assert when <= centre + 1e-6 and centre - when < interval + 1e-6, (centres, shown)
    assert meta["times"] == pytest.approx(shown, abs=1e-3)
    assert meta["duration"] == pytest.approx(24.0) and meta["times_assumed_fps"] is None


def test_snap_to_keyframes_reads_keyframes(tiny_tokenizer, tmp_path):
    gop30 = {"x264-params": "keyint=30:min-keyint=30:scenecut=0"}
    path = write_pattern_video(tmp_path / "gop.mp4", 240, 32, 32, options=gop30)
    proc = ProfVLMProcessor(tiny_tokenizer, num_frames=5, image_size=S, snap_to_keyframes=True)
    out = proc(videos=[{"ego": path}], return_metadata=True)
    meta = out["video_metadata"][0][0]
    assert meta["indices"] == [30, 60, 120, 180, 210]  # uniform gives 24, 72, 120, 168, 216
    # The pixels are those of the reported (snapped) frames.
    exact = ProfVLMProcessor(tiny_tokenizer, num_frames=240, image_size=S)(videos=[{"ego": path}])
    expected = exact["pixel_values_videos"][0, 0, meta["indices"]]
    torch.testing.assert_close(out["pixel_values_videos"][0, 0], expected, atol=0, rtol=0)


def test_snap_to_keyframes_keeps_each_clip_in_its_own_window(tiny_tokenizer, tmp_path):
    gop30 = {"x264-params": "keyint=30:min-keyint=30:scenecut=0"}
    path = write_pattern_video(tmp_path / "gop.mp4", 240, 32, 32, options=gop30)  # 8 s at 30 fps, keyframes 1 s apart
    proc = ProfVLMProcessor(tiny_tokenizer, num_frames=4, image_size=S, snap_to_keyframes=True, clip_seconds=2.0)
    meta = proc(videos=[{"ego": path}], return_metadata=True)["video_metadata"][0][0]
    clips = [meta["indices"][k * 4:(k + 1) * 4] for k in range(4)]
    for k, clip in enumerate(clips):  # window k holds frames 60k..60k+59: a keyframe of the next one does not count
        assert all(60 * k <= i < 60 * (k + 1) for i in clip), (k, clip)
        assert 60 * k in clip and 60 * k + 30 in clip, (k, clip)  # the window's own keyframes are read


def test_save_and_load_round_trip(tiny_tokenizer, views, tmp_path):
    proc = ProfVLMProcessor(tiny_tokenizer, num_video_tokens=2, num_frames=3, image_size=24, image_mean=[0.5, 0.4, 0.3],
                            image_std=[0.2, 0.25, 0.3], view_names=["ego", "exo1", "exo2"], frame_sampler="segments")
    proc.save_pretrained(tmp_path)
    files = {p.name for p in tmp_path.iterdir()}
    assert {"chat_template.jinja", "processor_config.json", "tokenizer.json"} <= files
    assert not [f for f in files if f.endswith(".py")], "code is exported where a checkpoint is finalised, not on save"
    assert (tmp_path / "chat_template.jinja").read_text() == proc.chat_template
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert type(loaded) is ProfVLMProcessor
    for key in ("video_token", "num_video_tokens", "num_frames", "image_size", "image_mean", "image_std",
                "view_names", "frame_sampler", "snap_to_keyframes", "chat_template"):
        assert getattr(loaded, key) == getattr(proc, key), key
    take, text = {"ego": views["ego"], "exo2": views["exo2"]}, ["<video>"]
    a, b = proc(text=text, videos=[take]), loaded(text=text, videos=[take])
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert a["pixel_values_videos"].shape == (1, 3, 3, 3, 24, 24)


def test_apply_chat_template_with_assistant_mask_and_video_blocks(tiny_tokenizer, views):
    proc = ProfVLMProcessor(tiny_tokenizer, num_frames=T, image_size=S, num_video_tokens=3)
    messages = build_messages("Early Expert", "Good tempo.\nMore knee bend.")
    out = proc.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    answer = [i for i, m in zip(out["input_ids"][0].tolist(), out["assistant_masks"][0]) if m]
    assert tiny_tokenizer.decode(answer) == format_target("Early Expert", "Good tempo.\nMore knee bend.") + "<|im_end|>"
    assert proc.build_prompt() == proc.apply_chat_template(build_messages(), add_generation_prompt=True)
    # HF-style video blocks that carry the take: the processor decodes it.
    blocks = [{"role": "user", "content": [{"type": "text", "text": "Rate.\n"}, {"type": "video", "video": views}]}]
    out = proc.apply_chat_template(blocks, tokenize=True, return_dict=True)
    assert out["pixel_values_videos"].shape == (1, 5, T, 3, S, S) and out["view_mask"].sum() == 5
    assert proc.model_input_names == ["input_ids", "attention_mask", "pixel_values_videos", "view_mask"]


@pytest.fixture()
def bad_files(tmp_path):
    (tmp_path / "folder.mp4").mkdir()
    return {
        "missing": tmp_path / "missing.mp4",
        "zero": write_zero_byte(tmp_path / "zero.mp4"),
        "corrupt": write_corrupt(tmp_path / "corrupt.mp4"),
        "audio": write_audio_only(tmp_path / "audio.wav"),
        "dir": tmp_path / "folder.mp4",
    }


@pytest.mark.parametrize(
    "kind, error, message",
    [("missing", FileNotFoundError, "not found"), ("zero", ValueError, "empty"), ("corrupt", ValueError, "corrupt"),
     ("audio", ValueError, "video stream"), ("dir", ValueError, "directory")],
)
def test_bad_files_name_the_view_and_the_file(processor, views, bad_files, kind, error, message):
    with pytest.raises(error, match=message) as err:
        processor(videos=[{"ego": views["ego"], "exo3": bad_files[kind]}])
    assert "view 'exo3'" in str(err.value) and str(bad_files[kind]) in str(err.value)


def test_bad_takes_are_clear_errors(processor, views):
    with pytest.raises(ValueError, match=r"unknown view name.*view 'exo7', file '.*cam01\.mp4'.*expected one of"):
        processor(videos=[{"ego": views["ego"], "exo7": views["exo1"]}])
    six = [views["ego"]] * 5 + [views["exo1"]]
    with pytest.raises(ValueError, match=r"got 6 views but at most 5 .*view '#5', file '.*cam01\.mp4'"):
        processor(videos=[six])
    with pytest.raises(ValueError, match="Empty input"):
        processor(videos=[])
    with pytest.raises(ValueError, match="take 1: expected at least one of the views"):
        processor(videos=[[views["ego"]], {"ego": None}])
    with pytest.raises(ValueError, match=r"view 'exo1': expected uint8 frames .*float32"):
        processor(videos=[{"exo1": np.zeros((2, 8, 8, 3), np.float32)}])
    with pytest.raises(ValueError, match="needs `text`, `videos` or both"):
        processor()
    with pytest.raises(ValueError, match="unknown frame sampler 'middle'"):
        processor(videos=[[views["ego"]]], frame_sampler="middle")


def test_constructor_checks(tiny_tokenizer):
    with pytest.raises(ValueError, match="unknown frame_sampler 'middle'"):
        ProfVLMProcessor(tiny_tokenizer, num_frames=T, image_size=S, frame_sampler="middle")
    with pytest.raises(ValueError, match="has no '<image>' token"):
        ProfVLMProcessor(tiny_tokenizer, num_frames=T, image_size=S, video_token="<image>")
    with pytest.raises(ValueError, match=r"needs its tower's num_frames and image_size \(got num_frames=None, "
                                         r"image_size=32\): build it with ProfVLMProcessor\.from_model_config"):
        ProfVLMProcessor(tiny_tokenizer, image_size=S)


def test_exported_files_import_only_shipped_modules_relatively(tmp_path):
    # transformers follows every `from .x import` (even inside try blocks) when loading remote code, so an exported
    # file may only import, relatively, modules that are exported next to it.
    from pathlib import Path

    from profvlm.code_export import EXPORTED_MODULES
    from transformers.dynamic_module_utils import get_relative_imports

    shipped = {Path(m).stem for m in EXPORTED_MODULES}
    root = Path(processing.__file__).parent
    for name in ("processing_profvlm.py", "text_format.py", "frame_sampling.py", "video_io.py"):
        flat = flatten_imports((root / name).read_text(), name)
        assert "from processing" not in flat and "from modeling_profvlm" not in flat
        (tmp_path / name).write_text(flat)
        assert set(get_relative_imports(str(tmp_path / name))) <= shipped, name
