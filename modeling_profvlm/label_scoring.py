# Label probabilities: score each "Proficiency: <label>" continuation under the model, softmax over the labels.
from dataclasses import dataclass

import torch

from .peft_unwrap import unwrap_peft
from .profvlm_facts import format_label_prefix


@dataclass
class LabelScores:
    """What `score_labels` measured for a batch of B takes and L labels (in `labels` order).

    `log_likelihoods` (B, L) are summed token log-probabilities of each label continuation, `probabilities`
    (B, L) their softmax, `view_weights` (B, V) the projector's camera weights (`step_view_weights` (B, S, V) per
    video time step: N temporal tokens, K x N with K clips), `video_features` (B, V, S, D) the
    tower features and `prompt_rows` the prompts' token ids without padding (both reusable, e.g. to generate
    feedback without running the tower or unpadding the prompts again). `time_mask` (B, K): with clips over the take,
    the batch's (0 for clips padded after a shorter take; None when every clip is a take's own)."""

    labels: tuple[str, ...]
    log_likelihoods: torch.Tensor
    probabilities: torch.Tensor
    view_weights: torch.Tensor
    video_features: torch.Tensor
    prompt_rows: list[list[int]]
    step_view_weights: torch.Tensor | None = None
    time_mask: torch.Tensor | None = None

    def predicted_labels(self) -> list[str]:
        """The most likely label of every take (always one of `labels`)."""
        return [self.labels[i] for i in self.probabilities.argmax(-1).tolist()]


def unpadded_rows(input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> list[list[int]]:
    """The token ids of every row without its padding (left or right padding both work)."""
    if attention_mask is None:
        return input_ids.tolist()
    return [ids[mask.bool()].tolist() for ids, mask in zip(input_ids, attention_mask)]


def label_continuation_ids(tokenizer, labels: tuple[str, ...]) -> list[list[int]]:
    """Token ids of each label's continuation (`format_label_prefix`), without special tokens."""
    continuations = [tokenizer(format_label_prefix(label, labels), add_special_tokens=False)["input_ids"]
                     for label in labels]
    for label, ids in zip(labels, continuations):
        if not ids:
            raise ValueError(f"The continuation for label {label!r} tokenizes to no tokens; cannot score it.")
    return continuations


def pad_rows(rows: list[list[int]], pad_id: int, side: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) of token-id rows padded on `side`: "right" for scoring (every real token keeps
    the position it has unpadded, so scores do not depend on the batch), "left" for generation (every row ends where
    its continuation starts)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(0, len(row)) if side == "right" else slice(width - len(row), width)
        ids[i, span] = torch.tensor(row, dtype=torch.long)
        mask[i, span] = 1
    return ids, mask


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def _common_prefix(rows: list[list[int]]) -> int:
    """Length of the token prefix that every row shares (the continuations all start "Proficiency:")."""
    length = 0
    while all(len(r) > length for r in rows) and len({r[length] for r in rows}) == 1:
        length += 1
    return length


@torch.no_grad()
def score_labels(model, processor, batch: dict, labels: tuple[str, ...] | None = None,
                 prompt_rows: list[list[int]] | None = None) -> LabelScores:
    """Probability of each proficiency label for every take in `batch` (a processor output whose prompts end
    where the answer starts). The tower runs once per take (`encode_views`, or the batch's cached
    `video_features`), the prompt (with the continuations' shared start) once per take, and the L label
    continuations in one more LM pass over the prompt's key/value cache, so a longer prompt (temporal tokens with
    their time stamps) costs once per take, not once per label.
    `prompt_rows`: the prompts' token ids without padding when the caller has them (else read from the batch)."""
    # The checkpoint's config owns the label order (config.proficiency_labels).
    labels = tuple(labels or model.config.proficiency_labels)
    model = unwrap_peft(model)  # evaluation during training hands in the PEFT-wrapped model
    tokenizer = getattr(processor, "tokenizer", processor)
    device = model.device  # inputs (pixels or cached features) move to the model, wherever they were made
    view_mask = batch.get("view_mask")
    if view_mask is not None:
        view_mask = view_mask.to(device)
    time_mask = batch.get("time_mask")  # clips over the take: (B, K), 0 for padded clips
    if time_mask is not None:
        time_mask = time_mask.to(device)
    features = batch.get("video_features")
    if features is None:  # [B, V, T, C, H, W] -> [B, V, N, D]; clips [B, V, K, T, C, H, W] -> [B, V, K x N, D]
        features = model.model.encode_views(batch["pixel_values_videos"].to(device), view_mask, time_mask)
    features = features.to(device)

    prompts = prompt_rows if prompt_rows is not None else unpadded_rows(batch["input_ids"], batch.get("attention_mask"))
    continuations = label_continuation_ids(tokenizer, labels)
    n, pad_id = len(labels), _pad_id(tokenizer)
    shared = min(_common_prefix(continuations), min(len(c) for c in continuations) - 1)  # each label keeps >= 1 token
    heads = [prompt + continuations[0][:shared] for prompt in prompts]
    tails = [cont[shared:] for cont in continuations]

    # Pass 1: prompt + shared start, once per take. Right padding: every real token keeps its unpadded position.
    head_ids, head_mask = pad_rows(heads, pad_id, "right")
    first = model.model(input_ids=head_ids.to(device), attention_mask=head_mask.to(device), video_features=features,
                        view_mask=view_mask, time_mask=time_mask, use_cache=True)  # view_mask None: the model says why
    cache = first.cache
    cache.batch_repeat_interleave(n)  # take-major: row = take * n + label
    # Pass 2: the label tails after each take's cached prompt, at the positions they would have unpadded.
    tail_ids, tail_mask = pad_rows(tails * len(prompts), pad_id, "right")
    head_lengths = torch.tensor([len(h) for h in heads]).repeat_interleave(n)
    positions = head_lengths[:, None] + torch.arange(tail_ids.shape[1])[None, :]
    second = model.model(input_ids=tail_ids.to(device),
                         attention_mask=torch.cat([head_mask.repeat_interleave(n, 0), tail_mask], 1).to(device),
                         position_ids=positions.to(device), cache=cache, use_cache=True)

    # The token at position p is predicted by the hidden state at p - 1: the shared start and a tail's first token
    # by the prompt's and head's last tokens (pass 1), the tail's later tokens by its own earlier ones (pass 2).
    # The shared start is scored once and counted for every label, so the sums stay each continuation's full
    # log-likelihood.
    hidden, targets, rows = [], [], []
    for take, (prompt, head) in enumerate(zip(prompts, heads)):
        for j, tail in enumerate(tails):
            row = take * n + j
            hidden.append(first.last_hidden_state[take, len(prompt) - 1 : len(head)])
            hidden.append(second.last_hidden_state[row, : len(tail) - 1])
            targets += head[len(prompt):] + tail
            rows += [row] * (shared + len(tail))
    hidden = torch.cat(hidden)  # [n_tail_tokens, D_text]
    head = model.get_output_embeddings()
    # The head in float32 even when the LM runs in bf16: label margins can be smaller than bf16's logit rounding.
    bias = None if getattr(head, "bias", None) is None else head.bias.float()
    log_probs = torch.nn.functional.linear(hidden.float(), head.weight.float(), bias).log_softmax(-1)
    token_ll = log_probs.gather(-1, torch.tensor(targets, device=device).unsqueeze(-1)).squeeze(-1)
    rows = torch.tensor(rows, device=device)
    summed = torch.zeros(len(prompts) * n, device=device).index_add_(0, rows, token_ll).view(len(prompts), n)
    return LabelScores(
        labels=labels,
        log_likelihoods=summed,
        probabilities=summed.softmax(-1),
        view_weights=first.view_weights.float(),
        video_features=features,
        prompt_rows=prompts,
        step_view_weights=None if first.step_view_weights is None else first.step_view_weights.float(),
        time_mask=time_mask,
    )


@dataclass
class GeneratedText:
    """One generated continuation: its decoded `text`, and for each generated token the model's log-probability of it
    in that same generation (`token_logprobs`) and where its decoded text ends in `text` (`token_ends`)."""

    text: str
    token_logprobs: list[float]
    token_ends: list[int]

    def probability_of(self, start: int, end: int) -> float | None:
        """The model's probability of the tokens that wrote `text[start:end]` (the product over every token whose text
        overlaps the span); None when no token did."""
        total, found, begin = 0.0, False, 0
        for logprob, stop in zip(self.token_logprobs, self.token_ends):
            if stop > start and begin < end and stop > begin:
                total, found = total + logprob, True
            begin = max(begin, stop)
        return float(torch.tensor(total).exp()) if found else None


@torch.no_grad()
def generate_continuations(
    model, tokenizer, rows: list[list[int]], video_features: torch.Tensor, view_mask: torch.Tensor,
    time_mask: torch.Tensor | None = None, **generate_kwargs
) -> list[GeneratedText]:
    """The new text after each token-id row, generated with the row's video features, with each token's log-probability
    under the model (its raw logits, whatever the sampling settings). Rows are left-padded into one batch, so every
    continuation starts right after its own row. `time_mask` (B, K): clips over takes of different lengths."""
    device = model.device
    input_ids, attention_mask = pad_rows(rows, _pad_id(tokenizer), "left")
    generate_kwargs.setdefault("pad_token_id", _pad_id(tokenizer))
    if time_mask is not None:
        generate_kwargs["time_mask"] = time_mask.to(device)
    out = model.generate(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                         video_features=video_features.to(device), view_mask=view_mask.to(device),
                         return_dict_in_generate=True, output_logits=True, **generate_kwargs)
    new = out.sequences[:, input_ids.shape[1]:]
    # One step at a time: the (rows, vocabulary) log-softmax of a step, never all steps' logits at once.
    logprobs = torch.stack([step.float().log_softmax(-1).gather(-1, new[:, s, None])[:, 0]
                            for s, step in enumerate(out.logits)], 1) if out.logits else new.float()
    stops = set(_stop_ids(model, tokenizer))
    texts = []
    for ids, row_logprobs in zip(new.tolist(), logprobs.tolist()):
        length = next((i + 1 for i, token in enumerate(ids) if token in stops), len(ids))
        ids, row_logprobs = ids[:length], row_logprobs[:length]
        # Where each token's text ends: the decoded length of the tokens up to it (special tokens decode to nothing).
        ends = [len(tokenizer.decode(ids[: i + 1], skip_special_tokens=True)) for i in range(len(ids))]
        texts.append(GeneratedText(tokenizer.decode(ids, skip_special_tokens=True), row_logprobs, ends))
    return texts


def _stop_ids(model, tokenizer) -> list[int]:
    """The token ids that end a generation (the generation config's eos, else the tokenizer's)."""
    eos = getattr(model.generation_config, "eos_token_id", None)
    eos = tokenizer.eos_token_id if eos is None else eos
    return [] if eos is None else ([eos] if isinstance(eos, int) else list(eos))


def generate_after_labels(
    model,
    tokenizer,
    prompt_rows: list[list[int]],
    labels: list[str],
    video_features: torch.Tensor,
    view_mask: torch.Tensor,
    time_mask: torch.Tensor | None = None,
    **generate_kwargs,
) -> list[GeneratedText]:
    """The text generated after "<prompt>Proficiency: <label>" for each take (the label chosen by scoring), so the
    feedback follows the label that is reported; as generated (the processor's `post_process_feedback` reads it).
    `time_mask` (B, K): clips over takes of different lengths (`LabelScores.time_mask`)."""
    known = tuple(model.config.proficiency_labels)
    continuations = dict(zip(known, label_continuation_ids(tokenizer, known)))
    rows = [prompt + continuations[label] for prompt, label in zip(prompt_rows, labels)]
    return generate_continuations(model, tokenizer, rows, video_features, view_mask, time_mask, **generate_kwargs)


__all__ = ["GeneratedText", "LabelScores", "score_labels", "generate_after_labels", "generate_continuations", "label_continuation_ids",
           "pad_rows", "unpadded_rows"]
