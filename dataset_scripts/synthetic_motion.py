"""The synthetic performer's motion: how proficiency is encoded, simulated, and measured back.

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

`motion_statistics` and `motion_grades` measure the same motion back; the commentary and the expert ratings
(`synthetic_commentary`) describe it through them, and `synthetic_render` draws it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FPS = 30
STREAK_FRAMES = 9  # frames of motion history before frame 0: the motion streak drawn in each frame
# Label signal, indexed by label id (PROFICIENCY_LABELS order). See the docstring above.
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
