# The one path from model inputs to answers: label scored once, feedback generated after it, one ProfVLMAnswer per take.
"""`answer_takes` is what the pipeline, `profvlm predict` (one take or a folder), evaluation and the challenge file all
call. Per batch: the tower once (or cached features), every label continuation in one LM pass (`score_labels`), the
level chosen there once, the feedback in one batched generate after that level, the processor's
`post_process_feedback` reading the text, the moments timed within the take with the camera weighted most at each and
the probability of each one's time marker and category word in that same generation."""
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .answer import Moment, ProfVLMAnswer, TimelineStep, keep_within
from .label_scoring import GeneratedText, LabelScores, generate_after_labels, score_labels
from .profvlm_facts import moment_marker_spans, parse_moments

DEFAULT_MAX_NEW_TOKENS = 128  # feedback length bound when the caller gives none


@dataclass
class AnsweredTakes:
    """`answers` (one per take, in batch order) and the `scores` they came from (tower features reusable, e.g. for the
    challenge file's per-view entries), with the batch's `view_mask` (B, V) they were scored under."""

    answers: list[ProfVLMAnswer]
    scores: LabelScores
    view_mask: torch.Tensor | None = None


def take_duration(view_metadata: Sequence[dict | None]) -> float | None:
    """A take's length in seconds from the processor's per-view metadata (`duration`; its views are frame-aligned, so
    the longest present view's); None when no view states one."""
    durations = [float(m["duration"]) for m in view_metadata if m is not None and m.get("duration") is not None]
    return max(durations) if durations else None


def timed_moments(generated: GeneratedText) -> list[dict]:
    """The moments of a generated answer (`parse_moments`, in time order), each with its `probability`: the model's
    probability, in this generation, of the tokens that wrote its time marker and category word
    (`moment_marker_spans`). The moments are the feedback's own: reading the text the processor returns gives the
    same times, texts and categories."""
    text = generated.text
    spans = moment_marker_spans(text)
    moments = []
    for (start, end), following in zip(spans, [s for s, _ in spans[1:]] + [len(text)]):
        for moment in parse_moments(text[start:following]):  # one moment, or none for a marker without text
            moments.append({**moment, "probability": generated.probability_of(start, end)})
    return sorted(moments, key=lambda moment: moment["time"])  # stable, as parse_moments orders them


def concat_takes(parts: list[dict], key: str = "pixel_values_videos", per_clip: int = 1) -> dict:
    """Processor outputs of takes decoded apart as one batch: `key` ("pixel_values_videos" (1, V, K, T, 3, H, W) or
    "video_features" (1, V, K x `per_clip`, D)) and "view_mask" concatenated along the batch; with clips over the
    take (each part has a "time_mask" (1, K)), every part's clips padded with zeros after its own to the most clips
    and "time_mask" padded with 0s, as `process_videos` pads one call's takes."""
    view_mask = torch.cat([part["view_mask"] for part in parts])
    if all(part.get("time_mask") is None for part in parts):
        return {key: torch.cat([part[key] for part in parts]), "view_mask": view_mask}
    most = max(part[key].shape[2] for part in parts)
    padded, masks = [], []
    for part in parts:
        own, missing = part[key], most - part[key].shape[2]
        padded.append(torch.cat([own, own.new_zeros(*own.shape[:2], missing, *own.shape[3:])], 2))
        mask = part["time_mask"]
        masks.append(torch.cat([mask, mask.new_zeros(len(mask), missing // per_clip)], 1))
    return {key: torch.cat(padded), "view_mask": view_mask, "time_mask": torch.cat(masks)}


def batch_of_takes(items: list[dict], temporal_tokens: int) -> dict:
    """`concat_takes` for takes prepared apart (`answer_items`' items): their pixels, or their features (released
    vectors, or clips already through the tower: `temporal_tokens` steps per clip)."""
    if "video_features" in items[0]:
        return concat_takes(items, "video_features", temporal_tokens)
    return concat_takes(items)


def answer_items(model, processor, items: list[dict], *, feedback: bool = True,
                 generate_kwargs: dict | None = None) -> AnsweredTakes:
    """`answer_takes` for takes prepared one by one, as `pipeline()` and `profvlm predict --data_dir` prepare them:
    each item has "prompt_row" (its prompt's token ids, unpadded), "pixel_values_videos" or "video_features",
    "view_mask", "time_mask" (None without clips), "duration" and "token_times" (None unless the prompt states token
    times). Takes of different lengths are padded together (`concat_takes`) and each keeps its own answer."""
    batch = batch_of_takes(items, processor.temporal_tokens)
    times = [item["token_times"] for item in items]
    return answer_takes(model, processor, batch, prompt_rows=[item["prompt_row"] for item in items],
                        durations=[item["duration"] for item in items], token_times=None if None in times else times,
                        feedback=feedback, generate_kwargs=generate_kwargs)


def own_steps(scores: LabelScores, take: int) -> int:
    """How many of the batch's video time steps are take `take`'s own: all of them, or with clips over takes of
    different lengths its clips (`time_mask`) x temporal_tokens (the padded ones come after them)."""
    steps = scores.step_view_weights.shape[1]
    if scores.time_mask is None:
        return steps
    return int(scores.time_mask[take].sum()) * (steps // scores.time_mask.shape[1])


@torch.no_grad()
def answer_takes(model, processor, batch: dict, *, prompt_rows: list[list[int]] | None = None,
                 durations: Sequence[float | None] | None = None,
                 token_times: Sequence[Sequence[float]] | None = None, feedback: bool = True,
                 generate_kwargs: dict | None = None) -> AnsweredTakes:
    """ProfVLM's answers for a batch of takes.

    `batch`: `view_mask` (B, V) and either `pixel_values_videos` (the processor's) or `video_features` (a feature
    cache's), with clips over the take its `time_mask` (B, K), plus the prompts as `input_ids`/`attention_mask` unless
    `prompt_rows` (their token ids without padding) are given. `durations`: each take's length in seconds (None =
    unknown), so moments past the end are dropped; `token_times`: when the prompt states token times (N > 1 temporal
    tokens, or clips: K_b x N per take), each token's start time per take (`processor.token_times`), and the timeline
    then has one step per token. `feedback`: generate it (greedy unless `generate_kwargs` say otherwise;
    `max_new_tokens` defaults to DEFAULT_MAX_NEW_TOKENS)."""
    scores = score_labels(model, processor, batch, prompt_rows=prompt_rows)
    labels = scores.predicted_labels()  # the one place the level is chosen
    texts: list[str | None] = [None] * len(labels)
    timed: list[list[dict]] = [[] for _ in labels]
    if feedback:
        kwargs = {"max_new_tokens": DEFAULT_MAX_NEW_TOKENS, **(generate_kwargs or {})}
        if "generation_config" not in kwargs:
            kwargs.setdefault("do_sample", False)  # greedy unless the caller asks for sampling
        raw = generate_after_labels(model, processor.tokenizer, scores.prompt_rows, labels, scores.video_features,
                                    batch["view_mask"].to(scores.video_features.device), time_mask=scores.time_mask,
                                    **kwargs)
        texts = processor.post_process_feedback([generated.text for generated in raw])
        timed = [timed_moments(generated) for generated in raw]
    views = list(model.config.view_names)
    present = batch["view_mask"].bool().tolist()
    answers = []
    for b, label in enumerate(labels):
        shown = [v for v, p in zip(views, present[b]) if p]

        def of_present(weights: list[float]) -> dict[str, float]:
            return {v: w for v, w, p in zip(views, weights, present[b]) if p}

        timeline = []
        if token_times is not None and model.config.states_token_times and scores.step_view_weights is not None:
            steps = scores.step_view_weights[b, : own_steps(scores, b)].tolist()  # the take's own, padding after them
            if len(token_times[b]) != len(steps):
                raise ValueError(f"take {b}: token_times has {len(token_times[b])} times for its {len(steps)} video "
                                 "time steps (K clips x temporal_tokens); pass processor.token_times(metadata).")
            timeline = [TimelineStep(float(t), of_present(w)) for t, w in zip(token_times[b], steps)]
        duration = None if durations is None or durations[b] is None else float(durations[b])
        answer = ProfVLMAnswer(proficiency=label, probabilities=dict(zip(scores.labels, scores.probabilities[b].tolist())),
                               feedback=texts[b], timeline=timeline, view_weights=of_present(scores.view_weights[b].tolist()),
                               duration=duration, views=shown)
        answer.moments = [Moment(m["time"], m["text"], answer.camera_at(m["time"]), m["probability"], m.get("category"))
                          for m in keep_within(timed[b], duration)]
        answers.append(answer)
    return AnsweredTakes(answers, scores, batch["view_mask"])


__all__ = ["AnsweredTakes", "DEFAULT_MAX_NEW_TOKENS", "answer_items", "answer_takes", "batch_of_takes", "concat_takes",
           "own_steps", "take_duration", "timed_moments"]
