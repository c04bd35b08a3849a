"""The projector's input standardisation: statistics of present views only, identity before training, saved."""
import torch

import modeling_profvlm  # noqa: F401  (registers the Auto classes)
from modeling_profvlm.modeling_profvlm import ProfVLMForConditionalGeneration, ViewFeatureStandardizer
from tests.tiny_assets import tiny_profvlm


def _batches(seed: int = 0, dim: int = 6):
    """Three batches of (features, mask) with a feature offset and scale, and some views missing."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(3):
        feats = 5.0 + 3.0 * torch.randn(4, 5, dim, generator=g)
        mask = torch.ones(4, 5, dtype=torch.bool)
        mask[0, 2:] = False
        mask[3, :1] = False
        feats[~mask] = 1e6  # whatever a missing view holds must not reach the statistics
        out.append((feats, mask))
    return out


def test_fresh_standardizer_is_the_identity_on_present_views():
    norm = ViewFeatureStandardizer(6).eval()
    feats, mask = _batches()[0]
    out = norm(feats, mask)
    torch.testing.assert_close(out[mask], feats[mask], atol=1e-4, rtol=1e-5)


def test_training_accumulates_the_average_statistics_of_present_views_only():
    norm = ViewFeatureStandardizer(6).train()
    batches = _batches()
    for k, (feats, mask) in enumerate(batches, start=1):
        out = norm(feats, mask)
        # Independent reference: the plain average of the batches so far (each batch's mean and unbiased variance
        # over present views), this batch included; the batch is standardised with it, not with its own statistics.
        mean = torch.stack([f[m].mean(0) for f, m in batches[:k]]).mean(0)
        var = torch.stack([f[m].var(0) for f, m in batches[:k]]).mean(0)
        torch.testing.assert_close(out[mask], (feats[mask] - mean) / torch.sqrt(var + norm.eps), atol=1e-4, rtol=1e-5)
    assert int(norm.num_batches_tracked) == 3
    torch.testing.assert_close(norm.running_mean, mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(norm.running_var, var, atol=1e-4, rtol=1e-5)


def test_a_batch_is_not_standardised_against_itself_in_training():
    """A batch of high-level takes must not be re-centred on its own mean: after the statistics have seen a mixed
    batch, a batch of takes all above the average stays above it in training, as it does in eval."""
    norm = ViewFeatureStandardizer(3).train()
    mixed = torch.tensor([[[-2.0] * 3, [2.0] * 3], [[-1.0] * 3, [1.0] * 3]])  # (B=2, V=2, D=3), mean 0
    everyone = torch.ones(2, 2, dtype=torch.bool)
    norm(mixed, everyone)
    high = torch.full((2, 2, 3), 3.0) + torch.tensor([0.0, 0.5]).view(1, 2, 1)  # every take above the mean
    trained = norm(high, everyone)
    assert (trained > 0).all(), trained  # BatchNorm's training mode would give a zero mean here
    torch.testing.assert_close(trained, norm.eval()(high, everyone))  # training and eval see the same input


def test_eval_uses_stored_statistics_so_a_take_does_not_depend_on_its_batch():
    norm = ViewFeatureStandardizer(6).train()
    for feats, mask in _batches():
        norm(feats, mask)
    norm.eval()
    feats, mask = _batches(seed=1)[0]
    together = norm(feats, mask)
    alone = torch.cat([norm(feats[i : i + 1], mask[i : i + 1]) for i in range(len(feats))])
    torch.testing.assert_close(together, alone)
    expected = (feats - norm.running_mean) / torch.sqrt(norm.running_var + norm.eps)
    torch.testing.assert_close(together[mask], expected[mask])


def test_statistics_learned_in_training_are_saved_and_reloaded(tmp_path):
    model = tiny_profvlm()
    norm = model.model.multi_modal_projector.feature_norm
    with torch.no_grad():
        norm.running_mean.copy_(torch.linspace(-1, 1, norm.running_mean.numel()))
        norm.running_var.copy_(torch.linspace(0.5, 2, norm.running_var.numel()))
        norm.num_batches_tracked.fill_(7)
    model.save_pretrained(tmp_path)
    loaded = ProfVLMForConditionalGeneration.from_pretrained(tmp_path).model.multi_modal_projector.feature_norm
    torch.testing.assert_close(loaded.running_mean, norm.running_mean)
    torch.testing.assert_close(loaded.running_var, norm.running_var)
    assert int(loaded.num_batches_tracked) == 7


def test_a_new_model_starts_from_the_identity():
    norm = tiny_profvlm(seed=3).model.multi_modal_projector.feature_norm
    assert (norm.running_mean == 0).all() and (norm.running_var == 1).all() and int(norm.num_batches_tracked) == 0
