# The Hub model card (README.md) of a ProfVLM checkpoint: model-index results from the evaluation JSON, named after the
# dataset the evaluation recorded (synthetic data always says so), usage, limits and the licences of the weights.
import json
import logging
import shutil
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from modeling_profvlm.configuration_profvlm import ProfVLMConfig, require_profvlm_checkpoint
from modeling_profvlm.profvlm_facts import released_feature_source
from modeling_profvlm.tower_adapter import tower_family, tower_image_size
from training.evaluation_predictions import view_setting_title
from training.evaluation_provenance import synthetic_dataset_name

from .card_licenses import card_license, component_licenses, hub_id, license_section

logger = logging.getLogger(__name__)

PLOTS = ("confusion_matrix.png", "per_scenario.png", "reliability_diagram.png")
FEEDBACK_METRICS = {"rouge_l": ("rouge", "ROUGE-L"), "bleu": ("bleu", "BLEU"), "bertscore_f1": ("bertscore", "BERTScore F1")}
# metrics.json key -> (model-index metric type, name); the labels are ordinal, so these belong next to accuracy.
ORDINAL_METRICS = {
    "mean_absolute_error": ("mae", "Mean absolute error (label steps)"),
    "within_one_accuracy": ("accuracy", "Within-one accuracy"),
    "quadratic_weighted_kappa": ("cohen_kappa", "Quadratic weighted kappa"),
    "expected_calibration_error": ("ece", "Expected calibration error (10 bins)"),
}
REQUIRED_EVAL_KEYS = ("accuracy", "macro_f1", "per_scenario", "per_view_setting", "num_samples")
UNRECORDED_DATASET = "Unrecorded dataset (the evaluation file has no provenance)"
PAPER_NUMBERS = ("the paper reports 48.2% Ego+Exos accuracy on EgoExo4D demonstrator proficiency and a feedback "
                 "BERTScore F1 of 85.53 (the paper's numbers, not this checkpoint's)")

CITATION = """@article{bianchi2026profvlm,
  title   = {ProfVLM: A Lightweight Video-Language Model for Multi-View Proficiency Estimation},
  author  = {Bianchi, Edoardo and Staiano, Jacopo and Liotta, Antonio},
  journal = {Computer Vision and Image Understanding},
  volume  = {268},
  pages   = {104749},
  year    = {2026},
  doi     = {10.1016/j.cviu.2026.104749},
  note    = {arXiv:2509.26278}
}"""


def load_eval_metrics(path: str | Path) -> dict:
    """Read the evaluation JSON (training/evaluate_profvlm.py) and check it has the keys the card needs."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"evaluation file '{path}' not found (expected metrics.json from evaluate_profvlm.py).")
    try:
        metrics = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"evaluation file '{path}' is not valid JSON: {err}") from err
    missing = [k for k in REQUIRED_EVAL_KEYS if k not in metrics]
    if missing:
        raise ValueError(f"evaluation file '{path}' lacks the keys {missing}; expected at least {list(REQUIRED_EVAL_KEYS)}.")
    return metrics




def evaluated_dataset(metrics: dict | None, dataset_name: str | None = None, dataset_id: str | None = None,
                      split: str | None = None) -> dict:
    """{name, id, split, synthetic} of the evaluated data, from metrics.json's provenance; `dataset_name` /
    `dataset_id` / `split` override it, but synthetic data keeps "synthetic" in its name. Without provenance the
    name says it is unrecorded rather than guessing."""
    block = ((metrics or {}).get("provenance") or {}).get("dataset") or {}
    synthetic = block.get("synthetic")
    return {"name": synthetic_dataset_name(dataset_name or block.get("name") or UNRECORDED_DATASET, synthetic),
            "id": dataset_id or block.get("id") or "unknown", "split": split or block.get("split") or "validation",
            "synthetic": synthetic, "kind": block.get("kind")}


def named_metrics(metrics: dict) -> list[tuple[str, str, str, float]]:
    """Every number of the evaluation JSON as (group, metric_type, metric_name, value), in card order; group is
    "labels", "view_setting", "scenario" or "feedback"."""
    rows = [("labels", "accuracy", "Accuracy", metrics["accuracy"]), ("labels", "f1", "Macro F1", metrics["macro_f1"])]
    rows += [("labels", kind, name, metrics[key]) for key, (kind, name) in ORDINAL_METRICS.items()
             if metrics.get(key) is not None]
    if metrics.get("generation_label_accuracy") is not None:
        rows.append(("labels", "accuracy", "Label accuracy of free generation", metrics["generation_label_accuracy"]))
    per_setting = metrics.get("per_view_setting_metrics") or {}
    for setting, value in metrics["per_view_setting"].items():
        title = view_setting_title(setting)
        if value is not None:
            rows.append(("view_setting", "accuracy", f"Accuracy ({title})", value))
        rows += [("view_setting", kind, f"{name} ({title})", per_setting[setting][key])
                 for key, (kind, name) in ORDINAL_METRICS.items()
                 if per_setting.get(setting, {}).get(key) is not None]
    rows += [("scenario", "accuracy", f"Accuracy ({scenario})", v)
             for scenario, v in metrics["per_scenario"].items() if v is not None]
    for key, value in (metrics.get("feedback") or {}).items():
        if value is not None:
            metric_type, name = FEEDBACK_METRICS.get(key, (key, key))
            rows.append(("feedback", metric_type, name, value))
    return rows


def eval_results(metrics: dict, dataset_id: str, dataset_name: str, split: str) -> list[EvalResult]:
    """The model-index entries: label metrics as video classification, feedback metrics as text generation."""
    task = {"feedback": ("text-generation", "Expert feedback generation")}
    return [
        EvalResult(task_type=task.get(group, ("video-classification",))[0],
                   task_name=task.get(group, (None, "Proficiency estimation"))[1], dataset_type=dataset_id,
                   dataset_name=dataset_name, dataset_split=split, metric_type=metric_type,
                   metric_name=name, metric_value=float(value))
        for group, metric_type, name, value in named_metrics(metrics)
    ]


def _cell(value) -> str:
    return "—" if value is None else f"{value:.4f}"


def _provenance_line(metrics: dict, dataset: dict) -> str:
    prov = metrics.get("provenance") or {}
    takes = f"{metrics['num_samples']} takes of the {dataset['split']} split"
    parts = [f"Measured on **{dataset['name']}** ({takes}) with `training/evaluate_profvlm.py`"]
    if prov.get("date"):
        parts.append(f" on {prov['date']}")
    text = "".join(parts) + "; labels come from scoring every label continuation."
    if prov.get("max_feedback_words") is not None:
        text += f" Reference feedback was cut to {prov['max_feedback_words']} words."
    sha = (prov.get("dataset") or {}).get("annotation_sha256")
    weights = (prov.get("checkpoint") or {}).get("weights_sha256")
    if sha:
        text += f" Annotation files sha256 `{sha[:16]}…`"
        text += f", weights sha256 `{weights[:16]}…`." if weights else "."
    if not prov:
        text += " The evaluation file records no provenance, so the data it measured is not named here."
    return text


def _results_section(metrics: dict | None, plots: list[str], dataset: dict) -> str:
    if metrics is None:
        return f"## Evaluation\n\nNo evaluation was attached to this card. For reference, {PAPER_NUMBERS}.\n"
    rows = named_metrics(metrics)
    lines = ["## Evaluation", "", _provenance_line(metrics, dataset), "", "| metric | value |", "|---|---|"]
    lines += [f"| {name} | {value:.4f} |" for group, _, name, value in rows if group in ("labels", "feedback")]
    per_setting = metrics.get("per_view_setting_metrics") or {}
    lines += ["", "Per view setting (the same model with only those views visible):", "",
              "| view setting | takes | accuracy | MAE | within-one | QWK | ECE |", "|---|---|---|---|---|---|---|"]
    for setting, acc in metrics["per_view_setting"].items():
        m = per_setting.get(setting, {})
        lines.append(f"| {view_setting_title(setting)} | {m.get('num_samples', '—')} | {_cell(acc)} | "
                     + " | ".join(_cell(m.get(k)) for k in ORDINAL_METRICS) + " |")
    lines += ["", "| scenario | accuracy |", "|---|---|"]
    lines += [f"| {s} | {v:.4f} |" for s, v in metrics["per_scenario"].items() if v is not None]
    grounding = _time_grounding_section(metrics)
    lines += ["", grounding] if grounding else []
    demonstration = _demonstration_section(metrics)
    lines += ["", demonstration] if demonstration else []
    lines += [""] + [f"![{Path(p).stem.replace('_', ' ')}]({p})" for p in plots]
    lines += ["", f"For context, {PAPER_NUMBERS}."]
    return "\n".join(lines) + "\n"


def _time_grounding_section(metrics: dict | None) -> str:
    """metrics.json's `time_grounding` (an evaluation on timed references) as a table per tolerance, with how it is
    computed; empty when the evaluation had no timed references."""
    grounding = (metrics or {}).get("time_grounding")
    if not grounding:
        return ""
    lines = ["### Time grounding of the feedback's moments", "",
             "The feedback names moments as `[m:ss] remark`. Each take's predicted moment times are matched one to one "
             "with each reference's (one reference per expert): closest pairs first, a pair only within the tolerance. "
             "Precision, recall and F1 pool the matches over all takes (micro); the time error and ROUGE-L (of the "
             "remarks' texts) are means over matched pairs. Times are whole seconds (floored).", "",
             "| tolerance (s) | precision | recall | F1 | mean time error (s) | ROUGE-L (matched) | matched / predicted"
             " / reference |", "|---|---|---|---|---|---|---|"]
    for key, m in (grounding.get("overall") or {}).items():
        counts = f"{m.get('matched', '—')} / {m.get('num_predicted', '—')} / {m.get('num_reference', '—')}"
        lines.append(f"| {key} | " + " | ".join(_cell(m.get(k)) for k in (
            "precision", "recall", "f1", "mean_abs_time_error", "rouge_l")) + f" | {counts} |")
    return "\n".join(lines) + "\n"


def _demonstration_section(metrics: dict | None) -> str:
    """metrics.json's `demonstration` block (EgoExo4D's demonstration-proficiency task) as mAP per time threshold and
    AP per category, with how it is computed; empty when the evaluation had no categorised references."""
    block = (metrics or {}).get("demonstration")
    if not block:
        return ""
    thresholds = [key.split("@", 1)[1] for key in block if key.startswith("mAP@")]
    lines = ["### Demonstration proficiency (timed good executions and tips)", "",
             "Each categorised moment of the feedback (`good: ...` / `tip: ...`) is a prediction at its time with the "
             "model's probability of its time marker and category word. Per category and threshold k, the "
             "predictions of all takes, ranked by probability, each match the nearest unmatched reference point of "
             "that category in the same take within k seconds (every expert's point is a reference); AP is the "
             "all-point interpolated area under the precision-recall curve, mAP its mean over the categories. "
             f"{block.get('num_predictions', '—')} predictions and {block.get('num_references', '—')} reference "
             f"points in {block.get('num_takes', '—')} takes.", "",
             "| | " + " | ".join(f"k = {k} s" for k in thresholds) + " | mean |",
             "|---|" + "---|" * (len(thresholds) + 1),
             "| mAP | " + " | ".join(_cell(block.get(f"mAP@{k}")) for k in thresholds) + f" | {_cell(block.get('mAP'))} |"]
    for category, per_k in (block.get("AP") or {}).items():
        lines.append(f"| AP {category} | " + " | ".join(_cell(per_k.get(k)) for k in thresholds) + " | |")
    return "\n".join(lines) + "\n"


def _is_smollm2_135m(config: ProfVLMConfig) -> bool:
    text = config.text_config
    return (text.hidden_size, text.num_hidden_layers, text.intermediate_size) == (576, 30, 1536)


def _data_statement(training: dict | None, dataset: dict, has_eval: bool) -> str:
    """The sentences of the first paragraph that name the training and evaluation data, synthetic first."""
    trained = synthetic_dataset_name(training["name"], training.get("synthetic")) if training else None
    evaluated = f"evaluated on **{dataset['name']}**" if has_eval else ""
    if trained:
        text = f"It was trained on **{trained}**" + (f" and {evaluated}." if evaluated else ".")
    else:
        text = "Its training data is not recorded" + (f"; it was {evaluated}." if evaluated else ".")
    if (training or {}).get("synthetic") or (has_eval and dataset.get("synthetic")):
        text += (" **This is synthetic data, not EgoExo4D** (nor any real recording): its numbers show that the "
                 "pipeline learns a signal planted in the videos and say nothing about real performers.")
    return text


def _training_section(config: ProfVLMConfig, training: dict | None) -> str:
    words = config.max_feedback_words
    cut = f"cut to {words} words" if words else "truncated"
    if not training:
        what = "Not recorded in this checkpoint (config.training_data is empty)."
    elif training.get("synthetic"):
        what = (f"{training['name']}: takes in the EgoExo4D layout written by `dataset_scripts/synthetic_egoexo4d.py`, "
                f"whose labels are visible in the motion; the templated commentary is the feedback target ({cut}).")
    elif training.get("kind") == "egoexo4d":
        what = (f"{training['name']}: takes in the EgoExo4D demonstrator-proficiency layout (6 scenarios, 4 ordinal "
                f"labels) with the expert commentary as the feedback target (one sample per take and expert, {cut}).")
    else:
        what = (f"{training['name']}: a multi-view folder dataset (`dataset_scripts/multiview_folder.py`) with labels "
                f"{', '.join(training.get('labels') or config.proficiency_labels)} and its feedback text ({cut}).")
    if training:
        takes = ", ".join(f"{n} {split}" for split, n in (training.get("takes") or {}).items())
        what += f" Takes: {takes}." if takes else ""
        if training.get("annotation_sha256"):
            what += f" Annotation files sha256 `{training['annotation_sha256'][:16]}…`."
    return (f"{what} The tower is frozen; the projector is trained fully and the language model with LoRA (default "
            "r=8, alpha 32 on q_proj/v_proj; with the paper's sizes that is 5.3M trainable parameters), with TRL "
            "`SFTTrainer` and the loss on the assistant answer only. The paper trains 6 epochs.")


def _released_usage(config: ProfVLMConfig) -> str:
    """The usage section of a checkpoint on EgoExo4D's released features: what it needs instead of video."""
    source = released_feature_source(config.video_feature_source)
    return f"""## Usage

This checkpoint has **no video tower**: its per-view inputs are EgoExo4D's released {source.model} features
(`{source.name}`, {config.video_feature_dim}-d vectors), so it cannot take video files (the pipeline, the processor and
`profvlm predict --ego/--exo` refuse them in one line). It needs each take's feature files,
`ROOT/{source.part}/<take_uid>_<cam_id>_<stream_id>.pt` (or the flat `ROOT/features/`), with the take metadata and
annotations; download only that part (licence signed at ego-exo4d-data.org):

```bash
egoexo -o ROOT --parts metadata annotations {source.part}
profvlm predict --model DIR --data_dir ROOT --split validation --output_dir OUT
python training/extract_features.py --model DIR --data_dir ROOT --output_dir CACHE   # the feature cache for training
```

A view whose file is missing or unreadable is masked, as a missing video would be.
"""


def _usage(config: ProfVLMConfig, repo_id: str) -> str:
    if config.video_feature_source is not None:
        return _released_usage(config)
    views = list(config.view_names)
    take = ", ".join(f'"{v}": "{v}.mp4"' for v in views[:3])
    if "ego" in views:
        exos = " ".join(f"{v}.mp4" for v in views if v != "ego")
        cli = f"profvlm predict --model DIR --ego ego.mp4 --exo {exos}"
    else:
        cli = "profvlm predict --model DIR " + " ".join(f"--view {v}={v}.mp4" for v in views[:3])
    return f"""## Usage

```python
from transformers import pipeline

pipe = pipeline(model="{repo_id}", trust_remote_code=True)
result = pipe({{{take}}}, max_new_tokens=64)
print(result["proficiency"], result["probabilities"], result["view_weights"])
print(result["feedback"])
print(result["moments"])  # [{{"time": s, "text": ..., "camera": view}}] when the feedback names moments ("[0:27] ...")
fast = pipe({{{take}}}, return_feedback=False)  # label and probabilities only
```

```python
from transformers import AutoModel, AutoProcessor

model = AutoModel.from_pretrained("{repo_id}", trust_remote_code=True)
processor = AutoProcessor.from_pretrained("{repo_id}", trust_remote_code=True)
```

From a checkout of the repository: `{cli}`.
"""


def _body(config: ProfVLMConfig, repo_id: str, metrics: dict | None, plots: list[str], dataset: dict,
          licences: str) -> str:
    random_tower = bool(config.vision_tower_random_init)
    training = config.training_data
    text = config.text_config
    language_model = ("SmolLM2-135M-Instruct" if _is_smollm2_135m(config) else
                      f"a {text.num_hidden_layers}-layer {text.model_type} model (hidden {text.hidden_size})")
    views = ", ".join(config.view_names)
    family = tower_family(config.vision_config).name
    warning = (
        f"> **Warning: the video tower of this checkpoint is randomly initialised** (no pretrained {family} "
        "was reachable when it was built). Its predictions only reflect what a frozen random tower preserves; "
        f"for real use rebuild it from a pretrained tower such as `{tower_family(config.vision_config).hub_example}`."
        "\n\n" if random_tower else ""
    )
    tower_limit = "- The video tower is randomly initialised (see the warning above).\n" if random_tower else ""
    synthetic_limit = ("- Trained on synthetic data: its level for a real video means nothing.\n"
                       if (training or {}).get("synthetic") else "")
    skew = ("- Labels in EgoExo4D skew toward intermediate and late experts; novices are rare in validation.\n"
            if (training or {}).get("kind") == "egoexo4d" and not training.get("synthetic") else "")
    tower = (f"a randomly initialised, frozen {family}" if random_tower
             else f"a frozen pretrained {family} ({config.vision_tower_source or 'source not recorded'})")
    steps = config.temporal_tokens
    pooling = ("tokens mean-pooled per view (one temporal token)" if steps == 1 else
               f"tokens pooled per time step into {steps} time bins per view (temporal tokens, each stated with its "
               "time in the prompt)")
    view_input = f"{config.num_frames} frames each"
    encoder = f"{tower}, {tower_image_size(config.vision_config)} px, {pooling}"
    if config.video_feature_source is not None:  # no tower: EgoExo4D's released vectors
        source = released_feature_source(config.video_feature_source)
        view_input = f"EgoExo4D's released `{source.part}` vectors"
        encoder = (f"none: EgoExo4D's released {source.model} features (`{source.name}`, "
                   f"{config.video_feature_dim}-d), mean-pooled into {steps} equal span(s) of "
                   f"{'each window' if config.clip_seconds is not None else 'the take'} per view")
    tokens = f"{config.num_tokens_per_take} video token(s)"
    if config.clip_seconds is not None:  # clips over the take: K windows, each one clip's tokens
        seconds, most = f"{config.clip_seconds:g}", config.max_clips
        per_window = (f"{view_input} pooled" if config.video_feature_source is not None else
                      f"one clip of {config.num_frames} frames")
        view_input = (f"{per_window} per {seconds}-s window, the windows laid end to end over the whole take "
                      f"(duration / {seconds} s of them, rounded up; past {most * config.clip_seconds:g} s, {most} "
                      "equal windows)")
        tokens = f"{config.num_tokens_per_take} video token(s) per window (at most {most * config.num_tokens_per_take})"
    return f"""# ProfVLM

ProfVLM estimates the proficiency of a performer from the camera views of one take ({views}) and writes
expert-like feedback. It is a reimplementation of *ProfVLM: A Lightweight Video-Language Model for Multi-View
Proficiency Estimation* (Bianchi, Staiano, Liotta; arXiv 2509.26278) as a Hugging Face model with custom code.
{_data_statement(training, dataset, metrics is not None)}

{warning}## Model

- Views: {views} ({view_input}); missing views are masked.
- Video encoder: {encoder}.
- Fusion: AttentiveGatedProjector (attention across the views of each time step, gated MLP, hidden
  {config.projector_hidden_size}), {tokens} in the language model's input; its view
  attention tells which cameras mattered.
- Language model: {language_model}, adapted with LoRA.
- Output: `Proficiency: <label>` then `Feedback: <text>`; labels, lowest to highest: {", ".join(config.proficiency_labels)}.

{_results_section(metrics, plots, dataset)}
{_usage(config, repo_id)}
## Training data and recipe

{_training_section(config, training)}

## Limitations

{skew}- Feedback is scored with automatic text metrics only; it can be fluent and wrong.
- The feedback is trained on expert commentary and may repeat its style rather than the video's content.
{synthetic_limit}{tower_limit}
{licences}
## Citation

```bibtex
{CITATION}
```
"""


def build_model_card(
    model_dir: str | Path,
    eval_path: str | Path | None = None,
    repo_id: str = "org/profvlm",
    dataset_id: str | None = None,
    dataset_name: str | None = None,
    split: str | None = None,
) -> ModelCard:
    """The model card of the checkpoint in `model_dir`; plots next to the eval JSON are copied into `model_dir`.
    The model-index names the dataset the evaluation recorded (`dataset_name` / `dataset_id` / `split` override)."""
    model_dir = require_profvlm_checkpoint(model_dir)
    config = ProfVLMConfig.from_pretrained(model_dir)
    metrics, plots = None, []
    if eval_path is not None:
        metrics = load_eval_metrics(eval_path)
        if not metrics.get("provenance") and not dataset_name:
            logger.warning("%s records no provenance: the model-index names the dataset %r (pass --dataset_name).",
                           eval_path, UNRECORDED_DATASET)
        for name in PLOTS:  # copied so that `profvlm push` uploads them with the card
            source = Path(eval_path).parent / name
            if source.is_file():
                if source.resolve() != (model_dir / name).resolve():
                    shutil.copy(source, model_dir / name)
                plots.append(name)
    dataset = evaluated_dataset(metrics, dataset_name, dataset_id, split)
    components = component_licenses(config)
    licence = card_license(components)
    sources = [hub_id(config.language_model_source), None if config.vision_tower_random_init
               else hub_id(config.vision_tower_source)]
    base_model = [s for s in sources if s] or None
    tags = ["video", "multi-view", "proficiency-estimation", "skill-assessment", "custom_code"]
    training = config.training_data or {}
    if training.get("synthetic") or dataset["synthetic"]:
        tags.append("synthetic-data")
    # the egoexo4d tag is a claim about the data: only real EgoExo4D earns it
    if any(d.get("kind") == "egoexo4d" and d.get("synthetic") is False for d in (training, dataset)):
        tags.append("egoexo4d")
    data = ModelCardData(
        model_name="ProfVLM",
        language="en",
        library_name="transformers",
        pipeline_tag="video-text-to-text",
        base_model=base_model,
        tags=tags,
        eval_results=eval_results(metrics, dataset["id"], dataset["name"], dataset["split"]) if metrics else None,
        **licence,
    )
    body = _body(config, repo_id, metrics, plots, dataset, license_section(components, licence))
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}")


__all__ = ["build_model_card", "load_eval_metrics", "evaluated_dataset", "named_metrics", "eval_results", "CITATION"]
