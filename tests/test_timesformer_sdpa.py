# SDPA TimeSformer attention: same outputs as eager (fp32, tiny and base towers), same weights, idempotent swap.
import copy

import torch
from transformers import AutoModel, TimesformerConfig

from modeling_profvlm.configuration_profvlm import TIMESFORMER_BASE_VISION_CONFIG, TIMESFORMER_TINY_VISION_CONFIG
from modeling_profvlm.timesformer_sdpa import (
    TimesformerSdpaSelfAttention,
    use_eager_attention,
    use_sdpa_attention,
)


def _tower(vision_config: dict, seed: int = 0):
    torch.manual_seed(seed)
    config = TimesformerConfig(**{k: v for k, v in vision_config.items() if k != "model_type"})
    return AutoModel.from_config(config).eval()


def _clips(config, batch: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, config.num_frames, 3, config.image_size, config.image_size, generator=g)


def _eager_and_sdpa(vision_config: dict, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    tower = _tower(vision_config)
    pixels = _clips(tower.config, batch)
    with torch.inference_mode():
        eager = tower(pixel_values=pixels).last_hidden_state
        assert use_sdpa_attention(tower) > 0
        sdpa = tower(pixel_values=pixels).last_hidden_state
    return eager, sdpa


def test_sdpa_matches_eager_tiny_fp32():
    eager, sdpa = _eager_and_sdpa(TIMESFORMER_TINY_VISION_CONFIG, batch=3)
    torch.testing.assert_close(sdpa, eager, atol=1e-4, rtol=0)


def test_sdpa_matches_eager_base_fp32(one_thread):
    # The base tower's attention shapes (one 8x3x224x224 clip: 196 patches + CLS, 12 heads of 64) in 2 of its 12
    # identical layers: every layer runs the same two attentions, the other ten only repeat them (6x the time).
    eager, sdpa = _eager_and_sdpa({**TIMESFORMER_BASE_VISION_CONFIG, "num_hidden_layers": 2}, batch=1)
    torch.testing.assert_close(sdpa, eager, atol=1e-4, rtol=0)


def test_swap_count_keys_and_idempotence():
    tower = _tower(TIMESFORMER_TINY_VISION_CONFIG)
    keys = list(tower.state_dict())
    state = copy.deepcopy(tower.state_dict())
    layers = tower.config.num_hidden_layers
    # divided space-time attention: a spatial and a temporal self-attention per layer
    assert use_sdpa_attention(tower) == 2 * layers
    assert use_sdpa_attention(tower) == 0
    assert sum(isinstance(m, TimesformerSdpaSelfAttention) for m in tower.modules()) == 2 * layers
    assert list(tower.state_dict()) == keys
    for name, tensor in tower.state_dict().items():
        assert torch.equal(tensor, state[name])
    tower.load_state_dict(state)  # an eager checkpoint loads unchanged (strict)
    assert use_eager_attention(tower) == 2 * layers
    assert not any(isinstance(m, TimesformerSdpaSelfAttention) for m in tower.modules())


def test_swap_inside_profvlm_model():
    from modeling_profvlm.modeling_profvlm import ProfVLMForConditionalGeneration
    from tests.tiny_assets import tiny_inputs, tiny_profvlm_config

    torch.manual_seed(0)
    model = ProfVLMForConditionalGeneration(tiny_profvlm_config()).eval()
    inputs = tiny_inputs()
    with torch.inference_mode():
        eager = model.model.encode_views(inputs["pixel_values_videos"], inputs["view_mask"])
        assert use_sdpa_attention(model) == 2 * model.config.vision_config.num_hidden_layers
        sdpa = model.model.encode_views(inputs["pixel_values_videos"], inputs["view_mask"])
    torch.testing.assert_close(sdpa, eager, atol=1e-4, rtol=0)


def test_output_attentions_falls_back_to_eager():
    tower = _tower(TIMESFORMER_TINY_VISION_CONFIG)
    pixels = _clips(tower.config, batch=2)
    with torch.inference_mode():
        eager = tower(pixel_values=pixels, output_attentions=True)
        use_sdpa_attention(tower)
        sdpa = tower(pixel_values=pixels, output_attentions=True)
    assert len(sdpa.attentions) == len(eager.attentions) == tower.config.num_hidden_layers
    for a, b in zip(sdpa.attentions, eager.attentions):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(sdpa.last_hidden_state, eager.last_hidden_state)


def test_training_mode_dropout_only_when_training():
    tower = _tower({**TIMESFORMER_TINY_VISION_CONFIG, "attention_probs_dropout_prob": 0.5})
    use_sdpa_attention(tower)
    pixels = _clips(tower.config, batch=2)
    with torch.no_grad():
        first, second = tower(pixel_values=pixels).last_hidden_state, tower(pixel_values=pixels).last_hidden_state
        torch.testing.assert_close(first, second)  # eval: deterministic, no dropout
        tower.train()
        torch.manual_seed(0)
        a = tower(pixel_values=pixels).last_hidden_state
        torch.manual_seed(1)
        b = tower(pixel_values=pixels).last_hidden_state
    assert not torch.allclose(a, b)  # training: attention dropout active


def test_sdpa_bf16_close_to_eager_bf16():
    # bf16 rounds differently in the fused kernel; only closeness is expected (and it runs on any CPU).
    tower = _tower(TIMESFORMER_TINY_VISION_CONFIG).to(torch.bfloat16)
    pixels = _clips(tower.config, batch=2).to(torch.bfloat16)
    with torch.inference_mode():
        eager = tower(pixel_values=pixels).last_hidden_state.float()
        use_sdpa_attention(tower)
        sdpa = tower(pixel_values=pixels).last_hidden_state.float()
    torch.testing.assert_close(sdpa, eager, atol=5e-2, rtol=5e-2)
