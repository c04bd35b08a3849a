# Released-format feature files for a synthetic tree (`synthetic_egoexo4d.py --released_features omnivore_video`):
# what EgoExo4D's pre-extracted features would be if they measured the synthetic motion, so the label is learnable.
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dataset_scripts.egoexo4d_features import feature_file_name, vector_count, vector_times
from dataset_scripts.egoexo4d_proficiency import EGO_RGB_STREAM, EXO_STREAM
from dataset_scripts.synthetic_motion import FPS, Motion, motion_statistics
from modeling_profvlm.profvlm_facts import RELEASED_FEATURE_SOURCES, ReleasedFeatureSource

# Statistics a vector measures over its window (`motion_statistics`), scaled to about unit size: they grow with the
# label (tremor falls), which is the label signal.
STATISTICS = ("extension", "range", "speed", "tremor")
_SCALE = np.array([1.0, 0.2, 1.0, 0.03])


def part_by_name(name: str) -> ReleasedFeatureSource:
    """The source of a part's short name (`omnivore_video`, `maws_clip_2b`); a ValueError listing them otherwise."""
    by_part = {source.part.rsplit("/", 1)[-1]: source for source in RELEASED_FEATURE_SOURCES.values()}
    if name not in by_part:
        raise ValueError(f"--released_features {name!r}: expected one of {sorted(by_part)}.")
    return by_part[name]


def camera_projection(source: ReleasedFeatureSource, camera: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed random projection of the statistics to the part's width, and a camera's own offset: the same for
    every tree, so a file's values depend only on its take's motion and its camera."""
    rng = np.random.default_rng([7, source.feature_dim])
    weights = rng.standard_normal((len(STATISTICS), source.feature_dim)) / np.sqrt(len(STATISTICS))
    offset = 0.1 * np.random.default_rng([8, source.feature_dim, camera]).standard_normal(source.feature_dim)
    return weights, offset


def motion_vectors(motion: Motion, source: ReleasedFeatureSource, camera: int) -> torch.Tensor:
    """(T, C) float32: for each vector of a take (its window, or its frame), the projected motion statistics over the
    frames it covers."""
    duration = motion.num_frames / FPS
    count = vector_count(source, duration, FPS)
    half = (source.window_seconds or 0.0) / 2
    weights, offset = camera_projection(source, camera)
    rows = []
    for centre in vector_times(source, count, duration, FPS):
        start = min(max(0, round((centre - half) * FPS)), motion.num_frames - 1)
        stop = min(motion.num_frames, max(start + 2, round((centre + half) * FPS)))
        stats = motion_statistics(motion, start, stop)
        rows.append(np.array([stats[k] for k in STATISTICS]) / _SCALE @ weights + offset)
    return torch.from_numpy(np.stack(rows).astype(np.float32))


def write_released_features(root: str | Path, take_uid: str, ego_cam: str, exo_cams: list[str], motion: Motion,
                            source: ReleasedFeatureSource) -> list[Path]:
    """Write one take's files under ROOT/<part>/: `<take_uid>_<ego>_rgb.pt` as (T, 1, C) and each GoPro's
    `<take_uid>_<cam>_0.pt` as (T, C) (both shapes are seen in public consumer code)."""
    folder = Path(root) / source.part
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for camera, (cam, stream) in enumerate([(ego_cam, EGO_RGB_STREAM)] + [(cam, EXO_STREAM) for cam in exo_cams]):
        vectors = motion_vectors(motion, source, camera)
        path = folder / feature_file_name(take_uid, cam, stream)
        torch.save(vectors[:, None] if camera == 0 else vectors, path)
        written.append(path)
    return written


__all__ = ["STATISTICS", "part_by_name", "camera_projection", "motion_vectors", "write_released_features"]
