# Evaluation's model side: label probabilities per view setting, free generation and feedback for every take.
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from dataset_scripts.proficiency_data import EGOEXO4D
from modeling_profvlm.answer import ProfVLMAnswer
from modeling_profvlm.answering import answer_takes, take_duration
from modeling_profvlm.label_scoring import generate_continuations, label_continuation_ids, score_labels, unpadded_rows
from modeling_profvlm.peft_unwrap import unwrap_peft
from modeling_profvlm.profvlm_facts import parse_output
from training.sft_data import row_videos

# EgoExo4D's view settings (the paper's Ego / Exos / Ego+Exos); `ego_exos` is the all-views one.
VIEW_SETTINGS: tuple[str, ...] = ("ego", "exos", "ego_exos")
# Any other dataset: `all` views, then each view alone, named by the view.
ALL_VIEWS = "all"
_VIEW_SETTING_TITLES = {"ego": "Ego", "exos": "Exos", "ego_exos": "Ego+Exos", ALL_VIEWS: "All views"}
# Evaluation generates feedback for every take: a shorter bound than the pipeline's default.
EVAL_MAX_NEW_TOKENS = 96


def view_setting_title(setting: str) -> str:
    """How a view setting is written in tables and cards ("ego_exos" -> "Ego+Exos"); other names as they are."""
    return _VIEW_SETTING_TITLES.get(setting, setting)


def view_settings_for(dataset_kind: str, view_names: list[str]) -> tuple[str, ...]:
    """The view settings evaluated on a dataset: Ego / Exos / Ego+Exos for EgoExo4D (`egoexo4d`) with an ego view
    and at least one exo, else `all` and one setting per view (a folder with views front/side gives all, front,
    side; an exo-only EgoExo4D checkpoint all, exo1, ...)."""
    if dataset_kind == EGOEXO4D and "ego" in view_names and len(view_names) > 1:
        return VIEW_SETTINGS
    if dataset_kind == EGOEXO4D:  # an ego-less or single-view EgoExo4D checkpoint: Ego / Exos mean nothing there
        return (ALL_VIEWS, *view_names)
    if ALL_VIEWS in view_names:  # the per-view setting would be indistinguishable from the all-views one
        raise ValueError(f"view_names {list(view_names)}: a view named {ALL_VIEWS!r} clashes with the all-views "
                         "setting; rename that view (labels.json `views` and the metadata columns).")
    return (ALL_VIEWS, *view_names)


def all_views_setting(settings: tuple[str, ...] | list[str]) -> str:
    """The setting that sees every view: `all` when evaluated (any non-EgoExo4D dataset), else `ego_exos`."""
    for name in (ALL_VIEWS, "ego_exos"):
        if name in settings:
            return name
    raise ValueError(f"view settings {list(settings)} have no all-views setting ({ALL_VIEWS!r} or 'ego_exos').")


@dataclass
class TakePredictions:
    """Everything evaluation measured for the labelled takes, in dataset order."""

    take_uids: list[str]
    scenarios: list[str]
    references: list[str]
    # view setting -> per take the predicted label / the label probabilities; None where the take lacks those views
    predictions: dict[str, list[str | None]] = field(default_factory=lambda: {s: [] for s in VIEW_SETTINGS})
    probabilities: dict[str, list[list[float] | None]] = field(default_factory=lambda: {s: [] for s in VIEW_SETTINGS})
    generated_labels: list[str | None] = field(default_factory=list)  # parsed from free generation
    # take_uid -> the all-views answer (`answer_takes`, as the pipeline gives it), feedback included when generated
    answers: dict[str, ProfVLMAnswer] = field(default_factory=dict)
    main_setting: str = "ego_exos"  # the all-views setting: the top-level figures and the feedback use it

    @property
    def feedback(self) -> dict[str, str | None]:
        """take_uid -> the feedback generated after the predicted label (None where none was generated)."""
        return {uid: answer.feedback for uid, answer in self.answers.items()}


def view_setting_mask(view_mask: torch.Tensor, view_names: list[str], setting: str) -> torch.Tensor:
    """`view_mask` (B, V) restricted to one view setting: a view's name keeps that view alone, `ego_exos` / `all`
    keep every view, `exos` every view but `ego`; views already missing stay missing."""
    if setting in view_names:  # checked first: in EgoExo4D `ego` is both a view and a setting, with one meaning
        keep = [name == setting for name in view_names]
    elif setting in ("ego_exos", ALL_VIEWS):
        return view_mask.clone()
    elif setting == "exos":
        keep = [name != "ego" for name in view_names]
    else:
        raise ValueError(f"Unknown view setting {setting!r}; expected one of {VIEW_SETTINGS}, {ALL_VIEWS!r} or a view "
                         f"name of {list(view_names)}.")
    return view_mask * torch.tensor(keep, dtype=view_mask.dtype, device=view_mask.device)


@torch.no_grad()
def generated_labels(model, tokenizer, prompts: list[list[int]], video_features: torch.Tensor,
                     view_mask: torch.Tensor, time_mask: torch.Tensor | None = None) -> list[str | None]:
    """The label the model writes when it answers freely (greedy, no label given), or None when its first line names
    none: generation stops once the longest label line could have been written. `time_mask`: clips over the take."""
    labels = tuple(model.config.proficiency_labels)
    longest = max(len(ids) for ids in label_continuation_ids(tokenizer, labels))
    texts = generate_continuations(model, tokenizer, prompts, video_features, view_mask, time_mask,
                                   max_new_tokens=longest + 1, do_sample=False)
    return [parse_output(generated.text, labels)[0] for generated in texts]


def batch_features(model, processor, rows: list[dict], cache=None
                   ) -> tuple[dict, torch.Tensor, torch.Tensor, torch.Tensor | None, dict]:
    """(prompt batch, video_features (B, V, N, D), view_mask (B, V), time_mask, timing) for a batch of takes: from the
    feature cache when given, else by running the processor and the frozen tower once per take. With clips over the
    take (`clip_seconds`) the features are (B, V, K x N, D) and `time_mask` (B, K) marks each take's own clips (None
    otherwise). `timing`: `durations` (one per take, None when unknown) and, when the prompt states token times (N > 1
    temporal tokens or clips), `token_times` (each take's token start times)."""
    prompt = processor.build_prompt()
    if cache is not None:
        uids = [row["take_uid"] for row in rows]
        prompts = dict(processor(text=[prompt] * len(rows), return_tensors="pt", **cache.prompt_kwargs(uids)))
        features, view_mask, time_mask = cache.stack(uids, [row["view_names"] for row in rows])
        times = [cache.times_of(uid) for uid in uids]
        timing = {"durations": [None if t is None else t.get("duration") for t in times],
                  "token_times": [t["times"] for t in times] if processor.states_token_times else None}
        device = model.device
        return (prompts, features.to(device), view_mask.to(device),
                None if time_mask is None else time_mask.to(device), timing)
    batch = processor(text=[prompt] * len(rows), videos=[row_videos(r) for r in rows], return_tensors="pt",
                      return_metadata=True)
    metadata = batch.pop("video_metadata")
    timing = {"durations": [take_duration(views) for views in metadata],
              "token_times": ([t["times"] for t in processor.token_times(metadata)]
                              if processor.states_token_times else None)}
    time_mask = batch.get("time_mask")
    time_mask = None if time_mask is None else time_mask.to(model.device)
    features = model.model.encode_views(batch["pixel_values_videos"].to(model.device), batch["view_mask"].to(model.device),
                                        time_mask)
    return batch, features, batch["view_mask"].to(model.device), time_mask, timing


def predict_takes(model, processor, rows: list[dict], cache=None, batch_size: int = 8, generate: bool = True,
                  max_new_tokens: int = EVAL_MAX_NEW_TOKENS,
                  settings: tuple[str, ...] = VIEW_SETTINGS) -> TakePredictions:
    """Score the labels of every take in each view setting (`view_settings_for`); with every view, each take's answer
    from `answer_takes` (the pipeline's own path); with `generate`, its feedback and the label free generation picks."""
    model = unwrap_peft(model)  # evaluation right after training hands in the PEFT-wrapped model
    labels = tuple(model.config.proficiency_labels)
    main = all_views_setting(settings)
    result = TakePredictions([r["take_uid"] for r in rows], [r["scenario"] for r in rows],
                             [label_name(r, labels) for r in rows], predictions={s: [] for s in settings},
                             probabilities={s: [] for s in settings}, main_setting=main)
    for start in tqdm(range(0, len(rows), batch_size), desc="evaluating takes", unit="batch"):
        chunk = rows[start: start + batch_size]
        prompts, features, view_mask, time_mask, timing = batch_features(model, processor, chunk, cache)
        token_rows = unpadded_rows(prompts["input_ids"], prompts.get("attention_mask"))  # once for every use below
        for setting in settings:
            if setting == main:
                video = {"video_features": features, "view_mask": view_mask, "time_mask": time_mask}
                answered = answer_takes(model, processor, {k: v for k, v in video.items() if v is not None},
                                        prompt_rows=token_rows, feedback=generate,
                                        generate_kwargs={"max_new_tokens": max_new_tokens}, **timing)
                result.predictions[setting] += [a.proficiency for a in answered.answers]
                result.probabilities[setting] += [list(a.probabilities.values()) for a in answered.answers]
                result.answers.update(zip(result.take_uids[start: start + len(chunk)], answered.answers))
                continue
            chosen, probabilities = score_setting(model, processor, token_rows, features, view_mask, setting, time_mask)
            result.predictions[setting] += chosen
            result.probabilities[setting] += probabilities
        if generate:
            result.generated_labels += generated_labels(model, processor.tokenizer, token_rows, features, view_mask,
                                                        time_mask)
    return result


def score_setting(model, processor, prompt_rows: list[list[int]], features: torch.Tensor, view_mask: torch.Tensor,
                  setting: str, time_mask: torch.Tensor | None = None) -> tuple[list[str | None], list[list[float] | None]]:
    """(predicted labels, label probabilities) with only the views of `setting` visible; None for takes that
    have none of those views. `prompt_rows`: the prompts' token ids without padding; `time_mask`: clips over the take."""
    mask = view_setting_mask(view_mask, list(model.config.view_names), setting)
    keep = mask.sum(-1) > 0
    chosen: list[str | None] = [None] * len(keep)
    probabilities: list[list[float] | None] = [None] * len(keep)
    if keep.any():
        idx = keep.nonzero().flatten()
        video = {"video_features": features[idx], "view_mask": mask[idx]}
        if time_mask is not None:
            video["time_mask"] = time_mask[idx]
        scores = score_labels(model, processor, video,
                              prompt_rows=[prompt_rows[i] for i in idx.tolist()])
        for i, label, probs in zip(idx.tolist(), scores.predicted_labels(), scores.probabilities.tolist()):
            chosen[i], probabilities[i] = label, probs
    return chosen, probabilities


def label_name(row: dict, labels: tuple[str, ...]) -> str:
    """The row's proficiency as a label string (datasets gives a ClassLabel index)."""
    value = row["proficiency"]
    if isinstance(value, str):
        if value not in labels:
            raise ValueError(f"take {row.get('take_uid')}: proficiency {value!r} is not one of {list(labels)}.")
        return value
    if not 0 <= int(value) < len(labels):
        raise ValueError(f"take {row.get('take_uid')}: proficiency index {value} is outside 0..{len(labels) - 1}.")
    return labels[int(value)]


__all__ = [
    "VIEW_SETTINGS",
    "ALL_VIEWS",
    "view_setting_title",
    "view_settings_for",
    "all_views_setting",
    "EVAL_MAX_NEW_TOKENS",
    "TakePredictions",
    "view_setting_mask",
    "generated_labels",
    "batch_features",
    "predict_takes",
    "score_setting",
    "label_name",
]
