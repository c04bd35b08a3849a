# Time grounding of timed feedback: do the moments a model names ("[0:27] elbow flares") fall where the reference
# moments are? Precision / recall / F1 under one-to-one matching within a tolerance, the time error of the matches and
# how alike the matched texts are.
import json
import math
import numbers
from collections.abc import Sequence
from pathlib import Path

from modeling_profvlm.profvlm_facts import floor_time, parse_moments
from training.feature_cache import FeatureCache
from training.evaluation_metrics import rouge_l_scores

# Seconds: about one comment's reaction delay, a few seconds of action, one longer phrase of a take.
DEFAULT_TIME_TOLERANCES: tuple[float, ...] = (2.0, 5.0, 10.0)


def tolerance_key(tolerance: float) -> str:
    """How a tolerance is written as a metrics.json key: 2.0 -> "2", 2.5 -> "2.5"."""
    return f"{float(tolerance):g}"


def check_tolerances(tolerances: Sequence[float]) -> tuple[float, ...]:
    """The tolerances as floats, each a finite number > 0 and no two alike; a ValueError naming the bad value."""
    checked = []
    for value in tolerances:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"time tolerance {value!r} must be a number of seconds > 0.")
        checked.append(float(value))
    if not checked or len({tolerance_key(t) for t in checked}) != len(checked):
        raise ValueError(f"time tolerances {list(tolerances)} must be one or more distinct numbers of seconds.")
    return tuple(checked)


def _times(moments: Sequence[dict], what: str) -> list[float]:
    times = []
    for index, moment in enumerate(moments):
        time = moment.get("time") if isinstance(moment, dict) else None
        if isinstance(time, bool) or not isinstance(time, numbers.Real) or not math.isfinite(time):
            raise ValueError(f"{what} moment {index}: time {time!r} is not a number of seconds.")
        times.append(float(time))
    return times


def match_times(predicted: Sequence[float], reference: Sequence[float], tolerance: float) -> list[tuple[int, int]]:
    """One-to-one matching of predicted to reference times: closest pairs first (ties by predicted, then reference
    index), a pair only when |difference| <= tolerance and neither time is matched yet. Returns (pred, ref) indices."""
    candidates = sorted(
        (abs(p - r), i, j) for i, p in enumerate(predicted) for j, r in enumerate(reference) if abs(p - r) <= tolerance
    )
    used_pred, used_ref, pairs = set(), set(), []
    for _, i, j in candidates:
        if i not in used_pred and j not in used_ref:
            used_pred.add(i)
            used_ref.add(j)
            pairs.append((i, j))
    return sorted(pairs)


def _figures(matched: int, num_predicted: int, num_reference: int, errors: list[float], rouge: list[float]) -> dict:
    # F1 = 2M / (P + R): the harmonic mean of precision and recall where both exist, and still 0 (not undefined) for a
    # model that names no moment where the reference has some, or only moments where it has none.
    return {
        "precision": matched / num_predicted if num_predicted else None,
        "recall": matched / num_reference if num_reference else None,
        "f1": 2 * matched / (num_predicted + num_reference) if num_predicted + num_reference else None,
        "mean_abs_time_error": sum(errors) / len(errors) if errors else None,
        "rouge_l": sum(rouge) / len(rouge) if rouge else None,
        "matched": matched,
        "num_predicted": num_predicted,
        "num_reference": num_reference,
    }


def time_grounding(predicted: Sequence[Sequence[dict]], references: Sequence[Sequence[dict]],
                   scenarios: Sequence[str] | None = None,
                   tolerances: Sequence[float] = DEFAULT_TIME_TOLERANCES) -> dict:
    """metrics.json's `time_grounding`. Item i compares predicted[i] with references[i] (moments {"time", "text"}:
    one take, or one take and one expert's reference). Per tolerance (key `tolerance_key`): precision, recall and F1
    pooled over all items (micro) under `match_times`, the mean absolute time error (s) and the mean ROUGE-L F of the
    matched pairs' texts, with the counts; None where undefined. `overall` and `per_scenario` (sorted) hold them."""
    tolerances = check_tolerances(tolerances)
    if len(predicted) != len(references):
        raise ValueError(f"time_grounding: {len(predicted)} predicted moment lists but {len(references)} references.")
    scenarios = [""] * len(predicted) if scenarios is None else list(scenarios)
    if len(scenarios) != len(predicted):
        raise ValueError(f"time_grounding: {len(scenarios)} scenarios for {len(predicted)} moment lists.")
    times = [(_times(p, f"predicted[{i}]"), _times(r, f"references[{i}]"))
             for i, (p, r) in enumerate(zip(predicted, references))]
    matches = {t: [match_times(p, r, t) for p, r in times] for t in tolerances}
    # ROUGE-L once for every matched text pair of every tolerance
    text_pairs = sorted({(i, a, b) for pairs in matches.values() for i, item in enumerate(pairs) for a, b in item})
    scores = rouge_l_scores([str(predicted[i][a]["text"]) for i, a, _ in text_pairs],
                            [str(references[i][b]["text"]) for i, _, b in text_pairs]) if text_pairs else []
    rouge = dict(zip(text_pairs, scores))

    def figures(items: list[int], tolerance: float) -> dict:
        pairs = [(i, a, b) for i in items for a, b in matches[tolerance][i]]
        errors = [abs(times[i][0][a] - times[i][1][b]) for i, a, b in pairs]
        return _figures(len(pairs), sum(len(times[i][0]) for i in items), sum(len(times[i][1]) for i in items),
                        errors, [rouge[pair] for pair in pairs])

    everything = list(range(len(predicted)))
    return {
        "tolerances": list(tolerances),
        "overall": {tolerance_key(t): figures(everything, t) for t in tolerances},
        "per_scenario": {s: {tolerance_key(t): figures([i for i in everything if scenarios[i] == s], t)
                             for t in tolerances} for s in sorted(set(scenarios))},
        "num_items": len(predicted),
    }


def moment_fields(feedback: str | None, references: list[list[dict]]) -> dict:
    """A predictions.jsonl line's `predicted_moments` (parsed from its generated feedback; [] for none) and
    `reference_moments` (one moment list per reference, e.g. per expert)."""
    return {"predicted_moments": parse_moments(feedback or ""), "reference_moments": references}


def time_grounding_from_predictions(lines: list[dict], tolerances: Sequence[float] = DEFAULT_TIME_TOLERANCES
                                    ) -> dict | None:
    """metrics.json's `time_grounding` from predictions.jsonl lines: every line with `reference_moments` compares
    its `predicted_moments` with each of its references (as feedback is scored against every expert), per scenario
    by the line's `scenario`. None when no line has moments (a label-only or plain-feedback evaluation)."""
    scored = [line for line in lines if "reference_moments" in line]
    if not scored:
        return None
    items = [(line["predicted_moments"], reference, line.get("scenario") or "")
             for line in scored for reference in line["reference_moments"]]
    return time_grounding([p for p, _, _ in items], [r for _, r, _ in items], [s for _, _, s in items], tolerances)


def every_token_f1(lines: list[dict], token_times: dict[str, list[float]], tolerance: float,
                   decimals: int = 0) -> float | None:
    """The moments F1 (within `tolerance` s) of an answer that names every temporal token's time in every take
    (`token_times`: take_uid -> the tokens' start times, floored as the answers write them) and looks at nothing:
    the base rate a model's F1 has to beat before it can be said to read the video (where events fall in most of a
    take's token spans, naming them all already scores well). Same predictions.jsonl
    `lines`, references and matching as the model's own figure (`time_grounding_from_predictions`); None when no
    line has reference moments."""
    blind = [{**line, "predicted_moments": [{"time": floor_time(t, decimals), "text": ""}
                                            for t in token_times[line["take_uid"]]]}
             for line in lines if "reference_moments" in line]
    grounding = time_grounding_from_predictions(blind, (tolerance,))
    return None if grounding is None else grounding["overall"][tolerance_key(tolerance)]["f1"]


def every_token_f1_of_run(predictions: Path, cache: Path, tolerance: float, decimals: int) -> float | None:
    """`every_token_f1` of an evaluation's predictions.jsonl, with the token times its feature cache stored."""
    lines = [json.loads(line) for line in predictions.read_text().splitlines() if line.strip()]
    features = FeatureCache(cache)
    times = {line["take_uid"]: features.times_of(line["take_uid"])["times"] for line in lines}
    return every_token_f1(lines, times, tolerance, decimals)


__all__ = ["DEFAULT_TIME_TOLERANCES", "tolerance_key", "check_tolerances", "match_times", "time_grounding",
           "moment_fields", "time_grounding_from_predictions", "every_token_f1", "every_token_f1_of_run"]
