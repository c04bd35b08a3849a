"""The demonstration-proficiency metric (issue [demonstration]): mAP of timed proficiency categories at L1 time
thresholds k (EgoExo4D's demonstration-proficiency benchmark: k = 0.25, 0.5, 1.0 s), for predictions and references
in the output file's `takes` form:

    {take_uid: [{"video_time": seconds, "category": "good_execution" | "needs_improvement", "probability": p}, ...]}

(references have no probability). `demonstration_map` is the metric, `demonstration_references` reads the references
of an EgoExo4D root, `score_demonstration_file` scores a whole output file (from ProfVLM or any other system).
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from dataset_scripts.egoexo4d_proficiency import DEMONSTRATION_CATEGORIES as CATEGORY_OF_KEY
from modeling_profvlm.profvlm_facts import MOMENT_CATEGORIES as CATEGORIES

DEFAULT_THRESHOLDS = (0.25, 0.5, 1.0)
# The `version` an output file carries (the writer, profvlm/demonstration_file.py, can import it from here).
DEMONSTRATION_FILE_VERSION = 1


def _threshold_key(k: float) -> str:
    """A threshold as it is named in the result: "0.25", "0.5", "1.0" (the suffix of "mAP@<k>")."""
    return repr(float(k))


def _check_thresholds(thresholds: Sequence[float]) -> list[float]:
    values = list(thresholds) if isinstance(thresholds, (list, tuple)) else None
    if not values:
        raise ValueError(f"thresholds {thresholds!r}; expected a non-empty list of seconds > 0.")
    for k in values:
        if isinstance(k, bool) or not isinstance(k, (int, float)) or not math.isfinite(k) or k <= 0:
            raise ValueError(f"threshold {k!r} is not a number of seconds > 0.")
    if len({_threshold_key(k) for k in values}) != len(values):
        raise ValueError(f"thresholds {values!r} repeat a value.")
    return [float(k) for k in values]


def _is_number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


def check_takes(takes, what: str, with_probability: bool) -> dict[str, list[tuple[float, str, float]]]:
    """Validate a `takes` mapping and return it as {take_uid: [(video_time, category, probability), ...]} (probability
    1.0 for references). Every point needs a `category` in CATEGORIES and a finite `video_time` >= 0; with
    `with_probability`, a finite `probability` in (0, 1]. Other keys are ignored. A ValueError starting with `what`
    names the take and the point's index otherwise."""
    if not isinstance(takes, Mapping):
        raise ValueError(f"{what}: expected an object {{take_uid: [points]}}, found {type(takes).__name__}.")
    checked: dict[str, list[tuple[float, str, float]]] = {}
    for take, points in takes.items():
        if not isinstance(take, str) or not take:
            raise ValueError(f"{what}: take uid {take!r} is not a non-empty string.")
        if not isinstance(points, (list, tuple)):
            raise ValueError(f"{what}: take {take!r}: expected a list of points, found {type(points).__name__}.")
        rows = []
        for i, point in enumerate(points):
            where = f"{what}: take {take!r}, index {i}"
            if not isinstance(point, Mapping):
                raise ValueError(f"{where}: expected an object, found {type(point).__name__}.")
            category = point.get("category")
            if category not in CATEGORIES:
                raise ValueError(f"{where}: category {category!r}; expected one of {list(CATEGORIES)}.")
            time = point.get("video_time")
            if not _is_number(time) or not math.isfinite(time) or time < 0:
                raise ValueError(f"{where}: video_time {time!r} is not a finite number of seconds >= 0.")
            probability = 1.0
            if with_probability:
                probability = point.get("probability")
                if not _is_number(probability) or not math.isfinite(probability) or not 0 < probability <= 1:
                    raise ValueError(f"{where}: probability {probability!r} is not a number in (0, 1].")
            rows.append((float(time), category, float(probability)))
        checked[take] = rows
    return checked


# AP as in PASCAL VOC 2010+ (all-point interpolation, replacing VOC2007's 11 recall points) and as ActionFormer's
# temporal-localisation evaluation computes it: precision is first made non-increasing in recall, then integrated.
def average_precision(hits: Sequence[bool], num_references: int) -> float:
    """All-point interpolated AP of a ranked list of hits (True: a true positive) against `num_references`: the
    area under the precision-recall curve whose precision at each recall is the highest precision at that recall or
    any higher one. This is the AP of PASCAL VOC 2010 and later (not VOC2007's 11 points) and of ActionFormer's
    temporal action localisation evaluation."""
    if num_references <= 0:
        raise ValueError(f"average_precision needs at least one reference, got {num_references}.")
    precision, recall, tp = [], [], 0
    for rank, hit in enumerate(hits, start=1):
        tp += bool(hit)
        precision.append(tp / rank)
        recall.append(tp / num_references)
    # the envelope: precision made non-increasing from the right, then summed over the recall steps
    for i in range(len(precision) - 2, -1, -1):
        precision[i] = max(precision[i], precision[i + 1])
    area, previous_recall = 0.0, 0.0
    for p, r in zip(precision, recall):
        if r > previous_recall:
            area += (r - previous_recall) * p
            previous_recall = r
    return area


def _ranked_hits(predictions: dict[str, list[tuple[float, str, float]]],
                 references: dict[str, list[tuple[float, str, float]]], category: str, k: float) -> list[bool]:
    """The predictions of `category`, ranked by probability (ties: take uid, then time, ascending), each marked a hit
    when it takes the nearest still-unmatched reference of `category` in its take within |Δt| <= k (the earlier
    reference on a distance tie)."""
    ranked = sorted(((-p, take, t) for take, points in predictions.items() for t, c, p in points if c == category))
    unmatched = {take: sorted(t for t, c, _ in points if c == category) for take, points in references.items()}
    hits = []
    for _, take, t in ranked:
        free = unmatched.get(take, [])
        best = min(range(len(free)), key=lambda j: (abs(free[j] - t), free[j]), default=None)
        if best is not None and abs(free[best] - t) <= k:
            free.pop(best)
            hits.append(True)
        else:
            hits.append(False)
    return hits


def demonstration_map(predictions: Mapping[str, Sequence[Mapping]], references: Mapping[str, Sequence[Mapping]],
                      thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> dict:
    """Mean average precision of timed proficiency categories at each L1 time threshold k (seconds).

    `predictions` and `references` are in the output file's `takes` form (references need no probability). Per
    category and k, the predictions of all takes are ranked by probability (ties: take uid, then time), and each one
    is a true positive when it takes the nearest unmatched reference of its category in the same take with
    |Δt| <= k (exact comparison, no tolerance; the earlier reference on a distance tie); every expert's point is a
    reference, so one prediction matches at most one of several experts' points. AP is the all-point interpolated
    area under the precision-recall curve (`average_precision`).

    Returns {"mAP@<k>": mean AP over the categories that have references, for each k; "mAP": the mean of those over
    the thresholds; "AP": {category: {"<k>": AP}}} with "<k>" written as in "mAP@0.25", "mAP@0.5", "mAP@1.0".
    Decisions: a category without references has AP None and is left out of the means; a category with references
    but no predictions has AP 0.0; predictions in takes the references do not list are false positives; when no
    category has references, every mAP is None. ValueError for a bad point (naming the take and the index) or bad
    thresholds."""
    ks = _check_thresholds(thresholds)
    predicted = check_takes(predictions, "predictions", with_probability=True)
    expected = check_takes(references, "references", with_probability=False)
    ap: dict[str, dict[str, float | None]] = {}
    for category in CATEGORIES:
        count = sum(c == category for points in expected.values() for _, c, _ in points)
        ap[category] = {_threshold_key(k): (average_precision(_ranked_hits(predicted, expected, category, k), count)
                                            if count else None) for k in ks}
    result: dict = {}
    for k in ks:
        values = [ap[c][_threshold_key(k)] for c in CATEGORIES if ap[c][_threshold_key(k)] is not None]
        result[f"mAP@{_threshold_key(k)}"] = sum(values) / len(values) if values else None
    per_k = [result[f"mAP@{_threshold_key(k)}"] for k in ks]
    result["mAP"] = None if per_k[0] is None else sum(per_k) / len(per_k)
    result["AP"] = ap
    return result


def demonstration_references(root: str | os.PathLike, split: str) -> dict[str, list[dict]]:
    """The references of an EgoExo4D root's split ("train", "validation"; "val" accepted) in `takes` form, read from
    `annotations/proficiency_demonstration_<split>.json`: every expert's `good_executions` entry as a
    good_execution point and every `tips_for_improvement` entry as a needs_improvement point, at the file's
    `video_time` (full precision), whether or not the entry has remarks; points in time order (good_execution
    first at equal times). Every record's take is listed, with [] when it has no points. FileNotFoundError (with
    the download command) when the file is missing, ValueError naming the file for a malformed record."""
    from dataset_scripts.egoexo4d_proficiency import FILE_SPLITS, load_demonstration, moment_time

    name = {"val": "validation"}.get(split, split)
    if name not in FILE_SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {list(FILE_SPLITS)}.")
    records, path = load_demonstration(Path(root), FILE_SPLITS[name])
    takes: dict[str, list[dict]] = {}
    for take_uid, record in records.items():
        if not isinstance(take_uid, str) or not take_uid:
            raise ValueError(f"{path}: a record has take_uid {take_uid!r}; expected the take's uid.")
        points = []
        for key, category in CATEGORY_OF_KEY.items():
            entries = record.get(key) or []
            if not isinstance(entries, list):
                raise ValueError(f"{path}: take {take_uid}: {key} is {type(entries).__name__}, expected a list.")
            for i, entry in enumerate(entries):
                where = f"{path}: take {take_uid}, {key}[{i}]"
                if not isinstance(entry, dict):
                    raise ValueError(f"{where}: expected an object, found {type(entry).__name__}.")
                points.append({"video_time": moment_time(entry.get("video_time"), where), "category": category})
        takes[take_uid] = sorted(points, key=lambda p: (p["video_time"], CATEGORIES.index(p["category"])))
    return takes


def read_demonstration_file(path: str | os.PathLike) -> dict[str, list[dict]]:
    """The `takes` of an output file {"version": 1, "takes": {take_uid: [points]}}; FileNotFoundError or a
    one-line ValueError naming the file when it is missing, not JSON, or not of that form (points are checked by
    `check_takes`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: demonstration file not found.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err}).") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object {{\"version\": {DEMONSTRATION_FILE_VERSION}, "
                         f"\"takes\": {{...}}}}, found {type(data).__name__}.")
    if data.get("version") != DEMONSTRATION_FILE_VERSION or isinstance(data.get("version"), bool):
        raise ValueError(f"{path}: version {data.get('version')!r}; expected {DEMONSTRATION_FILE_VERSION}.")
    if not isinstance(data.get("takes"), dict):
        raise ValueError(f"{path}: \"takes\" is {type(data.get('takes')).__name__}; expected an object "
                         f"{{take_uid: [points]}}.")
    check_takes(data["takes"], str(path), with_probability=True)
    return data["takes"]


def score_demonstration_file(path: str | os.PathLike, root: str | os.PathLike, split: str) -> dict:
    """Score an output file (`read_demonstration_file`) against `demonstration_references(root, split)`.

    Takes the references list but the file lacks have no predictions; takes in the file the references do not list
    are scored as false positives. Returns `demonstration_map`'s result plus "counts": {"takes": {"predictions":
    takes in the file, "references": takes in the references, "not_in_references": takes of the file the references
    do not list, "without_predictions": takes of the references the file lacks or leaves empty}, "predictions":
    {category: n}, "references": {category: n}}."""
    predictions = read_demonstration_file(path)
    references = demonstration_references(root, split)
    result = demonstration_map(predictions, references)

    def per_category(takes: Mapping[str, Sequence[Mapping]]) -> dict[str, int]:
        return {c: sum(p["category"] == c for points in takes.values() for p in points) for c in CATEGORIES}

    result["counts"] = {
        "takes": {"predictions": len(predictions), "references": len(references),
                  "not_in_references": sum(t not in references for t in predictions),
                  "without_predictions": sum(not predictions.get(t) for t in references)},
        "predictions": per_category(predictions),
        "references": per_category(references),
    }
    return result


__all__ = [
    "CATEGORIES",
    "DEFAULT_THRESHOLDS",
    "DEMONSTRATION_FILE_VERSION",
    "average_precision",
    "check_takes",
    "demonstration_map",
    "demonstration_references",
    "read_demonstration_file",
    "score_demonstration_file",
]
