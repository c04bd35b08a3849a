# ProfVLM's shared facts: default labels and their order, view names, the `<video>` token, the time format and the
# answer format. A leaf: it imports nothing of the project, so every layer (model, processing, data, training, CLI) may use it.
# A checkpoint's own config owns its labels and views; the tuples here are the EgoExo4D defaults it starts from.
import math
import numbers
import re
from collections.abc import Sequence
from dataclasses import dataclass

# EgoExo4D demonstrator proficiency, low -> high (ordinal).
PROFICIENCY_LABELS: tuple[str, ...] = ("Novice", "Early Expert", "Intermediate Expert", "Late Expert")
# EgoExo4D cameras: the Aria ego view first, then up to four GoPros.
VIEW_NAMES: tuple[str, ...] = ("ego", "exo1", "exo2", "exo3", "exo4")
VIDEO_TOKEN = "<video>"

LABEL_PREFIX = "Proficiency: "
FEEDBACK_PREFIX = "Feedback: "

_LABEL_LINE = re.compile(r"^[ \t]*proficiency[ \t]*:[ \t]*([^\n]*)$", re.IGNORECASE | re.MULTILINE)
_FEEDBACK_START = re.compile(r"^[ \t]*feedback[ \t]*:[ \t]*", re.IGNORECASE | re.MULTILINE)
# The feedback prefix (FEEDBACK_PREFIX, tolerant of case and spaces) at the very start of a continuation.
_FEEDBACK_CONTINUATION = re.compile(r"\A\s*" + re.escape(FEEDBACK_PREFIX.strip().rstrip(":")) + r"[ \t]*:",
                                    re.IGNORECASE)


# A time as text: `m:ss` or `h:mm:ss`, optionally with a decimal fraction of a second (`m:ss.d`, `h:mm:ss.dd`, ...).
_TIME_TEXT = r"(?:\d+:[0-5]\d:[0-5]\d|\d+:[0-5]\d)(?:\.\d+)?"
_TIMESTAMP = re.compile(r"^(?:(\d+):([0-5]\d):([0-5]\d)|(\d+):([0-5]\d))(?:\.(\d+))?$")
# Digits after the seconds a checkpoint may ask for (`ProfVLMConfig.time_decimals`): 0 is whole seconds.
MAX_TIME_DECIMALS = 3


def check_time_decimals(decimals, where: str = "time_decimals") -> int:
    """`decimals` if it is a whole number 0..MAX_TIME_DECIMALS (digits after the seconds), else a one-line
    ValueError naming `where` and the value."""
    if isinstance(decimals, bool) or not isinstance(decimals, numbers.Integral) or not 0 <= decimals <= MAX_TIME_DECIMALS:
        raise ValueError(f"{where} is {decimals!r}; expected a whole number from 0 (whole seconds) to "
                         f"{MAX_TIME_DECIMALS}.")
    return int(decimals)


# Clips over the whole take (`ProfVLMConfig.clip_seconds` / `max_clips`): at most this many clips per view unless the
# checkpoint says otherwise (a 4-minute take at 4 s per clip).
DEFAULT_MAX_CLIPS = 64


def check_clip_options(clip_seconds, max_clips, where: str = "ProfVLMConfig") -> tuple[float | None, int]:
    """(clip_seconds as a float or None, max_clips as an int) if clip_seconds is None or a finite number of seconds
    > 0 and max_clips a whole number >= 1; else a one-line ValueError naming `where` and the value."""
    if clip_seconds is not None:
        if (isinstance(clip_seconds, bool) or not isinstance(clip_seconds, numbers.Real)
                or not math.isfinite(clip_seconds) or clip_seconds <= 0):
            raise ValueError(f"{where}: clip_seconds is {clip_seconds!r}; expected a number of seconds > 0, or None "
                             "(one clip over the whole take, the paper).")
        clip_seconds = float(clip_seconds)
    if isinstance(max_clips, bool) or not isinstance(max_clips, numbers.Integral) or max_clips < 1:
        raise ValueError(f"{where}: max_clips is {max_clips!r}; expected a whole number >= 1.")
    return clip_seconds, int(max_clips)


@dataclass(frozen=True)
class ReleasedFeatureSource:
    """One part of EgoExo4D's released pre-extracted features (docs.ego-exo4d-data.org, data/features) as a
    checkpoint's per-view input instead of a video tower (`ProfVLMConfig.video_feature_source`): its `egoexo` download
    part (also its folder under the root), what made it, the documented width of its vectors, and where each vector
    sits in time (one window of `window_seconds` every `stride_seconds`; None: one vector per frame)."""

    name: str
    part: str
    model: str
    feature_dim: int
    feature_dim_confirmed: bool
    window_seconds: float | None = None
    stride_seconds: float | None = None


# The released parts by the name `profvlm init --vision` takes. The MAWS width is NOT confirmed: 2560 is the ViT-2B
# encoder width of the MAWS paper (arXiv 2303.13496), and whether the released vectors have it or a CLIP projection's
# is unknown; `profvlm init --data_dir ROOT` reads the width from the files instead.
RELEASED_FEATURE_SOURCES: dict[str, ReleasedFeatureSource] = {source.name: source for source in (
    ReleasedFeatureSource("egoexo4d:omnivore_video", "features/omnivore_video", "Omnivore Swin-L (video head)", 1536,
                          True, window_seconds=32 / 30, stride_seconds=16 / 30),
    ReleasedFeatureSource("egoexo4d:maws_clip_2b", "features/maws_clip_2b", "MAWS CLIP ViT-2B (one vector per frame)",
                          2560, False),
)}


def released_feature_source(name: str, where: str = "video_feature_source") -> ReleasedFeatureSource:
    """The released feature part called `name`; a one-line ValueError listing the known ones otherwise."""
    if name not in RELEASED_FEATURE_SOURCES:
        raise ValueError(f"{where}: {name!r} is not a released feature source; known: "
                         f"{', '.join(RELEASED_FEATURE_SOURCES)}.")
    return RELEASED_FEATURE_SOURCES[name]


def _check_seconds(seconds) -> float:
    # numbers.Real so numpy scalars pass; bool is an int but never a time
    if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real) or not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a timestamp needs a finite number of seconds >= 0, got {seconds!r}.")
    return seconds


def _time_units(seconds: float, decimals: int) -> int:
    """`seconds` floored to `decimals` digits, as a whole number of 10**-decimals s. Whole seconds floor the value
    itself (as always); with digits it is rounded to 6 places first, since 2.3 * 100 is 229.99999999999997 in
    floating point and 2.3 must stay 2.30, not become 2.29."""
    if decimals == 0:
        return int(math.floor(seconds))
    return int(math.floor(round(float(seconds) * 10**decimals, 6)))


def floor_time(seconds: float, decimals: int = 0) -> float:
    """`seconds` floored to `decimals` digits (0: whole seconds), as the answer writes it: 2.39 -> 2.3 (decimals=1)."""
    decimals = check_time_decimals(decimals)
    units = _time_units(_check_seconds(seconds), decimals)
    return float(units) if decimals == 0 else float(f"{units // 10**decimals}.{units % 10**decimals:0{decimals}d}")


def format_timestamp(seconds: float, decimals: int = 0) -> str:
    """A time in a take as text: `m:ss` (`0:04`, `12:30`), `h:mm:ss` from one hour on (`1:02:03`); with `decimals`
    digits of the second after a point (`0:04.7`, `1:02:03.25`). Floored (to whole seconds by default), because a
    comment is about what has happened by then."""
    decimals = check_time_decimals(decimals)
    units = _time_units(_check_seconds(seconds), decimals)
    whole, fraction = divmod(units, 10**decimals)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
    return f"{text}.{fraction:0{decimals}d}" if decimals else text


def parse_timestamp(text: str) -> float:
    """Inverse of `format_timestamp`: `m:ss` or `h:mm:ss`, either with an optional decimal fraction (`m:ss.d`;
    surrounding spaces allowed) -> seconds. A ValueError naming the text otherwise. Minutes of `m:ss` are not capped
    at 59, so `75:00` reads as 4500 s."""
    match = _TIMESTAMP.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"timestamp {text!r} is not m:ss or h:mm:ss (with an optional .fraction of a second).")
    if match.group(1) is not None:
        hours, minutes, secs = match.group(1, 2, 3)
    else:
        hours, (minutes, secs) = "0", match.group(4, 5)
    whole = int(hours) * 3600 + int(minutes) * 60 + int(secs)
    # float() of the decimal text: the double nearest to what was written (2 + 0.3 need not be float("2.3"))
    return float(f"{whole}.{match.group(6)}") if match.group(6) else float(whole)


def check_label(label: str, labels: Sequence[str] = PROFICIENCY_LABELS) -> str:
    """`label` if it is one of `labels`, else a ValueError naming both."""
    if label not in labels:
        raise ValueError(f"unknown proficiency label {label!r}; expected one of {list(labels)}.")
    return label


def check_label_list(labels: Sequence[str], where: str = "proficiency_labels") -> list[str]:
    """An ordered label list: at least 2 distinct, non-empty strings without line breaks (they are written into the
    answer line `Proficiency: <label>`). Returns it as a list; errors name `where` and the offending value."""
    labels = list(labels)
    if len(labels) < 2:
        raise ValueError(f"{where}: expected at least 2 ordered labels, got {labels}.")
    for label in labels:
        if not isinstance(label, str) or not label.strip() or "\n" in label or label != label.strip():
            raise ValueError(f"{where}: label {label!r} must be a non-empty string without surrounding spaces or line breaks.")
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ValueError(f"{where}: labels {duplicates} appear more than once in {labels}.")
    return labels


def format_label_prefix(label: str, labels: Sequence[str] = PROFICIENCY_LABELS) -> str:
    """"Proficiency: <label>": the continuation scored for each label to get label probabilities."""
    return LABEL_PREFIX + check_label(label, labels)


def format_target(label: str, feedback: str | None = None, labels: Sequence[str] = PROFICIENCY_LABELS) -> str:
    """The assistant answer: "Proficiency: <label>\\nFeedback: <feedback>" (label first, so it can be scored and
    read before the feedback is generated). Without feedback only the label line."""
    head = format_label_prefix(label, labels)
    return head if feedback is None else f"{head}\n{FEEDBACK_PREFIX}{feedback}"


def _match_label(value: str, labels: Sequence[str]) -> str | None:
    # Tolerate case, surrounding spaces/quotes/punctuation and doubled spaces in generated text.
    key = " ".join(value.strip().strip("\"'*.,;:!").split()).casefold()
    return next((label for label in labels if label.casefold() == key), None)


def parse_output(text: str, labels: Sequence[str] = PROFICIENCY_LABELS) -> tuple[str | None, str]:
    """Inverse of `format_target`: (label, feedback). Never raises. An exact `format_target` output round-trips;
    free text is read leniently (case, spaces, order); without a recognisable label it returns (None, text)."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    for label in labels:  # exact format: everything after the prefix is the feedback, verbatim
        head = LABEL_PREFIX + label
        if text == head:
            return label, ""
        if text.startswith(head + "\n" + FEEDBACK_PREFIX):
            return label, text[len(head) + 1 + len(FEEDBACK_PREFIX) :]
    line = _LABEL_LINE.search(text)
    label = _match_label(line.group(1), labels) if line else None
    if label is None:
        return None, text
    feedback = _FEEDBACK_START.search(text)
    if feedback is not None:
        return label, text[feedback.end() :].strip()
    return label, (text[: line.start()] + text[line.end() :]).strip()


def parse_feedback_continuation(text: str) -> str:
    """The feedback in what a model generated right after its answer's label line `Proficiency: <label>`: a
    continuation in the `format_target` form ("\\nFeedback: <feedback>") loses its leading line break and
    `Feedback:` prefix (any case, spaces around the colon); the rest is stripped of surrounding whitespace.
    Off-format text is returned stripped, as generated. Never raises (None gives "")."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    prefix = _FEEDBACK_CONTINUATION.match(text)
    return (text[prefix.end() :] if prefix else text).strip()


# A moment's category, when its source has one (EgoExo4D's demonstration-proficiency file: `good_executions`,
# `tips_for_improvement`), and the word the answer writes it with, first after the time: "[0:02.3] good: ...".
MOMENT_CATEGORIES: tuple[str, ...] = ("good_execution", "needs_improvement")
CATEGORY_WORDS: dict[str, str] = {"good_execution": "good", "needs_improvement": "tip"}
_WORD_CATEGORIES = {word: category for category, word in CATEGORY_WORDS.items()}

# A moment marker in feedback text: `[m:ss]` or `[h:mm:ss]`, either with an optional `.fraction` of a second; spaces
# inside the brackets tolerated in generated text.
_MOMENT_MARKER = re.compile(r"\[[ \t]*(" + _TIME_TEXT + r")[ \t]*\]")
# The category word right after a marker, as `format_moments` writes it ("good:", "tip:"; lower case, so a
# remark that merely starts with "Good:" stays text).
_CATEGORY_WORD = re.compile(r"[ \t]*(" + "|".join(map(re.escape, _WORD_CATEGORIES)) + r")[ \t]*:")


def _moment_text(text: str) -> str:
    # One line per answer, and a bracketed time inside a comment would read back as a second moment: collapse
    # whitespace and turn such brackets into parentheses.
    return _MOMENT_MARKER.sub(r"(\1)", " ".join(text.split()))


def _moment_category(category, index: int) -> str | None:
    # None and "" (a missing category in Arrow or a CSV cell) mean no category
    if category is None or category == "":
        return None
    if category not in MOMENT_CATEGORIES:
        raise ValueError(f"moment {index}: category {category!r}; expected one of {list(MOMENT_CATEGORIES)} or none.")
    return category


def normalize_moments(moments: Sequence[dict], decimals: int | None = 0) -> list[dict]:
    """Moments ({"time": seconds, "text": str, "category": one of MOMENT_CATEGORIES, optional}) as the answer carries
    them: in time order (stable), times floored to `decimals` digits (0: whole seconds; None keeps them as given), as
    float, text on one line, the category kept when there is one (the key is absent otherwise). A ValueError
    naming the moment for a bad time, an empty text or an unknown category."""
    if decimals is not None:
        decimals = check_time_decimals(decimals)
    checked = []
    for index, moment in enumerate(moments):
        if not isinstance(moment, dict) or "time" not in moment or "text" not in moment:
            raise ValueError(f"moment {index} must be a dict with 'time' and 'text', got {moment!r}.")
        time, text = moment["time"], moment["text"]
        ok_time = not isinstance(time, bool) and isinstance(time, numbers.Real) and math.isfinite(time) and time >= 0
        if not ok_time:
            raise ValueError(f"moment {index}: time {time!r} is not a number of seconds >= 0.")
        if not isinstance(text, str) or not _moment_text(text):
            raise ValueError(f"moment {index}: text {text!r} is empty or not a string.")
        category = _moment_category(moment.get("category"), index)
        kept = {"time": float(time) if decimals is None else floor_time(time, decimals), "text": _moment_text(text)}
        checked.append((float(time), {**kept, "category": category} if category else kept))
    checked.sort(key=lambda pair: pair[0])
    return [moment for _, moment in checked]


def format_moments(moments: Sequence[dict], decimals: int = 0) -> str:
    """The feedback of a moments answer: "[m:ss] text [m:ss] text ..." (see `normalize_moments`), times with
    `decimals` digits ("[m:ss.d]" for 1); a moment with a category opens with its word ("[0:02.3] good: text",
    `CATEGORY_WORDS`). To be passed to `format_target` as the feedback. No moments give an empty feedback."""
    return " ".join(
        f"[{format_timestamp(m['time'], decimals)}] "
        + (f"{CATEGORY_WORDS[m['category']]}: " if "category" in m else "") + m["text"]
        for m in normalize_moments(moments, decimals)
    )


def moment_marker_spans(text: str) -> list[tuple[int, int]]:
    """The (start, end) character spans where an answer states its moments' times, in order: each `[m:ss]` /
    `[h:mm:ss]` marker (with or without a fraction of a second) and, when the moment has a category, the word after
    it ("[0:02.3] good:"): the time and category a demonstration answer is scored on (training may weight those
    tokens up)."""
    spans = []
    for marker in _MOMENT_MARKER.finditer(text):
        word = _CATEGORY_WORD.match(text, marker.end())
        spans.append((marker.start(), word.end() if word else marker.end()))
    return spans


def parse_moments(feedback: str) -> list[dict]:
    """The moments in a feedback text, inverse of `format_moments`: [{"time": float seconds, "text": str}] in time
    order, with "category" when the text after a marker opens with a category word ("good: ..."; the word is not
    part of the text). Never raises: text before the first marker and markers without text are skipped (generated
    text may have them), and plain feedback gives []."""
    if not isinstance(feedback, str):
        return []
    markers = list(_MOMENT_MARKER.finditer(feedback))
    moments = []
    for marker, following in zip(markers, markers[1:] + [None]):
        body = feedback[marker.end() : following.start() if following else len(feedback)]
        word = _CATEGORY_WORD.match(body)
        text = " ".join(body[word.end() if word else 0 :].split())
        if text:
            moment = {"time": parse_timestamp(marker.group(1)), "text": text}
            moments.append({**moment, "category": _WORD_CATEGORIES[word.group(1)]} if word else moment)
    moments.sort(key=lambda moment: moment["time"])
    return moments

__all__ = [
    "PROFICIENCY_LABELS",
    "VIEW_NAMES",
    "VIDEO_TOKEN",
    "LABEL_PREFIX",
    "FEEDBACK_PREFIX",
    "check_label",
    "check_label_list",
    "MAX_TIME_DECIMALS",
    "MOMENT_CATEGORIES",
    "CATEGORY_WORDS",
    "check_time_decimals",
    "DEFAULT_MAX_CLIPS",
    "check_clip_options",
    "ReleasedFeatureSource",
    "RELEASED_FEATURE_SOURCES",
    "released_feature_source",
    "floor_time",
    "format_timestamp",
    "parse_timestamp",
    "format_label_prefix",
    "format_target",
    "parse_output",
    "parse_feedback_continuation",
    "normalize_moments",
    "format_moments",
    "parse_moments",
    "moment_marker_spans",
]
