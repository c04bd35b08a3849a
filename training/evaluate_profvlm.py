"""Evaluate a ProfVLM checkpoint on an EgoExo4D-layout tree or a multi-view folder dataset: label accuracy (overall,
per scenario, per view setting), macro-F1, the ordinal and calibration metrics (MAE in label steps, within-one
accuracy, quadratic weighted kappa, ECE), free-generation label accuracy and feedback quality. Writes OUT/metrics.json
(with its provenance), OUT/predictions.jsonl (one line per take and view setting) and three PNG plots. Where the
reference feedback is timed moments (--moments on EgoExo4D, or a folder with a moments column), metrics.json also has
`time_grounding` (training/time_grounding.py) at each of --time_tolerances seconds.

    python training/evaluate_profvlm.py --model DIR --data_dir ROOT --split validation --output_dir OUT \
        [--features CACHE] [--bertscore_model PATH] [--max_new_tokens N] [--batch_size N] [--max_feedback_words N]

Labels come from scoring the label continuations (modeling_profvlm/label_scoring.py) on every labelled take;
view settings mask views of the same model: Ego / Exos / Ego+Exos (`ego`, `exos`, `ego_exos`) on EgoExo4D, `all`
and each view alone (named by the view) on any other dataset. Feedback is the text the model generates after its
predicted label with every view, scored against every reference feedback of the take, cut to the checkpoint's
`max_feedback_words` (what it was trained with) unless --max_feedback_words says otherwise.
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

from dataset_scripts.script_errors import reject_renamed_flags  # noqa: E402
from modeling_profvlm.device_policy import add_device_arguments  # noqa: E402
from training.evaluation_metrics import (  # noqa: E402
    accuracy,
    feedback_metrics,
    label_metrics,
    ordinal_metrics,
    reliability_bins,
)
from modeling_profvlm.profvlm_facts import normalize_moments  # noqa: E402
from training.demonstration_metric import (  # noqa: E402
    demonstration_map,
    demonstration_references,
    score_demonstration_file,
)
from training.evaluation_predictions import (  # noqa: E402
    EVAL_MAX_NEW_TOKENS,
    TakePredictions,
    all_views_setting,
    predict_takes,
    view_setting_title,
    view_settings_for,
)
from training.time_grounding import (  # noqa: E402
    DEFAULT_TIME_TOLERANCES,
    moment_fields,
    time_grounding_from_predictions,
)
from training.plots import plot_confusion_matrix, plot_per_scenario, plot_reliability_diagram  # noqa: E402

logger = logging.getLogger(__name__)

PREDICTIONS_FILE = "predictions.jsonl"
PLOT_FILES = ("confusion_matrix.png", "per_scenario.png", "reliability_diagram.png")


def prediction_rows(preds: TakePredictions, labels: tuple[str, ...],
                    commentary_rows: list[dict] | None = None) -> list[dict]:
    """predictions.jsonl's lines: per take and view setting the reference, the predicted level (`proficiency`; None
    where the take lacks that setting's views) and {label: probability}. The all-views line is the take's answer as
    the pipeline gives it (`ProfVLMAnswer.to_dict()`: feedback, moments, timeline, camera weights, ...) plus the label
    free generation chose (`generated_label`, only when generation ran) and the take's reference feedback; the other
    lines have `feedback: null` (feedback is generated with every view only). When the reference rows carry
    `moments`, the all-views line also has `predicted_moments` and `reference_moments` (`moment_fields`)."""
    references, reference_moments = {}, {}
    for row in commentary_rows or []:
        references.setdefault(row["take_uid"], []).append(row["feedback"])
        if "moments" in row:  # as annotated: full-precision times, a category only where the source has one
            reference_moments.setdefault(row["take_uid"], []).append(normalize_moments(row["moments"], decimals=None))
    with_moments = any("moments" in row for row in commentary_rows or [])
    lines = []
    for i, uid in enumerate(preds.take_uids):
        for setting, predicted in preds.predictions.items():
            probs = preds.probabilities.get(setting) or []
            p = probs[i] if i < len(probs) else None
            line = {"take_uid": uid, "view_setting": setting, "scenario": preds.scenarios[i],
                    "reference": preds.references[i], "proficiency": predicted[i],
                    "probabilities": None if p is None else dict(zip(labels, map(float, p))), "feedback": None}
            if setting == preds.main_setting:
                line.update(preds.answers[uid].to_dict())
                if preds.generated_labels:
                    line["generated_label"] = preds.generated_labels[i]
                line["reference_feedback"] = references.get(uid, [])
                if with_moments:
                    line.update(moment_fields(line["feedback"], reference_moments.get(uid, [])))
            lines.append(line)
    return lines


def read_predictions(path: str | Path) -> list[dict]:
    """The lines of a predictions.jsonl."""
    lines = []
    with open(path, encoding="utf-8") as f:
        for number, text in enumerate(f, 1):
            if text.strip():
                try:
                    lines.append(json.loads(text))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path} line {number}: not valid JSON ({err}).") from err
    return lines


def setting_figures(lines: list[dict], labels: tuple[str, ...]) -> dict:
    """accuracy, macro_f1, the ordinal / calibration metrics and num_samples of one view setting's lines, over the
    takes that have its views; ECE is None when a scored line has no probabilities."""
    scored = [line for line in lines if line["proficiency"] is not None]
    refs, predicted = [line["reference"] for line in scored], [line["proficiency"] for line in scored]
    probs = [line["probabilities"] for line in scored]
    core = label_metrics(refs, predicted, [""] * len(scored), labels)
    ordinal = ordinal_metrics(refs, predicted, None if None in probs else probs, labels)
    return {"accuracy": core["accuracy"], "macro_f1": core["macro_f1"], **ordinal, "num_samples": len(scored)}


def _label_figures(lines: list[dict], labels: tuple[str, ...]) -> tuple[dict, list[list[int]]]:
    settings = list(dict.fromkeys(line["view_setting"] for line in lines))
    if not settings:
        raise ValueError("no prediction lines to compute metrics from.")
    main = all_views_setting(settings)
    by_setting = {s: [line for line in lines if line["view_setting"] == s] for s in settings}
    rows = by_setting[main]
    refs, predicted = [r["reference"] for r in rows], [r["proficiency"] for r in rows]
    core = label_metrics(refs, predicted, [r["scenario"] for r in rows], labels)
    per_setting = {s: setting_figures(by_setting[s], labels) for s in settings}
    probs = [r["probabilities"] for r in rows]
    generated = [r["generated_label"] for r in rows] if all("generated_label" in r for r in rows) else None
    metrics = {
        "accuracy": core["accuracy"],
        "macro_f1": core["macro_f1"],
        **{k: per_setting[main][k] for k in ("mean_absolute_error", "within_one_accuracy",
                                             "quadratic_weighted_kappa", "expected_calibration_error")},
        "per_scenario": core["per_scenario"],
        "per_view_setting": {s: figures["accuracy"] for s, figures in per_setting.items()},
        "per_view_setting_metrics": per_setting,
        "main_view_setting": main,
        "reliability_bins": None if None in probs else reliability_bins(probs, refs, labels),
        "generation_label_accuracy": accuracy(refs, generated) if generated else None,
        "num_samples": len(rows),
    }
    return metrics, core["confusion_matrix"]


def metrics_from_predictions(path_or_rows: str | Path | list[dict], labels: tuple[str, ...] | list[str],
                             time_tolerances: tuple[float, ...] = DEFAULT_TIME_TOLERANCES) -> dict:
    """Every label figure of metrics.json (all but `feedback` and `provenance`), and `time_grounding` when the lines
    have moments, recomputed from predictions.jsonl (a path, or its lines); `labels` are the ordered labels
    (metrics.json's provenance.labels), `time_tolerances` its time_grounding.tolerances."""
    lines = read_predictions(path_or_rows) if isinstance(path_or_rows, (str, Path)) else list(path_or_rows)
    metrics = _label_figures(lines, tuple(labels))[0]
    grounding = time_grounding_from_predictions(lines, time_tolerances)
    return metrics if grounding is None else {**metrics, "time_grounding": grounding}


def feedback_from_predictions(path_or_rows: str | Path | list[dict], bertscore_model: str | None = None) -> dict:
    """metrics.json's `feedback` recomputed from predictions.jsonl: each all-views line's generated feedback against
    every reference it lists (`reference_feedback`, one per expert), as evaluation scores them."""
    lines = read_predictions(path_or_rows) if isinstance(path_or_rows, (str, Path)) else list(path_or_rows)
    pairs = [(line["feedback"], ref) for line in lines if "reference_feedback" in line and line["feedback"] is not None
             for ref in line["reference_feedback"]]
    return feedback_metrics([p for p, _ in pairs], [r for _, r in pairs], bertscore_model)


def compute_metrics(preds: TakePredictions, commentary_rows: list[dict], labels: tuple[str, ...],
                    bertscore_model: str | None = None,
                    time_tolerances: tuple[float, ...] = DEFAULT_TIME_TOLERANCES) -> tuple[dict, list[list[int]]]:
    """metrics.json's figures (provenance aside) and the confusion matrix of the all-views setting. The label
    figures and time_grounding (only when the reference rows have moments) are computed from the prediction lines,
    so predictions.jsonl reproduces them exactly."""
    metrics, confusion = _label_figures(prediction_rows(preds, labels), labels)
    pairs = [(preds.feedback[r["take_uid"]], r["feedback"]) for r in commentary_rows if r["take_uid"] in preds.feedback]
    metrics["feedback"] = feedback_metrics([p for p, _ in pairs], [r for _, r in pairs], bertscore_model)
    grounding = time_grounding_from_predictions(prediction_rows(preds, labels, commentary_rows), time_tolerances)
    if grounding is not None:
        metrics["time_grounding"] = grounding
    return metrics, confusion


def demonstration_metrics(preds: TakePredictions, commentary_rows: list[dict], data_dir: str | Path,
                          split: str) -> dict | None:
    """metrics.json's `demonstration` block when the reference moments have categories (EgoExo4D's demonstration
    file; a folder's categorised moments), else None: `demonstration_map` of every evaluated take's categorised
    moments with their probabilities against every expert's point (EgoExo4D: the whole demonstration file of the
    split, via `demonstration_references`; a folder: its rows' categorised moments)."""
    from dataset_scripts.proficiency_data import EGOEXO4D, dataset_kind

    if not any(m.get("category") for row in commentary_rows for m in row.get("moments") or []):
        return None
    evaluated = set(preds.take_uids)
    if dataset_kind(data_dir) == EGOEXO4D:
        references = {uid: points for uid, points in demonstration_references(data_dir, split).items()
                      if uid in evaluated}
    else:
        references = {uid: [] for uid in preds.take_uids}
        for row in commentary_rows:
            references[row["take_uid"]] += [{"video_time": m["time"], "category": m["category"]}
                                            for m in row.get("moments") or [] if m.get("category")]
    predictions = {uid: preds.answers[uid].demonstration_points() for uid in preds.take_uids}
    return {**demonstration_map(predictions, references), "num_takes": len(predictions),
            "num_predictions": sum(map(len, predictions.values())),
            "num_references": sum(map(len, references.values()))}


def write_outputs(metrics: dict, confusion: list[list[int]], preds: TakePredictions, labels: tuple[str, ...],
                  output_dir: str | Path, commentary_rows: list[dict] | None = None) -> Path:
    """OUT/metrics.json, OUT/predictions.jsonl, OUT/confusion_matrix.png, OUT/per_scenario.png and, when there are
    probabilities, OUT/reliability_diagram.png."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / "metrics.json"
    path.write_text(json.dumps(metrics, indent=2) + "\n")
    with open(output_dir / PREDICTIONS_FILE, "w", encoding="utf-8") as f:
        for line in prediction_rows(preds, labels, commentary_rows):
            f.write(json.dumps(line) + "\n")
    title = view_setting_title(preds.main_setting)
    plot_confusion_matrix(confusion, labels, output_dir / "confusion_matrix.png",
                          title=f"Proficiency confusion matrix ({title})")
    counts = {s: preds.scenarios.count(s) for s in metrics["per_scenario"]}
    plot_per_scenario(metrics["per_scenario"], counts, output_dir / "per_scenario.png",
                      overall=metrics["accuracy"], chance=1.0 / len(labels))
    if metrics.get("reliability_bins"):
        plot_reliability_diagram(metrics["reliability_bins"], output_dir / "reliability_diagram.png",
                                 ece=metrics["expected_calibration_error"],
                                 title=f"Label confidence reliability ({title})")
    return path


def load_checkpoint(model_dir: str | Path):
    """(model, processor) of a saved, self-contained ProfVLM checkpoint, in eval mode and float32 (as saved:
    `evaluate_checkpoint` then applies the device policy, after the feature cache has checked the tower)."""
    import modeling_profvlm  # noqa: F401  (registers the Auto classes)
    import processing  # noqa: F401  (registers AutoProcessor)
    from modeling_profvlm.configuration_profvlm import require_profvlm_checkpoint
    from transformers import AutoModel, AutoProcessor

    model_dir = require_profvlm_checkpoint(model_dir)
    model = AutoModel.from_pretrained(model_dir, dtype=torch.float32).eval()
    return model, AutoProcessor.from_pretrained(model_dir)


def run_under_device_policy(model, device: str | None = None, dtype: str | None = None):
    """Put `model` on the shared device policy's device and dtypes (CUDA when present; the tower in bf16 where
    native, or in the dtype the training features were made in; the projector float32); `device`/`dtype`
    override it. Returns the policy."""
    from modeling_profvlm.device_policy import apply_device_policy, policy_for_checkpoint
    from modeling_profvlm.peft_unwrap import unwrap_peft

    policy = policy_for_checkpoint(unwrap_peft(model).config, device, dtype)
    apply_device_policy(model, policy)
    logger.info("Evaluating on %s", policy.describe())
    return policy


def open_feature_cache(cache_dir: str | Path, model, processor):
    """The feature cache at `cache_dir`, refused when another tower (or released-feature source), frame sampling or view
    set made it."""
    from training.feature_cache import FeatureCache
    from training.released_features import cache_manifest

    return FeatureCache(cache_dir, expected_manifest=cache_manifest(model, processor, model.dtype))


def evaluated_views(data_dir: str | Path, checkpoint_views: list[str], selected: list[str] | None = None
                    ) -> list[str] | None:
    """The dataset's views that the checkpoint knows (and `--views` keeps), or None for all of them: a checkpoint
    built for fewer views (`profvlm init --views ...`) is evaluated on exactly those."""
    from dataset_scripts.proficiency_data import dataset_views_and_labels

    dataset_views, _ = dataset_views_and_labels(data_dir)
    unknown = [v for v in selected or [] if v not in checkpoint_views]
    if unknown:
        raise ValueError(f"--views {selected}: {unknown} are not views of the checkpoint {checkpoint_views}.")
    views = [v for v in dataset_views if v in checkpoint_views and (selected is None or v in selected)]
    if not views:
        raise ValueError(f"{data_dir}: none of its views {dataset_views} is a view of the checkpoint {checkpoint_views}.")
    return None if views == dataset_views else views


def load_rows(data_dir: str | Path, config: str, split: str, labels: tuple[str, ...], **config_kwargs) -> list[dict]:
    """The rows of one builder config and split, as dicts (ClassLabel names checked against the checkpoint's)."""
    from training.sft_data import label_names, load_split

    dataset = load_split(str(data_dir), config, split, **config_kwargs)
    label_names(dataset, labels)
    return list(dataset)


def evaluate_checkpoint(model, processor, data_dir: str | Path, split: str, output_dir: str | Path,
                        features: str | Path | None = None, bertscore_model: str | None = None,
                        max_new_tokens: int = EVAL_MAX_NEW_TOKENS, batch_size: int = 8,
                        max_feedback_words: int | None = None, model_dir: str | Path | None = None,
                        device: str | None = None, dtype: str | None = None, views: list[str] | None = None,
                        moments: bool = False,
                        time_tolerances: tuple[float, ...] = DEFAULT_TIME_TOLERANCES,
                        demonstration: bool = False) -> dict:
    """Run the whole evaluation, write metrics.json (with `provenance`), predictions.jsonl and the PNGs; returns
    the metrics. Reference feedback is cut to `max_feedback_words` when given, else to the checkpoint's training
    value (config.max_feedback_words), else to the builder default. `moments`: the references are timed moments
    (EgoExo4D's `demonstrator_moments` config; a folder's moments column), scored by time_grounding too."""
    from dataset_scripts.proficiency_data import dataset_kind
    from training.evaluation_provenance import resolve_max_feedback_words

    labels = tuple(model.config.proficiency_labels)
    view_names = evaluated_views(data_dir, list(model.config.view_names), views)
    settings = view_settings_for(dataset_kind(data_dir), list(model.config.view_names))
    words, words_source = resolve_max_feedback_words(max_feedback_words, model.config)
    # A checkpoint on released features reads feature files: its takes' videos need not be on disk.
    listed = {} if model.config.video_feature_source is None else {"verify_files": False}
    label_rows = load_rows(data_dir, "demonstrator", split, labels, views=view_names, **listed)
    if not label_rows:
        raise ValueError(f"{data_dir}: the `demonstrator` config has no labelled takes in split {split!r}.")
    feedback_config = ("demonstration_moments" if demonstration else "demonstrator_moments" if moments
                       else "demonstrator_commentary")
    moments = moments or demonstration
    if moments and model.config.max_moment_words is not None:  # references cut as the training targets were
        listed["max_moment_words"] = int(model.config.max_moment_words)
    commentary_rows = [r for r in load_rows(data_dir, feedback_config, split, labels, views=view_names,
                                            max_feedback_words=words, **listed) if r["feedback"]]
    if moments and not any(r.get("moments") for r in commentary_rows):
        raise ValueError(f"{data_dir}: --moments, but no {split} take has reference moments (EgoExo4D: timed expert "
                         f"commentary; a folder: a moments column).")
    cache = open_feature_cache(features, model, processor) if features else None  # hashes the tower as saved
    policy = run_under_device_policy(model, device, dtype)
    preds = predict_takes(model, processor, label_rows, cache, batch_size, True, max_new_tokens, settings)
    metrics, confusion = compute_metrics(preds, commentary_rows, labels, bertscore_model, time_tolerances)
    demonstration = demonstration_metrics(preds, commentary_rows, data_dir, split)
    if demonstration is not None:
        metrics["demonstration"] = demonstration
    model_dir = model_dir if model_dir is not None else getattr(model, "name_or_path", None) or None
    metrics["provenance"] = evaluation_provenance(model, processor, data_dir, split, settings, model_dir, features,
                                                  words, words_source, max_new_tokens, feedback_config)
    metrics["provenance"]["device_policy"] = policy.describe()
    write_outputs(metrics, confusion, preds, labels, output_dir, commentary_rows)
    return metrics


def evaluation_provenance(model, processor, data_dir: str | Path, split: str, settings: tuple[str, ...],
                          model_dir: str | Path | None, features: str | Path | None, max_feedback_words: int,
                          max_feedback_words_source: str, max_new_tokens: int,
                          feedback_config: str = "demonstrator_commentary") -> dict:
    """metrics.json's `provenance`: dataset (with its annotation fingerprint), split, labels, view settings,
    checkpoint (weights hash), frame sampling, feedback word limit (and where it came from), versions, date."""
    from training.evaluation_provenance import checkpoint_provenance, dataset_provenance, package_versions, utc_now
    from training.feature_cache import sampling_spec

    return {
        "tool": "training/evaluate_profvlm.py",
        "dataset": dataset_provenance(data_dir, split, config=["demonstrator", feedback_config],
                                      verify_files=model.config.video_feature_source is None),
        "split": split,
        "labels": list(model.config.proficiency_labels),
        "view_settings": list(settings),
        "checkpoint": checkpoint_provenance(model_dir, model.config),
        "frame_sampling": {**sampling_spec(processor), "feature_cache": None if features is None else
                           str(Path(features).expanduser().absolute())},
        "max_feedback_words": max_feedback_words,
        "max_feedback_words_source": max_feedback_words_source,
        "max_new_tokens": max_new_tokens,
        "versions": package_versions(),
        "date": utc_now(),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a ProfVLM checkpoint folder (e.g. OUTPUT_DIR/final); not needed with "
                                         "--demonstration_json")
    parser.add_argument("--data_dir", required=True, help="EgoExo4D-layout root (takes.json, annotations/, takes/) or "
                        "a multi-view folder dataset (labels.json + metadata.jsonl / .csv)")
    parser.add_argument("--split", default="validation", choices=["train", "validation", "test"],
                        help="split to evaluate (`test` exists in folder datasets only)")
    parser.add_argument("--output_dir", required=True, help="where metrics.json, predictions.jsonl and the PNGs go")
    parser.add_argument("--features", default=None, help="feature cache from training/extract_features.py (optional)")
    parser.add_argument("--bertscore_model", default=None, help="BERT-like model (name or local folder) for BERTScore")
    parser.add_argument("--max_new_tokens", type=int, default=EVAL_MAX_NEW_TOKENS,
                        help=f"feedback length limit per take (default {EVAL_MAX_NEW_TOKENS})")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--max_feedback_words", type=int, default=None,
                        help="cut reference feedback to N words (default: the checkpoint's training value, "
                             "config.max_feedback_words; a flag overrides it and the log says so)")
    parser.add_argument("--views", nargs="+", default=None,
                        help="evaluate with only these views (default: every view of the checkpoint the data has)")
    parser.add_argument("--moments", action="store_true",
                        help="the reference feedback is timed moments (EgoExo4D: the demonstrator_moments config; a "
                             "folder: its moments column), scored by metrics.json's time_grounding")
    parser.add_argument("--time_tolerances", nargs="+", type=float, default=list(DEFAULT_TIME_TOLERANCES),
                        metavar="SECONDS", help="time_grounding's tolerances: a predicted moment matches a reference "
                        "one at most this many seconds away")
    parser.add_argument("--demonstration", action="store_true",
                        help="EgoExo4D: the references are the demonstration-proficiency file's timed good executions "
                             "and tips (config demonstration_moments), scored by mAP at 0.25/0.5/1 s and by "
                             "time_grounding")
    parser.add_argument("--demonstration_json", metavar="FILE",
                        help="score this demonstration-proficiency file (from `profvlm predict --demonstration_json` "
                             "or any other system) against --data_dir's split, by mAP at 0.25/0.5/1 s; no model runs")
    add_device_arguments(parser)
    args = reject_renamed_flags(parser).parse_args(argv)
    if args.model is None and args.demonstration_json is None:
        parser.error("--model is required (or --demonstration_json FILE to score a file without a model).")
    return args


def main(argv: list[str] | None = None) -> dict:
    """CLI entry point: load the checkpoint, evaluate, print a summary."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.demonstration_json is not None:
        scores = score_demonstration_file(args.demonstration_json, args.data_dir, args.split)
        out = Path(args.output_dir) / "demonstration_metrics.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(scores, indent=2) + "\n")
        print(json.dumps({k: scores[k] for k in ("mAP@0.25", "mAP@0.5", "mAP@1.0", "mAP")}))
        print(f"Wrote {out}")
        return scores
    model, processor = load_checkpoint(args.model)
    metrics = evaluate_checkpoint(model, processor, args.data_dir, args.split, args.output_dir, args.features,
                                  args.bertscore_model, args.max_new_tokens, args.batch_size, args.max_feedback_words,
                                  model_dir=args.model, device=args.device, dtype=args.dtype, views=args.views,
                                  moments=args.moments, time_tolerances=tuple(args.time_tolerances),
                                  demonstration=args.demonstration)
    keys = ("accuracy", "macro_f1", "mean_absolute_error", "within_one_accuracy", "quadratic_weighted_kappa",
            "expected_calibration_error", "generation_label_accuracy", "num_samples")
    print(json.dumps({**{k: metrics[k] for k in keys}, "per_view_setting": metrics["per_view_setting"],
                      "feedback": metrics["feedback"],
                      **({"time_grounding": metrics["time_grounding"]["overall"]} if "time_grounding" in metrics
                         else {}),
                      **({"demonstration": {k: metrics["demonstration"][k] for k in ("mAP@0.25", "mAP@0.5", "mAP@1.0",
                                                                                      "mAP")}}
                         if "demonstration" in metrics else {})}))
    print(f"Wrote {Path(args.output_dir) / 'metrics.json'}, {PREDICTIONS_FILE}, {', '.join(PLOT_FILES)}")
    return metrics


if __name__ == "__main__":
    from dataset_scripts.script_errors import run_with_one_line_errors

    sys.exit(run_with_one_line_errors("training/evaluate_profvlm.py", main))
