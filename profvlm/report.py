# The human-readable prediction of one take (`profvlm predict`), and the text bars the batch summary shares.
import textwrap
from pathlib import Path

from modeling_profvlm.profvlm_facts import format_timestamp

BAR_WIDTH = 30


def text_bar(fraction: float, width: int = BAR_WIDTH) -> str:
    """A fixed-width bar, e.g. `█████░░░░░` for 0.5 at width 10."""
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "█" * filled + "░" * (width - filled)


def format_moments_timeline(result: dict, width: int = 96) -> list[str]:
    """The result's moments as a timeline, one per line in time order: the time, the remark, and the camera the
    model weighted most at that time (the answer's), e.g. `  0:27 │ the elbow flares on the release  [exo2]`."""
    lines = []
    for moment in result.get("moments") or []:
        stamp = format_timestamp(moment["time"])
        camera = moment.get("camera")
        text = moment["text"] + (f"  [{camera}]" if camera else "")
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
        lines += ["", "Moments (time │ remark  [the camera weighted most then]):"] + format_moments_timeline(result)
    elif result.get("feedback"):
        lines += ["", "Feedback:"] + ["  " + line for line in textwrap.wrap(result["feedback"], 96)]
    lines += ["", "Cameras (share of the view attention):"]
    for view, w in sorted(result["view_weights"].items(), key=lambda kv: -kv[1]):
        lines.append(f"  {view:<5} {text_bar(w, 20)}  {w:.2f}  {Path(str(take.get(view, ''))).name}")
    if random_tower:
        lines += ["", "note: this checkpoint's video tower is randomly initialised; treat the level as a demo."]
    return "\n".join(lines)


__all__ = ["BAR_WIDTH", "format_moments_timeline", "format_report", "text_bar"]
