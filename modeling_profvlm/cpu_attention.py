"""The language model's attention for CPU training: its own eager attention for short bf16 sequences, SDPA otherwise.

torch's CPU SDPA (the flash kernel) is slow to differentiate at the short sequences of ProfVLM's CPU recipe, and
eager attention wins there only under bf16 autocast: one SmolLM2 attention layer, forward + backward, at several
lengths and in both dtypes (measured: benchmarks/results/cpu_attention_layer.json; benchmarks/bench_sft_step.py
times the whole step). So eager is used only where it wins: under bf16 autocast, at most `EAGER_MAX_KEYS` keys,
with gradients on. Both compute the
same softmax attention; the mask is the additive float mask that both accept.
"""
from __future__ import annotations

import sys

import torch
from torch import nn
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, eager_mask

CPU_TRAINING_ATTENTION = "profvlm_cpu_training"
EAGER_MAX_KEYS = 256  # between the recipe's lengths, where eager wins in bf16, and where the two are even


def _eager_attention_of(module: nn.Module):
    """The `eager_attention_forward` of the module's own modeling file (every transformers decoder has one)."""
    return getattr(sys.modules.get(type(module).__module__), "eager_attention_forward", None)


def _bf16_autocast(device: torch.device) -> bool:
    """Whether bf16 autocast is on for the device (queries and keys still reach attention in float32 there: the
    rotary embedding's float32 cos/sin promote them; the values stay bf16)."""
    return torch.is_autocast_enabled(device.type) and torch.get_autocast_dtype(device.type) == torch.bfloat16


def cpu_training_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                           attention_mask: torch.Tensor | None, **kwargs) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Attention with transformers' signature: the model's eager attention for short bf16 sequences under autograd,
    transformers' SDPA attention otherwise."""
    if key.shape[-2] <= EAGER_MAX_KEYS and torch.is_grad_enabled() and _bf16_autocast(query.device):
        eager = _eager_attention_of(module)
        if eager is not None:
            return eager(module, query, key, value, attention_mask, **kwargs)
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


def register_cpu_training_attention() -> str:
    """Register `cpu_training_attention` with transformers under `CPU_TRAINING_ATTENTION` (returned), with the additive
    float mask that both of its paths accept (SDPA's own mask is boolean, which eager would add as 0/1)."""
    AttentionInterface.register(CPU_TRAINING_ATTENTION, cpu_training_attention)
    AttentionMaskInterface.register(CPU_TRAINING_ATTENTION, eager_mask)
    return CPU_TRAINING_ATTENTION


def use_cpu_training_attention(model: nn.Module) -> str:
    """Switch the language model of a ProfVLM model to `cpu_training_attention`; returns the implementation it had.

    The implementation lives in the config's private `_attn_implementation`, which `save_pretrained` does not write,
    so checkpoints keep loading with transformers' default."""
    register_cpu_training_attention()
    text_config = model.config.text_config
    previous = text_config._attn_implementation
    text_config._attn_implementation = CPU_TRAINING_ATTENTION
    return previous


__all__ = ["CPU_TRAINING_ATTENTION", "EAGER_MAX_KEYS", "cpu_training_attention", "register_cpu_training_attention",
           "use_cpu_training_attention"]
