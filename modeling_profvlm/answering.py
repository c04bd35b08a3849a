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
    challenge file's per-view entries)."""

    answers: list[ProfVLMAnswer]
    scores: LabelScores


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
    return AnsweredTakes(answers, scores)


__all__ = ["AnsweredTakes", "DEFAULT_MAX_NEW_TOKENS", "answer_takes", "own_steps", "take_duration", "timed_moments"]
