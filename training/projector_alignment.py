# A feature-alignment stage for the projector before SFT (LLaVA trains its projector alone first, on captions; this is
# the same idea on labels): seconds on cached features, no language-model pass.
"""Before LoRA SFT the projector is random, so the language model first has to learn to read a take's video tokens
at all, and on a CPU that costs most of the steps a run can afford. `align_projector` trains the projector alone,
on the feature cache, so that each take's video tokens (mean over its tokens) point, in the language model's own
input-embedding space, towards the embedding of the first token that tells the take's label apart ("Nov" of
"Proficiency: Novice", ...): a cosine-similarity classifier whose class vectors are frozen LM embeddings. The LM and
its embeddings are not changed; SFT then starts from tokens that already carry the label in words the LM knows.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from modeling_profvlm.label_scoring import label_continuation_ids

logger = logging.getLogger(__name__)


def label_token_ids(tokenizer, labels: Sequence[str]) -> list[int]:
    """For each label, the first token of its answer continuation that differs between labels (the continuations
    share "Proficiency:"); a ValueError naming the labels when two labels share that token."""
    continuations = label_continuation_ids(tokenizer, tuple(labels))
    shared = 0
    while all(len(c) > shared for c in continuations) and len({c[shared] for c in continuations}) == 1:
        shared += 1
    if any(len(c) <= shared for c in continuations):
        raise ValueError(f"labels {list(labels)}: one label's answer is a prefix of another's; cannot align to them.")
    ids = [c[shared] for c in continuations]
    if len(set(ids)) != len(ids):
        raise ValueError(f"labels {list(labels)} begin with the same token after the answer prefix; the projector "
                         "cannot be aligned to one token per label.")
    return ids


def align_projector(model, features: torch.Tensor, view_mask: torch.Tensor, targets: torch.Tensor,
                    label_ids: Sequence[int], steps: int, learning_rate: float = 1e-2, temperature: float = 0.1,
                    seed: int = 0, time_mask: torch.Tensor | None = None,
                    step_targets: torch.Tensor | None = None, step_ids: Sequence[int] | None = None) -> dict:
    """Train `model.model.multi_modal_projector` alone for `steps` full-batch Adam steps so that each take's mean
    video token has the highest cosine similarity with the input embedding of its label's token (`label_ids`, see
    `label_token_ids`; `targets` (B,) are label indices). `features` (B, V, N, D) and `view_mask` (B, V) are the
    cached tower features of the training takes, one row per take; with clips over the take (B, V, K x N, D) and
    `time_mask` (B, K) for takes of different lengths (`FeatureCache.stack`), each take's mean over its own tokens.

    With `step_targets` (B, steps) and `step_ids`, each video time step's token is also pulled towards the sum of
    the input embeddings of its take's label token and of `step_ids[step_targets[b, s]]` (-100: not scored, e.g.
    padding), against every other (label, word) sum: in moments data a step where an expert names a moment towards
    one word and a step with none towards another, so that the tokens say where the moments are in words the LM
    already reads (`moment_step_targets`). Returns {"loss": [first, last],
    "accuracy": [first, last]} (the cosine classifier on the training takes; with steps also "step_accuracy").
    Deterministic for a `seed`."""
    if steps <= 0:
        return {"loss": [], "accuracy": []}
    inner = model.model
    projector = inner.multi_modal_projector
    embeddings = inner.get_input_embeddings().weight.detach()
    classes = F.normalize(embeddings[list(label_ids)].float(), dim=-1)  # (L, d_lm), frozen
    step_classes = None
    if step_targets is not None:
        # One class per (label, step word): the sum of the two embeddings, so a step's token must say its take's
        # label and whether a moment is there with the same weight, instead of the label with a faint moment
        # direction the LM would have to discover.
        words = embeddings[list(step_ids)].float()
        label_vectors = embeddings[list(label_ids)].float()
        step_classes = F.normalize((label_vectors[:, None, :] + words[None, :, :]).flatten(0, 1), dim=-1)
        step_targets = torch.where(step_targets == -100, step_targets, targets[:, None] * len(step_ids) + step_targets)
    was_training = projector.training
    requires = {name: p.requires_grad for name, p in projector.named_parameters()}
    projector.train()
    for param in projector.parameters():
        param.requires_grad_(True)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(projector.parameters(), lr=learning_rate)
    losses, accuracies, step_accuracies = [], [], []
    try:
        for _ in range(steps):
            tokens = inner.get_video_features(video_features=features, view_mask=view_mask,
                                              time_mask=time_mask).pooler_output
            # A list of each take's own tokens with a time_mask, else one (B, tokens, d) tensor
            means = torch.stack([take.float().mean(0) for take in tokens]) if isinstance(tokens, list) else \
                tokens.float().mean(1)
            logits = F.normalize(means, dim=-1) @ classes.T / temperature
            loss = F.cross_entropy(logits, targets)
            if step_classes is not None:
                steps_tokens = _padded(tokens, step_targets.shape[1])
                step_logits = F.normalize(steps_tokens, dim=-1) @ step_classes.T / temperature  # (B, S, C)
                loss = loss + F.cross_entropy(step_logits.flatten(0, 1), step_targets.flatten(), ignore_index=-100)
                scored = step_targets != -100
                step_accuracies.append(float((step_logits.argmax(-1) == step_targets)[scored].float().mean()))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            accuracies.append(float((logits.argmax(-1) == targets).float().mean()))
    finally:
        torch.random.set_rng_state(generator_state)
        for name, param in projector.named_parameters():
            param.requires_grad_(requires[name])
        projector.train(was_training)
    report = {"loss": [losses[0], losses[-1]], "accuracy": [accuracies[0], accuracies[-1]]}
    if step_accuracies:
        report["step_accuracy"] = [step_accuracies[0], step_accuracies[-1]]
        logger.info("Each time step's token aligned to its moment word: accuracy %.1f%% -> %.1f%%.",
                    *(100 * a for a in report["step_accuracy"]))
    logger.info("Projector aligned to the label tokens in %d steps: loss %.3f -> %.3f, accuracy on the training "
                "takes %.1f%% -> %.1f%%.", steps, *report["loss"], *(100 * a for a in report["accuracy"]))
    return report


# The words a step's token is pulled towards (`moment_step_targets`): index 0 where no expert names a moment, 1 where
# one does. Plain words the LM knows, so the difference between the two is a large, clean direction in its input
# space rather than a faint one the LM has to discover in few steps.
MOMENT_WORDS = (" nothing", " moment")


def moment_word_ids(tokenizer) -> list[int]:
    """The first token of each of `MOMENT_WORDS`, in order."""
    return [tokenizer(word, add_special_tokens=False)["input_ids"][0] for word in MOMENT_WORDS]


def moment_step_targets(moment_times: Sequence[Sequence[float]], token_times: Sequence[Sequence[float]],
                        per_token: int = 1) -> torch.Tensor:
    """(B, max steps x `per_token`) long: 1 for the video time step whose start is nearest a moment's time (the later
    one on a tie), 0 for the other steps, -100 after a take's own steps. Nearest rather than the last start before it:
    a step's frames are spread after its start, so an event that begins just before a step's first frame is what that
    step shows (the synthetic takes' uniform frames sit mid-second, their events begin just after a whole second).
    `moment_times`: each take's moment times in seconds (every expert's); `token_times`: each take's step start
    times (`FeatureCache.prompt_kwargs`)."""
    most = max(len(times) for times in token_times)
    out = torch.full((len(token_times), most * per_token), -100, dtype=torch.long)
    for b, (moments, times) in enumerate(zip(moment_times, token_times)):
        row = [0] * len(times)
        for moment in moments:
            row[nearest_step(times, moment)] = 1
        out[b, : len(times) * per_token] = torch.tensor(row).repeat_interleave(per_token)
    return out


def nearest_step(times: Sequence[float], moment: float) -> int:
    """The index of the video time step that shows a moment at `moment` seconds: the step whose time is nearest it,
    the later one on a tie (`moment_step_targets` says why nearest)."""
    return min(range(len(times)), key=lambda k: (abs(times[k] - moment), -k))


def _padded(tokens, steps: int) -> torch.Tensor:
    """(B, steps, d) float from the projector's tokens: a tensor as it is, a list of each take's own tokens padded
    with zeros (their targets are -100)."""
    if not isinstance(tokens, list):
        return tokens.float()
    out = tokens[0].new_zeros(len(tokens), steps, tokens[0].shape[-1], dtype=torch.float32)
    for b, take in enumerate(tokens):
        out[b, : len(take)] = take.float()
    return out


__all__ = ["MOMENT_WORDS", "align_projector", "label_token_ids", "moment_step_targets", "moment_word_ids",
           "nearest_step"]
