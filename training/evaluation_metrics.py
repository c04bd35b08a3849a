# The numbers of metrics.json: label accuracy / macro-F1 / per-scenario / confusion matrix, and feedback text metrics.
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from sklearn.metrics import f1_score

from training.metrics import load_metric


def _check_labels(values: list[str], labels: tuple[str, ...], what: str) -> None:
    unknown = sorted({v for v in values if v not in labels})
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


def mean_rouge_l(predictions: list[str], references: list[str]) -> float:
    """Mean per-sample ROUGE-L F-measure (no bootstrap, so it is exact and deterministic)."""
    result = load_metric("rouge").compute(
        predictions=predictions, references=references, rouge_types=["rougeL"], use_aggregator=False
    )
    return float(np.mean(result["rougeL"]))


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


__all__ = [
    "accuracy",
    "per_group_accuracy",
    "label_metrics",
    "corpus_bleu",
    "mean_rouge_l",
    "mean_bertscore_f1",
    "bertscore_num_layers",
    "feedback_metrics",
]
