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
                    seed: int = 0, time_mask: torch.Tensor | None = None) -> dict:
    """Train `model.model.multi_modal_projector` alone for `steps` full-batch Adam steps so that each take's mean
    video token has the highest cosine similarity with the input embedding of its label's token (`label_ids`, see
    `label_token_ids`; `targets` (B,) are label indices). `features` (B, V, N, D) and `view_mask` (B, V) are the
    cached tower features of the training takes, one row per take; with clips over the take (B, V, K x N, D) and
    `time_mask` (B, K) for takes of different lengths (`FeatureCache.stack`), each take's mean over its own tokens.
    Returns {"loss": [first, last],
    "accuracy": [first, last]} (the cosine classifier on the training takes). Deterministic for a `seed`."""
    if steps <= 0:
        return {"loss": [], "accuracy": []}
    inner = model.model
    projector = inner.multi_modal_projector
    embeddings = inner.get_input_embeddings().weight.detach()
    classes = F.normalize(embeddings[list(label_ids)].float(), dim=-1)  # (L, d_lm), frozen
    was_training = projector.training
    requires = {name: p.requires_grad for name, p in projector.named_parameters()}
    projector.train()
    for param in projector.parameters():
        param.requires_grad_(True)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(projector.parameters(), lr=learning_rate)
    losses, accuracies = [], []
    try:
        for _ in range(steps):
            tokens = inner.get_video_features(video_features=features, view_mask=view_mask,
                                              time_mask=time_mask).pooler_output
            # A list of each take's own tokens with a time_mask, else one (B, tokens, d) tensor
            means = torch.stack([take.float().mean(0) for take in tokens]) if isinstance(tokens, list) else \
                tokens.float().mean(1)
            logits = F.normalize(means, dim=-1) @ classes.T / temperature
            loss = F.cross_entropy(logits, targets)
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
    logger.info("Projector aligned to the label tokens in %d steps: loss %.3f -> %.3f, accuracy on the training "
                "takes %.1f%% -> %.1f%%.", steps, *report["loss"], *(100 * a for a in report["accuracy"]))
    return report


__all__ = ["align_projector", "label_token_ids"]
