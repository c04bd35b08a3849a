# TimeSformer self-attention through torch's scaled_dot_product_attention, swapped into an existing tower in place.
"""transformers' TimeSformer has only an eager attention (`attn_implementation="sdpa"` raises for it). This module
gives `TimesformerSelfAttention` the same math through `torch.nn.functional.scaled_dot_product_attention`
without touching its parameters: `use_sdpa_attention(tower)` re-classes every self-attention module in place,
so weights, state_dict keys and checkpoints are unchanged, and `use_eager_attention(tower)` undoes it.

It is opt-in, not the default: on CPU it did not measurably help over the whole tower in either dtype, and per
attention module it won only for the spatial attention in float32, losing for the temporal one (8 tokens) and for
both in bfloat16, where torch's CPU kernel loses to oneDNN's bf16 matmuls at these short sequences (measured with
benchmarks/bench_attention.py: benchmarks/results/timesformer_sdpa.json). On CUDA it is not measured yet: try
`use_sdpa_attention(model.model.vision_tower)` there and compare with `make gpu-check`.

Adapted from TimesformerSelfAttention.forward in transformers/models/timesformer/modeling_timesformer.py
(itself from facebookresearch/TimeSformer timesformer/models/vit.py)."""
from __future__ import annotations

import torch
from torch import nn
from transformers.models.timesformer.modeling_timesformer import TimesformerSelfAttention


class TimesformerSdpaSelfAttention(TimesformerSelfAttention):
    """TimesformerSelfAttention computed with `scaled_dot_product_attention` (same parameters and outputs).

    Requests for attention probabilities (`output_attentions=True`) take the eager path for that call, since
    the fused kernels never materialise the probabilities."""

    def forward(self, hidden_states: torch.Tensor, output_attentions: bool = False) -> tuple[torch.Tensor, ...]:
        """(batch, tokens, hidden) -> (context,) or, with output_attentions, (context, probabilities) via eager."""
        if output_attentions:
            return super().forward(hidden_states, output_attentions=True)
        batch_size, seq_len, hidden_size = hidden_states.shape
        qkv = (
            self.qkv(hidden_states)
            .reshape(batch_size, seq_len, 3, self.num_heads, hidden_size // self.num_heads)
            .permute(2, 0, 3, 1, 4)
        )
        query, key, value = qkv.unbind(0)  # each [batch, heads, tokens, head_dim]
        context = nn.functional.scaled_dot_product_attention(
            query, key, value,
            dropout_p=self.attn_drop.p if self.training else 0.0,  # eager's nn.Dropout is a no-op in eval
            scale=self.scale,
        )
        return (context.transpose(1, 2).reshape(batch_size, seq_len, hidden_size),)


def _swap(module: nn.Module, source: type, target: type) -> int:
    swapped = 0
    for sub in module.modules():
        if type(sub) is source:  # exact type: never re-class a subclass someone else made
            sub.__class__ = target
            swapped += 1
    return swapped


def use_sdpa_attention(vision_tower: nn.Module) -> int:
    """Make every TimeSformer self-attention in `vision_tower` (any module containing them, e.g. a whole ProfVLM
    model) use SDPA. Returns how many modules were swapped now; idempotent (a second call returns 0)."""
    return _swap(vision_tower, TimesformerSelfAttention, TimesformerSdpaSelfAttention)


def use_eager_attention(vision_tower: nn.Module) -> int:
    """Undo `use_sdpa_attention`: back to transformers' eager attention. Returns how many modules were swapped."""
    return _swap(vision_tower, TimesformerSdpaSelfAttention, TimesformerSelfAttention)


__all__ = ["TimesformerSdpaSelfAttention", "use_eager_attention", "use_sdpa_attention"]
