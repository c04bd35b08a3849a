"""PyAV decoding: robust frame counts, seek-based reading equal to a full decode, RGB conversion, clear errors."""
import pickle

import av
import numpy as np
import pytest

from processing import video_io
from processing.video_io import (
    VideoReadError,
    frames_to_rgb,
    keyframes_near,
    probe_video,
    read_frames,
    read_frames_with_times,
)
from tests.video_fixtures import (
    pattern_frames,
    phone_vfr_times,
    read_time_code,
    stored_for_display,
    write_timed_video,
    write_alpha_video,
    write_audio_only,
    write_corrupt,
    write_gray_video,
    write_pattern_video,
    write_video,
    write_zero_byte,
)

GOP30 = {"x264-params": "keyint=30:min-keyint=30:scenecut=0"}  # a keyframe every second, B-frames on


def decode_all(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    return {
        "mp4": write_pattern_video(d / "clip.mp4", 90, 48, 64),
        "long": write_pattern_video(d / "long.mp4", 600, 32, 32, options=GOP30),
        "mkv": write_pattern_video(d / "clip.mkv", 40, 32, 48),  # Matroska states no frame count
        "h264": write_pattern_video(d / "clip.h264", 40, 32, 48),  # raw stream: no count, duration or pts
        "odd": write_pattern_video(d / "odd.mp4", 10, 33, 47, pix_fmt="yuv444p"),
        "gray": write_gray_video(d / "gray.mkv", 12, 32, 48),
        "alpha": write_alpha_video(d / "alpha.mov", 12, 32, 48),
    }


@pytest.mark.parametrize(
    "name, frames, size, source",
    [
        ("mp4", 90, (64, 48), "metadata"),
        ("long", 600, (32, 32), "metadata"),
        ("mkv", 40, (48, 32), "duration"),
        ("h264", 40, (48, 32), "demux"),
        ("odd", 10, (47, 33), "metadata"),
    ],
)
def test_probe_falls_back_when_metadata_is_missing(videos, name, frames, size, source):
    info = probe_video(videos[name])
    assert (info.num_frames, info.fps, (info.width, info.height)) == (frames, 30.0, size)
    assert info.frame_count_source == source
    assert info.num_frames == len(decode_all(videos[name]))


@pytest.mark.parametrize("threads", [0, 1])  # 1 also skips unreferenced frames before each target
@pytest.mark.parametrize("name", ["mp4", "long", "mkv", "h264", "odd"])
def test_read_frames_equals_full_decode(videos, name, threads):
    full = decode_all(videos[name])
    rng = np.random.default_rng(0)
    for _ in range(6):
        idx = sorted(rng.integers(0, len(full), size=int(rng.integers(1, 9))).tolist())
        np.testing.assert_array_equal(read_frames(videos[name], idx, threads=threads), full[idx])
    unordered = [len(full) - 1, 0, 5, 5]
    np.testing.assert_array_equal(read_frames(videos[name], unordered, threads=threads), full[unordered])
    every = list(range(len(full)))
    np.testing.assert_array_equal(read_frames(videos[name], every, threads=threads), full)


@pytest.mark.parametrize(
    "stated, from_duration, expected",
    [(900, 900, (900, "metadata")), (900, 901, (900, "metadata")), (0, 450, (450, "duration")),
     (900, 450, (None, "demux")), (0, 0, (None, "demux")), (12, 0, (12, "metadata"))],
)
def test_wrong_or_missing_metadata_falls_back_to_counting(stated, from_duration, expected):
    assert video_io._trusted_frame_count(stated, from_duration) == expected


LOSSLESS = {"crf": "0"}  # with yuv444p, decoding gives back exactly the same RGB for the same picture


@pytest.mark.parametrize("rotation, hflip", [(90, False), (270, False), (180, False), (0, True), (90, True)])
def test_frames_come_out_as_displayed(tmp_path, rotation, hflip):
    """A phone stores a portrait take sideways with a display matrix: frames and size must come out upright."""
    upright = pattern_frames(6, 32, 48)
    reference = write_video(tmp_path / "upright.mp4", upright, pix_fmt="yuv444p", options=LOSSLESS)
    stored = stored_for_display(upright, rotation, hflip)
    phone = write_video(tmp_path / "phone.mp4", stored, pix_fmt="yuv444p", options=LOSSLESS,
                        display_rotation=rotation, hflip=hflip)
    assert not np.array_equal(decode_all(phone), decode_all(reference))  # as stored, the picture differs
    info = probe_video(phone)
    assert (info.width, info.height, info.num_frames) == (48, 32, 6)  # the displayed size
    coded = probe_video(phone, displayed_size=False)  # without decoding a frame: the stored size
    assert (coded.width, coded.height) == (stored.shape[2], stored.shape[1])
    np.testing.assert_array_equal(read_frames(phone, [5, 0, 3], info=info), read_frames(reference, [5, 0, 3]))


@pytest.fixture(scope="module")
def vfr(tmp_path_factory):
    return write_timed_video(tmp_path_factory.mktemp("vfr") / "vfr.mp4", phone_vfr_times())


def test_a_variable_frame_rate_file_keeps_its_frame_times(vfr):
    info = probe_video(vfr)
    times = phone_vfr_times()
    assert (info.num_frames, info.frame_count_source, info.variable_frame_rate) == (150, "timestamps", True)
    assert info.duration == pytest.approx(24.0) and info.fps == pytest.approx(150 / 24.0)
    np.testing.assert_allclose(info.frame_times, times, atol=1e-3)
    assert info.time_of(120) == pytest.approx(times[120], abs=1e-3) and info.time_of(999) == info.frame_times[-1]


@pytest.mark.parametrize("threads", [0, 1])
def test_read_frames_on_a_vfr_file_reads_frames_by_rank_with_their_times(vfr, threads):
    full, times = decode_all(vfr), phone_vfr_times()
    info = probe_video(vfr)
    idx = [149, 0, 37, 99, 100, 101, 120, 120]
    decoded = read_frames_with_times(vfr, idx, threads=threads, info=info)
    np.testing.assert_array_equal(decoded.rgb, full[idx])
    assert decoded.times == pytest.approx([times[i] for i in idx], abs=1e-3)
    assert [read_time_code(f) for f in decoded.rgb] == pytest.approx([times[i] for i in idx], abs=1e-6)
    assert decoded.times_assumed_fps is None
    np.testing.assert_array_equal(read_frames(vfr, idx), full[idx])  # probed inside when no info is given


def test_frame_times_of_a_constant_rate_file_and_of_one_without_timestamps(videos):
    decoded = read_frames_with_times(videos["long"], [0, 75, 599])
    assert decoded.times == pytest.approx([0.0, 2.5, 599 / 30]) and decoded.times_assumed_fps is None
    raw = read_frames_with_times(videos["h264"], [0, 10])  # raw H.264: no timestamps, index / the stated rate
    assert raw.times == pytest.approx([0.0, 10 / 30]) and raw.times_assumed_fps == 30.0


def test_probing_a_constant_rate_file_reads_no_packets_and_a_vfr_file_reads_them_once(videos, vfr, monkeypatch):
    """Per-frame timestamps cost a demux: only files whose metadata disagree pay it (a 100-minute take would)."""
    demuxed, real_open = [], av.open
    monkeypatch.setattr(av, "open", lambda *a, **k: _CountingContainer(real_open(*a, **k), [], demuxed))
    assert not probe_video(videos["long"]).variable_frame_rate and demuxed == []
    probe_video(vfr)
    assert len(demuxed) == 150


def test_indices_past_the_end_repeat_the_last_frame(videos):
    full = decode_all(videos["mp4"])
    np.testing.assert_array_equal(read_frames(videos["mp4"], [89, 95]), full[[89, 89]])


class _CountingPacket:
    """Wraps a PyAV packet and records the frames its decoding outputs."""

    def __init__(self, packet, counter):
        self._packet, self._counter = packet, counter

    def __getattr__(self, name):
        return getattr(self._packet, name)

    def decode(self):
        frames = self._packet.decode()
        self._counter.extend(frames)
        return frames


class _CountingContainer:
    """Wraps a PyAV container and records the frames it decodes (through `decode` or demuxed packets) and, when
    given `packets`, the non-empty packets it demuxes (the demuxer ends with an empty flush packet)."""

    def __init__(self, container, counter, packets=None):
        self._container, self._counter, self._packets = container, counter, packets

    def __getattr__(self, name):
        return getattr(self._container, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._container.__exit__(*exc)

    def decode(self, *args, **kwargs):
        for frame in self._container.decode(*args, **kwargs):
            self._counter.append(frame)
            yield frame

    def demux(self, *args, **kwargs):
        for packet in self._container.demux(*args, **kwargs):
            if self._packets is not None and packet.size:
                self._packets.append(packet)
            yield _CountingPacket(packet, self._counter)


def count_decoded(monkeypatch, fn) -> tuple[object, int]:
    decoded, real_open = [], av.open
    monkeypatch.setattr(av, "open", lambda *a, **k: _CountingContainer(real_open(*a, **k), decoded))
    try:
        return fn(), len(decoded)
    finally:
        monkeypatch.undo()


def test_read_frames_seeks_instead_of_decoding_everything(videos, monkeypatch):
    idx = [75, 225, 375, 525]  # far apart in a 600-frame clip with a keyframe every 30 frames
    full = decode_all(videos["long"])
    frames, decoded = count_decoded(monkeypatch, lambda: read_frames(videos["long"], idx))
    np.testing.assert_array_equal(frames, full[idx])
    # Each target costs at most a GOP (30) plus the decoder's reorder delay, far fewer than 600 frames.
    assert decoded <= 4 * 40, f"decoded {decoded} frames for 4 targets"
    # Single-threaded, unreferenced B-frames before each target are not decoded at all.
    frames, skipping = count_decoded(monkeypatch, lambda: read_frames(videos["long"], idx, threads=1))
    np.testing.assert_array_equal(frames, full[idx])
    assert skipping < 0.8 * decoded, (skipping, decoded)


def test_keyframes_near_finds_the_gop_boundaries(videos):
    assert keyframes_near(videos["long"], [75, 300]) == [60, 90, 300]
    assert keyframes_near(videos["h264"], [10]) == []  # no timestamps: nothing to snap to


def test_gray_video_is_converted_to_rgb(videos):
    frames = read_frames(videos["gray"], [0, 11])
    assert frames.shape == (2, 32, 48, 3) and frames.dtype == np.uint8
    expected = pattern_frames(12, 32, 48)[[0, 11], ..., 0]  # FFV1 is lossless
    for c in range(3):
        np.testing.assert_array_equal(frames[..., c], expected)


def test_alpha_video_is_converted_to_rgb(videos):
    frames = read_frames(videos["alpha"], [3, 7])
    assert frames.shape == (2, 32, 48, 3)
    np.testing.assert_array_equal(frames, pattern_frames(12, 32, 48)[[3, 7]])  # PNG is lossless


def test_decoded_frames_become_rgb_uint8():
    import torch
    from PIL import Image

    rgb = pattern_frames(3, 8, 10)
    np.testing.assert_array_equal(frames_to_rgb(torch.from_numpy(rgb).permute(0, 3, 1, 2)), rgb)  # TCHW tensor
    np.testing.assert_array_equal(frames_to_rgb([Image.fromarray(f) for f in rgb]), rgb)
    np.testing.assert_array_equal(frames_to_rgb(np.concatenate([rgb, rgb[..., :1]], axis=-1)), rgb)  # alpha dropped
    gray = frames_to_rgb(rgb[..., 0])  # (T, H, W)
    assert gray.shape == (3, 8, 10, 3) and (gray == rgb[..., :1]).all()
    with pytest.raises(ValueError, match=r"view 'exo1': expected uint8 frames .*float64 \(3, 8, 10, 3\)"):
        frames_to_rgb(rgb.astype(float), "exo1")
    with pytest.raises(ValueError, match="view 'ego': expected a video path, .*got int"):
        frames_to_rgb(5, "ego")


@pytest.fixture()
def bad_files(tmp_path):
    (tmp_path / "a_directory.mp4").mkdir()
    return {
        "zero": write_zero_byte(tmp_path / "empty.mp4"),
        "corrupt": write_corrupt(tmp_path / "corrupt.mp4"),
        "audio": write_audio_only(tmp_path / "audio_only.wav"),
        "dir": tmp_path / "a_directory.mp4",
    }


def test_missing_file_raises_file_not_found_naming_view_and_file(tmp_path):
    path = tmp_path / "nope.mp4"
    for fn in (probe_video, lambda p, view: read_frames(p, [0], view)):
        with pytest.raises(FileNotFoundError, match=r"view 'exo3', file '.*nope\.mp4'"):
            fn(path, view="exo3")


@pytest.mark.parametrize(
    "kind, expected",
    [("zero", "empty \\(0-byte\\)"), ("corrupt", "cannot be opened"), ("audio", "expected a video stream"),
     ("dir", "got a directory")],
)
def test_unusable_files_raise_value_error_naming_view_and_file(bad_files, kind, expected):
    path = bad_files[kind]
    for fn in (probe_video, lambda p, view: read_frames(p, [0], view)):
        with pytest.raises(VideoReadError, match=expected) as err:
            fn(path, view="ego")
        assert isinstance(err.value, ValueError)
        assert "view 'ego'" in str(err.value) and str(path) in str(err.value)
        # which file failed, as data: extraction masks that view and reads the take's others
        assert (err.value.view, err.value.path) == ("ego", str(path))
        copy = pickle.loads(pickle.dumps(err.value))  # across DataLoader worker processes
        assert (type(copy), str(copy), copy.view, copy.path) == (VideoReadError, str(err.value), "ego", str(path))


def test_bad_indices_raise(videos):
    with pytest.raises(ValueError, match="non-empty list of frame indices"):
        read_frames(videos["mp4"], [])
    with pytest.raises(ValueError, match="frame indices >= 0"):
        read_frames(videos["mp4"], [3, -1])


def test_errors_without_a_view_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^file '.*x\.mp4': video file not found"):
        probe_video(tmp_path / "x.mp4")
    assert video_io.describe_source("a.mp4", "exo1") == "view 'exo1', file 'a.mp4'"


def test_a_text_file_is_not_a_video_even_though_ffmpeg_opens_it(tmp_path):
    from processing.video_io import VideoReadError, probe_video

    notes = tmp_path / "notes.txt"
    notes.write_text("Coach's notes: keep the elbow in.\n" * 50)
    with pytest.raises(VideoReadError, match=r"view 'ego', file '.*notes\.txt': not a video, it is a text file"):
        probe_video(notes, "ego")
