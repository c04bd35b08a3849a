"""Rendering of the synthetic performer: one orthographic camera per view, drawn as yuv420p planes and
encoded as H.264 (the layout and the label signal are described in `synthetic_egoexo4d` and `synthetic_motion`)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from dataset_scripts.synthetic_events import EVENT_BAND, EVENT_COLOURS, TakeEvent
from dataset_scripts.synthetic_motion import FPS, STREAK_FRAMES, Motion

STREAK_ALPHA = 0.85
LIMB_RADIUS = 0.09  # body units; hands/feet are 1.5x, the streak 1.1x
# Luma of each part; chroma follows luma through a lookup table, so only the Y plane is composited.
LUMA = {"background": 80.0, "ground": 45.0, "streak": 140.0, "limb": 185.0, "body": 205.0, "end": 235.0}
_LUT_AT = np.array([0.0, 45.0, 80.0, 140.0, 185.0, 205.0, 235.0, 255.0])
_LUT_U = np.interp(np.arange(256), _LUT_AT, [128, 128, 128, 170, 150, 110, 90, 90]).round().astype(np.uint8)
_LUT_V = np.interp(np.arange(256), _LUT_AT, [128, 128, 128, 100, 110, 150, 175, 175]).round().astype(np.uint8)
_SPRITES: dict[float, tuple[np.ndarray, np.ndarray]] = {}


@dataclass(frozen=True)
class Camera:
    """Orthographic camera: azimuth/elevation (radians), pixels per body unit and the image point of the origin."""

    azimuth: float
    elevation: float
    scale: float
    cx: float
    cy: float

    def project(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) world points -> (..., 2) pixel (x, y)."""
        x, y, z = points[..., 0], points[..., 1], points[..., 2]
        ca, sa = math.cos(self.azimuth), math.sin(self.azimuth)
        u = ca * x - sa * z
        depth = sa * x + ca * z
        v = y * math.cos(self.elevation) + depth * math.sin(self.elevation)
        return np.stack([self.cx + self.scale * u, self.cy - self.scale * v], -1)


def _disk(radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Anti-aliased disk sprite as (row-major offsets order, alphas), low alpha first (see `_paste_disks`)."""
    key = round(radius * 4) / 4
    if key not in _SPRITES:
        r = int(math.ceil(key)) + 1
        yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
        alpha = np.clip(key + 0.5 - np.sqrt(xx**2 + yy**2), 0, 1).ravel()
        keep = np.flatnonzero(alpha > 0)
        order = keep[np.argsort(alpha[keep], kind="stable")]
        _SPRITES[key] = (np.stack([yy.ravel()[order], xx.ravel()[order]]), alpha[order].astype(np.float32))
    return _SPRITES[key]


def _paste_disks(plane: np.ndarray, centres: np.ndarray, radius: float, value: float, alpha: float = 1.0) -> None:
    """Composite same-coloured disks at `centres` (N, T, 2) into the uint8 `plane` (T, H, W) in one gather/scatter.

    Overlapping disks must form a union, not stack up: within a frame the sprite pixels are written lowest alpha
    first, so where indices repeat, the last (largest-alpha) write wins. Frames are outermost so that the scatter
    walks the canvas in order (cache). Centres are clamped into the canvas, whose margin is wide enough that a
    clamped disk stays out of the visible crop."""
    t_count, height, width = plane.shape
    offsets, alphas = _disk(radius)
    r = int(math.ceil(round(radius * 4) / 4)) + 1
    cx = np.clip(np.rint(centres[..., 0]).astype(np.int64), r, width - 1 - r)
    cy = np.clip(np.rint(centres[..., 1]).astype(np.int64), r, height - 1 - r)
    base = np.arange(t_count, dtype=np.int64) * height * width + cy * width + cx  # (N, T)
    idx = base.T[:, None, :] + (offsets[0] * width + offsets[1])[None, :, None]  # [frame, sprite pixel, disk]
    flat = plane.reshape(-1)
    old = np.take(flat, idx).astype(np.float32)
    flat[idx] = (old + (value - old) * (alphas[None, :, None] * alpha) + 0.5).astype(np.uint8)


def render_view(motion: Motion, camera: Camera, height: int, width: int, ego: bool) -> tuple[np.ndarray, ...]:
    """Render one camera's video as yuv420p planes (Y (T, H, W), U and V (T, H/2, W/2), uint8)."""
    n, hist = motion.num_frames, STREAK_FRAMES
    limb_r = LIMB_RADIUS * camera.scale
    margin = 2 * int(math.ceil(1.5 * limb_r)) + 4  # > a clamped disk's diameter (see _paste_disks)
    canvas = np.full((n, height + 2 * margin, width + 2 * margin), LUMA["background"], np.uint8)
    shake = motion.head_shake * camera.scale if ego else np.zeros((n, 2))

    def frames_of(points: np.ndarray, lag: int = 0) -> np.ndarray:  # (..., M, 3) -> (..., n, 2) pixels
        return camera.project(points[..., hist - lag : hist - lag + n, :]) + margin + shake

    # a floor edge: below the feet for exo cameras, the far edge of the floor (shaking with the head) for the ego one
    ground = camera.cy + margin - camera.scale * (1.3 if ego else -1.05) + shake[:, 1]
    rows = np.clip(np.rint(ground).astype(np.int64)[:, None] + np.arange(max(1, height // 24)), 0, canvas.shape[1] - 1)
    canvas[np.arange(n)[:, None], rows] = LUMA["ground"]
    streak = np.concatenate([frames_of(motion.ends, lag) for lag in range(hist, 0, -1)])
    _paste_disks(canvas, streak, 1.1 * limb_r, LUMA["streak"], STREAK_ALPHA)
    if not ego:  # the ego camera sees only the arms and hands in front of it
        for dy, r in ((0.15, 0.17), (-0.15, 0.15), (0.55, 0.12)):
            _paste_disks(canvas, frames_of(motion.torso + [0.0, dy, 0.0])[None], r * camera.scale, LUMA["body"])
    joints, ends = frames_of(motion.joints), frames_of(motion.ends)
    steps = max(2, int(math.ceil(np.linalg.norm(ends - joints, axis=-1).max() / max(1.3 * limb_r, 1.0))))
    along = np.linspace(0.15, 1.0, steps)[:, None, None, None]
    _paste_disks(canvas, (joints[None] + (ends - joints)[None] * along).reshape(-1, n, 2), limb_r, LUMA["limb"])
    _paste_disks(canvas, ends, 1.5 * limb_r, LUMA["end"])
    y = np.ascontiguousarray(canvas[:, margin : margin + height, margin : margin + width])
    small = y[:, ::2, ::2]
    return y, _LUT_U[small], _LUT_V[small]


def flash_events(planes: tuple[np.ndarray, ...], events: list[TakeEvent], camera_index: int) -> tuple[np.ndarray, ...]:
    """Draw the events that camera `camera_index` sees into its yuv420p `planes` (in place, returned): while an event
    is on, the background pixels of the frame's top `EVENT_BAND` take its colour (`EVENT_COLOURS`), like a signal
    light above the scene; the performer and the floor stay as drawn."""
    y, u, v = planes
    band = max(2, int(round(y.shape[1] * EVENT_BAND)) // 2 * 2)  # even, so the 2x2-subsampled chroma lines up
    for event in events:
        frames = event.frames(len(y))
        if camera_index not in event.cameras or not len(frames):
            continue
        luma, blue, red = EVENT_COLOURS[event.kind]
        window = slice(frames.start, frames.stop)
        background = y[window, :band] == LUMA["background"]  # exact: render_view fills the canvas with this value
        y[window, :band][background] = luma
        small = background[:, ::2, ::2]  # the chroma planes are subsampled 2x2 like the luma they follow
        u[window, : band // 2][small], v[window, : band // 2][small] = blue, red
    return y, u, v


def view_cameras(size: int, exo_width: int, rng: np.random.Generator) -> list[Camera]:
    """Ego camera at the head looking forward-down, then four exo cameras around the performer."""
    cams = [Camera(0.0, math.radians(53), 0.45 * size * rng.uniform(0.95, 1.05), size / 2, 0.85 * size)]
    for k in range(4):
        azimuth = math.radians(45 + 90 * k + rng.uniform(-10, 10))
        cams.append(Camera(azimuth, math.radians(8), 0.42 * size * rng.uniform(0.95, 1.05), exo_width / 2, 0.45 * size))
    return cams


def encode_yuv420(path: Path, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
    """Write planes as H.264 yuv420p at 30 fps (libx264 ultrafast, 1 s GOP so readers can seek cheaply)."""
    t_count, height, width = y.shape
    packed = np.concatenate([y.reshape(t_count, -1), u.reshape(t_count, -1), v.reshape(t_count, -1)], 1)
    packed = packed.reshape(t_count, height * 3 // 2, width)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = FPS
        stream.options = {"preset": "ultrafast", "threads": "1"}  # parallelism comes from one process per take
        for frame in packed:  # from_numpy_buffer wraps without copying; the encoder copies the picture it is given
            container.mux(stream.encode(av.VideoFrame.from_numpy_buffer(frame, format="yuv420p")))
        container.mux(stream.encode())
