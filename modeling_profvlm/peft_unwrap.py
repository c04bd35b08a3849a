# The one way to reach the ProfVLM model inside a PEFT wrapper (training and evaluation hand one in).


def unwrap_peft(model):
    """The model inside a PEFT wrapper, its LoRA layers included (or `model` itself when it is not wrapped). A
    PeftModel forwards attributes, but its `.model` is its LoraModel, not ProfVLM's `model`: code that walks the
    ProfVLM parts (tower, projector, language model) goes through this."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


__all__ = ["unwrap_peft"]
