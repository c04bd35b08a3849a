# A take's views as K clips each (`ProfVLMConfig.clip_seconds`): probe a view, read its clips window by window, and
# batch takes with different numbers of clips. The processor (`ProfVLMProcessor._process_clips`) drives these.
import os
import queue
from collections.abc import Callable
from concurrent.futures import Future
from typing import NamedTuple

import numpy as np
import torch

from processing.frame_sampling import sample_window_indices, snap_to_keyframes, window_frame_range
from processing.video_io import (
    DEFAULT_FPS,
    VideoInfo,
    frames_to_rgb,
    keyframes_near,
    probe_video,
    read_frames_with_times,
)


# Clips decoded per pass over a file: one pass (and one seek) per group keeps the decoder's run of nearby frames,
# while only that many clips' full-resolution frames are held at once whatever the take's length. 2 rather than 8:
# with five views decoding in parallel, 8 held more than the whole resized batch of a 64-clip take, and 2 decoded
# no slower (benchmarks/results/bench_clip_reads.json).
CLIPS_PER_READ = 2


class ProbedView(NamedTuple):
    """What sampling one view by time needs before any frame is read: frame count, rate, frame times (a VFR file's,
    else None) and length in seconds, plus the file's VideoInfo (None for decoded frames, kept in `frames` instead)."""

    num_frames: int
    fps: float
    frame_times: tuple[float, ...] | None
    duration: float
    info: VideoInfo | None
    frames: np.ndarray | None


def probe_view(src, view: str) -> ProbedView:
    """A view's `ProbedView`: a file is probed (no frame decoded); decoded frames (no timestamps) are at DEFAULT_FPS."""
    if isinstance(src, (str, os.PathLike)):
        info = probe_video(src, view, displayed_size=False)
        duration = info.duration if info.duration else info.num_frames / info.fps
        return ProbedView(info.num_frames, info.fps, info.frame_times, float(duration), info, None)
    frames = frames_to_rgb(src, view)
    return ProbedView(len(frames), DEFAULT_FPS, None, len(frames) / DEFAULT_FPS, None, frames)


def read_view_clips(src, view: str, probed: ProbedView, windows: list[tuple[float, float]], sampler: str,
                    num_samples: int, seed: int | None = None, snap: bool = False, threads: int = 0,
                    transform: Callable[[np.ndarray], torch.Tensor] | None = None,
                    out: torch.Tensor | None = None) -> tuple[np.ndarray | torch.Tensor, dict]:
    """One view's clips, one of `num_samples` frames per window (start, end) in seconds, sampled by presentation time
    (`sample_window_indices`): (K x T, H, W, 3) uint8 in time order and the view's metadata
    (`ProfVLMProcessor.process_videos` lists its keys). With `seed`, window k of every view of the take uses the same
    seed, drawn from (seed, k); `snap` moves the frames to nearby keyframes (`snap_to_keyframes`).

    A file is read `CLIPS_PER_READ` clips at a time, so only that many clips' decoded frames exist at once: with
    `transform` (frames (T, H, W, 3) -> tensor (T, ...), e.g. the processor's resize and normalisation) each clip is
    transformed as soon as its group is read and written into `out` (K, T, ...) when given, else concatenated; memory
    then grows with the transformed clips kept, not with the video's resolution or length."""
    seeds = [None if seed is None else int(np.random.SeedSequence([seed, k]).generate_state(1)[0])
             for k in range(len(windows))]
    sampled = [sample_window_indices(sampler, window, num_samples, num_frames=probed.num_frames, fps=probed.fps,
                                     seed=clip_seed, times=probed.frame_times)
               for window, clip_seed in zip(windows, seeds)]
    meta = {"num_frames": probed.num_frames, "sampler": sampler, "clips": len(windows),
            "clip_windows": [[float(start), float(end)] for start, end in windows],
            "clip_seconds": max(end - start for start, end in windows),
            "repeated": any(clip.repeated for clip in sampled), "duration": probed.duration}
    if probed.info is None:  # decoded frames carry no timestamps
        indices = [i for clip in sampled for i in clip.indices]
        frames = probed.frames[indices]
        if transform is not None:
            frames = _transformed([frames[k * num_samples:(k + 1) * num_samples] for k in range(len(windows))],
                                  transform, out)
        return frames, {**meta, "indices": indices, "fps": None, "source": "frames",
                        "times": [i / DEFAULT_FPS for i in indices], "times_assumed_fps": DEFAULT_FPS}
    indices, times, assumed, kept = [], [], None, []
    for first in range(0, len(sampled), CLIPS_PER_READ):
        group = sampled[first:first + CLIPS_PER_READ]
        wanted = [i for clip in group for i in clip.indices]
        if snap:  # clip by clip, each to keyframes inside its own window: a clip shows only its own seconds
            keyframes = keyframes_near(src, wanted, view, probed.info)
            wanted = [i for clip, window in zip(group, windows[first:first + CLIPS_PER_READ])
                      for i in snap_to_keyframes(clip.indices, keyframes, window_frame_range(
                          window, num_frames=probed.num_frames, fps=probed.fps, times=probed.frame_times))]
        decoded = read_frames_with_times(src, wanted, view, threads, probed.info)
        indices += wanted
        times += decoded.times
        assumed = decoded.times_assumed_fps if assumed is None else assumed
        for k in range(len(group)):
            rgb = decoded.rgb[k * num_samples:(k + 1) * num_samples]
            if transform is None:
                kept.append(rgb)
            elif out is not None:
                out[first + k] = transform(rgb)
            else:
                kept.append(transform(rgb))
    frames = out if out is not None and transform is not None else (
        np.concatenate(kept) if transform is None else torch.cat(kept))
    return frames, {**meta, "indices": indices, "fps": probed.info.fps, "source": str(src), "times": times,
                    "times_assumed_fps": assumed}


def _transformed(clips: list[np.ndarray], transform, out: torch.Tensor | None) -> torch.Tensor:
    """Each clip through `transform`, into `out` (K, T, ...) when given, else concatenated."""
    if out is None:
        return torch.cat([transform(clip) for clip in clips])
    for k, clip in enumerate(clips):
        out[k] = transform(clip)
    return out


class CallerThreadEncoder:
    """Runs `encoder` (a clip's pixels -> its features) on the thread that calls `serve`, for the clips that decoding
    threads hand over by calling this object (each waits for its own clip's features). Every tower call then makes its
    large temporary buffers on one thread: glibc's malloc gives each allocating thread a heap of its own and keeps
    what is freed there, so a tower called from each of five decoding threads grew the process by five sets of them.
    Tower calls are one at a time either way (the tower uses every core)."""

    def __init__(self, encoder: Callable[[torch.Tensor], torch.Tensor]):
        self.encoder, self.requests, self.stopped = encoder, queue.Queue(), False

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        """On a decoding thread: hand over one clip, wait for its features (N, D) on the CPU."""
        if self.stopped:
            raise RuntimeError("clip encoding stopped before this clip was encoded (an error on the encoding thread)")
        done: Future = Future()
        self.requests.put((pixels, done))
        return done.result()

    def serve(self, running: list[Future]) -> None:
        """On the encoding thread: encode the clips handed over until every decoding job in `running` is done; an
        encoder error goes to the thread whose clip it was."""
        done = None
        try:
            while True:
                try:
                    pixels, done = self.requests.get(timeout=0.02)
                except queue.Empty:
                    if all(job.done() for job in running):
                        return
                    continue
                try:
                    with torch.inference_mode():
                        done.set_result(self.encoder(pixels).to("cpu"))
                except Exception as err:  # noqa: BLE001 -- raised again on the decoding thread, then by its job
                    done.set_exception(err)
        finally:
            # Interrupted here (Ctrl-C): no decoding thread may wait for ever, or the pool could never shut down.
            self.stopped = True
            if done is not None and not done.done():
                done.set_exception(RuntimeError("clip encoding was interrupted"))
            while not all(job.done() for job in running):
                try:
                    _, done = self.requests.get(timeout=0.02)
                except queue.Empty:
                    continue
                done.set_exception(RuntimeError("clip encoding was interrupted"))


__all__ = ["CallerThreadEncoder", "ProbedView", "probe_view", "read_view_clips"]
