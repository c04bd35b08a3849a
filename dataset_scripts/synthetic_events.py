"""Timed events of the synthetic performer (opt-in, `--events`): what happens when, and which cameras see it.

A take with events has one to `MAX_EVENTS` of them in every `EVENT_STRETCH_SECONDS` of its length, each a `slip`
or a `clean` repetition, at distinct random seconds. Each one is seen by two or three of the five cameras (chosen
per event) and drawn there as a flash of the background of the frame's top `EVENT_BAND` in the event's colour
(`EVENT_COLOURS`, yuv) for `EVENT_SECONDS`; the performer is drawn on top as usual, so the motion (the label signal) stays visible. The experts name every event at its onset in their
commentary (`synthetic_commentary.event_commentary`), which config `demonstrator_moments` turns into moments.

Why these numbers: a frozen, randomly initialised tower mostly measures how much of the frame each colour covers,
so a large colour change is what survives its per-time-step features (tests/test_synthetic_events.py
measures it). An event starts within `ONSET_JITTER` s after a whole second k and lasts `EVENT_SECONDS`, so it covers
[k + 0.2, k + 0.8] whatever the jitter: the frames a uniform sampler takes at k + 0.25, k + 0.5 and k + 0.75 (4 or 8
frames over a take of whole seconds) show it, and the second the answer names (times are floored, "[0:0k]") is the
second whose temporal tokens show the flash. The onset itself keeps its fraction (k + 0.000 .. k + 0.199, to the
millisecond) in the commentary and the demonstration-proficiency file, as real annotations do, so a checkpoint with
`time_decimals` 1 names it to the tenth ("[0:0k.0]" or "[0:0k.1]").
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from dataset_scripts.synthetic_motion import FPS

EVENT_KINDS = ("slip", "clean")
EVENT_SECONDS = 0.8
ONSET_JITTER = 0.2
MAX_EVENTS = 3
# A long take is planned as stretches of this many seconds, each with one to MAX_EVENTS events (`plan_events`):
# about one to three events every 20 s, the pace of a coach's remarks rather than one every second.
EVENT_STRETCH_SECONDS = 20.0
NUM_CAMERAS = 5  # ego + four exo, in the generator's file order
# Background colour (Y, U, V) while an event is on screen: a red slip, a green clean repetition. Both are far from
# the grey background (80, 128, 128) and from each other in every channel the tower sees after RGB conversion.
EVENT_COLOURS = {"slip": (90, 90, 235), "clean": (150, 60, 50)}
# The share of the frame's height (from the top) whose background flashes. A whole-background flash made the motion,
# the label signal, hard to learn: a projector + linear label head on the cached features learnt the label far worse
# with flashes over the whole background than without events, and about as well with the top quarter, where a
# moments model still finds the events (measured: benchmarks/results/moments_findings.json).
EVENT_BAND = 0.25


@dataclass(frozen=True)
class TakeEvent:
    """One event: its kind, onset (seconds into the take), duration, and the camera indices (0 = ego) that show it."""

    kind: str
    time: float
    duration: float
    cameras: tuple[int, ...]

    def frames(self, num_frames: int) -> range:
        """The frame indices (30 fps) the event is on screen, within a take of `num_frames` frames."""
        start = int(np.ceil(self.time * FPS - 1e-9))
        return range(min(start, num_frames), min(int(np.ceil((self.time + self.duration) * FPS - 1e-9)), num_frames))


def plan_events(motion_seed: int, num_frames: int) -> list[TakeEvent]:
    """The take's events, drawn from its motion seed (so the annotations and the videos agree without passing them
    around); in time order. The take is cut into `EVENT_STRETCH_SECONDS` stretches, each drawn like a short take
    (one to `MAX_EVENTS` events at distinct whole seconds of it), so a minutes-long take has events from its start
    to its end and not three in all; a take of one stretch or less gets exactly what it always did. A take (or a
    last stretch) shorter than one second has room for none."""
    duration = num_frames / FPS
    events = []
    for stretch in range(max(1, math.ceil(round(duration / EVENT_STRETCH_SECONDS, 6)))):
        start = stretch * EVENT_STRETCH_SECONDS
        length = min(EVENT_STRETCH_SECONDS, duration - start)
        # The first stretch draws from the seed a take always used, so takes of one stretch keep their events.
        rng = np.random.default_rng([motion_seed, 7] if stretch == 0 else [motion_seed, 7, stretch])
        events += [replace(event, time=round(start + event.time, 3)) for event in _events_in(length, rng)]
    return events


def _events_in(seconds: float, rng: np.random.Generator) -> list[TakeEvent]:
    """One to `MAX_EVENTS` events at distinct whole seconds of a stretch `seconds` long, times from its start."""
    # Whole seconds an event fits after; rounded first, since 1.0 - 0.8 - 0.2 is a hair below 0 in floating point.
    slots = int(round(seconds - EVENT_SECONDS - ONSET_JITTER, 6) // 1) + 1
    if slots < 1:
        return []
    count = int(rng.integers(1, min(MAX_EVENTS, slots) + 1))
    events = []
    for k in np.sort(rng.choice(slots, count, replace=False)).tolist():
        kind = EVENT_KINDS[int(rng.integers(len(EVENT_KINDS)))]
        onset = round(k + float(rng.uniform(0.0, ONSET_JITTER)), 3)
        cameras = tuple(sorted(rng.choice(NUM_CAMERAS, int(rng.integers(2, 4)), replace=False).tolist()))
        events.append(TakeEvent(kind, onset, EVENT_SECONDS, cameras))
    return events
