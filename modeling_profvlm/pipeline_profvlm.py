# The `proficiency-estimation` pipeline: one take's camera views in; level, probabilities, feedback, camera weights out.
import torch
from transformers import Pipeline, pipeline

from .device_policy import DevicePolicy, apply_device_policy, policy_for_checkpoint, resolve_device_policy
from .answering import DEFAULT_MAX_NEW_TOKENS, answer_items, take_duration
from .label_scoring import unpadded_rows
from .take_inputs import split_takes


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
        """Prompt + one take's views -> {"take": `answer_items`' item}: the prompt's token ids, the processor's tensors
        (with clips over the take, the tower's (1, V, K x N, D) features, encoded clip by clip as they are decoded, and
        their `time_mask`), its duration and, when the prompt states token times (N > 1 temporal tokens or clips),
        each token's start time (K x N). The item is not a tensor, so batching (`batch_size` > 1) hands `_forward`
        the takes' items as they are and takes of different lengths are padded there, not by the pipeline's collate."""
        # The processor validates the views (unknown names, missing or corrupt files) and names view and file.
        views = take.views if isinstance(take, _Take) else take
        # Clips over the take: each clip goes through the tower as it is decoded, so a long take's pixels are never
        # held all at once (the batch then carries its features, as a feature cache's would).
        streamed = ({"clip_encoder": self.model.model.encode_clip}
                    if self.model.config.clip_seconds is not None and self.model.model.vision_tower is not None else {})
        batch = dict(self.processor(text=[self.processor.build_prompt()], videos=[views], return_tensors="pt",
                                    return_metadata=True, **streamed))
        metadata = batch.pop("video_metadata")
        times = self.processor.token_times(metadata)[0]["times"] if self.model.config.states_token_times else None
        item = {"prompt_row": unpadded_rows(batch.pop("input_ids"), batch.pop("attention_mask", None))[0],
                **batch, "time_mask": batch.get("time_mask"), "duration": take_duration(metadata[0]),
                "token_times": times}
        return {"take": item}

    def _forward(self, batch: dict, return_feedback: bool = True, generate_kwargs: dict | None = None) -> dict:
        """`answer_items` on the takes: the label scored once (tower once per take), the feedback after it."""
        # One take's item, or with batch_size > 1 the pipeline's list of them.
        items = batch["take"] if isinstance(batch["take"], list) else [batch["take"]]
        kwargs = self._prepare_generate_kwargs({"max_new_tokens": DEFAULT_MAX_NEW_TOKENS, **(generate_kwargs or {})})
        answered = answer_items(self.model, self.processor, items, feedback=return_feedback, generate_kwargs=kwargs)
        return {"answers": answered.answers}

    def postprocess(self, outputs: dict) -> dict:
        """One take's answer as its one JSON form (`ProfVLMAnswer.to_dict`): proficiency, probabilities, feedback,
        moments (time, text, camera), timeline, view_weights, duration, views."""
        answers = outputs["answers"]
        # Unbatched by the pipeline, a list entry arrives as its one element; unbatched by us, as a 1-list.
        answer = answers[0] if isinstance(answers, list) else answers
        return answer.to_dict()


def load_proficiency_pipeline(model: str, device=None, dtype=None, **kwargs) -> ProficiencyEstimationPipeline:
    """The installed `proficiency-estimation` pipeline for a checkpoint folder or Hub id, under the device policy
    (`device`/`dtype` override it). The weights load in float32 and are cast once to the chosen dtypes, so the
    projector stays exact and `dtype="float32"` means the weights as saved, never a bf16-rounded copy."""
    pipe = pipeline("proficiency-estimation", model=model, pipeline_class=ProficiencyEstimationPipeline,
                    device=resolve_device_policy(device).device, dtype=torch.float32, **kwargs)
    pipe.set_device_policy(dtype)  # None/"auto": the policy's choice for this machine
    return pipe


__all__ = ["ProficiencyEstimationPipeline", "load_proficiency_pipeline"]
