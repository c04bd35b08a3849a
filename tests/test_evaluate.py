"""[training] evaluation: metrics.json keys and values against independent computations, PNGs, view-setting
masking, and our offline `evaluate` metric modules."""
import json

import numpy as np
import pytest
import torch

from modeling_profvlm.configuration_profvlm import PROFICIENCY_LABELS
from training.evaluate_profvlm import compute_metrics, write_outputs
from training.evaluation_predictions import VIEW_SETTINGS, TakePredictions, predict_takes, view_setting_mask
from training.evaluation_metrics import label_metrics
from training.metrics import LOCAL_METRICS, hub_offline, load_metric, local_metric_path

NOV, EARLY, INTER, LATE = PROFICIENCY_LABELS
VIEWS = ["ego", "exo1", "exo2", "exo3", "exo4"]
METRICS_KEYS = {"accuracy", "macro_f1", "per_scenario", "per_view_setting", "feedback",
                "generation_label_accuracy", "num_samples"}


def hand_built_predictions() -> TakePredictions:
    """Eight takes in two scenarios with known answers in every view setting."""
    refs = [NOV, NOV, EARLY, INTER, INTER, LATE, LATE, EARLY]
    preds = TakePredictions(
        take_uids=[f"t{i}" for i in range(8)],
        scenarios=["Cooking"] * 3 + ["Basketball"] * 5,
        references=refs,
        predictions={
            "ego_exos": [NOV, EARLY, EARLY, INTER, LATE, LATE, LATE, NOV],  # 5/8 right
            "ego": [NOV, NOV, None, INTER, INTER, LATE, INTER, EARLY],  # take 2 has no ego view: 6/7
            "exos": [EARLY, EARLY, EARLY, EARLY, EARLY, EARLY, EARLY, EARLY],  # 2/8
        },
        generated_labels=[NOV, None, EARLY, "Intermediate Expert", None, LATE, EARLY, EARLY],  # 5/8
        feedback={f"t{i}": f"the performer moves {'smoothly' if i % 2 else 'erratically'} with steady rhythm"
                  for i in range(8)},
    )
    return preds


COMMENTARY = [  # take x expert rows; t1 has two experts, t5 none
    {"take_uid": "t0", "feedback": "the performer moves erratically and loses rhythm"},
    {"take_uid": "t1", "feedback": "the performer moves smoothly with a steady rhythm"},
    {"take_uid": "t1", "feedback": "smooth and confident movement"},
    {"take_uid": "t2", "feedback": "hesitant steps, erratic pace"},
]


def manual_macro_f1(refs, preds):
    scores = []
    for label in sorted(set(refs) | set(preds)):
        tp = sum(r == p == label for r, p in zip(refs, preds))
        fp = sum(p == label != r for r, p in zip(refs, preds))
        fn = sum(r == label != p for r, p in zip(refs, preds))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores)


def test_label_metrics_match_independent_computation():
    preds = hand_built_predictions()
    main = preds.predictions["ego_exos"]
    got = label_metrics(preds.references, main, preds.scenarios, PROFICIENCY_LABELS)
    assert got["accuracy"] == pytest.approx(5 / 8)
    assert got["macro_f1"] == pytest.approx(manual_macro_f1(preds.references, main))
    assert got["per_scenario"] == {"Basketball": pytest.approx(3 / 5), "Cooking": pytest.approx(2 / 3)}
    expected = np.zeros((4, 4), dtype=int)
    for r, p in zip(preds.references, main):
        expected[PROFICIENCY_LABELS.index(r), PROFICIENCY_LABELS.index(p)] += 1
    assert got["confusion_matrix"] == expected.tolist()


def test_label_metrics_reject_unknown_labels():
    with pytest.raises(ValueError, match="Expert Plus"):
        label_metrics([NOV], ["Expert Plus"], ["Cooking"], PROFICIENCY_LABELS)


def test_metrics_json_has_the_issue_keys_and_independent_values(tmp_path):
    from rouge_score import rouge_scorer
    from sacrebleu.metrics import BLEU

    preds = hand_built_predictions()
    metrics, confusion = compute_metrics(preds, COMMENTARY, PROFICIENCY_LABELS)
    assert set(metrics) == METRICS_KEYS
    assert set(metrics["per_view_setting"]) == set(VIEW_SETTINGS)
    assert metrics["num_samples"] == 8
    assert metrics["accuracy"] == pytest.approx(5 / 8) == metrics["per_view_setting"]["ego_exos"]
    assert metrics["per_view_setting"]["ego"] == pytest.approx(6 / 7)  # the take without ego is not counted
    assert metrics["per_view_setting"]["exos"] == pytest.approx(2 / 8)
    assert metrics["generation_label_accuracy"] == pytest.approx(5 / 8)  # None counts as wrong
    assert set(metrics["feedback"]) == {"rouge_l", "bleu"}  # no BERTScore model given

    hyps = [preds.feedback[row["take_uid"]] for row in COMMENTARY]
    refs = [row["feedback"] for row in COMMENTARY]
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    rouge_l = np.mean([scorer.score(r, h)["rougeL"].fmeasure for h, r in zip(hyps, refs)])
    assert metrics["feedback"]["rouge_l"] == pytest.approx(rouge_l)
    assert metrics["feedback"]["bleu"] == pytest.approx(BLEU().corpus_score(hyps, [refs]).score / 100)

    write_outputs(metrics, confusion, preds, PROFICIENCY_LABELS, tmp_path)
    assert json.loads((tmp_path / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    for name in ("confusion_matrix.png", "per_scenario.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name


def test_view_setting_mask_keeps_only_the_setting_views():
    mask = torch.tensor([[1, 1, 1, 0, 1], [0, 1, 1, 1, 1]])
    assert view_setting_mask(mask, VIEWS, "ego").tolist() == [[1, 0, 0, 0, 0], [0, 0, 0, 0, 0]]
    assert view_setting_mask(mask, VIEWS, "exos").tolist() == [[0, 1, 1, 0, 1], [0, 1, 1, 1, 1]]
    assert view_setting_mask(mask, VIEWS, "ego_exos").tolist() == mask.tolist()
    with pytest.raises(ValueError, match="ego_only"):
        view_setting_mask(mask, VIEWS, "ego_only")


def test_metric_modules_load_offline_and_match_the_libraries():
    from rouge_score import rouge_scorer
    from sacrebleu.metrics import BLEU

    assert hub_offline(), "conftest sets HF_HUB_OFFLINE=1"
    hyps = ["the cat sat on the mat", "a quick brown fox jumps"]
    refs = ["the cat is on the mat", "the quick brown fox jumped"]
    for name in LOCAL_METRICS:
        assert (local_metric_path(name) / f"{name}.py").is_file()
    rouge = load_metric("rouge").compute(predictions=hyps, references=refs, rouge_types=["rougeL"], use_aggregator=False)
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    assert rouge["rougeL"] == pytest.approx([scorer.score(r, h)["rougeL"].fmeasure for h, r in zip(hyps, refs)])
    bleu = load_metric("sacrebleu").compute(predictions=hyps, references=[[r] for r in refs])
    assert bleu["score"] == pytest.approx(BLEU().corpus_score(hyps, [refs]).score)
    with pytest.raises(ValueError, match="no_such_metric"):
        local_metric_path("no_such_metric")


def build_tiny_bert(out):
    """A 2-layer random BERT and a WordPiece tokenizer saved like a Hub model folder (no Hub needed)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, BertTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator([row["feedback"] for row in COMMENTARY] * 3,
                            trainer=trainers.WordPieceTrainer(vocab_size=150, special_tokens=specials))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    fast = BertTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                             sep_token="[SEP]", mask_token="[MASK]", model_max_length=64)
    fast.save_pretrained(out)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(fast), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(out)
    return out


def test_bertscore_f1_with_a_local_model(tmp_path):
    import bert_score

    model_dir = build_tiny_bert(tmp_path / "tiny-bert")
    preds = hand_built_predictions()
    metrics, _ = compute_metrics(preds, COMMENTARY, PROFICIENCY_LABELS, bertscore_model=str(model_dir))
    assert set(metrics["feedback"]) == {"rouge_l", "bleu", "bertscore_f1"}
    hyps = [preds.feedback[row["take_uid"]] for row in COMMENTARY]
    _, _, f1 = bert_score.score(hyps, [row["feedback"] for row in COMMENTARY], model_type=str(model_dir), num_layers=2)
    assert metrics["feedback"]["bertscore_f1"] == pytest.approx(f1.mean().item(), abs=1e-6)
    assert 0.0 < metrics["feedback"]["bertscore_f1"] <= 1.0


# ------------------------------------------------------------------------------------- with a tiny model and tree
@pytest.fixture(scope="module")
def tiny_model_and_rows(tiny_checkpoint, tmp_path_factory):
    """The tiny checkpoint (model, processor) and the labelled validation rows of the shared synthetic tree."""
    from transformers import AutoModel, AutoProcessor

    import modeling_profvlm  # noqa: F401  (Auto classes)
    import processing.processing_profvlm  # noqa: F401
    from tests.training_helpers import synthetic_tree
    from training.evaluate_profvlm import load_rows

    tree = synthetic_tree(tmp_path_factory)
    model = AutoModel.from_pretrained(tiny_checkpoint).eval()
    return model, AutoProcessor.from_pretrained(tiny_checkpoint), load_rows(tree, "demonstrator", "validation")


def test_view_settings_really_mask_views(tiny_model_and_rows):
    """Ego probabilities ignore the exo features and Exos probabilities ignore the ego features."""
    model, processor, rows = tiny_model_and_rows
    g = torch.Generator().manual_seed(0)
    dim, views = model.config.vision_config.hidden_size, model.config.num_views
    base = {r["take_uid"]: (torch.randn(views, dim, generator=g), torch.ones(views, dtype=torch.long)) for r in rows}

    def probabilities(change_view: slice) -> dict:
        cache = {}
        for uid, (features, mask) in base.items():
            features = features.clone()
            features[change_view] = torch.randn(features[change_view].shape, generator=g) * 5
            cache[uid] = (features, mask)
        return predict_takes(model, processor, rows, cache, batch_size=3, generate=False).probabilities

    reference, exo_changed, ego_changed = probabilities(slice(0, 0)), probabilities(slice(1, 5)), probabilities(slice(0, 1))
    # Relative comparison: a random tiny LM puts ~all mass on one label, so changes show in the small probabilities.
    close = lambda a, b: np.allclose(np.array(a), np.array(b), rtol=1e-5, atol=0)  # noqa: E731
    assert close(exo_changed["ego"], reference["ego"]) and not close(exo_changed["exos"], reference["exos"])
    assert close(ego_changed["exos"], reference["exos"]) and not close(ego_changed["ego"], reference["ego"])
    assert not close(exo_changed["ego_exos"], reference["ego_exos"])
    assert not close(ego_changed["ego_exos"], reference["ego_exos"])


def test_takes_without_the_views_of_a_setting_are_left_out(tiny_model_and_rows):
    model, processor, rows = tiny_model_and_rows
    dim = model.config.vision_config.hidden_size
    no_ego = torch.tensor([0, 1, 1, 1, 1])
    cache = {r["take_uid"]: (torch.randn(5, dim) * no_ego[:, None], no_ego if i == 0 else torch.ones(5, dtype=torch.long))
             for i, r in enumerate(rows)}
    preds = predict_takes(model, processor, rows, cache, batch_size=2, generate=False)
    assert preds.predictions["ego"][0] is None and preds.probabilities["ego"][0] is None
    assert all(p is not None for p in preds.predictions["ego"][1:] + preds.predictions["exos"])
    for probs in preds.probabilities["ego_exos"]:
        assert sum(probs) == pytest.approx(1.0, abs=1e-5)


def test_pixels_and_cached_features_give_the_same_predictions(tiny_model_and_rows, tiny_checkpoint, tmp_path_factory):
    """Evaluation from videos (processor + tower) equals evaluation from the feature cache of the same tower."""
    from tests.training_helpers import synthetic_tree, tiny_feature_cache
    from training.evaluate_profvlm import open_feature_cache

    model, processor, rows = tiny_model_and_rows
    cache_dir = tiny_feature_cache(tmp_path_factory, tiny_checkpoint, synthetic_tree(tmp_path_factory))
    cache = open_feature_cache(cache_dir, model, processor)
    from_cache = predict_takes(model, processor, rows, cache, batch_size=4, max_new_tokens=4)
    from_pixels = predict_takes(model, processor, rows, None, batch_size=4, max_new_tokens=4)
    for setting in VIEW_SETTINGS:
        np.testing.assert_allclose(from_pixels.probabilities[setting], from_cache.probabilities[setting], atol=1e-4)
    assert from_pixels.generated_labels == from_cache.generated_labels
    assert set(from_pixels.feedback) == {r["take_uid"] for r in rows}


def test_hub_metric_falls_back_to_the_local_module_when_the_hub_is_unreachable(caplog):
    """prefer_hub=True tries `evaluate.load("rouge")` first; offline that fails and our module is used instead."""
    metric = load_metric("rouge", prefer_hub=True)
    assert "falling back" in caplog.text or "unavailable" in caplog.text
    assert metric.compute(predictions=["a b c"], references=["a b d"], rouge_types=["rougeL"])["rougeL"] == pytest.approx(2 / 3)
