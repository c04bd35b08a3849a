# Frame samplers: which T frame indices of a clip go to the vision tower. Each returns sorted, in-range indices.
# They choose by presentation time: on a constant-rate clip an index is a time (index / fps); a variable-rate clip
# gives its frame times, and the same samplers then run on a grid of millisecond slots (`sample_frame_indices`).
import bisect
import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SampledIndices:
    """T sorted frame indices of a clip of `num_frames` frames. `repeated` is True when some index appears
    more than once: the clip has fewer frames than asked for, or (variable frame rate) one frame stays on screen
    across several sample times."""

    indices: tuple[int, ...]
    num_frames: int
    sampler: str

    @property
    def repeated(self) -> bool:
        """Whether frames were repeated because the clip is shorter than T."""
        return len(set(self.indices)) < len(self.indices)

    def to_dict(self) -> dict:
        """Plain-Python metadata (JSON-friendly)."""
        return {"indices": list(self.indices), "num_frames": self.num_frames, "sampler": self.sampler,
                "repeated": self.repeated}


def _check(num_frames: int, num_samples: int) -> None:
    if num_frames < 1 or num_samples < 1:
        raise ValueError(
            f"frame sampling needs num_frames >= 1 and num_samples >= 1, got {num_frames} and {num_samples}."
        )


def _centres(start: int, length: int, count: int) -> list[int]:
    """`count` indices at the centres of `count` equal parts of [start, start + length); repeats if length < count."""
    return [start + int((i + 0.5) * length / count) for i in range(count)]


def sample_uniform_indices(num_frames: int, num_samples: int = 8) -> SampledIndices:
    """T frames spread over the whole clip, one at the centre of each of T equal parts (TSN/TimeSformer test-time
    sampling). Deterministic."""
    _check(num_frames, num_samples)
    return SampledIndices(tuple(_centres(0, num_frames, num_samples)), num_frames, "uniform")


def sample_random_window_indices(
    num_frames: int, num_samples: int = 8, stride: int = 4, seed: int | None = None
) -> SampledIndices:
    """A random contiguous window of `num_samples * stride` frames with T frames evenly inside (the training
    augmentation of SkillFormer / the VideoMAE recipe). A clip shorter than the window is sampled whole."""
    _check(num_frames, num_samples)
    if stride < 1:
        raise ValueError(f"random_window needs stride >= 1, got {stride}.")
    window = min(num_samples * stride, num_frames)
    start = int(np.random.default_rng(seed).integers(0, num_frames - window + 1))
    return SampledIndices(tuple(_centres(start, window, num_samples)), num_frames, "random_window")


def sample_segment_indices(
    num_frames: int,
    num_samples: int = 8,
    fps: float = 30.0,
    num_segments: int = 2,
    segment_seconds: float = 2.0,
    seed: int | None = None,
) -> SampledIndices:
    """PATS-style: `num_segments` non-overlapping segments of `segment_seconds` each, with T/num_segments frames
    per segment (the first T % num_segments take one more). The clip is cut into parts proportional to those
    counts and one segment lies in each part: centred without a seed, at a random offset with one. A segment
    shrinks to fit its part; it never holds fewer frames than it samples unless the clip is shorter than T."""
    _check(num_frames, num_samples)
    if num_segments < 1 or segment_seconds <= 0 or fps <= 0:
        raise ValueError(
            f"segments needs num_segments >= 1, segment_seconds > 0 and fps > 0, "
            f"got {num_segments}, {segment_seconds} and {fps}."
        )
    rng = np.random.default_rng(seed)
    counts = [num_samples // num_segments + (1 if k < num_samples % num_segments else 0) for k in range(num_segments)]
    bounds = np.cumsum([0] + counts)
    indices: list[int] = []
    for k, count in enumerate(counts):
        if count == 0:  # fewer samples than segments
            continue
        part_start = num_frames * int(bounds[k]) // num_samples
        part_end = max(num_frames * int(bounds[k + 1]) // num_samples, part_start + 1)  # non-empty if the clip is short
        length = min(max(count, round(segment_seconds * fps)), part_end - part_start)
        slack = part_end - part_start - length
        offset = slack // 2 if seed is None else int(rng.integers(0, slack + 1))
        indices.extend(_centres(part_start + offset, length, count))
    return SampledIndices(tuple(indices), num_frames, "segments")


FRAME_SAMPLERS: dict[str, Callable[..., SampledIndices]] = {
    "uniform": sample_uniform_indices,
    "random_window": sample_random_window_indices,
    "segments": sample_segment_indices,
}


# Slots per second of the grid a variable-rate clip is sampled on: fine enough that a sample lands within 1 ms of
# the time a constant-rate sampler would choose, coarse enough that a long take stays a small integer range.
SLOTS_PER_SECOND = 1000


def sample_frame_indices(
    sampler: str,
    num_frames: int,
    num_samples: int = 8,
    *,
    fps: float = 30.0,
    seed: int | None = None,
    times: Sequence[float] | None = None,
    duration: float | None = None,
    **options,
) -> SampledIndices:
    """Run the sampler named `sampler` (a key of FRAME_SAMPLERS), passing `fps`/`seed` only where it takes them.

    `times` (a variable-frame-rate clip: each frame's presentation time in seconds from the first, ascending) with
    `duration` (seconds) samples by time: the sampler runs on `duration` x SLOTS_PER_SECOND slots and each chosen slot
    becomes the frame on screen at its time. Uniform then spreads over the take in seconds, segments last
    `segment_seconds`, and a random window spans `num_samples * stride` frames at the clip's average rate `fps`."""
    if sampler not in FRAME_SAMPLERS:
        raise ValueError(f"unknown frame sampler '{sampler}'; expected one of {sorted(FRAME_SAMPLERS)}.")
    fn = FRAME_SAMPLERS[sampler]
    accepted = inspect.signature(fn).parameters
    unknown = set(options) - set(accepted)
    if unknown:
        raise ValueError(f"frame sampler '{sampler}' got unknown options {sorted(unknown)}; it takes {list(accepted)}.")
    if times is None:
        extra = {k: v for k, v in {"fps": fps, "seed": seed}.items() if k in accepted}
        return fn(num_frames, num_samples, **extra, **options)
    _check(num_frames, num_samples)
    _check_times(times, num_frames, duration)
    chosen = _sample_slots(fn, duration, num_samples, fps, seed, options)
    # A slot's frame is the last one shown at or before the slot's time (the nanosecond guards float rounding).
    indices = tuple(max(bisect.bisect_right(times, k / SLOTS_PER_SECOND + 1e-9) - 1, 0) for k in chosen)
    return SampledIndices(indices, num_frames, sampler)


def _sample_slots(fn: Callable[..., SampledIndices], seconds: float, num_samples: int, fps: float, seed: int | None,
                  options: dict) -> tuple[int, ...]:
    """The sampler `fn` run on the SLOTS_PER_SECOND grid of `seconds`: the chosen slots (k is k / SLOTS_PER_SECOND
    seconds from the start). A stride counts frames: in slots, that many average frame intervals (1 / fps)."""
    accepted = inspect.signature(fn).parameters
    slots = max(1, math.ceil(seconds * SLOTS_PER_SECOND))
    extra = {k: v for k, v in {"fps": float(SLOTS_PER_SECOND), "seed": seed}.items() if k in accepted}
    if "stride" in accepted:
        stride = options.get("stride", accepted["stride"].default)
        options = {**options, "stride": max(1, round(stride * SLOTS_PER_SECOND / fps))}
    return fn(slots, num_samples, **extra, **options).indices


def clip_windows(duration: float, clip_seconds: float, max_clips: int) -> list[tuple[float, float]]:
    """The windows (start, end) in seconds that cover a take of `duration` seconds with clips of `clip_seconds`
    (`ProfVLMConfig.clip_seconds`): K = ceil(duration / clip_seconds) windows laid end to end from 0, the last one
    ending at the take's end; when K > `max_clips`, `max_clips` equal windows over the whole take instead
    (`clips_capped` says which). A take of no known length (duration <= 0) is one window of `clip_seconds`."""
    if not clip_seconds > 0 or max_clips < 1:
        raise ValueError(f"clip windows need clip_seconds > 0 and max_clips >= 1, got {clip_seconds} and {max_clips}.")
    if not duration > 0:
        return [(0.0, float(clip_seconds))]
    if clips_capped(duration, clip_seconds, max_clips):
        step = duration / max_clips
        return [(k * step, (k + 1) * step) for k in range(max_clips)]
    count = _clip_count(duration, clip_seconds)
    return [(k * clip_seconds, min((k + 1) * clip_seconds, duration)) for k in range(count)]


def _clip_count(duration: float, clip_seconds: float) -> int:
    # The tolerance keeps 120 s / 4 s at 30 windows when floating point says 30.000000000000004.
    return max(1, math.ceil(duration / clip_seconds - 1e-9))


def clips_capped(duration: float, clip_seconds: float, max_clips: int) -> bool:
    """Whether a take of `duration` seconds needs more than `max_clips` windows of `clip_seconds` (`clip_windows` then
    lays `max_clips` equal, longer windows)."""
    return duration > 0 and _clip_count(duration, clip_seconds) > max_clips


def sample_window_indices(
    sampler: str,
    window: tuple[float, float],
    num_samples: int = 8,
    *,
    num_frames: int,
    fps: float = 30.0,
    seed: int | None = None,
    times: Sequence[float] | None = None,
    **options,
) -> SampledIndices:
    """The T frames of one clip: the window (start, end) of a take, in seconds, sampled by presentation time. The sampler
    named `sampler` runs on the window's millisecond slots (as `sample_frame_indices` runs a variable-rate take's) and
    each chosen slot becomes the frame on screen at its time: the last frame shown at or before it, from the file's
    frame `times` (seconds from the first frame) when given, else index / `fps`. Indices are into the take's
    `num_frames` frames; a window past the last frame repeats it."""
    if sampler not in FRAME_SAMPLERS:
        raise ValueError(f"unknown frame sampler '{sampler}'; expected one of {sorted(FRAME_SAMPLERS)}.")
    fn = FRAME_SAMPLERS[sampler]
    unknown = set(options) - set(inspect.signature(fn).parameters)
    if unknown:
        raise ValueError(f"frame sampler '{sampler}' got unknown options {sorted(unknown)}.")
    _check(num_frames, num_samples)
    start, end = float(window[0]), float(window[1])
    if not (math.isfinite(start) and end > start >= 0) or fps <= 0:
        raise ValueError(f"a clip window needs 0 <= start < end and fps > 0, got {window} and fps {fps}.")
    if times is not None and len(times) != num_frames:
        raise ValueError(f"sampling by time needs one time per frame ({num_frames}), got {len(times)} times.")
    chosen = _sample_slots(fn, end - start, num_samples, fps, seed, options)
    moments = [start + k / SLOTS_PER_SECOND + 1e-9 for k in chosen]  # the nanosecond guards float rounding
    return SampledIndices(tuple(_frame_on_screen(t, num_frames, fps, times) for t in moments), num_frames, sampler)


def _frame_on_screen(seconds: float, num_frames: int, fps: float, times: Sequence[float] | None) -> int:
    # The last frame shown at or before `seconds`: from the file's frame times when given, else index / fps.
    if times is not None:
        return max(bisect.bisect_right(times, seconds) - 1, 0)
    return min(int(math.floor(seconds * fps)), num_frames - 1)


def window_frame_range(window: tuple[float, float], *, num_frames: int, fps: float = 30.0,
                       times: Sequence[float] | None = None) -> tuple[int, int]:
    """The first and last index of the frames on screen during `window` (start, end) seconds, mapped as
    `sample_window_indices` maps its slots: the frames one clip of that window may show."""
    start, end = float(window[0]), float(window[1])
    last_slot = max(start, end - 1 / SLOTS_PER_SECOND)
    return (_frame_on_screen(start + 1e-9, num_frames, fps, times),
            _frame_on_screen(last_slot + 1e-9, num_frames, fps, times))


def _check_times(times: Sequence[float], num_frames: int, duration: float | None) -> None:
    if len(times) != num_frames or duration is None or not duration > 0:
        raise ValueError(f"sampling by time needs one time per frame ({num_frames}) and a duration > 0, got "
                         f"{len(times)} times and duration {duration}.")


def snap_to_keyframes(indices: Sequence[int], keyframes: Sequence[int],
                      within: tuple[int, int] | None = None) -> tuple[int, ...]:
    """Move each of the sorted `indices` to its nearest keyframe (a keyframe decodes without earlier frames, so
    reading gets much cheaper) when that keeps them strictly increasing; otherwise the index stays. `within`
    (first, last): only keyframes in that range count, so that a clip's frames stay in its own window
    (`window_frame_range`). Indices with repeats (a clip shorter than T) and an empty keyframe list are returned
    unchanged."""
    indices = tuple(int(i) for i in indices)
    keyframes = sorted(k for k in set(keyframes) if within is None or within[0] <= k <= within[1])
    if not keyframes or len(set(indices)) < len(indices):
        return indices
    snapped: list[int] = []
    for i, idx in enumerate(indices):
        pos = bisect.bisect_left(keyframes, idx)
        near = min(keyframes[max(pos - 1, 0) : pos + 1], key=lambda k: (abs(k - idx), k))
        lower = snapped[-1] if snapped else -1
        upper = indices[i + 1] if i + 1 < len(indices) else float("inf")
        snapped.append(near if lower < near < upper else idx)
    return tuple(snapped)


__all__ = [
    "SLOTS_PER_SECOND",
    "SampledIndices",
    "FRAME_SAMPLERS",
    "sample_uniform_indices",
    "sample_random_window_indices",
    "sample_segment_indices",
    "sample_frame_indices",
    "clip_windows",
    "clips_capped",
    "sample_window_indices",
    "snap_to_keyframes",
    "window_frame_range",
]
