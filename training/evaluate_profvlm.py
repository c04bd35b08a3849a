"""Evaluate a ProfVLM checkpoint on an EgoExo4D-layout tree: label accuracy (overall, per scenario, per view setting),
macro-F1, free-generation label accuracy and feedback quality, written as OUT/metrics.json plus two PNG plots.

    python training/evaluate_profvlm.py --model DIR --data_dir ROOT --split validation --output_dir OUT \
        [--features CACHE] [--bertscore_model PATH] [--max_new_tokens N] [--batch_size N]

Labels come from scoring the four label continuations (modeling_profvlm/label_scoring.py) on every labelled take of
the `demonstrator` config; view settings (Ego / Exos / Ego+Exos) mask views of the same model. Feedback is the text
the model generates after its predicted label, scored against every `demonstrator_commentary` row of the take.
"""
import argparse
import json
import logging
import sys
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # runnable as `python training/evaluate_profvlm.py`
    sys.path.insert(0, str(REPO_ROOT))

from dataset_scripts.egoexo4d_proficiency import DEFAULT_MAX_FEEDBACK_WORDS  # noqa: E402
from training.evaluation_metrics import accuracy, feedback_metrics, label_metrics  # noqa: E402
from training.evaluation_predictions import (  # noqa: E402
    DEFAULT_MAX_NEW_TOKENS,
    VIEW_SETTINGS,
    TakePredictions,
    predict_takes,
)
from training.plots import plot_confusion_matrix, plot_per_scenario  # noqa: E402

logger = logging.getLogger(__name__)


def compute_metrics(preds: TakePredictions, commentary_rows: list[dict], labels: tuple[str, ...],
                    bertscore_model: str | None = None) -> tuple[dict, list[list[int]]]:
    """metrics.json's content (exactly the issue's keys) and the confusion matrix of the Ego+Exos setting."""
    main = preds.predictions["ego_exos"]
    core = label_metrics(preds.references, main, preds.scenarios, labels)
    per_view = {}
    for setting in VIEW_SETTINGS:
        idx = [i for i, p in enumerate(preds.predictions[setting]) if p is not None]
        per_view[setting] = accuracy([preds.references[i] for i in idx], [preds.predictions[setting][i] for i in idx])
    pairs = [(preds.feedback[r["take_uid"]], r["feedback"]) for r in commentary_rows if r["take_uid"] in preds.feedback]
    metrics = {
        "accuracy": core["accuracy"],
        "macro_f1": core["macro_f1"],
        "per_scenario": core["per_scenario"],
        "per_view_setting": per_view,
        "feedback": feedback_metrics([p for p, _ in pairs], [r for _, r in pairs], bertscore_model),
        "generation_label_accuracy": accuracy(preds.references, preds.generated_labels) if preds.generated_labels else None,
        "num_samples": len(preds.references),
    }
    return metrics, core["confusion_matrix"]


def write_outputs(metrics: dict, confusion: list[list[int]], preds: TakePredictions, labels: tuple[str, ...],
                  output_dir: str | Path) -> Path:
    """OUT/metrics.json, OUT/confusion_matrix.png, OUT/per_scenario.png."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / "metrics.json"
    path.write_text(json.dumps(metrics, indent=2) + "\n")
    plot_confusion_matrix(confusion, labels, output_dir / "confusion_matrix.png")
    counts = {s: preds.scenarios.count(s) for s in metrics["per_scenario"]}
    plot_per_scenario(metrics["per_scenario"], counts, output_dir / "per_scenario.png",
                      overall=metrics["accuracy"], chance=1.0 / len(labels))
    return path


def load_checkpoint(model_dir: str | Path):
    """(model, processor) of a saved, self-contained ProfVLM checkpoint, in eval mode."""
    import modeling_profvlm  # noqa: F401  (registers the Auto classes)
    import processing.processing_profvlm  # noqa: F401  (registers AutoProcessor)
    from transformers import AutoModel, AutoProcessor

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"--model {model_dir}: no config.json; expected a ProfVLM checkpoint folder "
                                "(e.g. OUTPUT_DIR/final written by training/sft.py).")
    model = AutoModel.from_pretrained(model_dir, dtype=torch.float32).eval()
    return model, AutoProcessor.from_pretrained(model_dir)


def open_feature_cache(cache_dir: str | Path, model, processor):
    """The feature cache at `cache_dir`, refused when another tower, frame sampling or view set made it."""
    from training.feature_cache import FeatureCache, build_manifest, sampling_spec

    return FeatureCache(cache_dir, expected_manifest=build_manifest(model, sampling_spec(processor), model.dtype))


def load_rows(data_dir: str | Path, config: str, split: str, **config_kwargs) -> list[dict]:
    """The rows of one builder config and split, as dicts (ClassLabel names checked)."""
    from training.sft_data import label_names, load_split

    dataset = load_split(str(data_dir), config, split, **config_kwargs)
    label_names(dataset)
    return list(dataset)


def evaluate_checkpoint(model, processor, data_dir: str | Path, split: str, output_dir: str | Path,
                        features: str | Path | None = None, bertscore_model: str | None = None,
                        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, batch_size: int = 8,
                        max_feedback_words: int = DEFAULT_MAX_FEEDBACK_WORDS) -> dict:
    """Run the whole evaluation and write OUT/metrics.json and the two PNGs; returns the metrics. The reference
    feedback is cut to `max_feedback_words` as in training (use the value the model was trained with)."""
    labels = tuple(model.config.proficiency_labels)
    label_rows = load_rows(data_dir, "demonstrator", split)
    if not label_rows:
        raise ValueError(f"{data_dir}: the `demonstrator` config has no labelled takes in split {split!r}.")
    commentary_rows = load_rows(data_dir, "demonstrator_commentary", split, max_feedback_words=max_feedback_words)
    cache = open_feature_cache(features, model, processor) if features else None
    preds = predict_takes(model, processor, label_rows, cache, batch_size, True, max_new_tokens)
    metrics, confusion = compute_metrics(preds, commentary_rows, labels, bertscore_model)
    write_outputs(metrics, confusion, preds, labels, output_dir)
    return metrics


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a ProfVLM checkpoint folder (e.g. OUTPUT_DIR/final)")
    parser.add_argument("--data_dir", required=True, help="EgoExo4D-layout root (takes.json, annotations/, takes/)")
    parser.add_argument("--split", default="validation", choices=["train", "validation"])
    parser.add_argument("--output_dir", required=True, help="where metrics.json and the PNGs go")
    parser.add_argument("--features", default=None, help="feature cache from training/extract_features.py (optional)")
    parser.add_argument("--bertscore_model", default=None, help="BERT-like model (name or local folder) for BERTScore")
    parser.add_argument("--max_new_tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--max_feedback_words", type=int, default=DEFAULT_MAX_FEEDBACK_WORDS,
                        help="cut reference feedback like training did (sft.py --max_feedback_words)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """CLI entry point: load the checkpoint, evaluate, print a summary."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    model, processor = load_checkpoint(args.model)
    metrics = evaluate_checkpoint(model, processor, args.data_dir, args.split, args.output_dir, args.features,
                                  args.bertscore_model, args.max_new_tokens, args.batch_size, args.max_feedback_words)
    summary = {k: metrics[k] for k in ("accuracy", "macro_f1", "generation_label_accuracy", "num_samples")}
    print(json.dumps({**summary, "per_view_setting": metrics["per_view_setting"], "feedback": metrics["feedback"]}))
    print(f"Wrote {Path(args.output_dir) / 'metrics.json'}, confusion_matrix.png, per_scenario.png")
    return metrics


if __name__ == "__main__":
    main()
