# The Hub model card (README.md) of a ProfVLM checkpoint: model-index results from the evaluation JSON, usage, limits.
import json
import shutil
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .configuration_profvlm import ProfVLMConfig

PLOTS = ("confusion_matrix.png", "per_scenario.png")
VIEW_SETTINGS = {"ego": "Ego", "exos": "Exos", "ego_exos": "Ego+Exos"}
FEEDBACK_METRICS = {"rouge_l": ("rouge", "ROUGE-L"), "bleu": ("bleu", "BLEU"), "bertscore_f1": ("bertscore", "BERTScore F1")}
REQUIRED_EVAL_KEYS = ("accuracy", "macro_f1", "per_scenario", "per_view_setting", "num_samples")
PRETRAINED_TOWER = "facebook/timesformer-base-finetuned-k600"
SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"

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


def named_metrics(metrics: dict) -> list[tuple[str, str, str, float]]:
    """Every number of the evaluation JSON as (group, metric_type, metric_name, value), in card order;
    group is "labels", "scenario" or "feedback"."""
    rows = [("labels", "accuracy", "Accuracy", metrics["accuracy"]), ("labels", "f1", "Macro F1", metrics["macro_f1"])]
    rows += [("labels", "accuracy", f"Accuracy ({VIEW_SETTINGS.get(k, k)})", v)
             for k, v in metrics["per_view_setting"].items() if v is not None]
    if metrics.get("generation_label_accuracy") is not None:
        rows.append(("labels", "accuracy", "Label accuracy of free generation", metrics["generation_label_accuracy"]))
    rows += [("scenario", "accuracy", f"Accuracy ({scenario})", v)
             for scenario, v in metrics["per_scenario"].items() if v is not None]
    for key, value in (metrics.get("feedback") or {}).items():
        if value is not None:
            metric_type, name = FEEDBACK_METRICS.get(key, (key, key))
            rows.append(("feedback", metric_type, name, value))
    return rows


def eval_results(metrics: dict, dataset_id: str, dataset_name: str, split: str) -> list[EvalResult]:
    """The model-index entries: label metrics as video classification, feedback metrics as text generation."""
    tasks = {"labels": ("video-classification", "Proficiency estimation"),
             "scenario": ("video-classification", "Proficiency estimation"),
             "feedback": ("text-generation", "Expert feedback generation")}
    return [
        EvalResult(task_type=tasks[group][0], task_name=tasks[group][1], dataset_type=dataset_id,
                   dataset_name=dataset_name, dataset_split=split, metric_type=metric_type,
                   metric_name=name, metric_value=float(value))
        for group, metric_type, name, value in named_metrics(metrics)
    ]


def _results_section(metrics: dict | None, plots: list[str]) -> str:
    paper = ("the paper reports 48.2% Ego+Exos accuracy on EgoExo4D demonstrator proficiency and a feedback "
             "BERTScore F1 of 85.53 (the paper's numbers, not this checkpoint's).")
    if metrics is None:
        return f"## Evaluation\n\nNo evaluation was attached to this card. For reference, {paper}\n"
    rows = named_metrics(metrics)
    lines = ["## Evaluation", "", f"Measured on {metrics['num_samples']} takes with `training/evaluate_profvlm.py`; "
             "labels come from scoring the four label continuations.", "", "| metric | value |", "|---|---|"]
    lines += [f"| {name} | {value:.4f} |" for group, _, name, value in rows if group != "scenario"]
    lines += ["", "| scenario | accuracy |", "|---|---|"]
    lines += [f"| {s} | {v:.4f} |" for s, v in metrics["per_scenario"].items() if v is not None]
    lines += [""] + [f"![{Path(p).stem.replace('_', ' ')}]({p})" for p in plots]
    lines += ["", f"For context, {paper}"]
    return "\n".join(lines) + "\n"


def _is_smollm2_135m(config: ProfVLMConfig) -> bool:
    text = config.text_config
    return (text.hidden_size, text.num_hidden_layers, text.intermediate_size) == (576, 30, 1536)


def _body(config: ProfVLMConfig, repo_id: str, metrics: dict | None, plots: list[str], dataset_name: str) -> str:
    random_tower = bool(config.vision_tower_random_init)
    text = config.text_config
    language_model = ("SmolLM2-135M-Instruct" if _is_smollm2_135m(config) else
                      f"a {text.num_hidden_layers}-layer {text.model_type} model (hidden {text.hidden_size})")
    views = ", ".join(config.view_names)
    warning = (
        "> **Warning: the video tower of this checkpoint is randomly initialised** (no pretrained TimeSformer "
        "was reachable when it was built). Its predictions only reflect what a frozen random tower preserves; "
        f"for real use rebuild it from `{PRETRAINED_TOWER}`.\n\n" if random_tower else ""
    )
    tower_limit = "- The video tower is randomly initialised (see the warning above).\n" if random_tower else ""
    tower = ("a randomly initialised, frozen TimeSformer" if random_tower
             else f"a frozen pretrained TimeSformer (the paper's is {PRETRAINED_TOWER})")
    return f"""# ProfVLM

{warning}ProfVLM estimates the proficiency of a performer from the camera views of one take (an egocentric
video plus up to four exocentric ones) and writes expert-like feedback. It is a reimplementation of
*ProfVLM: A Lightweight Video-Language Model for Multi-View Proficiency Estimation* (Bianchi, Staiano,
Liotta; arXiv 2509.26278) as a Hugging Face model with custom code.

## Model

- Views: {views} ({config.num_frames} frames each); missing views are masked.
- Video encoder: {tower}, {config.vision_config.image_size} px, tokens mean-pooled per view.
- Fusion: AttentiveGatedProjector (attention across views, gated MLP, hidden {config.projector_hidden_size}),
  {config.num_video_tokens} video token(s) in the language model's input; its view attention tells which cameras mattered.
- Language model: {language_model}, adapted with LoRA.
- Output: `Proficiency: <label>` then `Feedback: <text>`; labels: {", ".join(config.proficiency_labels)}.

{_results_section(metrics, plots)}
## Usage

```python
from transformers import pipeline

pipe = pipeline(model="{repo_id}", trust_remote_code=True)
result = pipe({{"ego": "ego.mp4", "exo1": "cam01.mp4", "exo2": "cam02.mp4"}}, max_new_tokens=64)
print(result["proficiency"], result["scores"], result["view_weights"])
print(result["feedback"])
fast = pipe(["ego.mp4", "cam01.mp4"], return_feedback=False)  # label and probabilities only
```

```python
from transformers import AutoModel, AutoProcessor

model = AutoModel.from_pretrained("{repo_id}", trust_remote_code=True)
processor = AutoProcessor.from_pretrained("{repo_id}", trust_remote_code=True)
```

From a checkout of the repository: `profvlm predict --model DIR --ego ego.mp4 --exo cam01.mp4 cam02.mp4`.

## Training data and recipe

{dataset_name}: takes in the EgoExo4D demonstrator-proficiency layout (6 scenarios, 4 ordinal labels) with the
expert commentary as the feedback target (one sample per take and expert, commentary truncated). The tower is
frozen; the projector is trained fully and the language model with LoRA (default r=8, alpha 32 on
q_proj/v_proj; with the paper's sizes that is 5.3M trainable parameters), with TRL `SFTTrainer` and the loss
on the assistant answer only. The paper trains 6 epochs.

## Limitations

- Labels in EgoExo4D skew toward intermediate and late experts; novices are rare in validation.
- Feedback is scored with automatic text metrics only; it can be fluent and wrong.
- The feedback is trained on spoken expert commentary and may repeat its style rather than the video's content.
{tower_limit}
## License

Code and weights: Apache-2.0. The EgoExo4D data is under its own licence, which a user of models trained on it
must accept. SmolLM2-135M-Instruct is Apache-2.0.

## Citation

```bibtex
{CITATION}
```
"""


def build_model_card(
    model_dir: str | Path,
    eval_path: str | Path | None = None,
    repo_id: str = "org/profvlm",
    dataset_id: str = "egoexo4d_proficiency",
    dataset_name: str = "EgoExo4D demonstrator proficiency",
    split: str = "validation",
) -> ModelCard:
    """The model card of the checkpoint in `model_dir`; plots next to the eval JSON are copied into `model_dir`."""
    model_dir = Path(model_dir)
    config = ProfVLMConfig.from_pretrained(model_dir)
    metrics, plots = None, []
    if eval_path is not None:
        metrics = load_eval_metrics(eval_path)
        for name in PLOTS:  # copied so that `profvlm push` uploads them with the card
            source = Path(eval_path).parent / name
            if source.is_file():
                if source.resolve() != (model_dir / name).resolve():
                    shutil.copy(source, model_dir / name)
                plots.append(name)
    # Which pretrained tower was used is not recorded in config.json, so only the language model is named.
    base_model = [SMOLLM2] if _is_smollm2_135m(config) else None
    data = ModelCardData(
        model_name="ProfVLM",
        language="en",
        license="apache-2.0",
        library_name="transformers",
        pipeline_tag="video-text-to-text",
        base_model=base_model,
        tags=["video", "multi-view", "proficiency-estimation", "skill-assessment", "egoexo4d", "custom_code"],
        eval_results=eval_results(metrics, dataset_id, dataset_name, split) if metrics else None,
    )
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{_body(config, repo_id, metrics, plots, dataset_name)}")


__all__ = ["build_model_card", "load_eval_metrics", "named_metrics", "eval_results", "CITATION"]
