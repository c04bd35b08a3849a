"""score_labels: probabilities of the four labels from the label continuations, checked against a direct computation."""
import pytest
import torch

from modeling_profvlm.configuration_profvlm import PROFICIENCY_LABELS
from modeling_profvlm.label_scoring import generate_after_labels, score_labels, unpadded_rows
from tests.serving_helpers import direct_label_log_likelihoods, write_take


@pytest.fixture(scope="module")
def model_and_processor(tiny_checkpoint):
    from transformers import AutoModel, AutoProcessor

    import modeling_profvlm  # noqa: F401
    import processing  # noqa: F401

    return AutoModel.from_pretrained(tiny_checkpoint).eval(), AutoProcessor.from_pretrained(tiny_checkpoint)


@pytest.fixture(scope="module")
def takes(tmp_path_factory):
    root = tmp_path_factory.mktemp("takes")
    return [write_take(root / "a", seed=1), write_take(root / "b", views=("ego", "exo2"), seed=2)]


def _batch(processor, takes):
    return processor(text=[processor.build_prompt()] * len(takes), videos=takes, return_tensors="pt")


def test_scores_equal_a_direct_log_likelihood_of_each_label(model_and_processor, takes):
    model, processor = model_and_processor
    scores = score_labels(model, processor, _batch(processor, takes))
    assert scores.labels == PROFICIENCY_LABELS
    torch.testing.assert_close(scores.probabilities.sum(-1), torch.ones(len(takes)), atol=1e-5, rtol=0)
    for i, take in enumerate(takes):
        direct = direct_label_log_likelihoods(model, processor, take)
        torch.testing.assert_close(scores.log_likelihoods[i], torch.tensor([direct[l] for l in PROFICIENCY_LABELS]),
                                   atol=1e-4, rtol=0)
        assert scores.predicted_labels()[i] == max(direct, key=direct.get)


def test_tower_runs_once_per_take_and_cached_features_give_the_same_scores(model_and_processor, takes):
    model, processor = model_and_processor
    batch = _batch(processor, takes)
    calls = []
    handle = model.model.vision_tower.register_forward_hook(lambda m, i, o: calls.append(o.last_hidden_state.shape[0]))
    try:
        from_pixels = score_labels(model, processor, batch)
    finally:
        handle.remove()
    assert calls == [int(batch["view_mask"].sum())]  # one tower pass over the present views, not one per label
    cached = {k: v for k, v in batch.items() if k != "pixel_values_videos"}
    from_features = score_labels(model, processor, {**cached, "video_features": from_pixels.video_features})
    torch.testing.assert_close(from_features.log_likelihoods, from_pixels.log_likelihoods)
    assert from_pixels.view_weights.shape == batch["view_mask"].shape
    assert torch.all(from_pixels.view_weights[batch["view_mask"] == 0] == 0)


def test_padding_side_does_not_change_scores(model_and_processor, takes):
    model, processor = model_and_processor
    batch = _batch(processor, takes)
    single = [score_labels(model, processor, _batch(processor, [t])).log_likelihoods[0] for t in takes]
    torch.testing.assert_close(score_labels(model, processor, batch).log_likelihoods, torch.stack(single), atol=1e-5, rtol=0)


def test_peft_wrapped_model_scores_like_the_base_model(model_and_processor, takes):
    from peft import LoraConfig, get_peft_model

    model, processor = model_and_processor
    batch = _batch(processor, takes[:1])
    expected = score_labels(model, processor, batch).log_likelihoods
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=r".*language_model.*\.(q_proj|v_proj)"))
    try:  # LoRA B starts at zero, so the wrapped model must score exactly like the base model
        torch.testing.assert_close(score_labels(peft_model, processor, batch).log_likelihoods, expected)
    finally:
        peft_model.unload()


def test_feedback_is_generated_after_the_given_label(model_and_processor, takes):
    model, processor = model_and_processor
    batch = _batch(processor, takes)
    scores = score_labels(model, processor, batch)
    seen = []
    original = model.generate

    def spy(**kwargs):
        seen.append(kwargs["input_ids"])
        return original(**kwargs)

    model.generate = spy
    try:
        texts = generate_after_labels(model, processor.tokenizer, unpadded_rows(batch["input_ids"], batch["attention_mask"]),
                                      ["Late Expert", "Novice"], scores.video_features, batch["view_mask"],
                                      max_new_tokens=3, do_sample=False)
    finally:
        del model.generate
    assert len(texts) == 2 and all(isinstance(t.text, str) for t in texts)
    for generated in texts:  # one log-probability per generated token, each token's text ending within the text
        assert len(generated.token_logprobs) == len(generated.token_ends) <= 3
        assert all(lp <= 0 for lp in generated.token_logprobs) and generated.token_ends[-1] == len(generated.text)
    ends = [processor.tokenizer.decode(row) for row in seen[0]]
    assert ends[0].endswith("Proficiency: Late Expert") and ends[1].endswith("Proficiency: Novice")


@pytest.mark.parametrize("labels", [["beginner", "intermediate", "advanced"],
                                    ["white", "yellow", "green", "blue", "brown", "black belt"]], ids=["3", "6"])
def test_scoring_works_for_a_checkpoints_own_labels(labels, tiny_text_dir, tmp_path, takes):
    from transformers import AutoModel, AutoProcessor

    from profvlm.assemble import build_base_checkpoint

    ckpt = build_base_checkpoint("random-tiny", str(tiny_text_dir), tmp_path / "ckpt", proficiency_labels=labels)
    model, processor = AutoModel.from_pretrained(ckpt).eval(), AutoProcessor.from_pretrained(ckpt)
    scores = score_labels(model, processor, _batch(processor, takes))
    assert scores.labels == tuple(labels) and scores.probabilities.shape == (len(takes), len(labels))
    torch.testing.assert_close(scores.probabilities.sum(-1), torch.ones(len(takes)), atol=1e-5, rtol=0)
    for i, take in enumerate(takes):
        direct = direct_label_log_likelihoods(model, processor, take)
        assert list(direct) == labels
        torch.testing.assert_close(scores.log_likelihoods[i], torch.tensor([direct[l] for l in labels]), atol=1e-4, rtol=0)
        assert scores.predicted_labels()[i] == max(direct, key=direct.get)


def test_the_prompt_runs_through_the_language_model_once_per_take_not_once_per_label(model_and_processor, takes):
    model, processor = model_and_processor
    batch = _batch(processor, takes)
    prompt_length = batch["input_ids"].shape[1]
    passes = []  # (rows, tokens) of every language-model pass
    handle = model.model.language_model.register_forward_hook(
        lambda m, args, kwargs, out: passes.append(tuple(kwargs["inputs_embeds"].shape[:2])), with_kwargs=True)
    try:
        scores = score_labels(model, processor, batch)
    finally:
        handle.remove()
    labels = len(scores.labels)
    # Rows as long as the prompt: one per take. Scoring each label over its own copy of the prompt would give
    # takes x labels of them.
    assert sum(rows for rows, tokens in passes if tokens >= prompt_length) == len(takes), passes
    assert sum(rows for rows, tokens in passes if tokens < prompt_length) == len(takes) * labels, passes
