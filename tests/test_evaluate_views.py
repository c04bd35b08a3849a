"""[data-views] A checkpoint built for some of EgoExo4D's views is evaluated on exactly those views."""
import json


def test_an_exo_only_checkpoint_is_evaluated_on_its_views(tiny_text_dir, tree, tmp_path):
    from profvlm.assemble import build_base_checkpoint
    from training.evaluate_profvlm import evaluate_checkpoint, load_checkpoint

    ckpt = build_base_checkpoint("random-tiny", str(tiny_text_dir), tmp_path / "ckpt", num_views=2,
                                 view_names=["exo1", "exo2"])
    model, processor = load_checkpoint(ckpt)
    metrics = evaluate_checkpoint(model, processor, tree, "validation", tmp_path / "eval", max_new_tokens=2,
                                  device="cpu", dtype="float32")
    assert metrics["provenance"]["view_settings"] == ["all", "exo1", "exo2"]
    lines = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert {line["view_setting"] for line in lines} == {"all", "exo1", "exo2"}
    assert len(lines) == 3 * metrics["num_samples"] and metrics["num_samples"] > 0
    only = evaluate_checkpoint(model, processor, tree, "validation", tmp_path / "eval2", max_new_tokens=2,
                               device="cpu", dtype="float32", views=["exo2"])
    assert only["per_view_setting"]["exo1"] is None  # no take has exo1 once only exo2 is kept
