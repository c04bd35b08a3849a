"""Write a synthetic Ego-Exo4D tree (demonstrator proficiency + expert commentary) in the real on-disk layout.

The tree looks like `egoexo -o DIR --parts metadata annotations downscaled_takes/448 expert_commentary`
(EGOEXO4D_FORMAT.md §1.2): `takes.json`, `annotations/splits.json`,
`annotations/proficiency_demonstrator_{train,val}.json`, `annotations/expert_commentary_{train,val}.json`,
per-expert `annotations/expert_commentary/<take>/<expert>/{data.json,transcriptions.json,recordings/*.webm}` for
some experts, and for every take one ego (`<aria>_214-1.mp4`, square) and four exo (`camNN`/`gpNN.mp4`, 16:9)
H.264 yuv420p videos at 30 fps under `takes/<take>/frame_aligned_videos/downscaled/448/`, all with the same frame
count. Only the ego RGB stream and the four exo files are written (no SLAM/eye-tracking streams, no collage
`ego_preview.mp4`, no test split). Scenarios, label mix and universities follow the real train split
(EGOEXO4D_FORMAT.md §3.4); task names other than the documented examples are made up.

How proficiency is encoded (the only label signal; same for every scenario and every camera)
------------------------------------------------------------------------------------------------
The performer is a stick figure (torso, head, two arms, two legs) seen by an ego camera at the head (arms and
hands only, looking forward and down) and by four exo cameras around it (azimuths 45/135/225/315 deg). Its hands
and feet trace a scenario-specific 3D loop (`SCENARIO_PATTERNS`: frequency ratios and left/right phase). Four
motion properties grow with the label index l (0 Novice, 1 Early, 2 Intermediate, 3 Late Expert), each drawn per
take within +-6-8 % (tremor +-20 %) of its level value (`LEVEL_MOTION`), so levels never overlap:

    property                          Novice  Early  Interm.  Late   visible as
    extension (limb length, body=1)   0.35    0.55   0.75     0.95   reach of the arms/legs (silhouette size)
    range of motion (loop amplitude)  0.05    0.13   0.24     0.38   spread of the hands/feet over time
    tempo (loop cycles per second)    0.50    0.75   1.00     1.25   speed -> length of the motion streak
    tremor (jitter std, body units)   0.040   0.025  0.010    0.000  jagged paths, shaky ego camera

Every hand/foot leaves a motion streak (afterimage of its last `STREAK_FRAMES` = 0.3 s of positions), so speed and
smoothness are visible in a single frame: experts draw long smooth streaks with extended limbs, novices stay
tucked in with short, jittery ones. A randomly initialised, frozen TimeSformer with mean-pooled tokens mostly
measures how much of the frame each colour covers, not where things are, which is why the signal is carried by
silhouette size and streak area rather than by position (tests/test_signal_probe.py checks it through the tower).
Colours and background are the same for every take, so they carry no label.

The commentary describes what the video shows: it is computed from the same simulated motion
(`motion_statistics`: mean extension, range, speed and tremor over the whole take and around each comment's
`video_time`) with thresholds half-way between the levels, phrased in scenario vocabulary. The expert's 1-10
rating in `data.json` comes from the same statistics.

Quirks of the real data (EGOEXO4D_FORMAT.md §1.3, §2, §4) appear in a fraction of takes: ego cameras other than
`aria01`, `gpNN` exo cameras (all upenn takes), takes without `cam02` (exo = cam01, cam03, cam04, cam05),
`best_exo: null`, `collage`/`best_exo` pseudo-cameras (every take), a `moblie` walk-around camera in the capture,
`takes/takes/` prefixes in `video_paths`, `origin_participant_id` as int, leading spaces in Whisper text,
`error: true` commentary entries without `text`, ratings as str/int/"N/A", and the val proficiency file as a
bare list instead of `{"annotations": [...]}`. Annotation files are byte-identical for the same arguments.

    python dataset_scripts/synthetic_egoexo4d.py --out egoexo_synthetic --takes 40 --seed 0 --size 112 --seconds 4
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

try:
    from modeling_profvlm.configuration_profvlm import PROFICIENCY_LABELS, VIEW_NAMES
except ImportError:  # run as a script from a checkout that is not installed: make the repo root importable
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from modeling_profvlm.configuration_profvlm import PROFICIENCY_LABELS, VIEW_NAMES

FPS = 30
STREAK_FRAMES = 9
STREAK_ALPHA = 0.85
LIMB_RADIUS = 0.09  # body units; hands/feet are 1.5x, the streak 1.1x
# Label signal, indexed by label id (PROFICIENCY_LABELS order). See the module docstring.
LEVEL_MOTION = {
    "extension": (0.35, 0.55, 0.75, 0.95),
    "range": (0.05, 0.13, 0.24, 0.38),
    "tempo": (0.50, 0.75, 1.00, 1.25),
    "tremor": (0.040, 0.025, 0.010, 0.0),
}
# Scenario-specific loop of hands and feet: frequency multipliers on x, y, z and the right side's phase offset.
SCENARIO_PATTERNS = {
    "Basketball": (1, 2, 1, 0.0),
    "Cooking": (1, 1, 1, 0.0),
    "Dance": (1, 2, 2, math.pi),
    "Music": (2, 1, 2, 0.5 * math.pi),
    "Rock Climbing": (1, 1, 2, math.pi),
    "Soccer": (2, 1, 1, math.pi),
}
# Real train counts per scenario x label (Novice, Early, Intermediate, Late): EGOEXO4D_FORMAT.md §3.4.
REAL_TRAIN_MIX = {
    "Basketball": (64, 110, 178, 223),
    "Cooking": (90, 50, 53, 7),
    "Dance": (32, 196, 68, 84),
    "Music": (0, 24, 44, 70),
    "Rock Climbing": (188, 131, 177, 65),
    "Soccer": (0, 0, 40, 89),
}
VAL_FRACTION = 561 / (1983 + 561)
# parent_task_id, a university per scenario (the real majority one) and (task_id, task_name) choices.
SCENARIO_META = {
    "Basketball": (6000, "unc", [(6001, "Basketball Drills - Mikan Layup"), (6002, "Basketball Drills - Reverse Layup"),
                                 (6003, "Basketball Drills - Mid-Range Jump Shooting")]),
    "Cooking": (1000, "sfu", [(1001, "Cooking an Omelet"), (1004, "Making Cucumber & Tomato Salad"),
                              (1008, "Making Sesame-Ginger Asian Salad")]),
    "Dance": (9000, "uniandes", [(9005, "LosAndes_Basic_Salsa"), (9006, "LosAndes_Basic_Merengue")]),
    "Music": (5000, "upenn", [(5009, "Playing Piano"), (5010, "Playing Guitar"), (5011, "Playing Violin")]),
    "Rock Climbing": (7000, "uniandes", [(7018, "LosAndes_V2_R1"), (7019, "LosAndes_V2_R2")]),
    "Soccer": (8000, "iiith", [(8003, "Soccer Drills - Dribbling"),
                               (8001, "Soccer Drills - Inside Trap and Outside Play")]),
}
UNIVERSITY_IDS = {"unc": "ego4d-unc", "sfu": "ego4d-sfu", "uniandes": "ego4d-university-sa", "upenn": "ego4d-upenn",
                  "iiith": "ego4d-iiith"}
ODD_EGO_CAMS = ("aria02", "aria", "aria1", "aria04")  # seen in the real splits besides aria01 (§1.3)
EXPERT_POOL = 16
ARIA_STREAMS = (("rgb", "214-1"), ("slam-left", "1201-1"), ("slam-right", "1201-2"), ("et", "211-1"))
COMMENTARY_DS = "20240324_14:05:11"
SPLITS_DS = "20240404_08:13:53"


# ----------------------------------------------------------------------------------------------------- planning
@dataclass
class TakePlan:
    """Everything about one synthetic take that the annotation files and the renderer need (picklable)."""

    index: int
    take_uid: str
    take_name: str
    scenario: str
    task_id: int
    task_name: str
    university: str
    split: str  # "train" | "val"
    level: int
    participant_uid: int
    motion_seed: int
    ego_cam: str
    exo_cams: list[str]
    best_exo: str | None
    participant_id_as_int: bool
    double_takes_prefix: bool
    has_mobile_camera: bool
    experts: list[str] = field(default_factory=list)


def _every(i: int, period: int, phase: int) -> bool:
    """Deterministic 1-in-`period` choice, so even a tree of ~10 takes contains every quirk."""
    return i % period == phase % period


def _allocate(num: int, weights: np.ndarray, offset: float) -> np.ndarray:
    """Systematic sampling: `num` cell indices whose counts follow `weights` within +-1."""
    cum = np.cumsum(weights / weights.sum())
    return np.minimum(np.searchsorted(cum, (np.arange(num) + offset) / num, side="right"), len(weights) - 1)


def plan_takes(num_takes: int, seed: int) -> list[TakePlan]:
    """Draw scenario, label, split, cameras, quirks and experts for `num_takes` takes, deterministically."""
    rng = np.random.default_rng(seed)
    scenarios = list(REAL_TRAIN_MIX)
    cells = np.array([REAL_TRAIN_MIX[s][lvl] for s in scenarios for lvl in range(4)], float)
    chosen = _allocate(num_takes, cells, rng.uniform())
    rng.shuffle(chosen)
    val = set(rng.permutation(num_takes)[: max(1 if num_takes >= 2 else 0, round(num_takes * VAL_FRACTION))].tolist())
    experts = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz0123456789"), 6)) for _ in range(EXPERT_POOL)]
    plans = []
    for i, cell in enumerate(chosen.tolist()):
        scenario, level = scenarios[cell // 4], cell % 4
        parent, uni, tasks = SCENARIO_META[scenario]
        task_id, task_name = tasks[int(rng.integers(len(tasks)))]
        ego = ODD_EGO_CAMS[(i // 7) % len(ODD_EGO_CAMS)] if _every(i, 7, 3) else "aria01"
        prefix = "gp" if uni == "upenn" else "cam"
        numbers = (1, 3, 4, 5) if _every(i, 9, 4) else (1, 2, 3, 4)
        exo = [f"{prefix}{n:02d}" for n in numbers]
        has_commentary = rng.uniform() < 0.7 or i == 0
        n_experts = int(rng.integers(1, 4)) if has_commentary else 0
        if i == 0:
            n_experts = max(2, n_experts)  # at least one take with several experts
        plans.append(TakePlan(
            index=i,
            take_uid=str(uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | int(rng.integers(0, 2**63)), version=4)),
            take_name=_take_name(scenario, uni, task_name, i, rng),
            scenario=scenario, task_id=task_id, task_name=task_name, university=uni,
            split="val" if i in val else "train", level=level,
            participant_uid=int(rng.integers(100, 900)), motion_seed=int(rng.integers(0, 2**31)),
            ego_cam=ego, exo_cams=exo,
            best_exo=None if _every(i, 10, 7) else exo[int(rng.integers(4))],
            participant_id_as_int=_every(i, 3, 1), double_takes_prefix=_every(i, 11, 6),
            has_mobile_camera=_every(i, 5, 2),
            experts=[experts[j] for j in rng.choice(EXPERT_POOL, n_experts, replace=False).tolist()],
        ))
    return plans


def _take_name(scenario: str, uni: str, task_name: str, i: int, rng: np.random.Generator) -> str:
    """Take names in each university's real style (EGOEXO4D_FORMAT.md §1.2, §3), unique by the take index."""
    n = int(rng.integers(1, 40))
    if uni == "unc":
        return f"unc_basketball_03-{16 + i % 14:02d}-23_{n:02d}_{i}"
    if uni == "upenn":  # e.g. upenn_0712_Violin_2_4; the instrument is the task's
        return f"upenn_07{10 + i % 20:02d}_{task_name.split()[-1]}_{n}_{i}"
    word = {"Rock Climbing": "bouldering", "Dance": "dance", "Cooking": "cooking", "Soccer": "soccer"}[scenario]
    return f"{uni}_{word}_{n:03d}_{i}"


# ------------------------------------------------------------------------------------------------------- motion
@dataclass
class Motion:
    """Simulated 3D motion of one take, with `STREAK_FRAMES` frames of history before frame 0."""

    torso: np.ndarray  # (M, 3), M = STREAK_FRAMES + num_frames
    joints: np.ndarray  # (4, M, 3): left/right shoulder, left/right hip
    ends: np.ndarray  # (4, M, 3): left/right hand, left/right foot (loop + tremor)
    tremor: np.ndarray  # (4, M, 3): the tremor part of `ends`
    head_shake: np.ndarray  # (num_frames, 2): ego camera shake, in body units
    num_frames: int


def _smooth_noise(rng: np.random.Generator, n: int, dims: int, sigma: float, corr: float = 3.0) -> np.ndarray:
    """Gaussian noise low-passed over ~`corr` frames, scaled to std `sigma`."""
    half = int(2 * corr)
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / corr) ** 2)
    kernel /= np.sqrt((kernel**2).sum())
    white = rng.normal(0.0, 1.0, (n + 2 * half, dims))
    return np.stack([np.convolve(white[:, d], kernel, mode="valid") for d in range(dims)], 1) * sigma


def simulate_motion(level: int, scenario: str, num_frames: int, seed: int, nominal: bool = False) -> Motion:
    """The performer's motion for one take: limb extension, loop range, tempo and tremor from `LEVEL_MOTION`,
    each varied per take within a few percent (not with `nominal=True`)."""
    rng = np.random.default_rng(seed)
    fx, fy, fz, right_phase = SCENARIO_PATTERNS[scenario]
    vary = (lambda lo, hi: 1.0) if nominal else (lambda lo, hi: rng.uniform(lo, hi))
    ext = LEVEL_MOTION["extension"][level] * vary(0.94, 1.06)
    rom = LEVEL_MOTION["range"][level] * vary(0.92, 1.08)
    tempo = LEVEL_MOTION["tempo"][level] * vary(0.92, 1.08)
    tremor_std = LEVEL_MOTION["tremor"][level] * vary(0.8, 1.2)
    total = num_frames + STREAK_FRAMES
    t = (np.arange(total) - STREAK_FRAMES) / FPS
    phase = 2 * np.pi * tempo * t + rng.uniform(0, 2 * np.pi)
    torso = np.stack([0.02 * np.sin(phase), 0.02 * np.cos(2 * phase), np.zeros_like(t)], 1)
    joints, ends, tremor = [], [], []
    for kind, side in (("arm", -1), ("arm", 1), ("leg", -1), ("leg", 1)):
        offset = right_phase if side > 0 else 0.0
        if kind == "arm":  # shoulders; arms held forward-sideways, ~80 deg up from hanging
            joint, pitch, length = np.array([side * 0.2, 0.35, 0.0]), 1.4, ext
        else:  # hips; legs slightly apart
            joint, pitch, length = np.array([side * 0.1, -0.3, 0.0]), 0.35, 0.35 + 0.45 * ext
        rest = length * np.array([side * 0.8 * np.sin(pitch), -np.cos(pitch), 0.6 * np.sin(pitch)])
        loop = np.stack([np.sin(fx * phase + offset), np.sin(fy * phase + offset + 0.7),
                         np.cos(fz * phase + offset)], 1)
        jitter = _smooth_noise(rng, total, 3, tremor_std)
        joints.append(torso + joint)
        tremor.append(jitter)
        ends.append(torso + joint + rest + 1.6 * rom * loop + jitter)
    shake = _smooth_noise(rng, num_frames, 2, tremor_std, corr=4.0)
    return Motion(torso, np.stack(joints), np.stack(ends), np.stack(tremor), shake, num_frames)


def motion_statistics(motion: Motion, start: int = 0, stop: int | None = None) -> dict[str, float]:
    """Extension, range, speed (units/s) and tremor of the hands and feet over frames [start, stop)."""
    sl = slice(STREAK_FRAMES + start, STREAK_FRAMES + (motion.num_frames if stop is None else stop))
    tremor = motion.tremor[:, sl]
    clean = motion.ends[:, sl] - tremor  # tempo and range are judged on the intended movement
    extension = float(np.linalg.norm(clean - motion.joints[:, sl], axis=-1)[:2].mean())
    spread = float(np.sqrt(((clean - clean.mean(1, keepdims=True)) ** 2).sum(-1).mean()))
    speed = float(np.linalg.norm(np.diff(clean, axis=1), axis=-1).mean() * FPS) if clean.shape[1] > 1 else 0.0
    jitter = float(np.sqrt((tremor**2).sum(-1).mean()))
    return {"extension": extension, "range": spread, "speed": speed, "tremor": jitter}


def _nominal_thresholds(scenario: str) -> dict[str, np.ndarray]:
    """Per statistic, three thresholds half-way between the levels, measured on long nominal simulations of the
    scenario (its loop pattern changes the speed)."""
    per_level = [motion_statistics(simulate_motion(lvl, scenario, 40 * FPS, 1234, nominal=True)) for lvl in range(4)]
    return {k: np.array([(per_level[i][k] + per_level[i + 1][k]) / 2 for i in range(3)]) for k in per_level[0]}


_THRESHOLDS: dict[str, dict[str, np.ndarray]] = {}


def motion_grades(stats: dict[str, float], scenario: str) -> dict[str, int]:
    """Each statistic as a grade 0-3, where 3 is expert-like (less tremor grades higher)."""
    if scenario not in _THRESHOLDS:
        _THRESHOLDS[scenario] = _nominal_thresholds(scenario)
    thresholds = _THRESHOLDS[scenario]
    grades = {k: int((stats[k] > thresholds[k]).sum()) for k in ("extension", "range", "speed")}
    grades["tremor"] = int((stats["tremor"] < thresholds["tremor"]).sum())
    return grades


# ---------------------------------------------------------------------------------------------------- rendering
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


# --------------------------------------------------------------------------------------------------- commentary
SCENARIO_WORDS = {  # (one movement, several movements)
    "Basketball": ("layup", "shots"),
    "Cooking": ("cut", "knife strokes"),
    "Dance": ("step", "steps"),
    "Music": ("bow stroke", "strokes"),
    "Rock Climbing": ("reach", "moves"),
    "Soccer": ("touch", "touches"),
}
# What an expert says about each statistic at each grade (0 = novice-like ... 3 = expert-like); two phrasings.
PHRASES = {
    "extension": (
        ("The arms stay tucked in close to the body, so every {move} looks cramped.",
         "Everything is done with bent, pulled-in arms; there is almost no reach."),
        ("The limbs are only partly extended during the {moves}.",
         "The reach is short; the arms open up only half way."),
        ("Good extension of the arms through most of the {moves}.",
         "The arms open up well and reach out on the {moves}."),
        ("Full extension on every {move}; the limbs reach all the way out.",
         "Beautiful long reach, the arms are fully extended."),
    ),
    "range": (
        ("The movements are very small and hesitant.", "The range of motion is tiny, it all looks timid."),
        ("The range of motion is limited; the {moves} could be bigger.", "The {moves} are a bit small."),
        ("A good, committed range of motion.", "The {moves} use a nice, full range."),
        ("Big, confident movements that use the full range of motion.", "Large, committed {moves}, very expressive."),
    ),
    "speed": (
        ("The tempo is slow, with long pauses between {moves}.", "Very slow pace; each {move} takes a long time."),
        ("The pace is a bit slow and uneven.", "The rhythm drags a little between {moves}."),
        ("A steady pace through the {moves}.", "Good rhythm, the {moves} flow at a steady pace."),
        ("Quick, fluent tempo from one {move} to the next.", "Fast and fluent, no hesitation between {moves}."),
    ),
    "tremor": (
        ("The hands shake and the path is jittery and erratic.",
         "Lots of wobble; the movement looks shaky and erratic."),
        ("There is some visible wobble in the hands.", "A little shaky here, the control is not there yet."),
        ("The motion is mostly smooth, with only a little wobble.", "Mostly smooth and controlled."),
        ("Perfectly smooth and controlled, no wasted motion.", "Very clean, smooth path with no jitter at all."),
    ),
}
TIPS = {
    "extension": "Try to reach further and extend the arms fully.",
    "range": "Commit to bigger movements.",
    "speed": "Work on keeping a steady, quicker rhythm.",
    "tremor": "Slow down a little and focus on controlling the hands.",
}


def describe_motion(stats: dict[str, float], scenario: str, aspects: list[str], phrasing: int) -> str:
    """Expert-style sentences about `aspects` of the motion summarised by `stats`, plus a tip for weak grades."""
    grades = motion_grades(stats, scenario)
    move, moves = SCENARIO_WORDS[scenario]
    sentences = [PHRASES[a][grades[a]][phrasing % 2].format(move=move, moves=moves) for a in aspects]
    weakest = min(aspects, key=lambda a: grades[a])
    if grades[weakest] <= 1:
        sentences.append(TIPS[weakest])
    return " ".join(sentences)


def rating_from_grades(grades: dict[str, int], bias: int) -> int:
    """An expert's 1-10 rating: the mean grade mapped to 2..9, shifted by the expert's own bias."""
    return int(np.clip(round(2.0 + 7.0 * np.mean(list(grades.values())) / 3.0) + bias, 1, 10))


_ERROR_DESC = ('Traceback (most recent call last):\n  File "transcribe.py", line 88, in transcribe\n'
               "RuntimeError: audio too short")


def expert_commentary(plan: TakePlan, motion: Motion, expert: str, k: int) -> tuple[list[dict], dict]:
    """One expert's commentary for a take: first-form `commentary_data` (recording order) and a `data.json`."""
    rng = np.random.default_rng([plan.motion_seed, k])
    duration = motion.num_frames / FPS
    count = int(rng.integers(2, 6))
    times = np.sort(rng.uniform(0.05, 0.95, count)) * duration
    recording_of = rng.permutation(count)  # experts paused in video order but files are numbered as recorded
    aspects = list(PHRASES)
    entries, clock = [], float(rng.uniform(1e5, 2e6))
    for j, video_time in enumerate(times.tolist()):
        lo = max(0, int((video_time - 1.0) * FPS))
        hi = min(motion.num_frames, max(lo + 10, int((video_time + 1.0) * FPS)))
        said = [aspects[(j + k) % 4]] + ([aspects[(j + k + 2) % 4]] if rng.uniform() < 0.5 else [])
        text = " " + describe_motion(motion_statistics(motion, lo, hi), plan.scenario, said, k + j)
        error = (plan.index == 0 and k == 0 and j == count - 1) or rng.uniform() < 0.08
        words = len(text.split())
        entry = {"recording": f"{int(recording_of[j])}.webm", "video_time": round(video_time, 6)}
        if not error:
            entry["text"] = text
        entry.update({"error": bool(error), "_error_desc": _ERROR_DESC if error else None,
                      "duration_approx": round(words / 2.4 + float(rng.uniform(0.5, 3.0)), 6)})
        entries.append(entry)
    entries.sort(key=lambda e: int(e["recording"].split(".")[0]))
    grades = motion_grades(motion_statistics(motion), plan.scenario)
    rating: int | str = rating_from_grades(grades, int(rng.integers(-1, 2)))
    rating = "N/A" if rng.uniform() < 0.08 else (rating if rng.uniform() < 0.3 else str(rating))
    annotations = []
    for e in entries:
        start = clock
        clock += e["duration_approx"] * 1000 + float(rng.uniform(2e3, 2e4))
        annotations.append({"video_time": e["video_time"], "start_global_time": round(start, 1),
                            "end_global_time": round(start + e["duration_approx"] * 1000, 1),
                            "duration_approx": e["duration_approx"], "recording_path": e["recording"], "events": []})
    why = describe_motion(motion_statistics(motion), plan.scenario, aspects, k)
    data = {"user_id": expert, "video_name": plan.take_name, "datetime": "Tue, 06 Feb 2024 18:22:10 GMT",
            "ds": 1707243730123 + 1000 * plan.index + k, "annotations": annotations,
            "proficiency": {"rating": rating, "why": why}}
    return entries, data


# ---------------------------------------------------------------------------------------------- annotation files
def _fake_uid(plan: TakePlan, salt: str) -> str:
    """A stable UUID for the ids a take record carries besides take_uid (capture, timesync, clips...)."""
    return str(uuid.uuid5(uuid.UUID(plan.take_uid), salt))


def take_record(plan: TakePlan, num_frames: int) -> dict:
    """The take's `takes.json` entry (EGOEXO4D_FORMAT.md §2), with aria streams, exo cams and both pseudo-cams."""
    name, ego = plan.take_name, plan.ego_cam
    videos: dict[str, dict] = {ego: {}}
    for readable, stream_id in ARIA_STREAMS:
        videos[ego][readable] = {"cam_id": ego, "stream_id": stream_id, "readable_stream_id": readable,
                                 "clip_uid": _fake_uid(plan, f"{ego}_{stream_id}"), "is_collage": False,
                                 "relative_path": f"frame_aligned_videos/{ego}_{stream_id}.mp4"}
    for cam in plan.exo_cams:
        videos[cam] = {"0": {"cam_id": cam, "stream_id": "0", "readable_stream_id": "0",
                             "clip_uid": _fake_uid(plan, cam), "is_collage": False,
                             "relative_path": f"frame_aligned_videos/{cam}.mp4"}}
    videos["collage"] = {"0": {"clip_uid": _fake_uid(plan, "collage"), "is_collage": True, "stream_id": "0",
                               "readable_stream_id": "0", "relative_path": "ego_preview.mp4"}}
    videos["best_exo"] = {"0": {"clip_uid": None, "is_collage": True, "stream_id": "0", "readable_stream_id": "0",
                                "relative_path": None}}
    capture_name = name.rsplit("_", 1)[0]
    cameras = [{"cam_id": ego, "is_ego": True, "has_walkaround": True, "includes_audio": True, "device_type": "aria",
                "relative_path": f"videos/{ego}.vrs", "video_artifact_uid": _fake_uid(plan, "a" + ego)}]
    cameras += [{"cam_id": cam, "is_ego": False, "has_walkaround": False, "includes_audio": True,
                 "device_type": "hero10", "relative_path": f"videos/{cam}.mp4",
                 "video_artifact_uid": _fake_uid(plan, "a" + cam)} for cam in plan.exo_cams]
    if plan.has_mobile_camera:  # the walk-around phone camera, with the real data's typo
        cameras.append({"cam_id": "moblie", "is_ego": False, "has_walkaround": True, "includes_audio": True,
                        "device_type": "mobile", "relative_path": "videos/moblie.mp4",
                        "video_artifact_uid": _fake_uid(plan, "m")})
    parent, uni, _ = SCENARIO_META[plan.scenario]
    start = 1000 + 37 * plan.index
    return {
        "root_dir": f"takes/{name}", "take_name": name, "participant_uid": plan.participant_uid, "is_dropped": False,
        "objects": [], "task_id": plan.task_id, "task_name": plan.task_name, "parent_task_id": parent,
        "parent_task_name": plan.scenario, "take_idx": plan.index, "duration_sec": num_frames / FPS,
        "best_exo": plan.best_exo, "task_start_sec": 0.0, "task_end_sec": num_frames / FPS,
        "task_timing_annotation_uid": _fake_uid(plan, "timing_annotation"), "is_narrated": False,
        "capture_uid": _fake_uid(plan, "capture"), "take_uid": plan.take_uid,
        "take_timing_uid": _fake_uid(plan, "timing"), "timesync_uid": _fake_uid(plan, "timesync"),
        "timesync_start_idx": start, "timesync_end_idx": start + num_frames,
        "frame_aligned_videos": videos, "vrs_all_streams_relative_path": f"{ego}.vrs",
        "vrs_relative_path": f"{ego}_noimagestreams.vrs", "trimmed_eye_gaze_relative_path": "eye_gaze",
        "trimmed_trajectory_relative_path": "trajectory", "has_trimmed_eye_gaze": True, "has_trimmed_trajectory": True,
        "has_trimmed_vrs": True, "university_id": UNIVERSITY_IDS[uni], "university_name": uni,
        "origin_id": str(plan.index),
        "capture": {"root_dir": f"captures/{capture_name}", "capture_name": capture_name,
                    "capture_uid": _fake_uid(plan, "capture"), "university_name": uni, "cameras": cameras,
                    "timesync_uid": _fake_uid(plan, "timesync"), "timesync_validated": True, "validated": True},
        "physical_setting_uid": 10 + list(SCENARIO_META).index(plan.scenario), "validated": True,
    }


def proficiency_record(plan: TakePlan) -> dict:
    """The take's `proficiency_demonstrator_{split}.json` record (EGOEXO4D_FORMAT.md §3.2), full-resolution paths."""
    prefix = f"takes/takes/{plan.take_name}" if plan.double_takes_prefix else f"takes/{plan.take_name}"
    files = [f"{plan.ego_cam}_214-1.mp4"] + [f"{cam}.mp4" for cam in plan.exo_cams]
    participant = 100 + plan.participant_uid % 400
    return {
        "task_id": plan.task_id, "task_name": plan.task_name, "scenario_name": plan.scenario,
        "university_id": UNIVERSITY_IDS[plan.university],
        "origin_participant_id": participant if plan.participant_id_as_int else str(participant),
        "take_uid": plan.take_uid,
        "video_paths": {view: f"{prefix}/frame_aligned_videos/{f}" for view, f in zip(VIEW_NAMES, files)},
        "proficiency_score": PROFICIENCY_LABELS[plan.level],
    }


def _dump_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")


def write_annotations(root: Path, plans: list[TakePlan], num_frames: int) -> None:
    """Write takes.json, metadata, splits, proficiency and commentary files (no videos); deterministic."""
    _dump_json(root / "takes.json", [take_record(p, num_frames) for p in plans])
    tasks = {str(tid): tname for _, _, ts in SCENARIO_META.values() for tid, tname in ts}
    _dump_json(root / "metadata.json", {"version": "v2", "date": "240325", "tasks": tasks})
    participants = sorted({p.participant_uid: p for p in plans}.values(), key=lambda p: p.participant_uid)
    _dump_json(root / "participants.json", [
        {"participant_uid": p.participant_uid, "origin_participant_id": str(100 + p.participant_uid % 400),
         "university_id": UNIVERSITY_IDS[p.university], "university_name": p.university,
         "collection_date": "2023-03-30", "metadata": "{}"} for p in participants])
    ann = root / "annotations"
    _dump_json(ann / "splits.json", {
        "take_uid_to_split": {p.take_uid: p.split for p in plans},
        "split_to_take_uids": {s: [p.take_uid for p in plans if p.split == s] for s in ("train", "val", "test")},
        "take_uid_to_benchmark": {p.take_uid: ["proficiency_demonstrator", "proficiency"] for p in plans},
        "ds": SPLITS_DS,
    })
    for split in ("train", "val"):
        records = [proficiency_record(p) for p in plans if p.split == split]
        # The released files wrap the list in {"annotations": ...}; the Docs sample is a bare list (§3.2): val uses it.
        wrapped = records if split == "val" else {"annotations": records}
        _dump_json(ann / f"proficiency_demonstrator_{split}.json", wrapped)
        commentary: dict[str, list[dict]] = {}
        for p in plans:
            if p.split != split or not p.experts:
                continue
            motion = simulate_motion(p.level, p.scenario, num_frames, p.motion_seed)
            for k, expert in enumerate(p.experts):
                entries, data = expert_commentary(p, motion, expert, k)
                commentary.setdefault(p.take_uid, []).append({
                    "take_name": p.take_name, "take_uid": p.take_uid, "task_id": p.task_id, "task_name": p.task_name,
                    "commentary": f"{p.take_name}/{expert}", "_debug_commentary_name": f"{expert}_{p.take_name}_{k}",
                    "commentary_data": entries})
                if (p.index + k) % 2 == 0:  # the per-expert folder exists for about half of the experts
                    _write_expert_folder(ann / "expert_commentary" / p.take_name / expert, entries, data)
        _dump_json(ann / f"expert_commentary_{split}.json", {"ds": COMMENTARY_DS, "annotations": commentary})


def _write_expert_folder(folder: Path, entries: list[dict], data: dict) -> None:
    """`data.json`, `transcriptions.json` and zero-byte `recordings/<i>.webm` placeholders (§4.3)."""
    _dump_json(folder / "data.json", data)
    _dump_json(folder / "transcriptions.json", {
        e["recording"]: {"text": e.get("text"), "language": None if e["error"] else "en", "error": e["error"],
                         "error_desc": e["_error_desc"]} for e in entries})
    (folder / "recordings").mkdir(parents=True, exist_ok=True)
    for e in entries:
        (folder / "recordings" / e["recording"]).touch()


# ------------------------------------------------------------------------------------------------------- videos
def exo_width(size: int) -> int:
    """Width of a 16:9 exo video whose shorter side is `size` (multiple of 4, like 796 for 448)."""
    return int(round(size * 16 / 9 / 4)) * 4


def write_take_videos(job: tuple[Path, TakePlan, int, int]) -> str:
    """Render and encode the ego and four exo videos of one take into its `downscaled/448` folder."""
    root, plan, size, num_frames = job
    folder = root / "takes" / plan.take_name / "frame_aligned_videos" / "downscaled" / "448"
    folder.mkdir(parents=True, exist_ok=True)
    motion = simulate_motion(plan.level, plan.scenario, num_frames, plan.motion_seed)
    cameras = view_cameras(size, exo_width(size), np.random.default_rng([plan.motion_seed, 99]))
    files = [f"{plan.ego_cam}_214-1.mp4"] + [f"{cam}.mp4" for cam in plan.exo_cams]
    for k, (camera, name) in enumerate(zip(cameras, files)):
        planes = render_view(motion, camera, size, size if k == 0 else exo_width(size), ego=k == 0)
        encode_yuv420(folder / name, *planes)
    return plan.take_name


# ------------------------------------------------------------------------------------------------------ driver
def generate_synthetic_egoexo4d(
    out: str | os.PathLike,
    num_takes: int,
    seed: int = 0,
    size: int = 112,
    seconds: float = 4.0,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    write_videos: bool = True,
) -> Path:
    """Write a synthetic Ego-Exo4D tree with `num_takes` takes into `out` and return its path.

    `size` is the shorter video side in pixels (multiple of 4; the real downscaled videos use 448), `seconds` the
    take length; `workers` processes render videos (default: up to 2); `write_videos=False` writes only the
    metadata and annotation files (e.g. to time the builder on a real-sized annotation set)."""
    if num_takes < 1:
        raise ValueError(f"num_takes must be >= 1, got {num_takes}.")
    if size < 16 or size % 4:
        raise ValueError(f"size must be a multiple of 4 and >= 16 (yuv420p needs even planes), got {size}.")
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}.")
    root = Path(out)
    if (root / "takes.json").exists() and not overwrite:
        raise FileExistsError(f"{root / 'takes.json'} already exists; pass overwrite=True (--overwrite) to write "
                              f"over it.")
    root.mkdir(parents=True, exist_ok=True)
    num_frames = max(1, round(seconds * FPS))
    plans = plan_takes(num_takes, seed)
    write_annotations(root, plans, num_frames)
    jobs = [(root, p, size, num_frames) for p in plans] if write_videos else []
    if not jobs:
        return root
    workers = max(1, min(workers or min(2, os.cpu_count() or 1), len(jobs)))
    bar = _progress(len(jobs), "rendering takes", progress)
    if workers == 1:
        for job in jobs:
            write_take_videos(job)
            bar.update(1)
    else:
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        with context.Pool(workers) as pool:
            for _ in pool.imap_unordered(write_take_videos, jobs):
                bar.update(1)
    bar.close()
    return root


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="take", disable=not enabled)


def main(argv: list[str] | None = None) -> None:
    """Command line: write a synthetic tree (see the module docstring for what it contains)."""
    parser = argparse.ArgumentParser(
        description="Write a synthetic Ego-Exo4D tree (takes.json, annotations, 5 views per take at 30 fps) in the "
        "real layout, whose proficiency labels are visible in the motion. See the module docstring for the signal.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", required=True, help="output folder (the Ego-Exo4D root)")
    parser.add_argument("--takes", type=int, required=True, help="number of takes (train and val together)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed -> identical annotation files")
    parser.add_argument("--size", type=int, default=112, help="shorter video side in pixels (multiple of 4; real: 448)")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of every take in seconds (30 fps)")
    parser.add_argument("--workers", type=int, default=None, help="rendering processes (default: up to 2)")
    parser.add_argument("--overwrite", action="store_true", help="write into a folder that already holds a tree")
    parser.add_argument("--no_videos", action="store_true", help="write only takes.json and the annotation files")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    root = generate_synthetic_egoexo4d(args.out, args.takes, args.seed, args.size, args.seconds, args.workers,
                                       args.overwrite, progress=not args.quiet, write_videos=not args.no_videos)
    print(f"wrote {args.takes} synthetic takes to {root}")


if __name__ == "__main__":
    main()
