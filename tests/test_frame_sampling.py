"""Frame samplers: property tests over clip lengths 1..10,000 and T 1..64, plus the shape of each strategy, and
sampling by time on variable-frame-rate clips."""
import bisect

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processing.frame_sampling import (
    FRAME_SAMPLERS,
    sample_frame_indices,
    sample_random_window_indices,
    sample_segment_indices,
    sample_uniform_indices,
    snap_to_keyframes,
    window_frame_range,
)
from tests.video_fixtures import phone_vfr_times

frame_counts = st.integers(1, 10_000)
sample_counts = st.integers(1, 64)
seeds = st.integers(0, 2**32 - 1)


def check_valid(result, num_frames: int, num_samples: int) -> None:
    idx = list(result.indices)
    assert len(idx) == num_samples
    assert idx == sorted(idx)
    assert all(0 <= i < num_frames for i in idx)
    assert all(type(i) is int for i in idx)
    assert result.num_frames == num_frames
    # Repeats happen exactly when the clip is shorter than T, and the metadata says so.
    assert result.repeated == (num_frames < num_samples)
    if num_frames >= num_samples:
        assert all(a < b for a, b in zip(idx, idx[1:]))


@settings(max_examples=300, deadline=None)
@given(frame_counts, sample_counts)
def test_uniform_is_valid_and_deterministic(num_frames, num_samples):
    result = sample_uniform_indices(num_frames, num_samples)
    check_valid(result, num_frames, num_samples)
    assert result == sample_uniform_indices(num_frames, num_samples)


@settings(max_examples=300, deadline=None)
@given(frame_counts, sample_counts, st.integers(1, 16), seeds)
def test_random_window_is_valid_deterministic_and_inside_one_window(num_frames, num_samples, stride, seed):
    result = sample_random_window_indices(num_frames, num_samples, stride=stride, seed=seed)
    check_valid(result, num_frames, num_samples)
    assert result == sample_random_window_indices(num_frames, num_samples, stride=stride, seed=seed)
    assert result.indices[-1] - result.indices[0] < num_samples * stride


@settings(max_examples=300, deadline=None)
@given(frame_counts, sample_counts, st.floats(1.0, 60.0), st.integers(1, 4), st.floats(0.1, 5.0), seeds)
def test_segments_are_valid_and_deterministic(num_frames, num_samples, fps, num_segments, seconds, seed):
    kwargs = dict(fps=fps, num_segments=num_segments, segment_seconds=seconds)
    for s in (seed, None):
        result = sample_segment_indices(num_frames, num_samples, seed=s, **kwargs)
        check_valid(result, num_frames, num_samples)
        assert result == sample_segment_indices(num_frames, num_samples, seed=s, **kwargs)


def test_uniform_takes_the_centre_of_equal_parts():
    assert sample_uniform_indices(80, 8).indices == (5, 15, 25, 35, 45, 55, 65, 75)
    assert sample_uniform_indices(3, 6).indices == (0, 0, 1, 1, 2, 2)
    assert sample_uniform_indices(3, 6).repeated


def test_random_window_moves_with_the_seed_and_keeps_its_stride():
    starts = {sample_random_window_indices(3000, 8, stride=4, seed=s).indices[0] for s in range(20)}
    assert len(starts) > 10
    idx = sample_random_window_indices(3000, 8, stride=4, seed=1).indices
    assert [b - a for a, b in zip(idx, idx[1:])] == [4] * 7


def test_segments_are_short_non_overlapping_and_split_the_samples():
    idx = sample_segment_indices(1800, 8, fps=30.0, num_segments=2, segment_seconds=2.0).indices
    first, second = idx[:4], idx[4:]
    assert first[-1] - first[0] < 60 and second[-1] - second[0] < 60  # each inside a 2 s segment
    assert first[-1] < 900 <= second[0]  # one segment per half of the clip
    odd = sample_segment_indices(900, 7, fps=30.0, num_segments=3, segment_seconds=1.0, seed=3).indices
    groups = [odd[:3], odd[3:5], odd[5:]]  # 7 = 3 + 2 + 2
    assert all(g[-1] - g[0] < 30 for g in groups)
    assert groups[0][-1] < groups[1][0] and groups[1][-1] < groups[2][0]


def test_segments_seed_draws_each_segments_offset_within_its_part():
    # 3000 frames, 8 samples, 2 s at 30 fps: parts [0, 1500) and [1500, 3000) with a 60-frame segment each, so
    # 1500 - 60 = 1440 frames of slack; its 4 samples sit at the centres of 15-frame quarters: +7, +22, +37, +52.
    # The offsets are numpy's draws from the seed, one per segment in order; without a seed, the middle (720).
    assert sample_segment_indices(3000, 8).indices == (727, 742, 757, 772, 2227, 2242, 2257, 2272)
    placements = set()
    for seed in range(10):
        rng = np.random.default_rng(seed)
        offsets = [int(rng.integers(0, 1441)) for _ in range(2)]
        expected = tuple(start + offset + centre for start, offset in zip((0, 1500), offsets)
                         for centre in (7, 22, 37, 52))
        assert sample_segment_indices(3000, 8, seed=seed).indices == expected, seed
        placements.add(expected)
    assert len(placements) == 10  # each seed its own placement


def test_registry_and_dispatch():
    assert set(FRAME_SAMPLERS) == {"uniform", "random_window", "segments"}
    assert sample_frame_indices("uniform", 80, 8, seed=3).indices == sample_uniform_indices(80, 8).indices
    segments = sample_segment_indices(1800, 8, fps=10.0)
    assert sample_frame_indices("segments", 1800, 8, fps=10.0).indices == segments.indices
    assert sample_frame_indices("random_window", 900, 4, seed=5, stride=2) == sample_random_window_indices(900, 4, 2, 5)
    with pytest.raises(ValueError, match="unknown frame sampler 'middle'"):
        sample_frame_indices("middle", 10)
    with pytest.raises(ValueError, match="unknown options"):
        sample_frame_indices("uniform", 10, stride=2)


@pytest.mark.parametrize("bad", [(0, 8), (10, 0), (-1, 8)])
def test_invalid_sizes_raise(bad):
    for fn in FRAME_SAMPLERS.values():
        with pytest.raises(ValueError, match="num_frames >= 1"):
            fn(*bad)


def test_snap_to_keyframes_moves_to_the_nearest_keyframe_and_keeps_frames_distinct():
    keyframes = list(range(0, 1800, 60))
    assert snap_to_keyframes((112, 337, 562, 787), keyframes) == (120, 360, 540, 780)
    # 100 and 110 are both nearest to keyframe 120: moving 100 there would jump past 110, so 100 stays.
    assert snap_to_keyframes((100, 110, 200), keyframes) == (100, 120, 180)
    assert snap_to_keyframes((0, 0, 1), keyframes) == (0, 0, 1)  # repeats (short clip): unchanged
    assert snap_to_keyframes((5, 9), []) == (5, 9)


def test_snap_within_a_range_ignores_keyframes_outside_it():
    keyframes = [0, 30, 60, 90]
    # 52's nearest keyframe is 60, the next window's first frame: within frames 0..59 it stays where it was.
    assert snap_to_keyframes((7, 22, 37, 52), keyframes) == (0, 30, 37, 60)
    assert snap_to_keyframes((7, 22, 37, 52), keyframes, within=(0, 59)) == (0, 30, 37, 52)
    assert snap_to_keyframes((67, 82, 97, 112), keyframes, within=(60, 119)) == (60, 90, 97, 112)


def test_window_frame_range_is_the_frames_on_screen_in_the_window():
    assert window_frame_range((0.0, 2.0), num_frames=240, fps=30) == (0, 59)
    assert window_frame_range((2.0, 4.0), num_frames=240, fps=30) == (60, 119)
    assert window_frame_range((6.0, 9.0), num_frames=240, fps=30) == (180, 239)  # past the end: the last frame
    times = [0.0, 0.5, 0.55, 1.4, 2.0, 2.1]  # variable rate: a frame is on screen from its time to the next one's
    assert window_frame_range((0.5, 2.0), num_frames=6, times=times) == (1, 3)
    assert window_frame_range((0.52, 1.45), num_frames=6, times=times) == (1, 3)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 5000), min_size=1, max_size=64, unique=True),
    st.lists(st.integers(0, 5000), max_size=100),
)
def test_snap_keeps_indices_strictly_increasing(indices, keyframes):
    indices = sorted(indices)
    snapped = snap_to_keyframes(indices, keyframes)
    assert len(snapped) == len(indices)
    assert all(a < b for a, b in zip(snapped, snapped[1:]))
    assert all(s == i or s in keyframes for s, i in zip(snapped, indices))


def on_screen(times, t: float) -> int:
    """The frame shown at `t` seconds: the last one that starts at or before it."""
    return max(bisect.bisect_right(times, t) - 1, 0)


def test_vfr_uniform_spreads_over_the_take_in_seconds():
    """25 fps for 4 s then 2.5 fps to 24 s: 150 frames, 100 of them in the first 4 s. Spread by index, 5 of 8
    samples would sit in the first 4 s (and read as index / 25 fps, all 8 in the first 6 s); by time they sit at
    1.5, 4.5, ..., 22.5 s."""
    times = phone_vfr_times(4.0, 24.0)
    by_index = sample_uniform_indices(150, 8).indices
    assert sum(times[i] < 4.0 for i in by_index) == 5 and max(by_index) / 25 < 6.0
    sampled = sample_frame_indices("uniform", 150, 8, fps=150 / 24, times=times, duration=24.0)
    assert sampled.indices == tuple(on_screen(times, (i + 0.5) * 3.0) for i in range(8))
    assert [times[i] for i in sampled.indices] == pytest.approx([1.48, 4.4, 7.2, 10.4, 13.2, 16.4, 19.2, 22.4])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.001, 2.0), min_size=1, max_size=300), sample_counts, seeds, st.sampled_from(
    ["uniform", "random_window", "segments"]))
def test_vfr_samples_are_the_frames_on_screen_and_valid(intervals, num_samples, seed, sampler):
    times = [0.0]
    for gap in intervals[:-1]:
        times.append(times[-1] + gap)
    duration = times[-1] + intervals[-1]
    fps = len(times) / duration
    result = sample_frame_indices(sampler, len(times), num_samples, fps=fps, seed=seed, times=times, duration=duration)
    idx = list(result.indices)
    assert len(idx) == num_samples and idx == sorted(idx) and all(0 <= i < len(times) for i in idx)
    assert result.num_frames == len(times) and result.sampler == sampler
    assert result == sample_frame_indices(sampler, len(times), num_samples, fps=fps, seed=seed, times=times,
                                          duration=duration)
    if sampler == "uniform":  # each is the frame on screen within 1 ms (the slot grid) of the centre of its part
        for k, i in enumerate(idx):
            centre = (k + 0.5) * duration / num_samples
            assert times[i] <= centre + 1e-3
            assert i == len(times) - 1 or times[i + 1] > centre - 1e-3


def test_vfr_segments_last_their_seconds_and_the_random_window_its_frames():
    times = phone_vfr_times(4.0, 24.0)
    segs = sample_frame_indices("segments", 150, 8, fps=150 / 24, times=times, duration=24.0,
                                segment_seconds=2.0).indices
    for group in (segs[:4], segs[4:]):
        assert times[group[-1]] - times[group[0]] < 2.0
    assert times[segs[3]] < 12.0 <= times[segs[4]] + 0.4  # one segment per half of the 24 s
    # The window spans num_samples * stride frames at the average rate (150 / 24 fps): 8 * 4 / 6.25 = 5.12 s.
    starts = set()
    for seed in range(20):
        window = sample_frame_indices("random_window", 150, 8, fps=150 / 24, seed=seed, times=times,
                                      duration=24.0).indices
        assert times[window[-1]] - times[window[0]] < 5.12
        starts.add(window[0])
    assert len(starts) > 5


def test_sampling_by_time_needs_a_time_per_frame_and_a_duration():
    with pytest.raises(ValueError, match="one time per frame \\(3\\).*2 times"):
        sample_frame_indices("uniform", 3, 2, times=[0.0, 1.0], duration=2.0)
    with pytest.raises(ValueError, match="duration > 0"):
        sample_frame_indices("uniform", 2, 2, times=[0.0, 1.0], duration=None)
