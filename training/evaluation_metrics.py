# The numbers of metrics.json: label accuracy / macro-F1 / per-scenario / confusion matrix, ordinal and calibration
# metrics (the labels are ordered low -> high), and feedback text metrics.
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import cohen_kappa_score
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from sklearn.metrics import f1_score
from sklearn.metrics import mean_absolute_error as sk_mean_absolute_error

from training.metrics import load_metric


def _check_labels(values: list[str], labels: Sequence[str], what: str) -> None:
    # key=repr: a None (missing) prediction next to strings must still give the ValueError, not a TypeError
    unknown = sorted({v for v in values if v not in labels}, key=repr)
    if unknown:
        raise ValueError(f"{what} contains label(s) {unknown} that are not proficiency labels {list(labels)}.")


def accuracy(references: list[str], predictions: list[str | None]) -> float | None:
    """Fraction of exact matches (a None prediction is wrong); None when there is nothing to score."""
    if len(references) != len(predictions):
        raise ValueError(f"accuracy: {len(references)} references but {len(predictions)} predictions.")
    if not references:
        return None
    return float(np.mean([r == p for r, p in zip(references, predictions)]))


def per_group_accuracy(references: list[str], predictions: list[str], groups: list[str]) -> dict[str, float]:
    """Accuracy within each group (e.g. scenario), groups in sorted order."""
    if not len(references) == len(predictions) == len(groups):
        raise ValueError(f"per_group_accuracy: lengths differ ({len(references)}, {len(predictions)}, {len(groups)}).")
    result = {}
    for group in sorted(set(groups)):
        idx = [i for i, g in enumerate(groups) if g == group]
        result[group] = accuracy([references[i] for i in idx], [predictions[i] for i in idx])
    return result


def label_metrics(references: list[str], predictions: list[str], scenarios: list[str],
                  labels: tuple[str, ...]) -> dict:
    """accuracy, macro_f1 (over the labels that occur in references or predictions, as sklearn's default),
    per_scenario accuracy and the confusion matrix (rows = true label, columns = predicted, in `labels` order)."""
    _check_labels(references, labels, "references")
    _check_labels(predictions, labels, "predictions")
    return {
        "accuracy": accuracy(references, predictions),
        "macro_f1": float(f1_score(references, predictions, average="macro", zero_division=0)) if references else None,
        "per_scenario": per_group_accuracy(references, predictions, scenarios),
        "confusion_matrix": sk_confusion_matrix(references, predictions, labels=list(labels)).tolist()
        if references else [[0] * len(labels) for _ in labels],
    }


def corpus_bleu(predictions: list[str], references: list[str]) -> float:
    """Corpus BLEU (sacrebleu, default 13a tokenisation), on a 0-1 scale like the other metrics."""
    result = load_metric("sacrebleu").compute(predictions=predictions, references=[[r] for r in references])
    return float(result["score"]) / 100.0


def rouge_l_scores(predictions: list[str], references: list[str]) -> list[float]:
    """The ROUGE-L F-measure of each (prediction, reference) pair."""
    result = load_metric("rouge").compute(
        predictions=predictions, references=references, rouge_types=["rougeL"], use_aggregator=False
    )
    return [float(score) for score in result["rougeL"]]


def mean_rouge_l(predictions: list[str], references: list[str]) -> float:
    """Mean per-sample ROUGE-L F-measure (no bootstrap, so it is exact and deterministic)."""
    return float(np.mean(rouge_l_scores(predictions, references)))


def bertscore_num_layers(model_path: str) -> int:
    """The layer BERTScore reads: bert-score's tuned choice when the folder is named after a model it knows,
    else the model's last layer (num_hidden_layers in its config.json)."""
    from bert_score.utils import model2layers

    path = Path(model_path)
    if path.name in model2layers:
        return model2layers[path.name]
    config_path = path / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"BERTScore model folder {path} has no config.json (expected a BERT-like model + tokenizer).")
    config = json.loads(config_path.read_text())
    if "num_hidden_layers" not in config:
        raise ValueError(f"{config_path} has no num_hidden_layers; cannot choose the BERTScore layer.")
    return int(config["num_hidden_layers"])


def mean_bertscore_f1(predictions: list[str], references: list[str], model_path: str, batch_size: int = 16) -> float:
    """Mean BERTScore F1 with the BERT-like model at `model_path` (a local folder works offline)."""
    result = load_metric("bertscore").compute(
        predictions=predictions,
        references=references,
        model_type=str(model_path),
        num_layers=bertscore_num_layers(model_path),
        batch_size=batch_size,
        device="cpu",
    )
    return float(np.mean(result["f1"]))


def feedback_metrics(predictions: list[str], references: list[str], bertscore_model: str | None = None) -> dict:
    """rouge_l, bleu (both 0-1) and, when a BERTScore model is given, bertscore_f1; None when there is no pair."""
    if len(predictions) != len(references):
        raise ValueError(f"feedback_metrics: {len(predictions)} predictions but {len(references)} references.")
    if not predictions:
        return {"rouge_l": None, "bleu": None} | ({"bertscore_f1": None} if bertscore_model else {})
    result = {"rouge_l": mean_rouge_l(predictions, references), "bleu": corpus_bleu(predictions, references)}
    if bertscore_model:
        result["bertscore_f1"] = mean_bertscore_f1(predictions, references, bertscore_model)
    return result


# ---------------------------------------------------------------------------------------------------------------------
# Ordinal and calibration metrics. The label list is ordered low -> high, so a label's index is its level and the
# distance between two labels is the difference of their indices ("label steps").

# Label probabilities come from a softmax; allow float32 rounding, reject anything that is clearly not a distribution.
_PROBABILITY_SUM_TOLERANCE = 1e-3
# A confidence within this of a bin edge counts as on the edge, so 0.29 lands in [0.29, 0.30) with 100 bins although
# 0.29 * 100 is 28.999999999999996 in floating point.
_BIN_EDGE_DECIMALS = 9


def _check_label_order(labels: Sequence[str]) -> None:
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise ValueError(f"labels {list(labels)} must be at least 2 distinct labels ordered low -> high.")


def _label_indices(references: Sequence[str], predictions: Sequence[str], labels: Sequence[str],
                   what: str) -> tuple[np.ndarray, np.ndarray]:
    """(reference levels, predicted levels) as index arrays into `labels`, after checking lengths and labels."""
    _check_label_order(labels)
    if len(references) != len(predictions):
        raise ValueError(f"{what}: {len(references)} references but {len(predictions)} predictions.")
    _check_labels(list(references), labels, "references")
    _check_labels(list(predictions), labels, "predictions")
    index = {label: i for i, label in enumerate(labels)}
    return (np.array([index[r] for r in references], dtype=int), np.array([index[p] for p in predictions], dtype=int))


def mean_absolute_error(references: Sequence[str], predictions: Sequence[str], labels: Sequence[str]) -> float | None:
    """Mean |level(reference) - level(prediction)| in label steps (0 = all right); None when there is nothing to
    score."""
    ref_idx, pred_idx = _label_indices(references, predictions, labels, "mean_absolute_error")
    if not len(ref_idx):
        return None
    return float(sk_mean_absolute_error(ref_idx, pred_idx))


def within_one_accuracy(references: Sequence[str], predictions: Sequence[str], labels: Sequence[str]) -> float | None:
    """Fraction of predictions at most one label step from the reference; None when there is nothing to score."""
    ref_idx, pred_idx = _label_indices(references, predictions, labels, "within_one_accuracy")
    if not len(ref_idx):
        return None
    return float(np.mean(np.abs(ref_idx - pred_idx) <= 1))


def quadratic_weighted_kappa(references: Sequence[str], predictions: Sequence[str],
                             labels: Sequence[str]) -> float | None:
    """Cohen's kappa with quadratic weights over all `labels` levels (1 = perfect, 0 = chance level); None when there
    is nothing to score.

    Kappa is undefined (sklearn gives nan) when the chance disagreement is zero, which only happens when references
    and predictions are all one and the same label, i.e. every prediction is right: that case is defined as 1.0
    (perfect agreement). Any other undefined case, should one arise, is 0.0 (no better than chance). The result is
    never nan, so it is safe in metrics.json."""
    ref_idx, pred_idx = _label_indices(references, predictions, labels, "quadratic_weighted_kappa")
    if not len(ref_idx):
        return None
    with warnings.catch_warnings():
        # the undefined case is handled below; sklearn's warning about it would only be noise in the logs
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        with np.errstate(divide="ignore", invalid="ignore"):
            kappa = float(cohen_kappa_score(ref_idx, pred_idx, weights="quadratic", labels=list(range(len(labels)))))
    if math.isnan(kappa):
        return 1.0 if bool(np.all(ref_idx == pred_idx)) else 0.0
    return kappa


def _probability_matrix(probabilities: Sequence[Sequence[float] | Mapping[str, float]],
                        labels: Sequence[str]) -> np.ndarray:
    """(N, L) array in `labels` order from per-take lists (already in `labels` order) or {label: p} dicts."""
    rows = []
    for i, take in enumerate(probabilities):
        if isinstance(take, Mapping):
            if set(take) != set(labels):
                raise ValueError(f"probabilities[{i}] has labels {sorted(take, key=repr)}, "
                                 f"expected exactly {list(labels)}.")
            row = [take[label] for label in labels]
        elif take is None or isinstance(take, str) or len(take) != len(labels):
            raise ValueError(f"probabilities[{i}] is {take!r}, expected {len(labels)} probabilities in the order "
                             f"{list(labels)} (or a {{label: probability}} dict).")
        else:
            row = list(take)
        row = np.asarray(row, dtype=float)
        tol = _PROBABILITY_SUM_TOLERANCE
        if not np.all(np.isfinite(row)) or np.any(row < 0) or np.any(row > 1 + tol) or abs(row.sum() - 1.0) > tol:
            raise ValueError(f"probabilities[{i}] is {row.tolist()}, expected probabilities in [0, 1] summing to 1.")
        rows.append(row)
    return np.array(rows, dtype=float).reshape(len(rows), len(labels))


def reliability_bins(probabilities: Sequence[Sequence[float] | Mapping[str, float]], references: Sequence[str],
                     labels: Sequence[str], n_bins: int = 10) -> list[dict]:
    """Top-label calibration in `n_bins` equal-width confidence bins over [0, 1].

    Per take the confidence is its largest probability and it is correct when that label (the first one on a tie)
    is the reference. Bin b holds confidences in [b/n_bins, (b+1)/n_bins); the last bin also holds 1.0. Each bin is
    {lower, upper, count, accuracy, confidence}, accuracy and confidence being the bin's means (None when empty)."""
    _check_label_order(labels)
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins is {n_bins!r}, expected a positive integer.")
    if len(probabilities) != len(references):
        raise ValueError(f"reliability_bins: {len(probabilities)} probability rows but {len(references)} references.")
    _check_labels(list(references), labels, "references")
    probs = _probability_matrix(probabilities, labels)
    index = {label: i for i, label in enumerate(labels)}
    ref_idx = np.array([index[r] for r in references], dtype=int)
    confidence = probs.max(axis=1) if len(probs) else np.zeros(0)
    correct = (probs.argmax(axis=1) == ref_idx) if len(probs) else np.zeros(0, dtype=bool)
    # floor(conf * n) is the bin; clip puts exactly 1.0 into the last bin rather than a bin of its own
    bin_of = np.clip(np.floor(np.round(confidence * n_bins, _BIN_EDGE_DECIMALS)).astype(int), 0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        members = bin_of == b
        count = int(members.sum())
        bins.append({
            "lower": b / n_bins,
            "upper": (b + 1) / n_bins,
            "count": count,
            "accuracy": float(correct[members].mean()) if count else None,
            "confidence": float(confidence[members].mean()) if count else None,
        })
    return bins


def expected_calibration_error(probabilities: Sequence[Sequence[float] | Mapping[str, float]],
                               references: Sequence[str], labels: Sequence[str], n_bins: int = 10) -> float | None:
    """Top-label ECE: sum over `reliability_bins` of (bin count / N) * |bin accuracy - bin confidence| (0 = perfectly
    calibrated); None when there is nothing to score."""
    bins = reliability_bins(probabilities, references, labels, n_bins)
    total = sum(b["count"] for b in bins)
    if not total:
        return None
    return float(sum(b["count"] / total * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"]))


def ordinal_metrics(references: Sequence[str], predictions: Sequence[str],
                    probabilities: Sequence[Sequence[float] | Mapping[str, float]] | None,
                    labels: Sequence[str]) -> dict:
    """mean_absolute_error (label steps), within_one_accuracy, quadratic_weighted_kappa and, when probabilities are
    given, expected_calibration_error (10 bins; else None). Every value is None when there is nothing to score."""
    _label_indices(references, predictions, labels, "ordinal_metrics")  # one clear error before any metric runs
    return {
        "mean_absolute_error": mean_absolute_error(references, predictions, labels),
        "within_one_accuracy": within_one_accuracy(references, predictions, labels),
        "quadratic_weighted_kappa": quadratic_weighted_kappa(references, predictions, labels),
        "expected_calibration_error": None if probabilities is None
        else expected_calibration_error(probabilities, references, labels),
    }


__all__ = [
    "accuracy",
    "per_group_accuracy",
    "label_metrics",
    "corpus_bleu",
    "rouge_l_scores",
    "mean_rouge_l",
    "mean_bertscore_f1",
    "bertscore_num_layers",
    "feedback_metrics",
    "mean_absolute_error",
    "within_one_accuracy",
    "quadratic_weighted_kappa",
    "reliability_bins",
    "expected_calibration_error",
    "ordinal_metrics",
]
