"""[training] evaluation: metrics.json keys and values against independent computations (ordinal and calibration
metrics included), predictions.jsonl reproducing metrics.json, provenance, the feedback word limit travelling with the
checkpoint, folder datasets' view settings, PNGs, view-setting masking, and our offline `evaluate` metric modules."""
import hashlib
import json
import logging
from datetime import datetime

import numpy as np
import pytest

from modeling_profvlm.answer import ProfVLMAnswer
import torch

from modeling_profvlm.configuration_profvlm import PROFICIENCY_LABELS
from tests.evaluation_fixtures import (
    FOLDER_LABELS,
    FOLDER_TAKES,
    FOLDER_VIEWS,
    evaluate,
    folder_checkpoint,
    write_folder_dataset,
)
from training.evaluate_profvlm import (
    compute_metrics,
    feedback_from_predictions,
    metrics_from_predictions,
    read_predictions,
    write_outputs,
)
from training.evaluation_predictions import (
    VIEW_SETTINGS,
    TakePredictions,
    predict_takes,
    view_setting_mask,
    view_settings_for,
)
from training.evaluation_metrics import label_metrics
from training.metrics import LOCAL_METRICS, hub_offline, load_metric, local_metric_path

NOV, EARLY, INTER, LATE = PROFICIENCY_LABELS
VIEWS = ["ego", "exo1", "exo2", "exo3", "exo4"]
METRICS_KEYS = {"accuracy", "macro_f1", "per_scenario", "per_view_setting", "feedback",
                "generation_label_accuracy", "num_samples",
                "mean_absolute_error", "within_one_accuracy", "quadratic_weighted_kappa", "expected_calibration_error",
                "per_view_setting_metrics", "main_view_setting", "reliability_bins"}
# The figures metrics_from_predictions recomputes: all of metrics.json but the text metrics and the provenance.
LABEL_KEYS = METRICS_KEYS - {"feedback"}
EGO_EXOS = [NOV, EARLY, EARLY, INTER, LATE, LATE, LATE, NOV]  # 5/8 right
EGO_EXOS_CONFIDENCE = [0.95, 0.55, 0.72, 0.81, 0.45, 0.99, 0.66, 0.38]


def probabilities_for(predicted: list, confidence: list[float]) -> list:
    """Per take: `confidence` on the predicted label, the rest spread evenly (None where nothing was predicted)."""
    rows = []
    for label, c in zip(predicted, confidence):
        rows.append(None if label is None else
                    [c if name == label else (1 - c) / (len(PROFICIENCY_LABELS) - 1) for name in PROFICIENCY_LABELS])
    return rows


def hand_built_predictions() -> TakePredictions:
    """Eight takes in two scenarios with known answers and label probabilities in every view setting."""
    refs = [NOV, NOV, EARLY, INTER, INTER, LATE, LATE, EARLY]
    predictions = {
        "ego": [NOV, NOV, None, INTER, INTER, LATE, INTER, EARLY],  # take 2 has no ego view: 6/7
        "exos": [EARLY, EARLY, EARLY, EARLY, EARLY, EARLY, EARLY, EARLY],  # 2/8
        "ego_exos": EGO_EXOS,
    }
    confidence = {"ego": [0.6] * 8, "exos": [0.3 + 0.05 * i for i in range(8)], "ego_exos": EGO_EXOS_CONFIDENCE}
    preds = TakePredictions(
        take_uids=[f"t{i}" for i in range(8)],
        scenarios=["Cooking"] * 3 + ["Basketball"] * 5,
        references=refs,
        predictions=predictions,
        probabilities={s: probabilities_for(p, confidence[s]) for s, p in predictions.items()},
        generated_labels=[NOV, None, EARLY, "Intermediate Expert", None, LATE, EARLY, EARLY],  # 5/8
        answers={f"t{i}": ProfVLMAnswer(
            EGO_EXOS[i], dict(zip(PROFICIENCY_LABELS, probabilities_for(EGO_EXOS, EGO_EXOS_CONFIDENCE)[i])),
            feedback=f"the performer moves {'smoothly' if i % 2 else 'erratically'} with steady rhythm")
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


def manual_quadratic_kappa(refs, preds, labels):
    """Cohen's kappa with weights (i - j)^2 / (K - 1)^2, from its definition."""
    k, n = len(labels), len(refs)
    observed = np.zeros((k, k))
    for r, p in zip(refs, preds):
        observed[labels.index(r), labels.index(p)] += 1
    expected = np.outer(observed.sum(1), observed.sum(0)) / n
    weights = np.array([[(i - j) ** 2 / (k - 1) ** 2 for j in range(k)] for i in range(k)])
    return 1 - (weights * observed).sum() / (weights * expected).sum()


def test_ordinal_and_calibration_metrics_match_independent_computation():
    preds = hand_built_predictions()
    metrics, _ = compute_metrics(preds, COMMENTARY, PROFICIENCY_LABELS)
    steps = [abs(PROFICIENCY_LABELS.index(r) - PROFICIENCY_LABELS.index(p)) for r, p in zip(preds.references, EGO_EXOS)]
    assert metrics["mean_absolute_error"] == pytest.approx(3 / 8) == pytest.approx(np.mean(steps))
    assert metrics["within_one_accuracy"] == pytest.approx(1.0)
    assert metrics["quadratic_weighted_kappa"] == pytest.approx(
        manual_quadratic_kappa(preds.references, EGO_EXOS, PROFICIENCY_LABELS))
    # ECE by hand: bins 3..9 hold one take each except bin 9 (0.95 and 0.99, both right); |accuracy - confidence|
    # weighted by 1/8 per take: (0.06 + 0.55 + 0.28 + 0.19 + 0.45 + 0.34 + 0.38) / 8
    assert metrics["expected_calibration_error"] == pytest.approx(2.25 / 8)
    assert [b["count"] for b in metrics["reliability_bins"]] == [0, 0, 0, 1, 1, 1, 1, 1, 1, 2]
    # per view setting: each setting's own figures, over the takes that have its views
    ego = metrics["per_view_setting_metrics"]["ego"]
    assert ego["num_samples"] == 7 and ego["accuracy"] == pytest.approx(6 / 7) == metrics["per_view_setting"]["ego"]
    assert ego["mean_absolute_error"] == pytest.approx(1 / 7)  # take 6: Late predicted Intermediate
    assert ego["expected_calibration_error"] == pytest.approx(abs(6 / 7 - 0.6))
    exos = metrics["per_view_setting_metrics"]["exos"]
    assert exos["quadratic_weighted_kappa"] == pytest.approx(0.0)  # one constant prediction: chance agreement
    assert exos["within_one_accuracy"] == pytest.approx(6 / 8)  # every take but the two Late ones
    main = metrics["per_view_setting_metrics"]["ego_exos"]
    assert {k: main[k] for k in ("accuracy", "mean_absolute_error", "quadratic_weighted_kappa")} == {
        k: metrics[k] for k in ("accuracy", "mean_absolute_error", "quadratic_weighted_kappa")}


def test_predictions_jsonl_reproduces_every_label_figure_of_metrics_json(tmp_path):
    preds = hand_built_predictions()
    metrics, confusion = compute_metrics(preds, COMMENTARY, PROFICIENCY_LABELS)
    write_outputs(metrics, confusion, preds, PROFICIENCY_LABELS, tmp_path, COMMENTARY)
    lines = read_predictions(tmp_path / "predictions.jsonl")
    assert len(lines) == 8 * len(VIEW_SETTINGS)  # one line per take and view setting
    first = next(line for line in lines if line["take_uid"] == "t1" and line["view_setting"] == "ego_exos")
    assert first["reference"] == NOV and first["proficiency"] == EARLY
    assert first["probabilities"][EARLY] == pytest.approx(0.55) and set(first["probabilities"]) == set(PROFICIENCY_LABELS)
    assert first["reference_feedback"] == [row["feedback"] for row in COMMENTARY if row["take_uid"] == "t1"]
    assert first["feedback"] == preds.feedback["t1"]
    missing = next(line for line in lines if line["take_uid"] == "t2" and line["view_setting"] == "ego")
    assert missing["proficiency"] is None and missing["probabilities"] is None and missing["feedback"] is None
    written = json.loads((tmp_path / "metrics.json").read_text())
    recomputed = metrics_from_predictions(tmp_path / "predictions.jsonl", PROFICIENCY_LABELS)
    assert set(recomputed) == LABEL_KEYS
    assert {k: written[k] for k in LABEL_KEYS} == recomputed
    # a changed line changes the figures: the file really is where they come from
    lines[0]["proficiency"] = LATE if lines[0]["proficiency"] != LATE else NOV
    assert metrics_from_predictions(lines, PROFICIENCY_LABELS) != recomputed
    assert (tmp_path / "reliability_diagram.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_metrics_json_has_the_issue_keys_and_independent_values(tmp_path):
    from rouge_score import rouge_scorer
    from sacrebleu.metrics import BLEU

    preds = hand_built_predictions()
    metrics, confusion = compute_metrics(preds, COMMENTARY, PROFICIENCY_LABELS)
    assert set(metrics) == METRICS_KEYS
    assert set(metrics["per_view_setting"]) == set(VIEW_SETTINGS) == set(metrics["per_view_setting_metrics"])
    assert metrics["main_view_setting"] == "ego_exos"
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
    for name in ("confusion_matrix.png", "per_scenario.png", "reliability_diagram.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name


def test_view_setting_mask_keeps_only_the_setting_views():
    mask = torch.tensor([[1, 1, 1, 0, 1], [0, 1, 1, 1, 1]])
    assert view_setting_mask(mask, VIEWS, "ego").tolist() == [[1, 0, 0, 0, 0], [0, 0, 0, 0, 0]]
    assert view_setting_mask(mask, VIEWS, "exos").tolist() == [[0, 1, 1, 0, 1], [0, 1, 1, 1, 1]]
    assert view_setting_mask(mask, VIEWS, "ego_exos").tolist() == mask.tolist()
    with pytest.raises(ValueError, match="ego_only"):
        view_setting_mask(mask, VIEWS, "ego_only")
    # a folder dataset's settings: every view, or one view by its name
    two = torch.tensor([[1, 1], [1, 0]])
    assert view_setting_mask(two, FOLDER_VIEWS, "all").tolist() == two.tolist()
    assert view_setting_mask(two, FOLDER_VIEWS, "front").tolist() == [[1, 0], [1, 0]]
    assert view_setting_mask(two, FOLDER_VIEWS, "side").tolist() == [[0, 1], [0, 0]]
    assert view_settings_for("folder", FOLDER_VIEWS) == ("all", "front", "side")
    assert view_settings_for("egoexo4d", VIEWS) == VIEW_SETTINGS
    with pytest.raises(ValueError, match="'all'"):
        view_settings_for("folder", ["all", "side"])


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
    return model, AutoProcessor.from_pretrained(tiny_checkpoint), load_rows(tree, "demonstrator", "validation", PROFICIENCY_LABELS)


class InMemoryCache(dict):
    """What evaluation needs of a FeatureCache: take_uid -> (features, view_mask), the mask as given."""

    def features_of(self, take_uid, views):
        return self[take_uid]

    def stack(self, take_uids, views):
        loaded = [self[uid] for uid in take_uids]  # one clip per view: no padding, no time_mask
        return torch.stack([f for f, _ in loaded]), torch.stack([m for _, m in loaded]), None

    def prompt_kwargs(self, take_uids):
        return {}  # one temporal token: the prompt states no times

    def times_of(self, take_uid):
        return None  # not stored: the take's length is unknown


def test_view_settings_really_mask_views(tiny_model_and_rows):
    """Ego probabilities ignore the exo features and Exos probabilities ignore the ego features."""
    model, processor, rows = tiny_model_and_rows
    g = torch.Generator().manual_seed(0)
    dim, views = model.config.vision_config.hidden_size, model.config.num_views
    base = {r["take_uid"]: (torch.randn(views, dim, generator=g), torch.ones(views, dtype=torch.long)) for r in rows}

    def probabilities(change_view: slice) -> dict:
        cache = InMemoryCache()
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
    cache = InMemoryCache({r["take_uid"]: (torch.randn(5, dim) * no_ego[:, None],
                                           no_ego if i == 0 else torch.ones(5, dtype=torch.long))
                           for i, r in enumerate(rows)})
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


def _sha256_of(root, names):
    """Independent fingerprint: sha256 over each file's relative name and bytes, names sorted."""
    digest = hashlib.sha256()
    for name in sorted(names):
        digest.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    return digest.hexdigest()


def test_evaluation_writes_provenance_and_predictions_that_reproduce_metrics_json(tiny_checkpoint, tree, feature_cache,
                                                                                  tmp_path, one_thread):
    from processing.processing_profvlm import ProfVLMProcessor
    from training.feature_cache import sampling_spec

    out = tmp_path / "eval"
    metrics = evaluate(tiny_checkpoint, tree, out, "--features", str(feature_cache))
    written = json.loads((out / "metrics.json").read_text())
    assert written == json.loads(json.dumps(metrics)) and set(written) == METRICS_KEYS | {"provenance"}
    lines = read_predictions(out / "predictions.jsonl")
    takes = {line["take_uid"] for line in lines}
    assert len(takes) == written["num_samples"] > 0
    assert sorted((line["take_uid"], line["view_setting"]) for line in lines) == sorted(
        (uid, s) for uid in takes for s in VIEW_SETTINGS)
    prov = written["provenance"]
    assert {k: written[k] for k in LABEL_KEYS} == metrics_from_predictions(out / "predictions.jsonl", prov["labels"])
    recomputed_feedback = feedback_from_predictions(out / "predictions.jsonl")
    assert recomputed_feedback == pytest.approx(written["feedback"], abs=1e-9)
    assert sum(len(line.get("reference_feedback", [])) for line in lines) > 0  # scored pairs, not two empty sets
    perfect = [{**line, "reference_feedback": [line["feedback"]] * len(line["reference_feedback"])}
               if "reference_feedback" in line and line["feedback"] else line for line in lines]
    assert feedback_from_predictions(perfect)["rouge_l"] > recomputed_feedback["rouge_l"]  # it reads the references

    data = prov["dataset"]
    assert data["kind"] == "egoexo4d" and data["synthetic"] is True and "synthetic" in data["name"].lower()
    assert data["builder"] == "dataset_scripts/egoexo4d_proficiency.py" and "demonstrator" in data["config"]
    assert data["takes"]["validation"] == written["num_samples"] and data["takes"]["train"] > 0
    assert prov["split"] == data["split"] == "validation"
    names = ["takes.json"] + sorted(f"annotations/{p.name}" for p in (tree / "annotations").glob("*.json"))
    assert data["annotation_files"] == names
    assert data["annotation_sha256"] == _sha256_of(tree, names)
    checkpoint = prov["checkpoint"]
    assert checkpoint["path"] == str(tiny_checkpoint.absolute()) and checkpoint["vision_tower_random_init"] is True
    assert checkpoint["weights_sha256"] == _sha256_of(tiny_checkpoint, ["model.safetensors"])
    processor = ProfVLMProcessor.from_pretrained(tiny_checkpoint)
    assert prov["frame_sampling"] == {**sampling_spec(processor), "feature_cache": str(feature_cache.absolute())}
    # the base checkpoint records no training value, so the builder default applies and says so
    assert (prov["max_feedback_words"], prov["max_feedback_words_source"]) == (200, "default")
    assert prov["versions"]["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert set(prov["versions"]) == {"torch", "transformers", "datasets", "trl", "peft"}
    assert datetime.fromisoformat(prov["date"]).utcoffset().total_seconds() == 0
    assert (out / "reliability_diagram.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_feedback_word_limit_travels_with_the_checkpoint(tiny_checkpoint, tree, feature_cache, tmp_path, caplog,
                                                             one_thread):
    from training.sft import main as sft_main
    from training.sft_data import load_split

    final = sft_main([str(x) for x in (
        "--model", tiny_checkpoint, "--data_dir", tree, "--features", feature_cache, "--output_dir", tmp_path / "run",
        "--max_feedback_words", 11, "--max_steps", 2, "--per_device_train_batch_size", 2, "--eval_split", "none",
        "--save_strategy", "no", "--report_to", "none", "--seed", 0)])
    config = json.loads((final / "config.json").read_text())
    assert config["max_feedback_words"] == 11 and config["proficiency_labels"] == list(PROFICIENCY_LABELS)
    trained_on = config["training_data"]
    assert trained_on["kind"] == "egoexo4d" and trained_on["synthetic"] is True and trained_on["split"] == "train"
    assert trained_on["config"] == "demonstrator_commentary" and trained_on["takes"]["train"] > 0
    assert trained_on["labels"] == list(PROFICIENCY_LABELS)
    uncut = load_split(str(tree), "demonstrator_commentary", "validation")["feedback"]
    assert max(len(text.split()) for text in uncut) > 11  # so the limit has something to cut

    def reference_lengths(out):
        lines = read_predictions(out / "predictions.jsonl")
        return [len(text.split()) for line in lines for text in line.get("reference_feedback", [])]

    with caplog.at_level(logging.INFO):
        metrics = evaluate(final, tree, tmp_path / "eval", "--features", str(feature_cache))  # no flag
    prov = metrics["provenance"]
    assert (prov["max_feedback_words"], prov["max_feedback_words_source"]) == (11, "checkpoint")
    assert prov["dataset"]["annotation_sha256"] == trained_on["annotation_sha256"]
    assert prov["checkpoint"]["training_data"] == trained_on
    lengths = reference_lengths(tmp_path / "eval")
    assert lengths and max(lengths) <= 11 < max(len(text.split()) for text in uncut)
    assert "the checkpoint's max_feedback_words" in caplog.text

    caplog.clear()
    with caplog.at_level(logging.INFO):  # a flag still wins, and the log says it overrides the checkpoint
        metrics = evaluate(final, tree, tmp_path / "eval5", "--features", str(feature_cache),
                           "--max_feedback_words", "5")
    assert (metrics["provenance"]["max_feedback_words"], metrics["provenance"]["max_feedback_words_source"]) == (5, "flag")
    assert max(reference_lengths(tmp_path / "eval5")) <= 5
    assert "--max_feedback_words 5 overrides the checkpoint's 11" in caplog.text


def test_the_moment_word_limit_travels_with_the_checkpoint(tiny_checkpoint, tree, feature_cache, tmp_path, one_thread):
    """A checkpoint trained with --max_moment_words N (config.max_moment_words) is scored against reference moments
    cut the same way: every remark at most N words, a prefix of the annotated one, at the annotated time."""
    import shutil

    from training.sft_data import load_split

    checkpoint = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, checkpoint)
    config = json.loads((checkpoint / "config.json").read_text())
    (checkpoint / "config.json").write_text(json.dumps({**config, "max_moment_words": 2}))
    uncut = {}  # take -> each expert's annotated moments
    for row in load_split(str(tree), "demonstrator_moments", "validation"):
        if row["moments"]:
            uncut.setdefault(row["take_uid"], []).append(row["moments"])
    assert max(len(m["text"].split()) for experts in uncut.values() for e in experts for m in e) > 2  # to cut
    evaluate(checkpoint, tree, tmp_path / "eval", "--features", str(feature_cache), "--moments")
    lines = [line for line in read_predictions(tmp_path / "eval" / "predictions.jsonl")
             if any(line.get("reference_moments", []))]  # the all-views lines of takes with moments
    assert {line["take_uid"] for line in lines} == set(uncut)

    def by_times(experts):
        return sorted((e for e in experts if e), key=lambda e: [m["time"] for m in e])

    for line in lines:
        scored, annotated = by_times(line["reference_moments"]), by_times(uncut[line["take_uid"]])
        assert len(scored) == len(annotated)
        for cut_expert, full_expert in zip(scored, annotated):
            assert [m["time"] for m in cut_expert] == pytest.approx([m["time"] for m in full_expert])
            for cut, full in zip(cut_expert, full_expert):
                assert 0 < len(cut["text"].split()) <= 2
                assert full["text"].split()[:len(cut["text"].split())] == cut["text"].split()


def test_folder_dataset_evaluates_all_views_and_each_view_by_name(tiny_text_dir, tmp_path, one_thread):
    data = write_folder_dataset(tmp_path / "my_folder")
    checkpoint = folder_checkpoint(tiny_text_dir, tmp_path / "ckpt")
    out = tmp_path / "eval"
    metrics = evaluate(checkpoint, data, out)
    assert list(metrics["per_view_setting"]) == ["all", *FOLDER_VIEWS] and metrics["main_view_setting"] == "all"
    validation = [t for t in FOLDER_TAKES if t[1] == "validation"]
    lines = read_predictions(out / "predictions.jsonl")
    assert sorted((line["take_uid"], line["view_setting"]) for line in lines) == sorted(
        (t[0], s) for t in validation for s in ("all", *FOLDER_VIEWS))
    for line in lines:
        assert line["reference"] == next(t[2] for t in validation if t[0] == line["take_uid"])
        if line["proficiency"] is not None:
            assert line["proficiency"] in FOLDER_LABELS and list(line["probabilities"]) == FOLDER_LABELS
    no_side = next(line for line in lines if line["take_uid"] == "t6" and line["view_setting"] == "side")
    assert no_side["proficiency"] is None and no_side["probabilities"] is None  # t6 has no side video
    per_setting = metrics["per_view_setting_metrics"]
    assert [per_setting[s]["num_samples"] for s in ("all", "front", "side")] == [3, 3, 2]
    assert {k: metrics[k] for k in LABEL_KEYS} == metrics_from_predictions(out / "predictions.jsonl", FOLDER_LABELS)
    prov = metrics["provenance"]
    assert prov["labels"] == FOLDER_LABELS and prov["view_settings"] == ["all", *FOLDER_VIEWS]
    folder = prov["dataset"]
    assert folder["kind"] == "folder" and folder["synthetic"] is False and folder["name"] == "my_folder"
    assert folder["path"] == str(data.absolute()) and folder["takes"] == {"train": 3, "validation": 3}
    assert folder["annotation_files"] == ["labels.json", "metadata.jsonl"]
    assert folder["annotation_sha256"] == _sha256_of(data, ["labels.json", "metadata.jsonl"])


def test_hub_metric_falls_back_to_the_local_module_when_the_hub_is_unreachable(caplog):
    """prefer_hub=True tries `evaluate.load("rouge")` first; offline that fails and our module is used instead."""
    metric = load_metric("rouge", prefer_hub=True)
    assert "falling back" in caplog.text or "unavailable" in caplog.text
    assert metric.compute(predictions=["a b c"], references=["a b d"], rouge_types=["rougeL"])["rougeL"] == pytest.approx(2 / 3)
