# Video decoding with PyAV: robust frame counts, and reading only the frames asked for by seeking to keyframes.
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from modeling_profvlm.take_inputs import is_clip

# FFmpeg demuxers that render text (ASCII/ANSI art) as frames: through them a text file opens as a "video".
TEXT_DEMUXERS = frozenset({"tty", "bin", "xbin", "adf", "idf"})
# Used only when a stream states no frame rate at all (EgoExo4D's frame-aligned videos are 30 fps).
DEFAULT_FPS = 30.0


class VideoReadError(ValueError):
    """A path that exists but is not a usable video: empty, corrupt, a directory, or without a video stream."""


@dataclass(frozen=True)
class VideoInfo:
    """What `probe_video` learnt about a file; `frame_count_source` says which fallback gave `num_frames`."""

    num_frames: int
    fps: float
    width: int
    height: int
    frame_count_source: str = "metadata"  # "metadata" | "duration" | "demux"


def describe_source(path: str | Path, view: str | None = None) -> str:
    """The `view 'x', file '...'` prefix every error message starts with."""
    return f"view '{view}', file '{path}'" if view else f"file '{path}'"


def _open(path: str | Path, view: str | None):
    """Open `path` and return (container, first video stream), or raise an error naming view and file."""
    path = Path(path)
    where = describe_source(path, view)
    if not path.exists():
        raise FileNotFoundError(f"{where}: video file not found.")
    if path.is_dir():
        raise VideoReadError(f"{where}: expected a video file, got a directory.")
    if path.stat().st_size == 0:
        raise VideoReadError(f"{where}: expected a video file, got an empty (0-byte) file.")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as err:
        raise VideoReadError(f"{where}: cannot be opened as a video (corrupt or unsupported): {err}") from err
    if container.format.name in TEXT_DEMUXERS:
        container.close()
        raise VideoReadError(f"{where}: not a video, it is a text file (FFmpeg would draw its characters as frames).")
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        container.close()
        raise VideoReadError(f"{where}: expected a video stream, found only {', '.join(kinds)} stream(s).")
    return container, container.streams.video[0]


def _stream_fps(stream) -> float | None:
    # guessed_rate weighs r_frame_rate and avg_frame_rate; raw H.264 reports a bogus 25 as average_rate.
    for rate in (stream.guessed_rate, stream.average_rate, stream.base_rate):
        if rate:
            return float(rate)
    return None


def _duration_seconds(container, stream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return None


def _demux_count(container, stream) -> int:
    # Counting packets needs no decoding: for video codecs one packet is one frame.
    return sum(1 for packet in container.demux(stream) if packet.size)


def _trusted_frame_count(stated: int, from_duration: int) -> tuple[int | None, str]:
    """(count, source) from the stated count and duration x rate; (None, "demux") when neither can be trusted:
    both missing, or they disagree by more than 5 % (one of them is wrong, and only counting can tell which)."""
    if stated > 0 and (from_duration <= 0 or abs(stated - from_duration) <= max(2, 0.05 * stated)):
        return stated, "metadata"
    if stated <= 0 and from_duration > 0:
        return from_duration, "duration"
    return None, "demux"


def probe_video(path: str | Path, view: str | None = None) -> VideoInfo:
    """Frame count, fps and size of the first video stream. Stream metadata can be missing or wrong, so the
    count comes from the stated frame count, else duration x rate, else a demux count; when the first two
    disagree by more than 5 %, the demux count decides."""
    container, stream = _open(path, view)
    with container:
        fps = _stream_fps(stream)
        duration = _duration_seconds(container, stream)
        from_duration = round(duration * fps) if duration and fps else 0
        num_frames, source = _trusted_frame_count(stream.frames or 0, from_duration)
        if num_frames is None:
            try:
                num_frames, source = _demux_count(container, stream), "demux"
            except av.FFmpegError as err:
                raise VideoReadError(f"{describe_source(path, view)}: cannot read packets: {err}") from err
        if fps is None:
            fps = num_frames / duration if duration else DEFAULT_FPS
        width, height = stream.codec_context.width, stream.codec_context.height
    if num_frames <= 0:
        raise VideoReadError(f"{describe_source(path, view)}: expected at least one video frame, found 0.")
    return VideoInfo(num_frames=num_frames, fps=fps, width=width, height=height, frame_count_source=source)


def keyframes_near(path: str | Path, indices: Sequence[int], view: str | None = None) -> list[int]:
    """Indices of the keyframes just before and just after each of `indices`, found by seeking and reading one
    packet each (no decoding). Empty for streams without timestamps."""
    container, stream = _open(path, view)
    found: set[int] = set()
    with container:
        if stream.start_time is None:
            return []
        fps, start = _stream_fps(stream) or DEFAULT_FPS, stream.start_time
        for idx in sorted(set(int(i) for i in indices)):
            for backward in (True, False):
                try:
                    container.seek(start + int(idx / fps / stream.time_base), stream=stream, backward=backward)
                    packet = next((p for p in container.demux(stream) if p.size), None)
                except av.FFmpegError:  # e.g. no keyframe after the last one
                    continue
                if packet is not None and packet.is_keyframe and packet.pts is not None:
                    found.add(round(float((packet.pts - start) * stream.time_base) * fps))
    return sorted(found)


class _NoTimestamps(Exception):
    """Frames carry no pts (e.g. raw H.264), so their index cannot be known after a seek."""


class _LandedLate(Exception):
    """A seek landed after the wanted frame (a stream with an unusual index); decode from the start instead."""


# Decoding on is cheaper than a seek (which restarts at a keyframe, often 1-2 s back) for small gaps.
_SEEK_GAP = 48


def _collect(decode_from, wanted: list[int], index_of, use_seek: bool) -> dict[int, av.VideoFrame]:
    """Keep, for every wanted index t (ascending), the frame on screen at t: the last one with index <= t.

    `decode_from(pending)` yields frames from the keyframe at or before the next pending index `pending[0]`
    (from the start when not seeking); it may read `pending` as it goes."""
    out: dict[int, av.VideoFrame] = {}
    pending = deque(wanted)
    frames, prev, sought = None, None, None  # prev: (index, frame) of the last decoded frame

    def seek_ahead(position: int) -> bool:
        # Seek when the next target is far ahead, but never twice for one target (its keyframe may be far back).
        return use_seek and pending[0] != sought and pending[0] - position > _SEEK_GAP

    while pending:
        if frames is None or seek_ahead(prev[0]):
            frames, prev, sought = decode_from(pending), None, pending[0]
        for frame in frames:
            idx = index_of(frame)
            if prev is None and idx > pending[0]:
                if use_seek:
                    raise _LandedLate
                prev = (idx, frame)  # the stream starts after the wanted index: its first frame stands in
            while pending and pending[0] < idx:
                out[pending.popleft()] = prev[1]
            if pending and pending[0] == idx:
                out[pending.popleft()] = frame
            prev = (idx, frame)
            if not pending or seek_ahead(idx):
                break
        else:  # end of stream: indices past the real end (metadata over-counted) repeat the last frame
            while pending and prev is not None:
                out[pending.popleft()] = prev[1]
            break
    return out


def _decode_skipping_unreferenced(container, stream, pending: deque, pts_index) -> Iterator[av.VideoFrame]:
    """Decode packet by packet, skipping frames that no other frame references (most B-frames) while they lie
    before the next wanted index: they cannot be on screen at a target, and skipping them saves ~25 % of the
    decoding between a keyframe and a target."""
    context = stream.codec_context
    for packet in container.demux(stream):
        before_target = packet.pts is not None and bool(pending) and pts_index(packet.pts) < pending[0] - 1
        context.skip_frame = "NONREF" if before_target else "DEFAULT"
        yield from packet.decode()


def read_frames(path: str | Path, indices: Sequence[int], view: str | None = None, threads: int = 0) -> np.ndarray:
    """Decode frames `indices` (any order, repeats allowed) as (T, H, W, 3) uint8 RGB.

    Seeks to the keyframe before each far-away index instead of decoding the whole file; gray and alpha
    videos are converted to RGB. Indices past the real end of a stream repeat its last frame. `threads` is the
    decoder's thread count (0: FFmpeg decides); 1 is the cheapest when several files decode in parallel."""
    indices = [int(i) for i in indices]
    if not indices or min(indices) < 0:
        where = describe_source(path, view)
        raise ValueError(f"{where}: expected a non-empty list of frame indices >= 0, got {indices}.")
    wanted = sorted(set(indices))
    try:
        frames = _read_wanted(path, view, wanted, "seek", threads)
    except _NoTimestamps:
        frames = _read_wanted(path, view, wanted, "count", threads)
    except _LandedLate:
        frames = _read_wanted(path, view, wanted, "pts", threads)
    if frames and len(frames) < len(wanted):  # a seek found nothing to decode: read from the start instead
        frames = _read_wanted(path, view, wanted, "pts", threads)
    if not frames:
        raise VideoReadError(f"{describe_source(path, view)}: expected decodable video frames, decoded none.")
    rgb = {i: frame.to_ndarray(format="rgb24") for i, frame in frames.items()}
    return np.stack([rgb[i] for i in indices])


def _read_wanted(path, view, wanted: list[int], mode: str, threads: int) -> dict[int, av.VideoFrame]:
    """mode "seek": seek + pts indices; "pts": decode from the start, pts indices; "count": count frames."""
    container, stream = _open(path, view)
    with container:
        stream.thread_type, stream.codec_context.thread_count = "AUTO", threads
        fps = _stream_fps(stream) or DEFAULT_FPS
        start = stream.start_time or 0
        if mode == "seek" and stream.start_time is None:
            raise _NoTimestamps
        counter = iter(range(1 << 62))
        pts_index = lambda pts: round(float((pts - start) * stream.time_base) * fps)  # noqa: E731

        def index_of(frame) -> int:
            if mode == "count":
                return next(counter)
            if frame.pts is None:
                raise _NoTimestamps
            return pts_index(frame.pts)

        def decode_from(pending: deque) -> Iterator:
            if mode != "seek":
                return container.decode(stream)
            # Seek to the keyframe at or before the next target; decoding resumes from there.
            offset = start + int(pending[0] / fps / stream.time_base)
            container.seek(offset, stream=stream, backward=True, any_frame=False)
            if threads != 1:  # frame threads copy decoder settings with a lag, so a skip could hit a target
                return container.decode(stream)
            return _decode_skipping_unreferenced(container, stream, pending, pts_index)

        try:
            return _collect(decode_from, wanted, index_of, use_seek=mode == "seek")
        except av.FFmpegError as err:
            raise VideoReadError(f"{describe_source(path, view)}: decoding failed (corrupt video?): {err}") from err


def frames_to_rgb(frames, view: str | None = None) -> np.ndarray:
    """Already-decoded frames (numpy or torch, THWC or TCHW, uint8; or a list of PIL images / HWC arrays) as
    (T, H, W, 3) uint8 RGB: gray is repeated to three channels, alpha dropped."""
    where = f"view '{view}'" if view else "frames"
    if isinstance(frames, (list, tuple)) and is_clip(frames):  # a list of frames (the shared input classifier)
        frames = np.stack([np.asarray(f.convert("RGB")) if hasattr(f, "convert") else np.asarray(f) for f in frames])
    if hasattr(frames, "numpy") and hasattr(frames, "permute"):  # a torch tensor (torch stays optional here)
        if frames.ndim == 4 and frames.shape[-1] not in (1, 3, 4) and frames.shape[1] in (1, 3, 4):
            frames = frames.permute(0, 2, 3, 1)  # [T, C, H, W] -> [T, H, W, C]
        frames = frames.cpu().numpy()
    if not isinstance(frames, np.ndarray):
        raise ValueError(f"{where}: expected a video path, a uint8 array/tensor (T, H, W, 3) or a list of PIL "
                         f"images; got {type(frames).__name__}.")
    if frames.ndim == 3:  # (T, H, W) grayscale
        frames = frames[..., None]
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] not in (1, 3, 4) or len(frames) == 0:
        raise ValueError(f"{where}: expected uint8 frames shaped (T, H, W, 3) with T >= 1; "
                         f"got {frames.dtype} {tuple(frames.shape)}.")
    if frames.shape[-1] == 1:
        return np.repeat(frames, 3, axis=-1)
    return frames[..., :3]


__all__ = [
    "DEFAULT_FPS",
    "VideoInfo",
    "VideoReadError",
    "describe_source",
    "frames_to_rgb",
    "keyframes_near",
    "probe_video",
    "read_frames",
]
