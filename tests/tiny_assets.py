"""Tiny, locally built stand-ins for Hub assets (a tokenizer and a causal LM) used by the test suite."""
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from modeling_profvlm.configuration_profvlm import PROFICIENCY_LABELS, VIDEO_TOKEN

CHATML_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
_CORPUS = [
    "system user assistant You are a helpful AI assistant named SmolLM.",
    "Proficiency: Feedback: The performer moves smoothly and precisely with a steady rhythm.",
    "jittery erratic slow hesitant confident fast controlled balance posture footwork timing.",
    " ".join(PROFICIENCY_LABELS),
    "What is the capital of France? Paris. Estimate the proficiency of the performer in this video.",
    "0123456789 .,:;!?'\"()-\n",
]


def build_tiny_tokenizer(vocab_size: int = 400) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on a few sentences; ChatML specials and `<video>` are single tokens."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=CHATML_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        model_max_length=2048,
    )
    fast.add_special_tokens({"additional_special_tokens": [VIDEO_TOKEN]})
    return fast


def tiny_text_config(vocab_size: int) -> LlamaConfig:
    """A 2-layer Llama with SmolLM2's shape ratios (GQA, tied embeddings) at hidden 32."""
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )


def build_tiny_text_dir(out: Path) -> Path:
    """Save a tiny random LlamaForCausalLM and the tiny tokenizer (without `<video>`) like a Hub LM repo."""
    import torch

    torch.manual_seed(0)
    tok = build_tiny_tokenizer()
    model = LlamaForCausalLM(tiny_text_config(len(tok)))
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return Path(out)


TINY_VOCAB = 401  # build_tiny_tokenizer(): 400 BPE tokens + `<video>`
TINY_VIDEO_TOKEN_ID = 400


def tiny_profvlm_config(**overrides):
    """A ProfVLMConfig with the random-tiny tower, a 2-layer LM and a small projector (fast on a CPU)."""
    from modeling_profvlm.configuration_profvlm import TIMESFORMER_TINY_VISION_CONFIG, ProfVLMConfig

    kwargs = dict(
        vision_config=TIMESFORMER_TINY_VISION_CONFIG,
        text_config=tiny_text_config(TINY_VOCAB).to_dict(),
        projector_hidden_size=48,
        projector_num_heads=2,
        video_token_id=TINY_VIDEO_TOKEN_ID,
    )
    kwargs.update(overrides)
    return ProfVLMConfig(**kwargs)


def tiny_profvlm(seed: int = 0, **overrides):
    """A randomly initialised tiny ProfVLMForConditionalGeneration in eval mode."""
    import torch

    from modeling_profvlm.modeling_profvlm import ProfVLMForConditionalGeneration

    torch.manual_seed(seed)
    return ProfVLMForConditionalGeneration(tiny_profvlm_config(**overrides)).eval()


def tiny_inputs(batch: int = 2, views: int = 5, frames: int = 4, size: int = 32, seed: int = 0):
    """Token ids with one `<video>` per sample, random pixels and a view mask with some views missing."""
    import torch

    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, TINY_VIDEO_TOKEN_ID, (batch, 7), generator=g)
    input_ids[:, 2] = TINY_VIDEO_TOKEN_ID
    pixel_values_videos = torch.randn(batch, views, frames, 3, size, size, generator=g)
    view_mask = torch.ones(batch, views, dtype=torch.long)
    view_mask[0, 3:] = 0
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids),
            "pixel_values_videos": pixel_values_videos, "view_mask": view_mask}
