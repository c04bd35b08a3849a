# The Ego-Exo4D demonstrator-proficiency challenge submission: per take, "ego model" logits and one set per exo view.
"""The benchmark scores three settings from one file: Ego (argmax of the ego logits), Exo (argmax of the mean softmax
of the four exo entries) and Ego+Exo (mean softmax of all five). ProfVLM is one model, so each entry is that model
with a view mask: the ego view alone, each exo view alone. A take without that view gets the entry from the views it
has (an exo slot from its other exo views, else from all of them), and the run says how many did."""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from modeling_profvlm.label_scoring import score_labels
from training.evaluation_predictions import ALL_VIEWS, view_setting_mask

# The challenge's ground truth numbers the levels Novice 0, Late Expert 1, Intermediate Expert 2, Early Expert 3 (not
# ordinal: its builder's label map) and its evaluation compares argmax(logits) with that number, so the four logits
# of every entry are written in this order, whatever order the checkpoint's labels have.
CHALLENGE_LABELS: tuple[str, ...] = ("Novice", "Late Expert", "Intermediate Expert", "Early Expert")
EGO_SLOT = "ego"
NUM_EXO_SLOTS = 4


def challenge_label_index(labels: Sequence[str]) -> list[int]:
    """For each challenge position, the index of that level in the checkpoint's `labels`; a checkpoint with other
    levels cannot make a submission, and the error says so."""
    if sorted(labels) != sorted(CHALLENGE_LABELS):
        raise ValueError(f"--challenge_json needs a checkpoint with the Ego-Exo4D levels {list(CHALLENGE_LABELS)}; "
                         f"this one has {list(labels)}.")
    return [list(labels).index(label) for label in CHALLENGE_LABELS]


def challenge_slots(view_names: Sequence[str]) -> list[tuple[str, list[str]]]:
    """(slot, view settings to try in order) for the ego slot and the four exo slots: a slot's own view alone first,
    then, where the take lacks it, the exo views it has (exo slots), then all of its views."""
    exo_views = [v for v in view_names if v != EGO_SLOT]
    slots = [(EGO_SLOT, ([EGO_SLOT] if EGO_SLOT in view_names else []) + [ALL_VIEWS])]
    for k in range(NUM_EXO_SLOTS):
        own = [exo_views[k]] if k < len(exo_views) else []
        fallbacks = ["exos"] if EGO_SLOT in view_names and exo_views else []
        slots.append((f"exo{k + 1}", own + fallbacks + [ALL_VIEWS]))
    return slots


def slot_masks(view_mask: torch.Tensor, view_names: Sequence[str]) -> tuple[dict[str, torch.Tensor], list[list[str]]]:
    """({slot: view mask (B, V)}, per take the slots that fell back to other views) for a batch's `view_mask`."""
    masks, fell_back = {}, [[] for _ in range(view_mask.shape[0])]
    for slot, settings in challenge_slots(view_names):
        chosen = torch.zeros_like(view_mask)
        for depth, setting in enumerate(settings):
            candidate = view_setting_mask(view_mask, list(view_names), setting)
            fill = (chosen.sum(-1) == 0) & (candidate.sum(-1) > 0)  # takes still without views for this slot
            chosen[fill] = candidate[fill]
            if depth > 0:
                for b in fill.nonzero().flatten().tolist():
                    fell_back[b].append(slot)
        masks[slot] = chosen
    return masks, fell_back


@torch.no_grad()
def challenge_entries(model, processor, prompt_rows: list[list[int]], video_features: torch.Tensor,
                      view_mask: torch.Tensor, time_mask: torch.Tensor | None = None) -> list[dict]:
    """Per take {"ego": [4 logits], "exo": [[4 logits] x 4], "fallback": [slots]}: the label log-probabilities of the
    one model under each slot's view mask (the tower features are reused), in `CHALLENGE_LABELS` order. `time_mask`:
    with clips over the take, the batch's (`LabelScores.time_mask`)."""
    order = challenge_label_index(model.config.proficiency_labels)
    masks, fell_back = slot_masks(view_mask.to(video_features.device), list(model.config.view_names))
    logits = {}
    for slot, mask in masks.items():
        video = {"video_features": video_features, "view_mask": mask}
        if time_mask is not None:
            video["time_mask"] = time_mask
        scores = score_labels(model, processor, video, prompt_rows=prompt_rows)
        logits[slot] = scores.log_likelihoods.log_softmax(-1)[:, order].tolist()
    exo_slots = [f"exo{k + 1}" for k in range(NUM_EXO_SLOTS)]
    return [{"ego": logits[EGO_SLOT][b], "exo": [logits[s][b] for s in exo_slots], "fallback": fell_back[b]}
            for b in range(len(prompt_rows))]


def write_submission(path: str | os.PathLike, lines: list[dict], take_names: list[str]) -> dict:
    """Write the submission for `take_names` (in that order) from prediction lines carrying "challenge"; returns
    {"takes", "missing" (names without a prediction, left out), "fallback" (takes with a slot from other views)}."""
    by_name = {line["take_name"]: line for line in lines if "challenge" in line}
    names = [n for n in take_names if n in by_name]
    submission = {"videos": names,
                  "ego_model_predictions": [by_name[n]["challenge"]["ego"] for n in names],
                  "exo_model_predictions": [by_name[n]["challenge"]["exo"] for n in names]}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(submission) + "\n")
    os.replace(tmp, path)  # a reader never sees half a submission
    return {"takes": len(names), "missing": [n for n in take_names if n not in by_name],
            "fallback": sum(1 for n in names if by_name[n]["challenge"]["fallback"])}


def challenge_accuracies(submission: dict, references: dict[str, str]) -> dict[str, float]:
    """The benchmark's three top-1 accuracies of a submission against {take name: level}: `ego` (argmax of the ego
    logits), `exo` (mean softmax of the four exo entries) and `ego_exo` (mean softmax of all five)."""
    truth = torch.tensor([CHALLENGE_LABELS.index(references[n]) for n in submission["videos"]])
    ego = torch.tensor(submission["ego_model_predictions"], dtype=torch.float64).softmax(-1)  # [n, 4]
    exo = torch.tensor(submission["exo_model_predictions"], dtype=torch.float64).softmax(-1)  # [n, 4, 4]
    both = torch.cat([ego[:, None], exo], 1).mean(1)

    def accuracy(probabilities: torch.Tensor) -> float:
        return (probabilities.argmax(-1) == truth).double().mean().item()

    return {"ego": accuracy(ego), "exo": accuracy(exo.mean(1)), "ego_exo": accuracy(both)}


__all__ = ["CHALLENGE_LABELS", "challenge_accuracies", "challenge_entries", "challenge_label_index", "challenge_slots",
           "slot_masks", "write_submission"]
