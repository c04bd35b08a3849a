# The paper's adapter recipe: LoRA on the language model's q_proj/v_proj, the projector fully trained.
from peft import LoraConfig

# A regex (PEFT full-matches strings) so that no linear of the tower or the projector gets an adapter.
LANGUAGE_MODEL_TARGETS = r".*language_model.*\.({modules})"


def default_lora_config(
    r: int = 8,
    lora_alpha: int = 32,
    lora_dropout: float = 0.1,
    target_modules: tuple[str, ...] = ("q_proj", "v_proj"),
) -> LoraConfig:
    """LoRA r=8, alpha 32, dropout 0.1 on q_proj/v_proj of the LM only (the ProfVLM prototype's adapter recipe,
    arXiv 2509.26278); the AttentiveGatedProjector is trained in full (`modules_to_save`)."""
    return LoraConfig(
        r=r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        bias="none",
        target_modules=LANGUAGE_MODEL_TARGETS.format(modules="|".join(target_modules)),
        modules_to_save=["multi_modal_projector"],
        task_type="CAUSAL_LM",
    )


def count_parameters(model) -> tuple[int, int]:
    """(total, trainable) parameter counts; tied weights are counted once."""
    seen, total, trainable = set(), 0, 0
    for param in model.parameters():
        if id(param) in seen:
            continue
        seen.add(id(param))
        total += param.numel()
        trainable += param.numel() if param.requires_grad else 0
    return total, trainable
