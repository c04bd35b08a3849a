# EgoExo4D's demonstration-proficiency output: per take, timed good executions and tips, each with its probability.
"""`profvlm predict --data_dir ROOT --demonstration_json OUT.json` writes `{"version": 1, "takes": {take_uid:
[{"video_time": s, "category": "good_execution" | "needs_improvement", "probability": p}, ...]}}`, in the annotation
file's own field names, from the moments of the prediction lines: every moment that has a category, at its time, with
the model's probability of its time marker and category word. Every listed take is present (an empty list when the
model found nothing, or when the take could not be read)."""
import json
import os
from pathlib import Path

from modeling_profvlm.answer import ProfVLMAnswer
from training.demonstration_metric import DEMONSTRATION_FILE_VERSION, check_takes


def demonstration_entries(line: dict) -> list[dict]:
    """One prediction line's entries: its answer's categorised moments (`ProfVLMAnswer.demonstration_points`);
    moments without a category, e.g. from expert commentary, have no place in the file."""
    return ProfVLMAnswer.from_dict(line).demonstration_points()


def write_demonstration_file(path: str | os.PathLike, lines: list[dict], take_uids: list[str]) -> dict:
    """Write the file for `take_uids` (in that order) from prediction lines; returns {"takes", "entries", "empty"
    (takes with no entry), "unpredicted" (listed takes without a prediction line: unreadable)}."""
    by_uid = {line["take_uid"]: line for line in lines}
    takes = {uid: demonstration_entries(by_uid[uid]) if uid in by_uid else [] for uid in take_uids}
    check_takes(takes, str(path), with_probability=True)  # what the scorer demands: a probability in (0, 1], ...
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"version": DEMONSTRATION_FILE_VERSION, "takes": takes}) + "\n")
    os.replace(tmp, path)  # a reader never sees half a file
    return {"takes": len(takes), "entries": sum(map(len, takes.values())),
            "empty": sum(1 for entries in takes.values() if not entries),
            "unpredicted": [uid for uid in take_uids if uid not in by_uid]}


__all__ = ["DEMONSTRATION_FILE_VERSION", "demonstration_entries", "write_demonstration_file"]
