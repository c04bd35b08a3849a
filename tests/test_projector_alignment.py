"""[cpu-floor] The projector's alignment stage before SFT: it teaches the projector alone (the language model and its
embeddings untouched) to point each take's video tokens at its label's token, deterministically, and sft.py runs it
before PEFT wraps the model only when asked and only with a feature cache."""
import pytest
import torch
import torch.nn.functional as F

from modeling_profvlm.modeling_profvlm import ProfVLMForConditionalGeneration
from modeling_profvlm.profvlm_facts import PROFICIENCY_LABELS
from processing.processing_profvlm import ProfVLMProcessor
from training.projector_alignment import align_projector, label_token_ids
from training.sft import build_trainer, parse_args


def test_label_token_ids_are_the_first_tokens_that_tell_the_labels_apart(tiny_checkpoint):
    tokenizer = ProfVLMProcessor.from_pretrained(tiny_checkpoint).tokenizer
    ids = label_token_ids(tokenizer, PROFICIENCY_LABELS)
    assert len(set(ids)) == len(PROFICIENCY_LABELS)
    for label, token in zip(PROFICIENCY_LABELS, ids):
        full = tokenizer(f"Proficiency: {label}", add_special_tokens=False)["input_ids"]
        prefix = tokenizer("Proficiency:", add_special_tokens=False)["input_ids"]
        assert full[:len(prefix)] == prefix and token == full[len(prefix)], label
    with pytest.raises(ValueError, match="prefix of another"):
        label_token_ids(tokenizer, ("Late", "Late Expert"))


def _takes(generator: torch.Generator, config, n: int = 24):
    """Features whose label is a direction in feature space (as the synthetic takes' motion is), and a view mask."""
    steps, views, dim = config.temporal_tokens, config.num_views, config.vision_config.hidden_size
    directions = torch.randn(len(PROFICIENCY_LABELS), dim, generator=generator)
    targets = torch.arange(n) % len(PROFICIENCY_LABELS)
    features = torch.randn(n, views, steps, dim, generator=generator) + 3 * directions[targets][:, None, None, :]
    return features, torch.ones(n, views), targets


def _cosine_accuracy(model, features, mask, targets, ids) -> float:
    inner = model.model
    with torch.no_grad():
        tokens = inner.get_video_features(video_features=features, view_mask=mask).pooler_output.mean(1)
        classes = F.normalize(inner.get_input_embeddings().weight[ids].float(), dim=-1)
        return float(((F.normalize(tokens, dim=-1) @ classes.T).argmax(-1) == targets).float().mean())


def test_alignment_trains_the_projector_alone_to_point_at_the_label_tokens(tiny_checkpoint):
    model = ProfVLMForConditionalGeneration.from_pretrained(tiny_checkpoint).eval()
    ids = label_token_ids(ProfVLMProcessor.from_pretrained(tiny_checkpoint).tokenizer, PROFICIENCY_LABELS)
    features, mask, targets = _takes(torch.Generator().manual_seed(0), model.config)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    start = _cosine_accuracy(model, features, mask, targets, ids)
    report = align_projector(model, features, mask, targets, ids, steps=60, learning_rate=1e-2, seed=0)
    assert report["loss"][1] < report["loss"][0]
    assert _cosine_accuracy(model, features, mask, targets, ids) == 1.0 > start
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert changed and all("multi_modal_projector" in name for name in changed)  # LM, embeddings, tower untouched
    assert {name for name, p in model.named_parameters() if not p.requires_grad} == frozen  # flags restored
    assert not model.model.multi_modal_projector.training  # its mode restored too

    again = ProfVLMForConditionalGeneration.from_pretrained(tiny_checkpoint).eval()
    align_projector(again, features, mask, targets, ids, steps=60, learning_rate=1e-2, seed=0)
    for (name, p), (_, q) in zip(model.named_parameters(), again.named_parameters()):
        assert torch.equal(p, q), name  # same seed, same weights


def test_sft_aligns_before_peft_only_when_asked_and_only_with_a_cache(tiny_checkpoint, tree, feature_cache, tmp_path):
    common = ["--model", str(tiny_checkpoint), "--data_dir", str(tree), "--output_dir", str(tmp_path),
              "--eval_split", "none"]
    plain = build_trainer(*parse_args([*common, "--features", str(feature_cache)]))
    aligned = build_trainer(*parse_args([*common, "--features", str(feature_cache),
                                         "--projector_alignment_steps", "5"]))

    def projector_weights(trainer):  # the trainable copy PEFT made from the weights it found
        return {n: p for n, p in trainer.model.named_parameters() if "multi_modal_projector" in n and p.requires_grad}

    assert projector_weights(plain).keys() == projector_weights(aligned).keys()
    assert any(not torch.equal(p, projector_weights(aligned)[n]) for n, p in projector_weights(plain).items())
    with pytest.raises(ValueError, match="--projector_alignment_steps 5 needs --features"):
        build_trainer(*parse_args([*common, "--projector_alignment_steps", "5"]))


def test_moment_step_targets_mark_the_step_whose_start_is_nearest_each_moment():
    from training.projector_alignment import moment_step_targets

    # Take 0: 4 steps starting a little after each second; moments at 1.17 s and 3.0 s (two experts naming the same
    # second count once). Take 1: 2 steps, a moment at 0.5 s; its padding is -100.
    targets = moment_step_targets([[1.17, 3.0, 3.02], [0.5]], [[0.06, 1.06, 2.06, 3.06], [0.1, 1.1]])
    assert targets.tolist() == [[0, 1, 0, 1], [1, 0, -100, -100]]
    # Steps mid-second (one uniform frame each), events just after a whole second: the step that shows the event.
    assert moment_step_targets([[1.1], [0.1, 3.2]], [[0.5, 1.5, 2.5, 3.5]] * 2).tolist() == [
        [0, 1, 0, 0], [1, 0, 0, 1]]
    # A tie goes to the later step; two tokens per step repeat the step's mark.
    assert moment_step_targets([[0.25]], [[0.0, 0.5]]).tolist() == [[0, 1]]
    assert moment_step_targets([[1.6]], [[0.0, 1.0]], per_token=2).tolist() == [[0, 0, 1, 1]]


def test_alignment_with_moment_steps_points_each_steps_token_at_its_moment_word(tiny_checkpoint):
    from training.projector_alignment import MOMENT_WORDS, moment_word_ids

    model = ProfVLMForConditionalGeneration.from_pretrained(tiny_checkpoint).eval()
    tokenizer = ProfVLMProcessor.from_pretrained(tiny_checkpoint).tokenizer
    ids = label_token_ids(tokenizer, PROFICIENCY_LABELS)
    words = moment_word_ids(tokenizer)
    assert len(set(words)) == len(MOMENT_WORDS)
    for token, word in zip(words, MOMENT_WORDS):  # each id is its word's first token
        assert word.startswith(tokenizer.decode([token])), (token, word)
    generator = torch.Generator().manual_seed(1)
    features, mask, targets = _takes(generator, model.config)
    # A step with a moment has its own direction added (as a flash changes the synthetic frames); half the takes of
    # every label have one, so the label alone cannot tell them.
    step_targets = torch.zeros(len(features), model.config.temporal_tokens, dtype=torch.long)
    flashed = (torch.arange(len(features)) // len(PROFICIENCY_LABELS)) % 2 == 0
    step_targets[flashed, 0] = 1
    features[flashed, :, 0] += 3 * torch.randn(features.shape[-1], generator=generator)

    def step_word_accuracy() -> float:
        """How often a step's token is closer to (its take's label word + the right moment word) than to (label word
        + the other moment word): what the LM reads at that step."""
        with torch.no_grad():
            tokens = F.normalize(model.model.get_video_features(video_features=features, view_mask=mask)
                                 .pooler_output.float(), dim=-1)  # (B, steps, d)
            table = model.model.get_input_embeddings().weight.float()
            pairs = F.normalize(table[[ids[t] for t in targets]][:, None, :] + table[words][None, :, :], dim=-1)
            chosen = torch.einsum("bsd,bwd->bsw", tokens, pairs).argmax(-1)
        return float((chosen == step_targets).float().mean())

    start = step_word_accuracy()
    report = align_projector(model, features, mask, targets, ids, steps=80, learning_rate=1e-2, seed=0,
                             step_targets=step_targets, step_ids=words)
    assert step_word_accuracy() == 1.0 > start and report["step_accuracy"][1] == 1.0
    assert _cosine_accuracy(model, features, mask, targets, ids) == 1.0  # the label is still read from the mean
