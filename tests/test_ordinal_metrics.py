"""[training] ordinal and calibration metrics (MAE in label steps, within-one accuracy, quadratic weighted kappa,
ECE and its reliability bins) against independent computations on fixed predictions, and the reliability PNG."""
import json
import math

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from modeling_profvlm.configuration_profvlm import PROFICIENCY_LABELS
from training.evaluation_metrics import (
    expected_calibration_error,
    mean_absolute_error,
    ordinal_metrics,
    quadratic_weighted_kappa,
    reliability_bins,
    within_one_accuracy,
)
from training.plots import plot_reliability_diagram

NOV, EARLY, INTER, LATE = PROFICIENCY_LABELS
THREE = ("low", "mid", "high")
SIX = ("L1", "L2", "L3", "L4", "L5", "L6")
ORDINAL_KEYS = {"mean_absolute_error", "within_one_accuracy", "quadratic_weighted_kappa", "expected_calibration_error"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --- independent reference computations (none of them calls the code under test) ---------------------------------

def levels(values, labels):
    return np.array([list(labels).index(v) for v in values])


def manual_mae(refs, preds, labels):
    return float(np.mean(np.abs(levels(refs, labels) - levels(preds, labels))))


def manual_within_one(refs, preds, labels):
    return float(np.mean(np.abs(levels(refs, labels) - levels(preds, labels)) <= 1))


def sklearn_qwk(refs, preds, labels):
    return float(cohen_kappa_score(levels(refs, labels), levels(preds, labels), weights="quadratic",
                                   labels=list(range(len(labels)))))


def manual_qwk(refs, preds, labels):
    """Textbook quadratic weighted kappa: 1 - sum(W * O) / sum(W * E), E from the marginals."""
    n = len(labels)
    observed = np.zeros((n, n))
    for r, p in zip(levels(refs, labels), levels(preds, labels)):
        observed[r, p] += 1
    expected = np.outer(observed.sum(1), observed.sum(0)) / observed.sum()
    weights = np.subtract.outer(np.arange(n), np.arange(n)) ** 2
    return 1.0 - (weights * observed).sum() / (weights * expected).sum()


def manual_ece(probs, refs, labels, n_bins=10):
    """ECE with the bin of each take found by scanning explicit [lo, hi) edges (1.0 in the last bin)."""
    probs = np.asarray(probs, dtype=float)
    conf = probs.max(1)
    correct = probs.argmax(1) == levels(refs, labels)
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        members = np.array([(lo <= c < hi) or (b == n_bins - 1 and c == 1.0) for c in conf])
        if members.any():
            total += members.sum() / len(conf) * abs(correct[members].mean() - conf[members].mean())
    return float(total)


# --- fixed predictions ------------------------------------------------------------------------------------------------

REFS4 = [NOV, NOV, EARLY, INTER, INTER, LATE, LATE, EARLY, NOV, LATE]
PREDS4 = [NOV, EARLY, EARLY, INTER, LATE, LATE, INTER, NOV, INTER, NOV]  # off by 0,1,0,0,1,0,1,1,2,3
# confidences kept off the bin edges so any sane binning agrees; argmax = PREDS4
PROBS4 = [
    [0.91, 0.05, 0.03, 0.01], [0.35, 0.45, 0.15, 0.05], [0.10, 0.72, 0.12, 0.06], [0.02, 0.03, 0.93, 0.02],
    [0.05, 0.15, 0.25, 0.55], [0.01, 0.01, 0.03, 0.95], [0.04, 0.06, 0.48, 0.42], [0.62, 0.28, 0.05, 0.05],
    [0.33, 0.12, 0.41, 0.14], [0.37, 0.21, 0.21, 0.21],
]


def test_fixed_four_labels_match_independent_computation():
    assert [PROFICIENCY_LABELS[int(np.argmax(p))] for p in PROBS4] == PREDS4  # the fixture is consistent
    assert mean_absolute_error(REFS4, PREDS4, PROFICIENCY_LABELS) == pytest.approx(manual_mae(REFS4, PREDS4,
                                                                                              PROFICIENCY_LABELS))
    assert mean_absolute_error(REFS4, PREDS4, PROFICIENCY_LABELS) == pytest.approx(9 / 10)
    assert within_one_accuracy(REFS4, PREDS4, PROFICIENCY_LABELS) == pytest.approx(8 / 10)
    assert within_one_accuracy(REFS4, PREDS4, PROFICIENCY_LABELS) == pytest.approx(
        manual_within_one(REFS4, PREDS4, PROFICIENCY_LABELS))
    kappa = quadratic_weighted_kappa(REFS4, PREDS4, PROFICIENCY_LABELS)
    assert kappa == pytest.approx(sklearn_qwk(REFS4, PREDS4, PROFICIENCY_LABELS))
    assert kappa == pytest.approx(manual_qwk(REFS4, PREDS4, PROFICIENCY_LABELS))
    assert expected_calibration_error(PROBS4, REFS4, PROFICIENCY_LABELS) == pytest.approx(
        manual_ece(PROBS4, REFS4, PROFICIENCY_LABELS))


def test_ordinal_metrics_dict_is_json_safe_and_matches():
    got = ordinal_metrics(REFS4, PREDS4, PROBS4, PROFICIENCY_LABELS)
    assert set(got) == ORDINAL_KEYS
    assert got["mean_absolute_error"] == pytest.approx(manual_mae(REFS4, PREDS4, PROFICIENCY_LABELS))
    assert got["within_one_accuracy"] == pytest.approx(manual_within_one(REFS4, PREDS4, PROFICIENCY_LABELS))
    assert got["quadratic_weighted_kappa"] == pytest.approx(sklearn_qwk(REFS4, PREDS4, PROFICIENCY_LABELS))
    assert got["expected_calibration_error"] == pytest.approx(manual_ece(PROBS4, REFS4, PROFICIENCY_LABELS))
    json.dumps(got, allow_nan=False)  # metrics.json must stay valid JSON
    assert ordinal_metrics(REFS4, PREDS4, None, PROFICIENCY_LABELS)["expected_calibration_error"] is None


def test_probability_dicts_equal_probability_lists():
    as_dicts = [dict(zip(PROFICIENCY_LABELS, p)) for p in PROBS4]
    as_dicts[0] = dict(reversed(list(as_dicts[0].items())))  # key order must not matter, only the label names
    assert expected_calibration_error(as_dicts, REFS4, PROFICIENCY_LABELS) == pytest.approx(
        manual_ece(PROBS4, REFS4, PROFICIENCY_LABELS))
    assert reliability_bins(as_dicts, REFS4, PROFICIENCY_LABELS) == reliability_bins(PROBS4, REFS4, PROFICIENCY_LABELS)


def test_one_class_only_all_correct_kappa_is_defined_as_one():
    refs = preds = [INTER] * 5
    # sklearn leaves kappa undefined here (nan): our documented value is 1.0, perfect agreement
    with pytest.warns(Warning):
        assert math.isnan(cohen_kappa_score(levels(refs, PROFICIENCY_LABELS), levels(preds, PROFICIENCY_LABELS),
                                            weights="quadratic", labels=[0, 1, 2, 3]))
    got = ordinal_metrics(refs, preds, [[0.0, 0.0, 1.0, 0.0]] * 5, PROFICIENCY_LABELS)
    assert got == {"mean_absolute_error": 0.0, "within_one_accuracy": 1.0, "quadratic_weighted_kappa": 1.0,
                   "expected_calibration_error": 0.0}
    assert quadratic_weighted_kappa([NOV], [NOV], PROFICIENCY_LABELS) == 1.0  # a single take, same case
    json.dumps(got, allow_nan=False)


def test_one_reference_class_with_varied_predictions():
    refs = [NOV] * 6
    preds = [NOV, NOV, EARLY, INTER, NOV, LATE]
    assert mean_absolute_error(refs, preds, PROFICIENCY_LABELS) == pytest.approx(manual_mae(refs, preds,
                                                                                            PROFICIENCY_LABELS))
    assert within_one_accuracy(refs, preds, PROFICIENCY_LABELS) == pytest.approx(4 / 6)
    kappa = quadratic_weighted_kappa(refs, preds, PROFICIENCY_LABELS)
    assert kappa == pytest.approx(sklearn_qwk(refs, preds, PROFICIENCY_LABELS)) == pytest.approx(0.0)


def test_all_correct_over_several_classes():
    refs = [NOV, EARLY, INTER, LATE, INTER, NOV]
    got = ordinal_metrics(refs, refs, None, PROFICIENCY_LABELS)
    assert got["mean_absolute_error"] == 0.0 and got["within_one_accuracy"] == 1.0
    assert got["quadratic_weighted_kappa"] == pytest.approx(1.0) == pytest.approx(sklearn_qwk(refs, refs,
                                                                                              PROFICIENCY_LABELS))


def test_all_wrong_by_two_levels():
    refs = [NOV, EARLY, INTER, LATE, NOV, LATE]
    preds = [INTER, LATE, NOV, EARLY, INTER, EARLY]
    assert mean_absolute_error(refs, preds, PROFICIENCY_LABELS) == pytest.approx(2.0)
    assert mean_absolute_error(refs, preds, PROFICIENCY_LABELS) == pytest.approx(manual_mae(refs, preds,
                                                                                            PROFICIENCY_LABELS))
    assert within_one_accuracy(refs, preds, PROFICIENCY_LABELS) == 0.0
    kappa = quadratic_weighted_kappa(refs, preds, PROFICIENCY_LABELS)
    assert kappa < 0  # worse than chance
    assert kappa == pytest.approx(sklearn_qwk(refs, preds, PROFICIENCY_LABELS))
    assert kappa == pytest.approx(manual_qwk(refs, preds, PROFICIENCY_LABELS))


def test_probabilities_of_exactly_one_and_zero_fall_in_the_last_bin():
    refs = [NOV, EARLY, INTER, LATE]
    probs = [[1.0, 0.0, 0.0, 0.0],  # right, confidence exactly 1.0
             [0.0, 1.0, 0.0, 0.0],  # right
             [0.0, 0.0, 0.0, 1.0],  # wrong
             [0.0, 0.0, 0.0, 1.0]]  # right
    bins = reliability_bins(probs, refs, PROFICIENCY_LABELS)
    assert [b["count"] for b in bins] == [0] * 9 + [4]  # 1.0 is in the last bin, not an 11th one
    assert bins[-1]["accuracy"] == pytest.approx(3 / 4) and bins[-1]["confidence"] == pytest.approx(1.0)
    assert all(b["accuracy"] is None and b["confidence"] is None for b in bins[:-1])
    assert expected_calibration_error(probs, refs, PROFICIENCY_LABELS) == pytest.approx(1 / 4)
    assert expected_calibration_error(probs, refs, PROFICIENCY_LABELS) == pytest.approx(
        manual_ece(probs, refs, PROFICIENCY_LABELS))


def test_confidence_on_a_bin_edge_goes_to_the_upper_bin():
    # 0.3 / 0.5 / 0.7 are where floating point makes [lo, hi) bins slip: each must open its own bin
    refs = [NOV, NOV, NOV]
    probs = [[0.3, 0.3, 0.3, 0.1],  # tie: the first label (NOV) counts as the prediction -> right
             [0.5, 0.5, 0.0, 0.0],  # right
             [0.0, 0.7, 0.3, 0.0]]  # wrong
    bins = reliability_bins(probs, refs, PROFICIENCY_LABELS)
    assert [b["count"] for b in bins] == [0, 0, 0, 1, 0, 1, 0, 1, 0, 0]
    assert [bins[i]["accuracy"] for i in (3, 5, 7)] == [1.0, 1.0, 0.0]
    assert expected_calibration_error(probs, refs, PROFICIENCY_LABELS) == pytest.approx((0.7 + 0.5 + 0.7) / 3)
    # with 100 bins 0.57 * 100 and 0.58 * 100 come out just below 57 and 58: they still open bins 57 and 58
    fine = reliability_bins([[0.57, 0.43], [0.58, 0.42]], ["a", "b"], ("a", "b"), n_bins=100)
    assert [i for i, b in enumerate(fine) if b["count"]] == [57, 58]
    # the lowest confidence there is (uniform, 1/L; 0.0 cannot be a top-label probability) is in the first bin
    low = reliability_bins([[0.25] * 4], [NOV], PROFICIENCY_LABELS, n_bins=3)
    assert [b["count"] for b in low] == [1, 0, 0] and low[0]["accuracy"] == 1.0


def test_reliability_bins_match_manual_binning():
    bins = reliability_bins(PROBS4, REFS4, PROFICIENCY_LABELS)
    assert len(bins) == 10
    assert [(b["lower"], b["upper"]) for b in bins] == [pytest.approx((i / 10, (i + 1) / 10)) for i in range(10)]
    conf = np.max(PROBS4, axis=1)
    correct = np.argmax(PROBS4, axis=1) == levels(REFS4, PROFICIENCY_LABELS)
    for i, b in enumerate(bins):
        members = (conf >= i / 10) & (conf < (i + 1) / 10)
        assert b["count"] == int(members.sum()), i
        if members.any():
            assert b["accuracy"] == pytest.approx(correct[members].mean()), i
            assert b["confidence"] == pytest.approx(conf[members].mean()), i
        else:
            assert b["accuracy"] is None and b["confidence"] is None, i
    assert sum(b["count"] for b in bins) == len(REFS4)
    five = reliability_bins(PROBS4, REFS4, PROFICIENCY_LABELS, n_bins=5)
    assert len(five) == 5
    assert expected_calibration_error(PROBS4, REFS4, PROFICIENCY_LABELS, n_bins=5) == pytest.approx(
        manual_ece(PROBS4, REFS4, PROFICIENCY_LABELS, n_bins=5))


def test_three_labels():
    refs = ["low", "mid", "high", "high", "low", "mid", "low"]
    preds = ["low", "high", "high", "mid", "high", "mid", "mid"]  # off by 0,1,0,1,2,0,1
    probs = [[0.8, 0.15, 0.05], [0.1, 0.35, 0.55], [0.05, 0.12, 0.83], [0.2, 0.46, 0.34],
             [0.25, 0.33, 0.42], [0.21, 0.64, 0.15], [0.44, 0.48, 0.08]]
    assert [THREE[int(np.argmax(p))] for p in probs] == preds
    got = ordinal_metrics(refs, preds, probs, THREE)
    assert got["mean_absolute_error"] == pytest.approx(manual_mae(refs, preds, THREE)) == pytest.approx(5 / 7)
    assert got["within_one_accuracy"] == pytest.approx(manual_within_one(refs, preds, THREE)) == pytest.approx(6 / 7)
    assert got["quadratic_weighted_kappa"] == pytest.approx(sklearn_qwk(refs, preds, THREE))
    assert got["quadratic_weighted_kappa"] == pytest.approx(manual_qwk(refs, preds, THREE))
    assert got["expected_calibration_error"] == pytest.approx(manual_ece(probs, refs, THREE))


def test_six_labels_and_kappa_uses_every_level():
    refs = ["L1", "L2", "L4", "L6", "L6", "L1", "L4", "L2"]
    preds = ["L1", "L4", "L4", "L4", "L6", "L2", "L6", "L1"]  # off by 0,2,0,2,0,1,2,1
    rng = np.random.default_rng(0)
    probs = []
    for p in preds:  # a fixed, seeded distribution whose argmax is the prediction
        row = rng.uniform(0.01, 0.1, size=6)
        row[SIX.index(p)] = 0.6
        probs.append((row / row.sum()).tolist())
    got = ordinal_metrics(refs, preds, probs, SIX)
    assert got["mean_absolute_error"] == pytest.approx(manual_mae(refs, preds, SIX)) == pytest.approx(1.0)
    assert got["within_one_accuracy"] == pytest.approx(manual_within_one(refs, preds, SIX)) == pytest.approx(5 / 8)
    assert got["quadratic_weighted_kappa"] == pytest.approx(sklearn_qwk(refs, preds, SIX))
    assert got["quadratic_weighted_kappa"] == pytest.approx(manual_qwk(refs, preds, SIX))
    # L3 and L5 never occur: kappa on the observed classes only (renumbered 0..3) would be a different number
    observed_only = cohen_kappa_score(levels(refs, SIX), levels(preds, SIX), weights="quadratic")
    assert got["quadratic_weighted_kappa"] != pytest.approx(observed_only)
    assert got["expected_calibration_error"] == pytest.approx(manual_ece(probs, refs, SIX))


def test_empty_input_gives_none():
    assert ordinal_metrics([], [], [], PROFICIENCY_LABELS) == dict.fromkeys(ORDINAL_KEYS)
    assert ordinal_metrics([], [], None, PROFICIENCY_LABELS) == dict.fromkeys(ORDINAL_KEYS)
    assert expected_calibration_error([], [], PROFICIENCY_LABELS) is None
    assert [b["count"] for b in reliability_bins([], [], PROFICIENCY_LABELS)] == [0] * 10


def test_unknown_labels_and_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="Expert Plus.*Novice"):
        ordinal_metrics([NOV], ["Expert Plus"], None, PROFICIENCY_LABELS)
    with pytest.raises(ValueError, match="Grandmaster"):
        mean_absolute_error(["Grandmaster"], [NOV], PROFICIENCY_LABELS)
    with pytest.raises(ValueError) as error:  # None next to a wrong string: a ValueError, not sorted()'s TypeError
        within_one_accuracy([NOV, NOV], [None, "Pro"], PROFICIENCY_LABELS)
    assert "None" in str(error.value) and "'Pro'" in str(error.value)
    with pytest.raises(ValueError, match="2 references but 1 predictions"):
        quadratic_weighted_kappa([NOV, NOV], [NOV], PROFICIENCY_LABELS)
    with pytest.raises(ValueError, match="at least 2"):
        mean_absolute_error(["a"], ["a"], ("a",))
    with pytest.raises(ValueError, match=r"probabilities\[0\].*4 probabilities"):
        expected_calibration_error([[0.5, 0.5]], [NOV], PROFICIENCY_LABELS)
    with pytest.raises(ValueError, match="summing to 1"):
        expected_calibration_error([[0.5, 0.5, 0.5, 0.5]], [NOV], PROFICIENCY_LABELS)
    with pytest.raises(ValueError, match="expected exactly"):
        expected_calibration_error([{NOV: 1.0}], [NOV], PROFICIENCY_LABELS)
    with pytest.raises(ValueError, match="Pro"):
        reliability_bins([[1.0, 0.0, 0.0, 0.0]], ["Pro"], PROFICIENCY_LABELS)
    with pytest.raises(ValueError, match="n_bins"):
        reliability_bins([[1.0, 0.0, 0.0, 0.0]], [NOV], PROFICIENCY_LABELS, n_bins=0)


def test_reliability_diagram_png(tmp_path):
    bins = reliability_bins(PROBS4, REFS4, PROFICIENCY_LABELS)
    ece = expected_calibration_error(PROBS4, REFS4, PROFICIENCY_LABELS)
    path = plot_reliability_diagram(bins, tmp_path / "plots" / "reliability.png", ece=ece)
    assert path == tmp_path / "plots" / "reliability.png"
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5000
    # no takes at all: every bin is empty and there is no ECE, the figure must still be drawn
    empty = plot_reliability_diagram(reliability_bins([], [], PROFICIENCY_LABELS), tmp_path / "empty.png")
    data = empty.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5000
