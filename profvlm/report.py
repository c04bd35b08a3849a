# The human-readable prediction of one take (`profvlm predict`), and the text bars the batch summary shares.
import textwrap
from pathlib import Path

from modeling_profvlm.profvlm_facts import CATEGORY_WORDS, MAX_TIME_DECIMALS, format_timestamp

BAR_WIDTH = 30


def text_bar(fraction: float, width: int = BAR_WIDTH) -> str:
    """A fixed-width bar, e.g. `█████░░░░░` for 0.5 at width 10."""
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "█" * filled + "░" * (width - filled)


def moment_time_text(seconds: float) -> str:
    """A moment's time as the answer wrote it: `m:ss`, or with as many digits of the second as it has (`0:02.3`)."""
    digits = next((d for d in range(MAX_TIME_DECIMALS + 1) if float(round(seconds * 10**d, 6)).is_integer()),
                  MAX_TIME_DECIMALS)
    return format_timestamp(seconds, digits)


def moment_remark(moment: dict) -> str:
    """A moment's remark as the answer wrote it: its category word first when it has one ("tip: elbow in")."""
    category = moment.get("category")
    return f"{CATEGORY_WORDS[category]}: {moment['text']}" if category in CATEGORY_WORDS else moment["text"]


def format_moments_timeline(result: dict, width: int = 96) -> list[str]:
    """The result's moments as a timeline, one per line in time order: the time, the remark (its category word first),
    the camera the model weighted most at that time and the model's probability of the moment's time and category,
    e.g. `  0:27 │ tip: the elbow flares on the release  [exo2, p 0.83]`."""
    lines = []
    for moment in result.get("moments") or []:
        stamp = moment_time_text(moment["time"])
        tags = [t for t in (moment.get("camera"),
                            None if moment.get("probability") is None else f"p {moment['probability']:.2f}") if t]
        text = moment_remark(moment) + (f"  [{', '.join(tags)}]" if tags else "")
        wrapped = textwrap.wrap(text, max(20, width - len(stamp) - 5)) or [""]
        lines.append(f"  {stamp} │ {wrapped[0]}")
        lines += [f"  {' ' * len(stamp)} │ {line}" for line in wrapped[1:]]
    return lines


def format_report(result: dict, take: dict[str, str], random_tower: bool = False) -> str:
    """The human-readable prediction: level, probability bars, feedback (as a timeline of moments when it has
    them), and which cameras mattered."""
    width = max(map(len, result["probabilities"]))
    lines = [f"Proficiency: {result['proficiency']}", "", "Probabilities:"]
    for label, p in result["probabilities"].items():
        marker = "  <" if label == result["proficiency"] else ""
        lines.append(f"  {label:<{width}}  {text_bar(p)}  {100 * p:5.1f}%{marker}")
    if result.get("moments"):
        lines += ["", "Moments (time │ remark  [the camera weighted most then, the moment's probability]):"]
        lines += format_moments_timeline(result)
    elif result.get("feedback"):
        lines += ["", "Feedback:"] + ["  " + line for line in textwrap.wrap(result["feedback"], 96)]
    lines += ["", "Cameras (share of the view attention):"]
    for view, w in sorted(result["view_weights"].items(), key=lambda kv: -kv[1]):
        lines.append(f"  {view:<5} {text_bar(w, 20)}  {w:.2f}  {Path(str(take.get(view, ''))).name}")
    if random_tower:
        lines += ["", "note: this checkpoint's video tower is randomly initialised; treat the level as a demo."]
    return "\n".join(lines)


__all__ = ["BAR_WIDTH", "format_moments_timeline", "format_report", "moment_remark", "moment_time_text", "text_bar"]
