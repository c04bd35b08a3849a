"""Helpers for the serving tests: small multi-view takes on disk, an independent label log-likelihood, result checks."""
import math
import re
from pathlib import Path

import torch

from modeling_profvlm.configuration_profvlm import PROFICIENCY_LABELS, VIEW_NAMES
from tests.video_fixtures import write_pattern_video

TINY_MAX_NEW_TOKENS = 6
SPECIAL_TEXT = ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "<video>")  # never in decoded feedback


def write_take(folder: Path, views=VIEW_NAMES, seed: int = 0, num_frames: int = 12) -> dict[str, str]:
    """One take: a small x264 clip per view (distinct content per view and seed)."""
    folder.mkdir(parents=True, exist_ok=True)
    return {
        view: str(write_pattern_video(folder / f"{view}.mp4", num_frames=num_frames, height=40, width=56,
                                      seed=100 * seed + i))
        for i, view in enumerate(views)
    }


def moments_in(feedback: str) -> list[dict]:
    """The "[m:ss] text" / "[h:mm:ss] text" moments of a feedback, in time order, written here independently of
    parse_moments: split at the markers, text collapsed to single spaces, markers without text skipped."""
    pieces = re.split(r"\[\s*(\d+:[0-5]\d(?::[0-5]\d)?)\s*\]", feedback)
    moments = []
    for stamp, text in zip(pieces[1::2], pieces[2::2]):
        seconds = sum(int(part) * 60**power for power, part in enumerate(reversed(stamp.split(":"))))
        if text.split():
            moments.append({"time": float(seconds), "text": " ".join(text.split())})
    return sorted(moments, key=lambda moment: moment["time"])


def timed(moments: list[dict]) -> list[dict]:
    """Moments without their camera: {"time", "text"}, to compare with what a feedback text says."""
    return [{"time": m["time"], "text": m["text"]} for m in moments]


def check_result(result: dict, present_views, temporal_tokens: int = 1, duration: float | None = None) -> None:
    """The output contract of the pipeline: keys, a label among the four, probabilities that sum to 1; feedback
    decoded without special tokens; the moments are the feedback's own (those within `duration` when it is given,
    else the earliest ones); camera weights over the present views that sum to 1; a timeline only with temporal
    tokens, one step per token in time order, whose camera weights average to the take's."""
    assert set(result) == {"proficiency", "probabilities", "feedback", "moments", "view_weights", "timeline", "duration",
                           "views"}, result.keys()
    assert result["views"] == [v for v in VIEW_NAMES if v in present_views], result["views"]
    if duration is not None:
        assert math.isclose(result["duration"], duration, abs_tol=0.05), result["duration"]
    assert result["proficiency"] in PROFICIENCY_LABELS, result["proficiency"]
    assert list(result["probabilities"]) == list(PROFICIENCY_LABELS)
    assert math.isclose(sum(result["probabilities"].values()), 1.0, abs_tol=1e-5), result["probabilities"]
    assert max(result["probabilities"], key=result["probabilities"].get) == result["proficiency"]

    feedback = result["feedback"]
    if feedback is None:  # not asked for
        assert result["moments"] == [], result["moments"]
        feedback = ""
    assert isinstance(feedback, str)
    assert not any(token in feedback for token in SPECIAL_TEXT), feedback
    written = moments_in(feedback)
    if duration is not None:
        assert timed(result["moments"]) == [m for m in written if m["time"] <= duration], (result["moments"], feedback)
    else:  # the dropped ones (if any) are the late ones
        assert timed(result["moments"]) == written[: len(result["moments"])], (result["moments"], feedback)
    for moment in result["moments"]:  # the camera weighted most in the token covering the moment (or the take)
        steps = [s for s in result["timeline"] if s["time"] <= moment["time"]] or result["timeline"][:1]
        weights = steps[-1]["view_weights"] if steps else result["view_weights"]
        assert moment["camera"] == max(weights, key=weights.get), (moment, weights)

    weights = result["view_weights"]
    assert set(weights) == set(present_views), weights
    assert all(0 <= w <= 1 for w in weights.values()) and math.isclose(sum(weights.values()), 1.0, abs_tol=1e-3)
    timeline = result["timeline"]
    if temporal_tokens == 1:
        assert timeline == [], timeline
        return
    assert len(timeline) == temporal_tokens, timeline
    times = [step["time"] for step in timeline]
    assert times == sorted(set(times)) and times[0] >= 0 and (duration is None or times[-1] <= duration), times
    for step in timeline:
        assert set(step["view_weights"]) == set(present_views), step
        assert math.isclose(sum(step["view_weights"].values()), 1.0, abs_tol=1e-3), step
    for view, weight in weights.items():  # the take's camera weights are the mean over its steps
        mean = sum(step["view_weights"][view] for step in timeline) / temporal_tokens
        assert math.isclose(mean, weight, abs_tol=1e-3), (view, mean, weight)


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
