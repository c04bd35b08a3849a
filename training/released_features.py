# A checkpoint without a tower reads EgoExo4D's released vectors: each view's vectors mean-pooled into the spans of its
# N temporal tokens, in the feature cache's own format, so training, evaluation and prediction use them like tower
# features.
from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from dataset_scripts.dataset_export import SkipReport
from dataset_scripts.egoexo4d_features import (
    UnreadableFeatureFile,
    feature_duration,
    find_feature_file,
    read_feature_file,
    take_timing,
    vector_times,
)
from modeling_profvlm.profvlm_facts import released_feature_source
from modeling_profvlm.tower_adapter import time_bins
from processing.frame_sampling import clip_windows, clips_capped, sample_frame_indices, sample_window_indices
from training.feature_cache import CACHE_FORMAT, CACHE_VERSION, build_manifest, clip_spec, sampling_spec

logger = logging.getLogger(__name__)

RELEASED_POOLING = "mean of the released vectors whose time falls in each temporal token's span (the nearest when none)"


def released_manifest(config, processor, source_model: str | None = None) -> dict:
    """The feature-cache manifest of a checkpoint whose inputs are released features: the part, its width and timing in
    place of a tower's identity, the processor's token sampling, and the pooling into spans (always float32)."""
    source = released_feature_source(config.video_feature_source)
    dim, tokens = int(config.video_feature_dim), int(config.temporal_tokens)
    manifest = {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "tower_type": source.name,
        "tower": {"released_features": source.part, "model": source.model, "feature_dim": dim,
                  "window_seconds": source.window_seconds, "stride_seconds": source.stride_seconds},
        "sampling": sampling_spec(processor),
        "view_names": list(config.view_names),
        "feature_dim": dim,
        "temporal_tokens": tokens,
        "pooling": {"method": RELEASED_POOLING, "temporal_tokens": tokens},
        "dtype": "float32",
        "source_model": source_model,
    }
    clips = clip_spec(config)
    if clips is not None:  # as a tower's cache: a cache built with other clip settings is refused
        manifest["clips"] = clips
    return json.loads(json.dumps(manifest))


def cache_manifest(model, processor, dtype: torch.dtype, source_model: str | None = None) -> dict:
    """What a feature cache of `model` must say: `released_manifest` for a checkpoint on released features, else the
    tower's (`feature_cache.build_manifest`)."""
    if model.config.video_feature_source is not None:
        return released_manifest(model.config, processor, source_model)
    return build_manifest(model, sampling_spec(processor), dtype, source=source_model)


def token_spans(processor, duration: float, fps: float) -> tuple[list[tuple[float, float]], dict]:
    """([start, end) in seconds of each of the processor's temporal tokens over a take, their times as the prompt
    states them). The processor's uniform sampler picks one frame in each of its T equal parts of the take and
    `time_bins` groups the parts into tokens, so a token spans its parts; its time is what `token_times` gives for
    those frames (the same code the video path runs). With clips over the take (`clip_seconds`) the same holds inside
    each of the K windows (`clip_windows`): K x N spans and times, in time order."""
    frames = max(1, round(duration * fps))
    steps = max(1, processor.num_frames // processor.frames_per_time_step)
    bins = time_bins(steps, processor.temporal_tokens)
    if processor.clip_seconds is None:
        sampled = sample_frame_indices("uniform", frames, processor.num_frames, fps=fps)
        times = processor.token_times([[{"times": [i / fps for i in sampled.indices], "duration": duration}]])[0]
        return _spans_in((0.0, duration), steps, bins, processor.temporal_tokens), times
    windows = clip_windows(duration, processor.clip_seconds, processor.max_clips)
    spans, frame_times = [], []
    for window in windows:
        sampled = sample_window_indices("uniform", window, processor.num_frames, num_frames=frames, fps=fps)
        frame_times += [i / fps for i in sampled.indices]
        spans += _spans_in(window, steps, bins, processor.temporal_tokens)
    capped = clips_capped(duration, processor.clip_seconds, processor.max_clips)
    times = processor.token_times([[{"times": frame_times, "duration": duration, "clips": len(windows),
                                     "clips_capped": capped}]])[0]
    return spans, times


def _spans_in(window: tuple[float, float], steps: int, bins: list[int], tokens: int) -> list[tuple[float, float]]:
    # The window's `steps` equal parts, grouped into `tokens` spans as `time_bins` groups them.
    start, part = window[0], (window[1] - window[0]) / steps
    return [(start + bins.index(k) * part, start + (len(bins) - bins[::-1].index(k)) * part) for k in range(tokens)]


def pool_into_spans(vectors: torch.Tensor, times: list[float], spans: list[tuple[float, float]]) -> torch.Tensor:
    """(T, C) vectors at `times` -> (N, C): the mean of the vectors in each [start, end) span (the last span includes
    its end); a span no vector falls in (a take shorter than a window) takes the vector nearest its centre."""
    at = torch.tensor(times, dtype=torch.float64)
    pooled = []
    for k, (start, end) in enumerate(spans):
        inside = (at >= start) & ((at <= end) if k == len(spans) - 1 else (at < end))
        if not inside.any():
            inside = torch.zeros_like(inside)
            inside[int((at - (start + end) / 2).abs().argmin())] = True
        pooled.append(vectors[inside].mean(0))
    return torch.stack(pooled)


def require_egoexo4d_root(data_dir: str | Path, config) -> None:
    """A ValueError in one line unless `data_dir` is an EgoExo4D root (takes.json): released features exist for
    EgoExo4D's takes only, and a checkpoint on them has no video tower for another dataset's videos."""
    from dataset_scripts.proficiency_data import EGOEXO4D, dataset_kind

    if dataset_kind(data_dir) != EGOEXO4D:
        raise ValueError(f"--data_dir {data_dir}: {config.video_feature_source} features exist for EgoExo4D roots "
                         "(takes.json) only; this checkpoint has no video tower for another dataset.")


def take_features(root: str | Path, config, processor, take: dict, videos: dict[str, str],
                  report: SkipReport) -> tuple[torch.Tensor, torch.Tensor, dict] | None:
    """One take's cache entry from its feature files: features (V, N, D) (with clips over the take (V, K x N, D)),
    view_mask (V,) and the token times. `videos`
    ({view: video path}, the dataset row's) names its cameras; a view whose file is missing or unreadable is masked and
    counted in `report`, like a missing video. None when no view has a readable file."""
    source = released_feature_source(config.video_feature_source)
    duration, fps = take_timing(take)
    views, dim = list(config.view_names), int(config.video_feature_dim)
    loaded: dict[int, torch.Tensor] = {}
    for v, view in enumerate(views):
        if view not in videos:
            continue
        path, expected = find_feature_file(root, source, take["take_uid"], view, videos[view])
        if path is None:
            report.missing_video(view, expected)
            continue
        try:
            loaded[v] = read_feature_file(path, dim)
        except UnreadableFeatureFile as err:
            logger.warning("%s -- view %s masked.", err, view)
            report.missing_video(view, path)
            report.first_unreadable = report.first_unreadable or str(err)
    if not loaded:
        report.takes_without_video += 1
        return None
    if duration is None:  # the longest view says how long the take is
        duration = max(feature_duration(source, len(vectors), fps) for vectors in loaded.values())
    spans, times = token_spans(processor, duration, fps)
    features = torch.zeros(len(views), len(spans), dim)  # N, or K x N with clips over the take
    view_mask = torch.zeros(len(views), dtype=torch.long)
    for v, vectors in loaded.items():
        features[v] = pool_into_spans(vectors, vector_times(source, len(vectors), duration, fps), spans)
        view_mask[v] = 1
    return features, view_mask, times


__all__ = ["RELEASED_POOLING", "released_manifest", "cache_manifest", "token_spans", "pool_into_spans",
           "require_egoexo4d_root", "take_features"]
