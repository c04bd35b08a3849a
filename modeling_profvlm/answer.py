# ProfVLMAnswer: what ProfVLM says about one take, in one typed form; `to_dict()` is its one JSON form.
"""Every way of asking ProfVLM (the pipeline, `profvlm predict` on one take or a folder, evaluation, the challenge
file) gets its answers from `answering.answer_takes` as `ProfVLMAnswer`s and writes them with `to_dict()`, so a take
reads the same in the pipeline's output, predictions.jsonl, the app and the model card's examples."""
import logging
import math
from dataclasses import dataclass, field

from .profvlm_facts import parse_moments

logger = logging.getLogger(__name__)


@dataclass
class TimelineStep:
    """One temporal token: its start `time` (seconds) and the share of the view attention each present camera got."""

    time: float
    view_weights: dict[str, float]

    def to_dict(self) -> dict:
        """{"time", "view_weights"}."""
        return {"time": self.time, "view_weights": dict(self.view_weights)}


@dataclass
class Moment:
    """A timed remark of the feedback: `time` (seconds from the take's start), `text`, `camera` (the view the model
    weighted most at that time; None when no view was given), `probability` (the model's probability of the tokens
    that wrote the moment's time marker and category word, in the generation that wrote them; None when not
    generated here) and `category` (good_execution / needs_improvement when the answer names one, else None)."""

    time: float
    text: str
    camera: str | None = None
    probability: float | None = None
    category: str | None = None

    def to_dict(self) -> dict:
        """{"time", "text", "camera", "probability"} and "category" when the moment has one."""
        out = {"time": self.time, "text": self.text, "camera": self.camera, "probability": self.probability}
        if self.category is not None:
            out["category"] = self.category
        return out


@dataclass
class ProfVLMAnswer:
    """ProfVLM's answer for one take.

    `proficiency` the chosen level (the most probable of `probabilities`, label -> probability in the checkpoint's
    label order); `feedback` the generated text (None when not asked for); `moments` its timed remarks within the
    take; `timeline` one step per temporal token (empty with one token per take); `view_weights` the share of the
    view attention of each present camera over the whole take; `duration` the take's length in seconds (None when
    unknown); `views` the views the take had, in the checkpoint's order."""

    proficiency: str
    probabilities: dict[str, float]
    feedback: str | None = None
    moments: list[Moment] = field(default_factory=list)
    timeline: list[TimelineStep] = field(default_factory=list)
    view_weights: dict[str, float] = field(default_factory=dict)
    duration: float | None = None
    views: list[str] = field(default_factory=list)

    def camera_at(self, time: float) -> str | None:
        """The view weighted most at `time` (seconds): in the temporal token covering it (the last one starting at or
        before it, else the first) when there is a timeline, else over the whole take; None without views."""
        weights = self.view_weights
        if self.timeline:
            weights = next((s for s in reversed(self.timeline) if s.time <= time), self.timeline[0]).view_weights
        return max(weights, key=weights.get) if weights else None

    def to_dict(self) -> dict:
        """The one JSON form: {"proficiency", "probabilities", "feedback", "moments": [{"time", "text", "camera"}],
        "timeline": [{"time", "view_weights"}], "view_weights", "duration", "views"}."""
        return {"proficiency": self.proficiency, "probabilities": dict(self.probabilities), "feedback": self.feedback,
                "moments": [m.to_dict() for m in self.moments], "timeline": [s.to_dict() for s in self.timeline],
                "view_weights": dict(self.view_weights), "duration": self.duration, "views": list(self.views)}

    def demonstration_points(self) -> list[dict]:
        """The categorised moments in EgoExo4D's demonstration-proficiency form: [{"video_time", "category",
        "probability"}] in time order (a moment without a category or a probability has no place there)."""
        return [{"video_time": m.time, "category": m.category, "probability": m.probability}
                for m in self.moments if m.category is not None and m.probability is not None]

    @classmethod
    def from_dict(cls, data: dict) -> "ProfVLMAnswer":
        """Inverse of `to_dict` (extra keys, e.g. a predictions.jsonl line's take_uid, are ignored)."""
        return cls(proficiency=data["proficiency"], probabilities=dict(data["probabilities"]),
                   feedback=data.get("feedback"), moments=[Moment(**m) for m in data.get("moments") or []],
                   timeline=[TimelineStep(**s) for s in data.get("timeline") or []],
                   view_weights=dict(data.get("view_weights") or {}), duration=data.get("duration"),
                   views=list(data.get("views") or []))


def moments_within(feedback: str | None, duration: float | None = None) -> list[dict]:
    """The moments of a feedback text (`parse_moments`: [] for plain feedback) that lie within the take (`keep_within`)."""
    return keep_within(parse_moments(feedback) if feedback else [], duration)


def keep_within(moments: list[dict], duration: float | None = None) -> list[dict]:
    """The moments (dicts with a "time" in seconds) that lie within the take: times after `duration` (seconds; None or
    NaN = unknown, keep all) are dropped, and how many in a logged warning."""
    if duration is None or math.isnan(duration):
        return list(moments)
    kept = [m for m in moments if m["time"] <= duration]
    if len(kept) < len(moments):
        late = ", ".join(f"{m['time']:g} s" for m in moments if m["time"] > duration)
        logger.warning("dropped %d of %d moments timed past the take's end (%.2f s): %s", len(moments) - len(kept),
                       len(moments), duration, late)
    return kept


__all__ = ["Moment", "ProfVLMAnswer", "TimelineStep", "keep_within", "moments_within"]
