# EgoExo4D's released pre-extracted features on disk (docs.ego-exo4d-data.org, data/features): where a take's camera
# file is, how one is read safely, and the time each of its vectors sits at.
from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import torch

from dataset_scripts.egoexo4d_proficiency import EGO_RGB_STREAM, EXO_STREAM
from dataset_scripts.script_errors import one_line
from modeling_profvlm.profvlm_facts import VIEW_NAMES, ReleasedFeatureSource

# Frame rate assumed when takes.json gives no timesync indices (the frame-aligned videos' rate).
DEFAULT_FEATURE_FPS = 30.0


class UnreadableFeatureFile(ValueError):
    """A released feature file that cannot be used: not loadable, not a tensor, or of the wrong shape or values."""


def feature_folders(root: str | os.PathLike, source: ReleasedFeatureSource) -> list[Path]:
    """Where a part's files may be, best first: ROOT/features/<name>/ (what `egoexo --parts features/<name>` writes and
    public consumer code reads) and the flat ROOT/features/ the Docs give."""
    root = Path(root)
    return [root / source.part, root / PurePosixPath(source.part).parent]


def feature_file_name(take_uid: str, cam_id: str, stream_id: str) -> str:
    """`<take_uid>_<cam_id>_<stream_id>.pt`, the released files' name."""
    return f"{take_uid}_{cam_id}_{stream_id}.pt"


def find_feature_file(root: str | os.PathLike, source: ReleasedFeatureSource, take_uid: str, view: str,
                      video_path: str) -> tuple[Path | None, Path]:
    """(the feature file of one view of a take or None, where it was expected). The camera comes from the view's video
    path as the EgoExo4D builder resolved it (`views_from_record`): an exo view's `camNN`/`gpNN` file stem with the
    GoPro stream `0`; the ego view is found by the take uid and an `aria` prefix with the `rgb` stream, because the
    Aria camera is not always `aria01` (the one its video names is preferred when several exist)."""
    stem = PurePosixPath(str(video_path).replace("\\", "/")).stem
    folders = feature_folders(root, source)
    if view == VIEW_NAMES[0]:
        named = feature_file_name(take_uid, stem.split("_")[0], EGO_RGB_STREAM)
        for folder in folders:
            found = sorted(folder.glob(feature_file_name(take_uid, "aria*", EGO_RGB_STREAM)))
            if found:
                return next((path for path in found if path.name == named), found[0]), found[0]
        return None, folders[0] / named
    name = feature_file_name(take_uid, stem, EXO_STREAM)
    return next((folder / name for folder in folders if (folder / name).is_file()), None), folders[0] / name


def read_feature_file(path: str | os.PathLike, feature_dim: int | None = None) -> torch.Tensor:
    """One released feature file as float32 (T, C): (T, C) and (T, 1, C) tensors are accepted. Loaded with
    `torch.load(weights_only=True)` only (never arbitrary pickles); anything else is an UnreadableFeatureFile naming the
    file and what was expected (`feature_dim`: the width the checkpoint takes)."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated zip, a pickle of other objects, a text file...: all mean "unreadable"
        raise UnreadableFeatureFile(f"{path}: cannot be read with torch.load(weights_only=True) ({one_line(err)}).") \
            from err
    if not isinstance(data, torch.Tensor):
        raise UnreadableFeatureFile(f"{path}: holds a {type(data).__name__}, not a tensor of shape (T, C) or "
                                    "(T, 1, C).")
    if data.ndim == 3 and data.shape[1] == 1:  # one crop per window: public consumer code squeezes it
        data = data[:, 0]
    width = "C" if feature_dim is None else str(feature_dim)
    if data.ndim != 2 or data.shape[0] < 1 or (feature_dim is not None and data.shape[1] != feature_dim):
        raise UnreadableFeatureFile(f"{path}: tensor of shape {tuple(data.shape)}; expected (T, {width}) or "
                                    f"(T, 1, {width}) with T >= 1.")
    if not data.is_floating_point() or not torch.isfinite(data).all():
        raise UnreadableFeatureFile(f"{path}: expected finite floating-point values, got {data.dtype} with "
                                    f"{int((~torch.isfinite(data.float())).sum())} non-finite.")
    return data.float()


def released_feature_width(root: str | os.PathLike, source: ReleasedFeatureSource) -> int | None:
    """The width C of the part's vectors, read from the first readable file under ROOT (None when there is none)."""
    for folder in feature_folders(root, source):
        for path in sorted(folder.glob("*.pt"))[:8]:  # a few tries: one corrupt file must not decide
            try:
                return int(read_feature_file(path).shape[1])
            except UnreadableFeatureFile:
                continue
    return None


def take_timing(take: dict) -> tuple[float | None, float]:
    """(duration in seconds or None, frames per second) of a takes.json entry: fps = (timesync_end_idx -
    timesync_start_idx) / duration_sec as public consumer code computes it, DEFAULT_FEATURE_FPS when those are
    missing."""
    duration = take.get("duration_sec")
    duration = float(duration) if isinstance(duration, (int, float)) and duration > 0 else None
    start, end = take.get("timesync_start_idx"), take.get("timesync_end_idx")
    if duration is not None and isinstance(start, int) and isinstance(end, int) and end > start:
        return duration, (end - start) / duration
    return duration, DEFAULT_FEATURE_FPS


def vector_times(source: ReleasedFeatureSource, count: int, duration: float | None, fps: float) -> list[float]:
    """The time in seconds each of a file's `count` vectors sits at. Windowed parts (Omnivore): window i starts at
    i x stride and the last one at duration - window (the Docs' rule for a duration the stride does not divide); a
    vector sits at its window's centre, so that the last seconds of a take have vectors too. Per-frame parts (MAWS):
    frame i at i / fps."""
    if source.window_seconds is None:
        return [i / fps for i in range(count)]
    window, stride = source.window_seconds, source.stride_seconds
    if duration is None:  # no takes.json duration: the windows laid end to end say it
        duration = (count - 1) * stride + window
    last = max(0.0, duration - window)
    starts = [min(i * stride, last) for i in range(count - 1)] + [last]
    return [start + window / 2 for start in starts]


def vector_count(source: ReleasedFeatureSource, duration: float, fps: float) -> int:
    """How many vectors a take of `duration` seconds has: one per frame, or the windows laid every stride that fit
    plus the last [duration - window, duration) one when the stride does not end there (one when shorter than a
    window)."""
    if source.window_seconds is None:
        return max(1, round(duration * fps))
    window, stride = source.window_seconds, source.stride_seconds
    if duration <= window:
        return 1
    fitting = int((duration - window) / stride + 1e-9) + 1
    return fitting + (1 if abs((fitting - 1) * stride + window - duration) > 1e-6 else 0)


def feature_duration(source: ReleasedFeatureSource, count: int, fps: float) -> float:
    """A take's length in seconds as its file's `count` vectors give it (when takes.json has no duration)."""
    if source.window_seconds is None:
        return count / fps
    return (count - 1) * source.stride_seconds + source.window_seconds


__all__ = ["DEFAULT_FEATURE_FPS", "UnreadableFeatureFile", "feature_folders", "feature_file_name", "find_feature_file",
           "read_feature_file", "released_feature_width", "take_timing", "vector_times", "vector_count",
           "feature_duration"]
