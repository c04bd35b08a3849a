"""The model card tells the truth: model-index names the dataset the evaluation recorded (synthetic data says so in
every name and in the first paragraph, real data does not), the ordinal and calibration metrics and the reliability
diagram are in it, folder datasets get their own name, labels and views, and the licence follows the weights."""
import json
import shutil

import pytest
from huggingface_hub import ModelCard

from profvlm.card_licenses import EGOEXO4D_LICENSE_LINK, PRETRAINED_TOWER, SMOLLM2
from profvlm.cli import main
from tests.evaluation_fixtures import FOLDER_LABELS, evaluate, folder_checkpoint, non_synthetic_twin, write_folder_dataset
from training.evaluation_provenance import EGOEXO4D_NAME, SYNTHETIC_EGOEXO4D_NAME

ORDINAL_NAMES = {"mean_absolute_error": "Mean absolute error (label steps)", "within_one_accuracy": "Within-one accuracy",
                 "quadratic_weighted_kappa": "Quadratic weighted kappa",
                 "expected_calibration_error": "Expected calibration error (10 bins)"}


def first_paragraph(card: ModelCard) -> str:
    """The card's first paragraph after the title."""
    return card.text.split("# ProfVLM\n\n", 1)[1].split("\n\n", 1)[0]


def write_card(checkpoint, tmp_path, *extra) -> ModelCard:
    """`profvlm card` on a private copy of `checkpoint`, loaded back with huggingface_hub."""
    copy = shutil.copytree(checkpoint, tmp_path / "ckpt")
    assert main(["card", "--model", str(copy), *extra]) == 0
    return ModelCard.load(copy / "README.md")


@pytest.fixture(scope="module")
def synthetic_eval(tiny_checkpoint, tree, feature_cache, tmp_path_factory):
    """metrics.json (and plots) of the tiny checkpoint on the synthetic tree."""
    out = tmp_path_factory.mktemp("synthetic_eval")
    evaluate(tiny_checkpoint, tree, out, "--features", str(feature_cache))
    return out / "metrics.json"


def test_a_synthetic_evaluation_is_named_synthetic_everywhere(tiny_checkpoint, synthetic_eval, tmp_path):
    card = write_card(tiny_checkpoint, tmp_path, "--eval", str(synthetic_eval))
    metrics = json.loads(synthetic_eval.read_text())
    results = card.data.eval_results
    assert results and all("synthetic" in r.dataset_name.lower() for r in results)
    assert {r.dataset_name for r in results} == {SYNTHETIC_EGOEXO4D_NAME}
    assert SYNTHETIC_EGOEXO4D_NAME in first_paragraph(card) and "not EgoExo4D" in first_paragraph(card)
    assert "synthetic-data" in card.data.tags and "egoexo4d" not in card.data.tags
    # the ordinal and calibration metrics are in the model-index, with the measured values
    values = {r.metric_name: r.metric_value for r in results}
    for key, name in ORDINAL_NAMES.items():
        assert values[name] == pytest.approx(metrics[key]), name
        assert values[f"{name} (Ego+Exos)"] == pytest.approx(metrics["per_view_setting_metrics"]["ego_exos"][key])
    assert "![reliability diagram](reliability_diagram.png)" in card.text
    assert (tmp_path / "ckpt" / "reliability_diagram.png").read_bytes()[:4] == b"\x89PNG"
    assert "the paper's numbers, not this checkpoint's" in card.text
    # a name given on the command line cannot hide that the data is synthetic
    renamed = write_card(tiny_checkpoint, tmp_path / "renamed", "--eval", str(synthetic_eval),
                         "--dataset_name", "Basketball drills")
    assert {r.dataset_name for r in renamed.data.eval_results} == {"Basketball drills (synthetic data)"}


def test_the_same_tree_without_the_synthetic_marker_is_not_called_synthetic(tiny_checkpoint, tree, feature_cache,
                                                                            tmp_path):
    twin = non_synthetic_twin(tree, tmp_path / "egoexo")
    evaluate(tiny_checkpoint, twin, tmp_path / "eval", "--features", str(feature_cache))
    card = write_card(tiny_checkpoint, tmp_path, "--eval", str(tmp_path / "eval" / "metrics.json"))
    names = {r.dataset_name for r in card.data.eval_results}
    assert names == {EGOEXO4D_NAME} and not any("synthetic" in n.lower() for n in names)
    assert "synthetic" not in first_paragraph(card).lower()
    assert "egoexo4d" in card.data.tags and "synthetic-data" not in card.data.tags


def test_a_folder_dataset_card_has_its_name_labels_and_views(tiny_text_dir, tmp_path):
    data = write_folder_dataset(tmp_path / "rehearsals")
    checkpoint = folder_checkpoint(tiny_text_dir, tmp_path / "base")
    evaluate(checkpoint, data, tmp_path / "eval")
    card = write_card(checkpoint, tmp_path, "--eval", str(tmp_path / "eval" / "metrics.json"))
    results = card.data.eval_results
    assert {(r.dataset_name, r.dataset_type) for r in results} == {("rehearsals", "rehearsals")}
    names = {r.metric_name for r in results}
    assert {"Accuracy (All views)", "Accuracy (front)", "Accuracy (side)", "Quadratic weighted kappa (side)"} <= names
    assert ", ".join(FOLDER_LABELS) in card.text and "--view front=front.mp4" in card.text
    assert '"front": "front.mp4", "side": "side.mp4"' in card.text
    assert "synthetic" not in first_paragraph(card).lower() and "EgoExo4D" not in first_paragraph(card)
    # --dataset_name renames it in every model-index entry
    renamed = write_card(checkpoint, tmp_path / "renamed", "--eval", str(tmp_path / "eval" / "metrics.json"),
                         "--dataset_name", "Rehearsal takes 2026")
    assert {r.dataset_name for r in renamed.data.eval_results} == {"Rehearsal takes 2026"}


def _with_config(checkpoint, tmp_path, **fields):
    copy = shutil.copytree(checkpoint, tmp_path / "edited")
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, **fields}))
    return copy


SYNTHETIC_TRAINING = {"name": SYNTHETIC_EGOEXO4D_NAME, "kind": "egoexo4d", "synthetic": True, "split": "train",
                      "takes": {"train": 150}}
REAL_TRAINING = {"name": EGOEXO4D_NAME, "kind": "egoexo4d", "synthetic": False, "split": "train",
                 "takes": {"train": 1983}}


@pytest.mark.parametrize("tower, random_tower, training, expected", [
    (PRETRAINED_TOWER, False, SYNTHETIC_TRAINING, {"license": "cc-by-nc-4.0"}),  # the tower's licence rules
    ("random-tiny", True, SYNTHETIC_TRAINING, {"license": "apache-2.0"}),  # random tower, synthetic data: none added
    ("someone/my-tower", False, SYNTHETIC_TRAINING, {"license": "other", "license_name": "unknown"}),
    ("random-tiny", True, REAL_TRAINING, {"license": "other", "license_name": "ego-exo4d-license",
                                          "license_link": EGOEXO4D_LICENSE_LINK}),
    (PRETRAINED_TOWER, False, None, {"license": "other", "license_name": "unknown"}),  # unrecorded training data
])
def test_the_card_licence_is_the_most_restrictive_component(tiny_checkpoint, tmp_path, tower, random_tower, training,
                                                            expected):
    checkpoint = _with_config(tiny_checkpoint, tmp_path, vision_tower_source=tower, vision_tower_random_init=random_tower,
                              language_model_source=SMOLLM2, training_data=training)
    card = write_card(checkpoint, tmp_path)  # no eval file: the card still works
    assert card.data.eval_results is None
    got = {k: getattr(card.data, k, None) for k in ("license", "license_name", "license_link")}
    assert got == {"license_name": None, "license_link": None, **expected}
    licence = card.text.split("## License", 1)[1]
    assert "| Language model | HuggingFaceTB/SmolLM2-135M-Instruct | [Apache-2.0]" in licence
    if tower == PRETRAINED_TOWER:
        assert "CC-BY-NC-4.0" in licence and card.data.license != "apache-2.0"
        assert PRETRAINED_TOWER in card.data.base_model
    if tower == "someone/my-tower":
        assert "unknown, check the tower's model card" in licence
    if training is REAL_TRAINING:
        assert EGOEXO4D_LICENSE_LINK in licence
    if training is SYNTHETIC_TRAINING:
        assert "none (synthetic data)" in licence


def test_a_card_without_evaluation_still_names_synthetic_training_data(tiny_checkpoint, tmp_path):
    checkpoint = _with_config(tiny_checkpoint, tmp_path, training_data=SYNTHETIC_TRAINING, max_feedback_words=24)
    card = write_card(checkpoint, tmp_path)
    assert card.data.eval_results is None
    assert SYNTHETIC_EGOEXO4D_NAME in first_paragraph(card) and "synthetic data, not EgoExo4D" in first_paragraph(card)
    assert "No evaluation was attached" in card.text and "cut to 24 words" in card.text
