"""Small synthetic videos for the processing tests, written with PyAV (its wheel bundles FFmpeg)."""
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def pattern_frames(num_frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """(T, H, W, 3) uint8 frames whose content changes with the frame index, so frames are told apart.

    A smooth gradient (codec-friendly) plus a bright square whose position encodes the index."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=3)
    yy, xx = np.mgrid[0:height, 0:width]
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    side = max(4, min(height, width) // 4)
    for i in range(num_frames):
        frames[i, ..., 0] = (base[0] + xx * 255 // max(width - 1, 1) + 7 * i) % 256
        frames[i, ..., 1] = (base[1] + yy * 255 // max(height - 1, 1) + 3 * i) % 256
        frames[i, ..., 2] = (base[2] + 11 * i) % 256
        top = (i * 5) % max(height - side, 1)
        left = (i * 3) % max(width - side, 1)
        frames[i, top : top + side, left : left + side] = 255
    return frames


def write_video(
    path: str | Path,
    frames: np.ndarray,
    fps: int = 30,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    options: dict | None = None,
    display_rotation: float | None = None,
    hflip: bool = False,
) -> Path:
    """Encode (T, H, W, C) uint8 frames to `path`; C is 3 (rgb24), 4 (rgba) or 1/absent (gray).

    `display_rotation` (degrees counter-clockwise) and `hflip` write a display matrix (MP4/MOV), as phones do for
    portrait recordings: a player turns the stored frames by it, then mirrors them."""
    path = Path(path)
    frames = np.asarray(frames)
    in_format = {3: "rgb24", 4: "rgba", 1: "gray"}[frames.shape[-1] if frames.ndim == 4 else 1]
    if frames.ndim == 4 and frames.shape[-1] == 1:
        frames = frames[..., 0]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps, options=options or {})
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = pix_fmt
        if display_rotation is not None or hflip:
            stream.set_display_rotation(display_rotation or 0, hflip=hflip)
        for img in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format=in_format)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():  # flush delayed (B-)frames
            container.mux(packet)
    return path


def stored_for_display(upright: np.ndarray, display_rotation: int, hflip: bool = False) -> np.ndarray:
    """(T, H, W, C) frames as a camera stores them so that a player showing them with `display_rotation` (counter-
    clockwise, then mirrored if `hflip`) displays `upright`: the inverse of that transform."""
    mirrored = upright[:, :, ::-1] if hflip else upright
    return np.ascontiguousarray(np.rot90(mirrored, -display_rotation // 90, axes=(1, 2)))


TIME_CODE_BITS, TIME_CODE_BLOCK = 16, 16  # a 4 x 4 grid of 16-px blocks: 64 x 64 frames


def time_code_frame(seconds: float) -> np.ndarray:
    """A 64 x 64 RGB frame whose black/white blocks spell round(seconds * 100) in binary (robust to codec noise)."""
    code, side = round(seconds * 100), int(TIME_CODE_BITS**0.5)
    bits = [(code >> k) & 1 for k in range(TIME_CODE_BITS)]
    blocks = np.array(bits, dtype=np.uint8).reshape(side, side) * 255
    return np.repeat(np.repeat(blocks, TIME_CODE_BLOCK, 0), TIME_CODE_BLOCK, 1)[..., None].repeat(3, axis=-1)


def read_time_code(frame: np.ndarray) -> float:
    """The seconds a `time_code_frame` spells, from (64, 64, C) pixels in [0, 255] (the centre of each block)."""
    side, half = int(TIME_CODE_BITS**0.5), TIME_CODE_BLOCK // 2
    gray = np.asarray(frame, dtype=np.float64).mean(axis=-1)
    centres = gray[half::TIME_CODE_BLOCK, half::TIME_CODE_BLOCK][:side, :side].reshape(-1)
    return sum(1 << k for k, value in enumerate(centres) if value > 127) / 100


def write_timed_video(path: str | Path, times: Sequence[float], codec: str = "libx264") -> Path:
    """A clip with one frame at each of `times` (seconds, ascending; gaps may vary: variable frame rate), each
    frame spelling its own time (`time_code_frame`). The stated rate is the first interval's."""
    path = Path(path)
    time_base = Fraction(1, 1000)
    with av.open(str(path), "w") as container:
        first_interval = Fraction(times[1] - times[0]).limit_denominator(1000)
        stream = container.add_stream(codec, rate=1 / first_interval)
        stream.width = stream.height = TIME_CODE_BLOCK * int(TIME_CODE_BITS**0.5)
        stream.pix_fmt, stream.time_base, stream.codec_context.time_base = "yuv420p", time_base, time_base
        for t in times:
            frame = av.VideoFrame.from_ndarray(time_code_frame(t), format="rgb24")
            frame.pts, frame.time_base = round(t * 1000), time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def phone_vfr_times(fast_seconds: float = 4.0, total_seconds: float = 24.0) -> list[float]:
    """25 fps for `fast_seconds`, then 2.5 fps to `total_seconds` (a phone or screen recorder slowing down)."""
    fast = [i * 0.04 for i in range(round(fast_seconds / 0.04))]
    return fast + [fast_seconds + i * 0.4 for i in range(round((total_seconds - fast_seconds) / 0.4))]


def write_pattern_video(
    path: str | Path, num_frames: int = 30, height: int = 48, width: int = 64, fps: int = 30, seed: int = 0, **kwargs
) -> Path:
    """A colour-pattern clip (x264, yuv420p by default)."""
    return write_video(path, pattern_frames(num_frames, height, width, seed), fps=fps, **kwargs)


def write_gray_video(path: str | Path, num_frames: int = 12, height: int = 32, width: int = 48) -> Path:
    """A single-channel clip (FFV1 keeps the gray pix_fmt, libx264 here does not; use a .mkv path)."""
    gray = pattern_frames(num_frames, height, width)[..., :1]
    return write_video(path, gray, codec="ffv1", pix_fmt="gray")


def write_alpha_video(path: str | Path, num_frames: int = 12, height: int = 32, width: int = 48) -> Path:
    """An RGBA clip (PNG codec keeps the alpha plane; use a .mov or .mkv path)."""
    rgb = pattern_frames(num_frames, height, width)
    alpha = np.full(rgb.shape[:-1] + (1,), 128, dtype=np.uint8)
    return write_video(path, np.concatenate([rgb, alpha], axis=-1), codec="png", pix_fmt="rgba")


def write_audio_only(path: str | Path, seconds: float = 0.2, rate: int = 8000) -> Path:
    """A file with an audio stream and no video stream (.wav)."""
    path = Path(path)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=rate)
        samples = np.zeros((1, int(seconds * rate)), dtype=np.int16)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_zero_byte(path: str | Path) -> Path:
    """An empty file with a video extension."""
    path = Path(path)
    path.write_bytes(b"")
    return path


def write_corrupt(path: str | Path, size: int = 4096, seed: int = 0) -> Path:
    """Random bytes with a video extension."""
    path = Path(path)
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes())
    return path
