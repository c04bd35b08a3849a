# Video decoding with PyAV: robust frame counts, and reading only the frames asked for by seeking to keyframes.
# Frames come out as displayed (the display matrix's rotation/mirroring applied) and carry their presentation times.
import bisect
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import av
import numpy as np

from modeling_profvlm.take_inputs import is_clip

# FFmpeg demuxers that render text (ASCII/ANSI art) as frames: through them a text file opens as a "video".
TEXT_DEMUXERS = frozenset({"tty", "bin", "xbin", "adf", "idf"})
# Used only when a stream states no frame rate at all (EgoExo4D's frame-aligned videos are 30 fps).
DEFAULT_FPS = 30.0


class VideoReadError(ValueError):
    """A path that exists but is not a usable video: empty, corrupt, a directory, or without a video stream. Its
    `path` and `view` say which file (a caller reading many views can mask the one that failed and go on)."""

    def __init__(self, path: str | Path, view: str | None, problem: str):
        super().__init__(f"{describe_source(path, view)}: {problem}")
        self.path, self.view, self.problem = str(path), view, problem

    def __reduce__(self):  # rebuilt from its parts across processes (DataLoader workers), not from the message
        return type(self), (self.path, self.view, self.problem)


@dataclass(frozen=True)
class VideoInfo:
    """What `probe_video` learnt about a file; `frame_count_source` says which fallback gave `num_frames`.

    `width`/`height` are the displayed size (a portrait phone video stored sideways is reported upright).
    `duration` is the take's length in seconds. On a variable-frame-rate file ("timestamps") `frame_pts` holds every
    frame's presentation timestamp (stream time base, presentation order), `frame_times` the same in seconds from
    the first frame, and `fps` is the average rate; on a constant-rate file both are None and frame i is shown at
    i / fps."""

    num_frames: int
    fps: float
    width: int
    height: int
    frame_count_source: str = "metadata"  # "metadata" | "duration" | "demux" | "timestamps" (VFR)
    duration: float | None = None
    frame_pts: tuple[int, ...] | None = field(default=None, repr=False)
    frame_times: tuple[float, ...] | None = field(default=None, repr=False)

    @property
    def variable_frame_rate(self) -> bool:
        """Whether frame times come from the file's per-frame timestamps (index / fps would be wrong)."""
        return self.frame_times is not None

    def time_of(self, index: int) -> float:
        """Presentation time in seconds (from the first frame) of frame `index`; past the end, the last frame's."""
        index = min(max(int(index), 0), self.num_frames - 1)
        return self.frame_times[index] if self.frame_times is not None else index / self.fps


class DecodedFrames(NamedTuple):
    """`read_frames_with_times`'s result: the frames as displayed and the presentation time of each.

    `times` are seconds from the first frame, taken from each decoded frame's own timestamp; a stream without
    timestamps (raw H.264) gets index / fps instead, and `times_assumed_fps` is then that fps (else None)."""

    rgb: np.ndarray
    times: list[float]
    times_assumed_fps: float | None


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
        raise VideoReadError(path, view, "expected a video file, got a directory.")
    if path.stat().st_size == 0:
        raise VideoReadError(path, view, "expected a video file, got an empty (0-byte) file.")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as err:
        raise VideoReadError(path, view, f"cannot be opened as a video (corrupt or unsupported): {err}") from err
    if container.format.name in TEXT_DEMUXERS:
        container.close()
        raise VideoReadError(path, view, "not a video, it is a text file (FFmpeg would draw its characters as frames).")
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        container.close()
        raise VideoReadError(path, view, f"expected a video stream, found only {', '.join(kinds)} stream(s).")
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


def _demux_pts(container, stream) -> tuple[int, list[int] | None]:
    """(frame count, sorted presentation timestamps or None when a packet has none). Reading packets needs no
    decoding (for video codecs one packet is one frame); sorting undoes the B-frame decode order."""
    count, pts, timed = 0, [], True
    for packet in container.demux(stream):
        if packet.size:
            count += 1
            if packet.pts is None:
                timed = False
            elif timed:
                pts.append(packet.pts)
    return count, sorted(pts) if timed and pts else None


def _trusted_frame_count(stated: int, from_duration: int) -> tuple[int | None, str]:
    """(count, source) from the stated count and duration x rate; (None, "demux") when neither can be trusted:
    both missing, or they disagree by more than 0.5 % (at least 2 frames): then one of them is wrong or the file
    has a variable frame rate, and only its timestamps can tell (a larger error would move index / fps times)."""
    if stated > 0 and (from_duration <= 0 or abs(stated - from_duration) <= max(2, 0.005 * stated)):
        return stated, "metadata"
    if stated <= 0 and from_duration > 0:
        return from_duration, "duration"
    return None, "demux"


def _is_constant_rate(pts: list[int], time_base: Fraction, fps: float) -> bool:
    """Whether frame i of the sorted timestamps `pts` sits at i / fps (to the nearest frame), as index maths assumes."""
    seconds = (np.asarray(pts, dtype=np.float64) - pts[0]) * float(time_base)
    return bool(np.array_equal(np.round(seconds * fps), np.arange(len(pts))))


def _variable_rate_duration(pts: list[int], time_base: Fraction, stated: float | None) -> float:
    """A VFR take's length: to its last frame plus that frame's interval (the local rate at the end), or the
    stream's stated duration when longer (the last frame held)."""
    span = float((pts[-1] - pts[0]) * time_base)
    last = float((pts[-1] - pts[-2]) * time_base) if len(pts) > 1 else 1 / DEFAULT_FPS
    return max(span + last, stated or 0.0)


def _timing(container, stream, path, view) -> dict:
    """num_frames, fps, frame_count_source, duration and (VFR only) frame_pts/frame_times of an opened stream.

    A constant-rate file is read from its metadata alone. Only when the stated count disagrees with duration x rate,
    or the timestamps' own rate (r_frame_rate) differs from the frame rate used, are the packets demuxed (no
    decoding) to count them and check their timestamps; those of a VFR file are kept."""
    fps = _stream_fps(stream)
    duration = _duration_seconds(container, stream)
    from_duration = round(duration * fps) if duration and fps else 0
    num_frames, source = _trusted_frame_count(stream.frames or 0, from_duration)
    base = float(stream.base_rate) if stream.base_rate else None
    if source == "metadata" and duration and base and fps and abs(base - fps) > 0.005 * fps:
        # FFmpeg picks the average rate over r_frame_rate when timestamps are finer than any frame rate (> 210/s):
        # stated count and duration then agree by construction, and only the timestamps tell whether it is VFR.
        num_frames, source = None, "demux"
    frame_pts = frame_times = None
    if num_frames is None:
        try:
            num_frames, pts = _demux_pts(container, stream)
        except av.FFmpegError as err:
            raise VideoReadError(path, view, f"cannot read packets: {err}") from err
        if pts and fps and not _is_constant_rate(pts, stream.time_base, fps):
            source, frame_pts = "timestamps", tuple(pts)
            seconds = (np.asarray(pts, dtype=np.float64) - pts[0]) * float(stream.time_base)
            frame_times = tuple(seconds.tolist())
            stated = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None
            duration = _variable_rate_duration(pts, stream.time_base, stated)
            fps = num_frames / duration
    if fps is None:
        fps = num_frames / duration if duration else DEFAULT_FPS
    if frame_times is None:  # constant rate: the take is its frames at fps (the samplers' equal parts agree)
        duration = num_frames / fps
    return {"num_frames": num_frames, "fps": fps, "frame_count_source": source, "duration": duration,
            "frame_pts": frame_pts, "frame_times": frame_times}


def _display_matrix(frame) -> np.ndarray | None:
    """The frame's 3x3 display matrix (FFmpeg's 16.16 fixed-point layout, row-major) or None. PyAV exposes no
    stream side data when reading, but the decoder attaches the container's matrix (e.g. MP4/MOV `tkhd`, where
    phones write it) to every frame."""
    side = frame.side_data.get("DISPLAYMATRIX")
    return None if side is None else np.frombuffer(bytes(side), dtype=np.int32)


def _transposes(matrix: np.ndarray | None) -> bool:
    """Whether the display matrix turns the picture by 90 or 270 degrees (width and height swap)."""
    return matrix is not None and abs(int(matrix[1])) + abs(int(matrix[3])) > abs(int(matrix[0])) + abs(int(matrix[4]))


def as_displayed(rgb: np.ndarray, matrix: Sequence[int] | None) -> np.ndarray:
    """(H, W, C) pixels turned and mirrored as the display `matrix` says, the way FFmpeg's player autorotates
    (fftools `transpose`/`hflip`/`vflip` for axis-aligned matrices). Other angles are left as decoded: no phone
    writes them, and turning by them would need resampling."""
    if matrix is None:
        return rgb
    a, b, c, d = (int(matrix[i]) for i in (0, 1, 3, 4))
    if not _transposes(np.asarray(matrix)):
        if a < 0:
            rgb = rgb[:, ::-1]
        if d < 0:
            rgb = rgb[::-1]
        return rgb
    if b < 0 < c:  # 90 degrees counter-clockwise (a portrait phone video: frame.rotation == 90)
        return np.rot90(rgb, 1)
    if c < 0 < b:  # 90 degrees clockwise (frame.rotation == -90, i.e. 270)
        return np.rot90(rgb, -1)
    if b > 0 and c > 0:  # turned and mirrored: a plain transpose
        return rgb.transpose(1, 0, *range(2, rgb.ndim))
    return np.rot90(rgb, 2).transpose(1, 0, *range(2, rgb.ndim))  # the other diagonal


def _displayed_size(container, stream) -> tuple[int, int]:
    """(width, height) as displayed. The display matrix is only exposed on decoded frames, so the first frame is
    decoded (one keyframe); a file whose first frame does not decode keeps its coded size, and reading reports it."""
    width, height = stream.codec_context.width, stream.codec_context.height
    try:
        frame = next(iter(container.decode(stream)), None)
    except av.FFmpegError:
        return width, height
    if frame is None:
        return width, height
    width, height = frame.width, frame.height
    return (height, width) if _transposes(_display_matrix(frame)) else (width, height)


def _probe(path: str | Path, view: str | None, displayed_size: bool) -> VideoInfo:
    """`probe_video`; without `displayed_size` nothing is decoded and the size is the coded one (for readers)."""
    container, stream = _open(path, view)
    with container:
        width, height = stream.codec_context.width, stream.codec_context.height
        timing = _timing(container, stream, path, view)
        demuxed = timing["frame_count_source"] in ("demux", "timestamps")
        if displayed_size and not demuxed:  # nothing read yet: the first frame decodes from here
            width, height = _displayed_size(container, stream)
    if displayed_size and demuxed:  # the packets were read to the end: open again rather than seek (raw streams)
        container, stream = _open(path, view)
        with container:
            width, height = _displayed_size(container, stream)
    if timing["num_frames"] <= 0:
        raise VideoReadError(path, view, "expected at least one video frame, found 0.")
    return VideoInfo(width=width, height=height, **timing)


def probe_video(path: str | Path, view: str | None = None, *, displayed_size: bool = True) -> VideoInfo:
    """Frame count, fps, displayed size, duration and (VFR files) frame times of the first video stream. Stream
    metadata can be missing or wrong, so the count comes from the stated frame count, else duration x rate, else a
    demux count; when the first two disagree (or the rates do), the demuxed timestamps decide, and a file whose
    timestamps are not i / fps is variable-rate: its frame times are kept. The displayed size costs decoding the
    first frame (noticeable on large videos); `displayed_size=False` skips it and reports the coded (stored) size."""
    return _probe(path, view, displayed_size)


class _Clock:
    """Frame index <-> timestamp of one stream: index / fps from the start on a constant-rate stream, the rank
    among the demuxed timestamps (`VideoInfo.frame_pts`) on a variable-rate one."""

    def __init__(self, stream, info: VideoInfo):
        self.frame_pts = info.frame_pts
        self.time_base = stream.time_base
        self.start = info.frame_pts[0] if info.frame_pts else (stream.start_time or 0)
        self.fps = _stream_fps(stream) or DEFAULT_FPS  # the rate pts advance by, not a VFR file's average

    def index_of(self, pts: int) -> int:
        """The index of the frame with timestamp `pts` (the last one at or before it on a VFR stream)."""
        if self.frame_pts is not None:
            return max(bisect.bisect_right(self.frame_pts, pts) - 1, 0)
        return round(float((pts - self.start) * self.time_base) * self.fps)

    def pts_of(self, index: int) -> int:
        """The timestamp of frame `index` (where a seek for it lands at or before)."""
        if self.frame_pts is not None:
            return self.frame_pts[min(index, len(self.frame_pts) - 1)]
        return self.start + int(index / self.fps / self.time_base)

    def seconds(self, pts: int) -> float:
        """`pts` in seconds from the first frame."""
        return max(float((pts - self.start) * self.time_base), 0.0)


def keyframes_near(
    path: str | Path, indices: Sequence[int], view: str | None = None, info: VideoInfo | None = None
) -> list[int]:
    """Indices of the keyframes just before and just after each of `indices`, found by seeking and reading one
    packet each (no decoding). Empty for streams without timestamps. `info`: the file's `probe_video` (else probed)."""
    info = info or _probe(path, view, displayed_size=False)
    container, stream = _open(path, view)
    found: set[int] = set()
    with container:
        if stream.start_time is None:
            return []
        clock = _Clock(stream, info)
        for idx in sorted(set(int(i) for i in indices)):
            for backward in (True, False):
                try:
                    container.seek(clock.pts_of(idx), stream=stream, backward=backward)
                    packet = next((p for p in container.demux(stream) if p.size), None)
                except av.FFmpegError:  # e.g. no keyframe after the last one
                    continue
                if packet is not None and packet.is_keyframe and packet.pts is not None:
                    found.add(clock.index_of(packet.pts))
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


def _decode_skipping_unreferenced(container, stream, pending: deque, index_of) -> Iterator[av.VideoFrame]:
    """Decode packet by packet, skipping frames that no other frame references (most B-frames) while they lie
    before the next wanted index: they cannot be on screen at a target, so their decoding between a keyframe and a
    target is work saved."""
    context = stream.codec_context
    for packet in container.demux(stream):
        before_target = packet.pts is not None and bool(pending) and index_of(packet.pts) < pending[0] - 1
        context.skip_frame = "NONREF" if before_target else "DEFAULT"
        yield from packet.decode()


def read_frames(
    path: str | Path, indices: Sequence[int], view: str | None = None, threads: int = 0, info: VideoInfo | None = None
) -> np.ndarray:
    """Decode frames `indices` (any order, repeats allowed) as (T, H, W, 3) uint8 RGB, as displayed.

    See `read_frames_with_times`, which also says when each frame is shown."""
    return read_frames_with_times(path, indices, view, threads, info).rgb


def read_frames_with_times(
    path: str | Path, indices: Sequence[int], view: str | None = None, threads: int = 0, info: VideoInfo | None = None
) -> DecodedFrames:
    """Decode frames `indices` (any order, repeats allowed; an index is a frame's rank in presentation order) as
    (T, H, W, 3) uint8 RGB turned and mirrored as the file's display matrix says, with each frame's time.

    Seeks to the keyframe before each far-away index instead of decoding the whole file; gray and alpha
    videos are converted to RGB. Indices past the real end of a stream repeat its last frame. `threads` is the
    decoder's thread count (0: FFmpeg decides); 1 is the cheapest when several files decode in parallel. `info`:
    the file's `probe_video` result, which a VFR file needs to map indices to timestamps (probed when None)."""
    indices = [int(i) for i in indices]
    if not indices or min(indices) < 0:
        where = describe_source(path, view)
        raise ValueError(f"{where}: expected a non-empty list of frame indices >= 0, got {indices}.")
    info = info or _probe(path, view, displayed_size=False)
    wanted = sorted(set(indices))
    try:
        frames, clock = _read_wanted(path, view, wanted, "seek", threads, info)
    except _NoTimestamps:
        frames, clock = _read_wanted(path, view, wanted, "count", threads, info)
    except _LandedLate:
        frames, clock = _read_wanted(path, view, wanted, "pts", threads, info)
    if frames and len(frames) < len(wanted):  # a seek found nothing to decode: read from the start instead
        frames, clock = _read_wanted(path, view, wanted, "pts", threads, info)
    if not frames:
        raise VideoReadError(path, view, "expected decodable video frames, decoded none.")
    rgb = {i: as_displayed(frame.to_ndarray(format="rgb24"), _display_matrix(frame)) for i, frame in frames.items()}
    if clock is None:  # no timestamps: the stream's stated rate (else DEFAULT_FPS, in info.fps) is all there is
        return DecodedFrames(np.stack([rgb[i] for i in indices]), [i / info.fps for i in indices], info.fps)
    times = {i: clock.seconds(frame.pts) for i, frame in frames.items()}
    return DecodedFrames(np.stack([rgb[i] for i in indices]), [times[i] for i in indices], None)


def _read_wanted(
    path, view, wanted: list[int], mode: str, threads: int, info: VideoInfo
) -> tuple[dict[int, av.VideoFrame], "_Clock | None"]:
    """The wanted frames and the clock that indexed them (None when frames were counted: no timestamps).
    mode "seek": seek + pts indices; "pts": decode from the start, pts indices; "count": count frames."""
    container, stream = _open(path, view)
    with container:
        stream.thread_type, stream.codec_context.thread_count = "AUTO", threads
        if mode == "seek" and stream.start_time is None:
            raise _NoTimestamps
        clock = _Clock(stream, info)
        counter = iter(range(1 << 62))

        def index_of(frame) -> int:
            if mode == "count":
                return next(counter)
            if frame.pts is None:
                raise _NoTimestamps
            return clock.index_of(frame.pts)

        def decode_from(pending: deque) -> Iterator:
            if mode != "seek":
                return container.decode(stream)
            # Seek to the keyframe at or before the next target; decoding resumes from there.
            container.seek(clock.pts_of(pending[0]), stream=stream, backward=True, any_frame=False)
            if threads != 1:  # frame threads copy decoder settings with a lag, so a skip could hit a target
                return container.decode(stream)
            return _decode_skipping_unreferenced(container, stream, pending, clock.index_of)

        try:
            return _collect(decode_from, wanted, index_of, use_seek=mode == "seek"), None if mode == "count" else clock
        except av.FFmpegError as err:
            raise VideoReadError(path, view, f"decoding failed (corrupt video?): {err}") from err


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
    "DecodedFrames",
    "VideoInfo",
    "VideoReadError",
    "as_displayed",
    "describe_source",
    "frames_to_rgb",
    "keyframes_near",
    "probe_video",
    "read_frames",
    "read_frames_with_times",
]
