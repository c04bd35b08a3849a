"""[training] The CPU training attention: the model's eager attention for short sequences under bf16 autocast with
gradients, SDPA otherwise; the same attention as transformers' SDPA (padding included); not written to checkpoints."""
import sys

import pytest
import torch
from transformers import LlamaConfig, LlamaModel

import modeling_profvlm.cpu_attention as cpu_attention
from modeling_profvlm.cpu_attention import (
    CPU_TRAINING_ATTENTION,
    EAGER_MAX_KEYS,
    register_cpu_training_attention,
    use_cpu_training_attention,
)


def _tiny_llama() -> LlamaModel:
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=100, attn_implementation="sdpa")
    return LlamaModel(config).train()


class _Spy:
    """Counts the calls of the eager and SDPA attention functions the dispatcher can pick."""

    def __init__(self, monkeypatch):
        self.calls = {"eager": 0, "sdpa": 0}
        llama_module = sys.modules[type(_tiny_llama().layers[0].self_attn).__module__]
        for name, owner, attr in (("eager", llama_module, "eager_attention_forward"),
                                  ("sdpa", cpu_attention, "sdpa_attention_forward")):
            monkeypatch.setattr(owner, attr, self._counting(name, getattr(owner, attr)))

    def _counting(self, name, function):
        def wrapper(*args, **kwargs):
            self.calls[name] += 1
            return function(*args, **kwargs)

        return wrapper


def _forward(model, length: int, autocast: bool, grad: bool):
    ids = torch.randint(0, 100, (2, length))
    mask = torch.ones(2, length, dtype=torch.long)
    mask[1, : length // 3] = 0  # left padding on the second row
    with torch.set_grad_enabled(grad), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        return model(input_ids=ids, attention_mask=mask).last_hidden_state, mask


@pytest.mark.parametrize("length, autocast, grad, expected", [
    (24, True, True, "eager"),                  # the CPU recipe's case: short, bf16 autocast, training
    (EAGER_MAX_KEYS + 8, True, True, "sdpa"),   # long sequences: SDPA is as fast or faster
    (24, False, True, "sdpa"),                  # float32: no gain from eager
    (24, True, False, "sdpa"),                  # inference: SDPA's forward is fast; only its backward is slow
])
def test_dispatch_picks_eager_only_for_short_bf16_sequences_with_gradients(monkeypatch, length, autocast, grad,
                                                                           expected):
    spy = _Spy(monkeypatch)
    model = _tiny_llama()
    model.config._attn_implementation = register_cpu_training_attention()
    _forward(model, length, autocast, grad)
    other = "sdpa" if expected == "eager" else "eager"
    assert spy.calls[expected] == 2 and spy.calls[other] == 0, spy.calls  # one call per layer


@pytest.mark.parametrize("autocast", [True, False])
def test_same_hidden_states_and_gradients_as_sdpa_with_padding(autocast):
    model = _tiny_llama()
    torch.manual_seed(1)
    reference, mask = _forward(model, 24, autocast, grad=True)
    weight = model.layers[0].self_attn.q_proj.weight
    reference_grad = torch.autograd.grad(reference[mask.bool()].float().pow(2).sum(), weight)[0]
    model.config._attn_implementation = register_cpu_training_attention()
    torch.manual_seed(1)
    ours, _ = _forward(model, 24, autocast, grad=True)
    ours_grad = torch.autograd.grad(ours[mask.bool()].float().pow(2).sum(), weight)[0]
    tolerance = 2e-2 if autocast else 1e-5  # bf16 matmuls round differently in the two kernels
    valid = mask.bool()  # padded positions' outputs are unused and differ by kernel
    torch.testing.assert_close(ours[valid].float(), reference[valid].float(), atol=tolerance, rtol=tolerance)
    torch.testing.assert_close(ours_grad, reference_grad, atol=tolerance * 10, rtol=tolerance * 10)


def test_switch_is_not_written_to_the_checkpoint(tiny_checkpoint, tmp_path):
    from modeling_profvlm.modeling_profvlm import ProfVLMForConditionalGeneration

    model = ProfVLMForConditionalGeneration.from_pretrained(tiny_checkpoint)
    assert use_cpu_training_attention(model) == "sdpa"
    assert model.model.language_model.config._attn_implementation == CPU_TRAINING_ATTENTION
    model.save_pretrained(tmp_path / "saved")
    assert CPU_TRAINING_ATTENTION not in (tmp_path / "saved" / "config.json").read_text()
    reloaded = ProfVLMForConditionalGeneration.from_pretrained(tmp_path / "saved")
    assert reloaded.config.text_config._attn_implementation == "sdpa"
