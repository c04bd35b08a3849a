# Where ProfVLM adjusts TRL's SFTTrainer internals, each with why. Pinned to trl==1.16 (setup.cfg).
import logging

import torch

logger = logging.getLogger(__name__)


def score_only_labelled_positions_on_cpu() -> bool:
    """Make TRL's fused LM head project only the positions that have a label on CPU too (returns whether it is on).

    SFTTrainer's fused head (`trl.trainer.utils.add_fused_lm_head`) scores just the labelled positions on CUDA/XPU,
    but every position elsewhere, because on compiled backends (Neuron) a varying number of positions would change the
    tile shapes and recompile on every batch. Eager CPU training compiles nothing, and in a ProfVLM sample the answer
    is a minority of the tokens: projecting the prompt through the 49,152-word head (and its entropy) too was a large
    part of a CPU step (measured: benchmarks/results/avx2_sft_step_history.json). The labelled positions give the
    same loss, gradients and metrics either way."""
    try:
        import trl.trainer.utils as trl_utils

        original = trl_utils._use_triton
    except (ImportError, AttributeError):  # another TRL layout: keep its behaviour, only slower on CPU
        logger.warning("TRL's fused LM head has no `_use_triton` switch; CPU training scores every position.")
        return False
    if getattr(original, "_profvlm_cpu_compact", False):
        return True

    def compact(device: torch.device) -> bool:
        return device.type == "cpu" or original(device)

    compact._profvlm_cpu_compact = True
    trl_utils._use_triton = compact
    return True


__all__ = ["score_only_labelled_positions_on_cpu"]
