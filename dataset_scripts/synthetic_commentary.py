"""Expert commentary and ratings for the synthetic takes, computed from the simulated motion.

The commentary describes what the video shows: it is computed from the same simulated motion
(`motion_statistics`: mean extension, range, speed and tremor over the whole take and around each comment's
`video_time`) with thresholds half-way between the levels, phrased in scenario vocabulary. The expert's 1-10
rating in `data.json` comes from the same statistics.
"""
from __future__ import annotations

import numpy as np

from dataset_scripts.synthetic_events import TakeEvent
from dataset_scripts.synthetic_motion import FPS, Motion, motion_grades, motion_statistics

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
# What an expert says when the performer slips or makes a clean repetition (synthetic_events); two phrasings.
EVENT_PHRASES = {
    "slip": ("Slip on that {move}: the footing goes.", "That {move} slips, the balance is lost for a moment."),
    "clean": ("A clean {move}, textbook form.", "That {move} is clean, nicely done."),
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


def _entry(recording: int, video_time: float, text: str | None, duration_approx: float) -> dict:
    """One first-form `commentary_data` entry; `text` None is a failed transcription (`error: true`, no text)."""
    entry = {"recording": f"{recording}.webm", "video_time": round(video_time, 6)}
    if text is not None:
        entry["text"] = text
    entry.update({"error": text is None, "_error_desc": None if text is not None else _ERROR_DESC,
                  "duration_approx": round(duration_approx, 6)})
    return entry


def _motion_entries(rng: np.random.Generator, take_index: int, scenario: str, motion: Motion,
                    k: int) -> tuple[list[dict], float]:
    """Expert `k`'s remarks at 2-5 random times, each on the motion around its time (the default commentary), and
    the recording clock's start (drawn in between, in the order earlier trees were drawn in: same seed, same tree)."""
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
        text = " " + describe_motion(motion_statistics(motion, lo, hi), scenario, said, k + j)
        error = (take_index == 0 and k == 0 and j == count - 1) or rng.uniform() < 0.08
        words = len(text.split())
        entries.append(_entry(int(recording_of[j]), video_time, None if error else text,
                              words / 2.4 + float(rng.uniform(0.5, 3.0))))
    return entries, clock


def event_remark(event: TakeEvent, scenario: str, motion: Motion, phrasing: int) -> str:
    """What an expert says at an event: it named ("Slip on that layup: ...") plus one remark on the motion around
    it (the level, in words), so a moment's text carries both the event and the proficiency."""
    move, _ = SCENARIO_WORDS[scenario]
    lo = max(0, int((event.time - 1.0) * FPS))
    hi = min(motion.num_frames, max(lo + 10, int((event.time + 1.0) * FPS)))
    aspect = list(PHRASES)[phrasing % 4]
    grade = motion_grades(motion_statistics(motion, lo, hi), scenario)[aspect]
    remark = PHRASES[aspect][grade][phrasing % 2].format(move=move, moves=SCENARIO_WORDS[scenario][1])
    return f"{EVENT_PHRASES[event.kind][phrasing % 2].format(move=move)} {remark}"


def _event_entries(rng: np.random.Generator, take_index: int, scenario: str, motion: Motion, k: int,
                   events: list[TakeEvent]) -> tuple[list[dict], float]:
    """Expert `k`'s remarks with events: one at each event's onset (`event_remark`), and now and then a failed
    transcription at a random time besides (always on the first take's first expert), so every event is named."""
    failed = take_index == 0 and k == 0 or rng.uniform() < 0.15
    count = len(events) + int(failed)
    recording_of = rng.permutation(count)  # experts paused in video order but files are numbered as recorded
    entries, clock = [], float(rng.uniform(1e5, 2e6))
    for j, event in enumerate(events):
        text = " " + event_remark(event, scenario, motion, k + j)
        entries.append(_entry(int(recording_of[j]), event.time, text,
                              len(text.split()) / 2.4 + float(rng.uniform(0.5, 3.0))))
    if failed:
        entries.append(_entry(int(recording_of[-1]), float(rng.uniform(0.05, 0.95)) * motion.num_frames / FPS, None,
                              float(rng.uniform(0.5, 3.0))))
    return entries, clock


def expert_commentary(take_index: int, take_name: str, scenario: str, motion_seed: int, motion: Motion, expert: str,
                      k: int, events: list[TakeEvent] | None = None) -> tuple[list[dict], dict]:
    """Expert `k`'s commentary for a take: first-form `commentary_data` (recording order) and a `data.json`. With
    `events` (synthetic_events), the remarks are the events, each at its onset; else remarks at random times."""
    rng = np.random.default_rng([motion_seed, k])
    aspects = list(PHRASES)
    if events is None:
        entries, clock = _motion_entries(rng, take_index, scenario, motion, k)
    else:
        entries, clock = _event_entries(rng, take_index, scenario, motion, k, events)
    entries.sort(key=lambda e: int(e["recording"].split(".")[0]))
    grades = motion_grades(motion_statistics(motion), scenario)
    rating: int | str = rating_from_grades(grades, int(rng.integers(-1, 2)))
    rating = "N/A" if rng.uniform() < 0.08 else (rating if rng.uniform() < 0.3 else str(rating))
    annotations = []
    for e in entries:
        start = clock
        clock += e["duration_approx"] * 1000 + float(rng.uniform(2e3, 2e4))
        annotations.append({"video_time": e["video_time"], "start_global_time": round(start, 1),
                            "end_global_time": round(start + e["duration_approx"] * 1000, 1),
                            "duration_approx": e["duration_approx"], "recording_path": e["recording"], "events": []})
    why = describe_motion(motion_statistics(motion), scenario, aspects, k)
    data = {"user_id": expert, "video_name": take_name, "datetime": "Tue, 06 Feb 2024 18:22:10 GMT",
            "ds": 1707243730123 + 1000 * take_index + k, "annotations": annotations,
            "proficiency": {"rating": rating, "why": why}}
    return entries, data
