# The `proficiency-estimation` pipeline: one take's camera views in; level, probabilities, feedback, camera weights out.
import logging
import math

import torch
from transformers import Pipeline, pipeline

from .device_policy import DevicePolicy, apply_device_policy, policy_for_checkpoint, resolve_device_policy
from .label_scoring import generate_after_labels, score_labels
from .profvlm_facts import parse_moments
from .take_inputs import split_takes

DEFAULT_MAX_NEW_TOKENS = 128
logger = logging.getLogger(__name__)


class _Take:
    """One take's views, wrapped so that Pipeline.__call__ does not mistake a list of views for a batch."""

    def __init__(self, views):
        self.views = views


class ProficiencyEstimationPipeline(Pipeline):
    """Proficiency level, label probabilities, feedback, timed moments and camera weights for one take or a list.

    A take is a dict of view name -> video path (or decoded frames), or a list in view order (`take_inputs`). The
    label is the most likely of the checkpoint's label continuations; the feedback is generated after that label,
    and its "[m:ss] text" moments are returned parsed. With temporal tokens (N > 1) the camera weights of every
    token come with the token's time (`timeline`)."""

    _load_processor = True
    _load_tokenizer = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_video_processor = False
    _pipeline_calls_generate = True

    def __init__(self, *args, **kwargs):
        requested = kwargs.get("dtype")  # pipeline() passes "auto" when the caller gave no dtype
        super().__init__(*args, **kwargs)
        self.device_policy = self.set_device_policy(None if requested in (None, "auto") else requested)

    def set_device_policy(self, dtype=None) -> DevicePolicy:
        """Run the model under the one device/dtype policy (`device_policy`) on this pipeline's device: with no
        `dtype`, the tower in bf16 where the hardware has it natively (or in the dtype the checkpoint's training
        features were made in), else `dtype` for tower and LM; the projector stays float32. Loading in float32 and
        calling this with a dtype keeps the projector's weights exact, unlike `pipeline(..., dtype=...)`, which
        loads every weight in that dtype."""
        policy = policy_for_checkpoint(self.model.config, self.device, dtype)
        apply_device_policy(self.model, policy)
        self.device_policy = policy
        return policy

    def __call__(self, inputs, **kwargs):
        """`inputs`: one take or a list of takes; returns one dict per take (a list for a list)."""
        takes, batched = split_takes(inputs)  # the processor classifies inputs with the same function
        if not batched:
            return super().__call__(_Take(takes[0]), **kwargs)
        return super().__call__([_Take(take) for take in takes], **kwargs)

    def _sanitize_parameters(self, return_feedback=None, max_new_tokens=None, generate_kwargs=None, **kwargs):
        generation_keys = set(self.model.generation_config.to_dict()) | {"generation_config"}
        unknown = sorted(set(kwargs) - generation_keys)
        if unknown:
            raise TypeError(f"ProficiencyEstimationPipeline got unknown argument(s) {unknown}; expected return_feedback, "
                            "max_new_tokens, generate_kwargs or generation parameters (do_sample, temperature, ...).")
        forward = {"generate_kwargs": {**(generate_kwargs or {}), **kwargs}} if generate_kwargs or kwargs else {}
        if max_new_tokens is not None:
            forward.setdefault("generate_kwargs", {})["max_new_tokens"] = max_new_tokens
        if return_feedback is not None:
            forward["return_feedback"] = return_feedback
        return {}, forward, {}

    def preprocess(self, take: _Take) -> dict:
        """Prompt + one take's views -> input_ids, attention_mask, pixel_values_videos, view_mask, plus the take's
        `duration` (seconds; NaN when unknown) and, with N > 1 temporal tokens, each token's time (`token_times`)."""
        # The processor validates the views (unknown names, missing or corrupt files) and names view and file.
        views = take.views if isinstance(take, _Take) else take
        batch = self.processor(text=[self.processor.build_prompt()], videos=[views], return_tensors="pt",
                               return_metadata=True)
        metadata = batch.pop("video_metadata")
        batch["duration"] = torch.tensor([take_duration(views) for views in metadata], dtype=torch.float64)
        if self.model.config.temporal_tokens > 1:
            times = [entry["times"] for entry in self.processor.token_times(metadata)]
            batch["token_times"] = torch.tensor(times, dtype=torch.float64)
        return batch

    def _forward(self, batch: dict, return_feedback: bool = True, generate_kwargs: dict | None = None) -> dict:
        """Score the labels (tower once per take), then generate the feedback after the best label."""
        duration, token_times = batch.pop("duration", None), batch.pop("token_times", None)
        scores = score_labels(self.model, self.processor, batch)
        feedback = [""] * scores.probabilities.shape[0]
        if return_feedback:
            feedback = self._generate_feedback(batch, scores, generate_kwargs or {})
        # "probabilities" first: the pipeline reads the batch size from the first entry.
        out = {"probabilities": scores.probabilities, "view_weights": scores.view_weights,
               "view_mask": batch["view_mask"], "feedback": feedback}
        if duration is not None:
            out["duration"] = duration
        if token_times is not None:
            # The projector again on the features scoring made (no tower run): its per-step camera weights.
            steps = self.model.model.get_video_features(video_features=scores.video_features,
                                                        view_mask=batch["view_mask"].to(scores.video_features.device))
            out["token_times"], out["step_view_weights"] = token_times, steps.step_view_weights.float()
        return out

    def _generate_feedback(self, batch: dict, scores, generate_kwargs: dict) -> list[str]:
        """Feedback after each take's scored label, reusing the tower features; greedy unless told otherwise."""
        kwargs = self._prepare_generate_kwargs({"max_new_tokens": DEFAULT_MAX_NEW_TOKENS, **generate_kwargs})
        if "generation_config" not in kwargs:
            kwargs.setdefault("do_sample", False)  # greedy unless the caller asks for sampling
        return generate_after_labels(self.model, self.processor.tokenizer, scores.prompt_rows, scores.predicted_labels(),
                                     scores.video_features, batch["view_mask"], **kwargs)

    def postprocess(self, outputs: dict) -> dict:
        """One take's {"proficiency", "scores", "feedback", "moments", "view_weights", "timeline"}: `moments` the
        feedback's [{"time": seconds, "text"}] (none past the take's end), `timeline` one {"time", "view_weights"}
        per temporal token when N > 1 (else []); camera weights of present views only."""
        probabilities, view_weights = outputs["probabilities"][0].tolist(), outputs["view_weights"][0].tolist()
        present = outputs["view_mask"][0].tolist()
        views = self.model.config.view_names
        labels = list(self.model.config.proficiency_labels)  # the order score_labels used
        # Unbatched by the pipeline, a list entry arrives as its one element; unbatched by us, as a 1-list.
        feedback = outputs["feedback"][0] if isinstance(outputs["feedback"], list) else outputs["feedback"]
        best = max(range(len(labels)), key=probabilities.__getitem__)
        duration = float(outputs["duration"][0]) if outputs.get("duration") is not None else math.nan
        timeline = []
        if outputs.get("token_times") is not None:
            for time, weights in zip(outputs["token_times"][0].tolist(), outputs["step_view_weights"][0].tolist()):
                timeline.append({"time": time, "view_weights": {v: w for v, w, p in zip(views, weights, present) if p}})
        return {
            "proficiency": labels[best],
            "scores": dict(zip(labels, probabilities)),
            "feedback": feedback,
            "moments": moments_within(feedback, duration),
            "view_weights": {v: w for v, w, p in zip(views, view_weights, present) if p},
            "timeline": timeline,
        }


def take_duration(view_metadata: list) -> float:
    """A take's length in seconds from the processor's per-view metadata (`duration`; its views are frame-aligned, so
    the longest present view's); NaN when no view states one."""
    return max((float(m["duration"]) for m in view_metadata if m is not None and m.get("duration") is not None),
               default=math.nan)


def moments_within(feedback: str, duration: float = math.nan) -> list[dict]:
    """The moments of a generated feedback (`parse_moments`: [] for plain feedback) that lie within the take:
    times after `duration` (seconds; NaN = unknown, keep all) are dropped, and how many in a logged warning."""
    moments = parse_moments(feedback)
    kept = [m for m in moments if math.isnan(duration) or m["time"] <= duration]
    if len(kept) < len(moments):
        late = ", ".join(f"{m['time']:g} s" for m in moments if m not in kept)
        logger.warning("dropped %d of %d moments timed past the take's end (%.2f s): %s", len(moments) - len(kept),
                       len(moments), duration, late)
    return kept


def camera_at(result: dict, time: float) -> str | None:
    """The view the model weighted most at `time` (seconds) in a pipeline result: in the temporal token that covers
    it (the last one starting at or before it, else the first) when the result has a `timeline`, else over the whole
    take (`view_weights`); None when no view was given."""
    timeline = result.get("timeline") or []
    weights = result.get("view_weights") or {}
    if timeline:
        weights = next((step for step in reversed(timeline) if step["time"] <= time), timeline[0])["view_weights"]
    return max(weights, key=weights.get) if weights else None


def load_proficiency_pipeline(model: str, device=None, dtype=None, **kwargs) -> ProficiencyEstimationPipeline:
    """The installed `proficiency-estimation` pipeline for a checkpoint folder or Hub id, under the device policy
    (`device`/`dtype` override it). The weights load in float32 and are cast once to the chosen dtypes, so the
    projector stays exact and `dtype="float32"` means the weights as saved, never a bf16-rounded copy."""
    pipe = pipeline("proficiency-estimation", model=model, pipeline_class=ProficiencyEstimationPipeline,
                    device=resolve_device_policy(device).device, dtype=torch.float32, **kwargs)
    pipe.set_device_policy(dtype)  # None/"auto": the policy's choice for this machine
    return pipe


__all__ = ["ProficiencyEstimationPipeline", "load_proficiency_pipeline", "camera_at", "moments_within", "take_duration",
           "DEFAULT_MAX_NEW_TOKENS"]
