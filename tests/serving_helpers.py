"""Helpers for the serving tests: small multi-view takes on disk, an independent label log-likelihood, result checks."""
import math
from pathlib import Path

import torch

from modeling_profvlm.configuration_profvlm import PROFICIENCY_LABELS, VIEW_NAMES
from tests.video_fixtures import write_pattern_video

TINY_MAX_NEW_TOKENS = 6


def write_take(folder: Path, views=VIEW_NAMES, seed: int = 0, num_frames: int = 12) -> dict[str, str]:
    """One take: a small x264 clip per view (distinct content per view and seed)."""
    folder.mkdir(parents=True, exist_ok=True)
    return {
        view: str(write_pattern_video(folder / f"{view}.mp4", num_frames=num_frames, height=40, width=56,
                                      seed=100 * seed + i))
        for i, view in enumerate(views)
    }


def check_result(result: dict, present_views) -> None:
    """The output contract of the pipeline: keys, a label among the four, probabilities that sum to 1."""
    assert set(result) == {"proficiency", "scores", "feedback", "moments", "view_weights", "timeline"}, result.keys()
    assert result["proficiency"] in PROFICIENCY_LABELS, result["proficiency"]
    assert list(result["scores"]) == list(PROFICIENCY_LABELS)
    assert math.isclose(sum(result["scores"].values()), 1.0, abs_tol=1e-5), result["scores"]
    assert max(result["scores"], key=result["scores"].get) == result["proficiency"]
    assert isinstance(result["feedback"], str)
    assert isinstance(result["moments"], list) and isinstance(result["timeline"], list)
    assert set(result["view_weights"]) == set(present_views), result["view_weights"]


@torch.no_grad()
def direct_label_log_likelihoods(model, processor, take) -> dict[str, float]:
    """For each label, tokenize prompt + "Proficiency: <label>" as ONE text, run the full model from pixels, and sum
    the log-probabilities of the tokens after the prompt. Written independently of label_scoring.py."""
    from modeling_profvlm.profvlm_facts import format_label_prefix

    labels = list(model.config.proficiency_labels)
    prompt = processor.build_prompt()
    prompt_len = processor(text=[prompt], videos=[take], return_tensors="pt")["input_ids"].shape[1]
    result = {}
    for label in labels:
        inputs = processor(text=[prompt + format_label_prefix(label, labels)], videos=[take], return_tensors="pt")
        logits = model(**inputs).logits[0].float()
        targets = inputs["input_ids"][0, prompt_len:]
        log_probs = logits[prompt_len - 1 : -1].log_softmax(-1)
        result[label] = float(log_probs.gather(-1, targets[:, None]).sum())
    return result
