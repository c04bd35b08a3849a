"""[training] end to end on a small synthetic tree with the tiny tower and tiny LM: extract features -> train 2 steps
-> evaluate (metrics.json + both PNGs); the merged checkpoint reloads with AutoModel and predicts like the in-memory
model that was trained."""
import json

import numpy as np
import pytest

from modeling_profvlm.profvlm_facts import PROFICIENCY_LABELS

from tests.training_helpers import synthetic_tree

pytestmark = pytest.mark.slow


def test_extract_train_evaluate_and_reload(tiny_checkpoint, tmp_path_factory, tmp_path, one_thread):
    from transformers import AutoModel, AutoProcessor

    import modeling_profvlm  # noqa: F401  (registers the Auto classes)
    from training import evaluate_profvlm, extract_features
    from training.evaluation_metrics import accuracy
    from training.evaluation_predictions import VIEW_SETTINGS, predict_takes
    from training.sft import build_trainer, parse_args, save_final

    tree = synthetic_tree(tmp_path_factory)
    cache_dir, out = tmp_path / "features", tmp_path / "sft"

    # 1. feature cache of every labelled take
    extract_features.main(["--model", str(tiny_checkpoint), "--data_dir", str(tree), "--output_dir", str(cache_dir),
                           "--dtype", "float32"])
    assert (cache_dir / "manifest.json").is_file()

    # 2. two LoRA steps on the cached features
    script_args, args = parse_args([
        "--model", str(tiny_checkpoint), "--data_dir", str(tree), "--features", str(cache_dir), "--output_dir", str(out),
        "--max_steps", "2", "--per_device_train_batch_size", "2", "--learning_rate", "1e-2", "--eval_strategy", "no",
        "--save_strategy", "no", "--report_to", "none", "--seed", "0"])
    trainer = build_trainer(script_args, args)
    trainer.train()
    processor = trainer.processing_class
    rows = evaluate_profvlm.load_rows(tree, "demonstrator", "validation", PROFICIENCY_LABELS)
    cache = evaluate_profvlm.open_feature_cache(cache_dir, trainer.model.get_base_model(), processor)
    in_memory = predict_takes(trainer.model.eval(), processor, rows, cache, batch_size=4, max_new_tokens=6)
    final = save_final(trainer, out, tiny_checkpoint)  # merges the adapter into the model and writes OUT/final

    # 3. evaluation CLI on the merged checkpoint
    eval_dir = tmp_path / "eval"
    metrics = evaluate_profvlm.main(["--model", str(final), "--data_dir", str(tree), "--split", "validation",
                                     "--output_dir", str(eval_dir), "--features", str(cache_dir),
                                     "--max_new_tokens", "6", "--batch_size", "4"])
    written = json.loads((eval_dir / "metrics.json").read_text())
    assert written == json.loads(json.dumps(metrics))
    assert {"accuracy", "macro_f1", "per_scenario", "per_view_setting", "feedback", "generation_label_accuracy",
            "num_samples", "mean_absolute_error", "within_one_accuracy", "quadratic_weighted_kappa",
            "expected_calibration_error", "provenance"} <= set(written)
    assert set(written["per_view_setting"]) == set(VIEW_SETTINGS) and {"rouge_l", "bleu"} <= set(written["feedback"])
    assert written["num_samples"] == len(rows) > 0
    assert set(written["per_scenario"]) == {r["scenario"] for r in rows}
    for name in ("confusion_matrix.png", "per_scenario.png"):
        assert (eval_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name

    # 4. the merged checkpoint, reloaded from disk, predicts like the in-memory (unmerged LoRA) model
    reloaded = AutoModel.from_pretrained(final).eval()
    again = predict_takes(reloaded, AutoProcessor.from_pretrained(final), rows, cache, batch_size=4, max_new_tokens=6)
    for setting in VIEW_SETTINGS:
        assert again.predictions[setting] == in_memory.predictions[setting], setting
        np.testing.assert_allclose(again.probabilities[setting], in_memory.probabilities[setting], rtol=1e-4, atol=1e-6)
    assert again.generated_labels == in_memory.generated_labels
    assert again.feedback == in_memory.feedback
    assert written["accuracy"] == pytest.approx(accuracy(in_memory.references, in_memory.predictions["ego_exos"]))
