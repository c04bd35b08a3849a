"""The demonstration-proficiency metric (training/demonstration_metric.py): hand-made cases, each checked against an
AP computed here by hand (`ap_by_hand`, a different formula from the module's), the reference reader on fixture and
synthetic EgoExo4D trees, and the output-file scorer's errors."""
import json
import math
import random

import pytest

from training.demonstration_metric import (
    CATEGORIES,
    demonstration_map,
    demonstration_references,
    score_demonstration_file,
)
from tests.egoexo4d_fixtures import FixtureTake, demonstration_entry, write_tree

GOOD, TIP = "good_execution", "needs_improvement"
KS = ("0.25", "0.5", "1.0")


def ap_by_hand(hits: list[bool], num_references: int) -> float:
    """All-point interpolated AP written another way: each true positive adds 1/num_references of recall at the
    best precision reached at its rank or any later one."""
    precisions = [sum(hits[: i + 1]) / (i + 1) for i in range(len(hits))]
    return sum(max(precisions[i:]) for i, hit in enumerate(hits) if hit) / num_references


def p(take_time: float, category: str = GOOD, probability: float = 0.5) -> dict:
    return {"video_time": take_time, "category": category, "probability": probability}


def r(take_time: float, category: str = GOOD) -> dict:
    return {"video_time": take_time, "category": category}


def test_ap_by_hand_itself():
    """The hand formula on the textbook numbers: [TP, FP, TP] over 2 references is (1 + 2/3) / 2."""
    assert ap_by_hand([True, False, True], 2) == pytest.approx(5 / 6)
    assert ap_by_hand([False, True, True], 2) == pytest.approx(2 / 3)


def test_result_keys():
    result = demonstration_map({"a": [p(1.0)]}, {"a": [r(1.0)]})
    assert set(result) == {"mAP@0.25", "mAP@0.5", "mAP@1.0", "mAP", "AP"}
    assert set(result["AP"]) == set(CATEGORIES) == {GOOD, TIP}
    assert all(set(v) == set(KS) for v in result["AP"].values())


def test_perfect():
    references = {"a": [r(1.0), r(7.25, TIP), r(30.5)], "b": [r(0.0, TIP), r(12.0, TIP)]}
    predictions = {t: [{**x, "probability": 0.1 + 0.2 * i} for i, x in enumerate(v)] for t, v in references.items()}
    result = demonstration_map(predictions, references)
    assert result["mAP"] == 1.0
    assert all(result[f"mAP@{k}"] == 1.0 for k in KS)
    assert all(result["AP"][c][k] == 1.0 for c in CATEGORIES for k in KS)


def test_shifted_prediction_passes_at_one_second_only():
    """A prediction 0.7 s off matches at k = 1.0 and not at 0.5 or 0.25; ranked second, its miss costs half the AP."""
    references = {"a": [r(10.0), r(20.0)]}
    predictions = {"a": [p(10.0, probability=0.9), p(20.7, probability=0.8)]}
    result = demonstration_map(predictions, references)
    assert result["AP"][GOOD]["1.0"] == pytest.approx(ap_by_hand([True, True], 2)) == 1.0
    assert result["AP"][GOOD]["0.5"] == pytest.approx(ap_by_hand([True, False], 2)) == 0.5
    assert result["AP"][GOOD]["0.25"] == pytest.approx(ap_by_hand([True, False], 2))
    # needs_improvement has no references: left out of the mean, its AP None
    assert result["AP"][TIP] == {k: None for k in KS}
    assert result["mAP@0.5"] == pytest.approx(0.5) and result["mAP@1.0"] == pytest.approx(1.0)
    assert result["mAP"] == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    # the threshold is inclusive
    assert demonstration_map({"a": [p(10.5)]}, {"a": [r(10.0)]})["AP"][GOOD]["0.5"] == 1.0


def test_duplicate_prediction_is_one_hit_and_one_false_positive():
    references = {"a": [r(5.0), r(30.0)]}
    predictions = {"a": [p(5.0, probability=0.9), p(5.1, probability=0.8), p(30.0, probability=0.7)]}
    result = demonstration_map(predictions, references)
    expected = ap_by_hand([True, False, True], 2)
    assert expected == pytest.approx(5 / 6)
    assert all(result["AP"][GOOD][k] == pytest.approx(expected) for k in KS)


def test_every_expert_point_is_a_reference():
    """Two experts marked the same moment: one prediction finds one of them (recall 1/2)."""
    result = demonstration_map({"a": [p(3.0)]}, {"a": [r(3.0), r(3.0)]})
    assert result["AP"][GOOD]["1.0"] == pytest.approx(ap_by_hand([True], 2)) == 0.5


def test_wrong_category():
    """A needs_improvement prediction at a good_execution point is a false positive in needs_improvement and leaves
    the good_execution reference unmatched (AP 0 for a category with references but no predictions)."""
    references = {"a": [r(5.0, GOOD), r(20.0, TIP)]}
    predictions = {"a": [p(5.0, TIP, 0.9), p(20.0, TIP, 0.8)]}
    result = demonstration_map(predictions, references)
    assert all(result["AP"][GOOD][k] == 0.0 for k in KS)
    assert all(result["AP"][TIP][k] == pytest.approx(ap_by_hand([False, True], 1)) == 0.5 for k in KS)
    assert all(result[f"mAP@{k}"] == pytest.approx(0.25) for k in KS)


def test_take_without_references():
    """Predictions in a take the references do not list are false positives (here ranked first)."""
    references = {"a": [r(1.0)]}
    predictions = {"a": [p(1.0, probability=0.5)], "z": [p(1.0, probability=0.9)]}
    result = demonstration_map(predictions, references)
    assert all(result["AP"][GOOD][k] == pytest.approx(ap_by_hand([False, True], 1)) == 0.5 for k in KS)
    # the same with the take listed but empty
    assert demonstration_map(predictions, {**references, "z": []}) == result


def test_ties_are_ranked_by_take_then_time():
    """Equal probabilities: the take uid decides first, then the time; here it decides whether the false
    positive comes before the hit."""
    references = {"b": [r(5.0)]}
    fp_first = demonstration_map({"a": [p(5.0)], "b": [p(5.0)]}, references)  # "a" (no references) ranks first
    assert fp_first["AP"][GOOD]["1.0"] == pytest.approx(ap_by_hand([False, True], 1)) == 0.5
    hit_first = demonstration_map({"b": [p(5.0)], "c": [p(5.0)]}, references)  # "c" ranks after "b"
    assert hit_first["AP"][GOOD]["1.0"] == pytest.approx(ap_by_hand([True, False], 1)) == 1.0
    # within a take: the earlier time first
    early_fp = demonstration_map({"b": [p(5.0), p(1.0)]}, references)
    assert early_fp["AP"][GOOD]["1.0"] == pytest.approx(ap_by_hand([False, True], 1)) == 0.5
    late_fp = demonstration_map({"b": [p(5.0), p(9.0)]}, references)
    assert late_fp["AP"][GOOD]["1.0"] == 1.0
    # probability outranks both
    assert demonstration_map({"a": [p(5.0, probability=0.4)], "b": [p(5.0, probability=0.6)]},
                             references)["AP"][GOOD]["1.0"] == 1.0


def test_all_point_interpolation():
    """[FP, TP, TP] over 2 references: the precision at recall 1/2 is raised from 1/2 to the 2/3 reached later, so AP
    is 2/3, not the raw mean of the precisions at the hits (7/12)."""
    references = {"a": [r(10.0), r(20.0)]}
    predictions = {"a": [p(50.0, probability=0.9), p(10.0, probability=0.8), p(20.0, probability=0.7)]}
    result = demonstration_map(predictions, references)
    raw = (1 / 2 + 2 / 3) / 2
    assert result["AP"][GOOD]["1.0"] == pytest.approx(ap_by_hand([False, True, True], 2)) == pytest.approx(2 / 3)
    assert result["AP"][GOOD]["1.0"] != pytest.approx(raw)


def test_nearest_unmatched_reference():
    """A prediction takes the nearest reference, not the first within reach, leaving the other for a later one."""
    references = {"a": [r(4.0), r(5.0)]}
    predictions = {"a": [p(4.6, probability=0.9), p(3.5, probability=0.8)]}
    result = demonstration_map(predictions, references)
    assert result["AP"][GOOD]["0.5"] == pytest.approx(ap_by_hand([True, True], 2)) == 1.0
    assert result["AP"][GOOD]["0.25"] == pytest.approx(ap_by_hand([False, False], 2)) == 0.0


def test_no_references_at_all():
    result = demonstration_map({"a": [p(1.0)]}, {"a": []})
    assert result["mAP"] is None and all(result[f"mAP@{k}"] is None for k in KS)
    assert result["AP"] == {c: {k: None for k in KS} for c in CATEGORIES}


def test_custom_thresholds():
    result = demonstration_map({"a": [p(12.0)]}, {"a": [r(10.0)]}, thresholds=(2, 3.5))
    assert set(result) == {"mAP@2.0", "mAP@3.5", "mAP", "AP"}
    assert result["mAP@2.0"] == 1.0 and set(result["AP"][GOOD]) == {"2.0", "3.5"}
    for bad in ((), (0,), (-1.0,), (math.inf,), (0.5, 0.5), (True,)):
        with pytest.raises(ValueError, match="threshold"):
            demonstration_map({}, {"a": [r(1.0)]}, thresholds=bad)


def _independent_map(predictions: dict, references: dict, k: float) -> float | None:
    """mAP at k, computed here: refs as flagged records, predictions sorted by a key function."""
    aps = []
    for category in CATEGORIES:
        refs = [{"take": t, "time": x["video_time"], "used": False}
                for t, v in references.items() for x in v if x["category"] == category]
        if not refs:
            continue
        preds = [(t, x) for t, v in predictions.items() for x in v if x["category"] == category]
        preds.sort(key=lambda tx: (-tx[1]["probability"], tx[0], tx[1]["video_time"]))
        hits = []
        for take, x in preds:
            near = [ref for ref in refs if ref["take"] == take and not ref["used"]
                    and abs(ref["time"] - x["video_time"]) <= k]
            if near:
                min(near, key=lambda ref: (abs(ref["time"] - x["video_time"]), ref["time"]))["used"] = True
            hits.append(bool(near))
        aps.append(ap_by_hand(hits, len(refs)))
    return sum(aps) / len(aps) if aps else None


def test_matches_an_independent_computation_on_random_cases():
    rng = random.Random(0)
    for _ in range(200):
        takes = [f"t{i}" for i in range(rng.randint(1, 3))]
        references = {t: [r(rng.choice([0.0, 1.0, 2.0, 2.5, 4.0]), rng.choice(CATEGORIES))
                          for _ in range(rng.randint(0, 4))] for t in takes}
        predictions = {t: [p(rng.choice([0.0, 0.3, 1.0, 1.6, 2.5, 3.2, 4.0]), rng.choice(CATEGORIES),
                             rng.choice([0.2, 0.5, 0.9])) for _ in range(rng.randint(0, 5))]
                       for t in takes + ["extra"]}
        result = demonstration_map(predictions, references)
        for k in KS:
            expected = _independent_map(predictions, references, float(k))
            assert result[f"mAP@{k}"] == (None if expected is None else pytest.approx(expected))


@pytest.mark.parametrize("point, message", [
    ({"video_time": 1.0, "category": "good", "probability": 0.5}, "category 'good'"),
    ({"video_time": 1.0, "probability": 0.5}, "category None"),
    ({"category": GOOD, "probability": 0.5}, "video_time None"),
    ({"video_time": -0.1, "category": GOOD, "probability": 0.5}, "video_time -0.1"),
    ({"video_time": math.nan, "category": GOOD, "probability": 0.5}, "video_time nan"),
    ({"video_time": math.inf, "category": GOOD, "probability": 0.5}, "video_time inf"),
    ({"video_time": "1.0", "category": GOOD, "probability": 0.5}, "video_time '1.0'"),
    ({"video_time": True, "category": GOOD, "probability": 0.5}, "video_time True"),
    ({"video_time": 1.0, "category": GOOD, "probability": 0.0}, "probability 0.0"),
    ({"video_time": 1.0, "category": GOOD, "probability": 1.5}, "probability 1.5"),
    ({"video_time": 1.0, "category": GOOD, "probability": math.nan}, "probability nan"),
    ({"video_time": 1.0, "category": GOOD}, "probability None"),
])
def test_bad_prediction_names_take_and_index(point, message):
    with pytest.raises(ValueError, match=r"predictions: take 'a', index 1: " + message):
        demonstration_map({"a": [p(1.0), point]}, {"a": [r(1.0)]})


def test_bad_reference_names_take_and_index():
    with pytest.raises(ValueError, match=r"references: take 'b', index 0: video_time -1"):
        demonstration_map({}, {"a": [r(1.0)], "b": [r(-1)]})
    with pytest.raises(ValueError, match=r"references: take 'a', index 0: category 'tip'"):
        demonstration_map({}, {"a": [r(1.0, "tip")]})
    with pytest.raises(ValueError, match=r"predictions: take 'a': expected a list"):
        demonstration_map({"a": p(1.0)}, {})
    # a probability of exactly 1 is allowed; references need none
    assert demonstration_map({"a": [p(1.0, probability=1)]}, {"a": [r(1.0)]})["mAP"] == 1.0


# ------------------------------------------------------------------------------------------ references of a root
def _demo_tree(root, bad_time=None):
    takes = [
        FixtureTake("demo_val_1", split="val", downscaled=False, demonstration={
            "good_executions": [demonstration_entry(12.345678, ["clean release"], "e1", "demo_val_1"),
                                demonstration_entry(3.5, [], "e2", "demo_val_1")],
            "tips_for_improvement": [demonstration_entry(3.5 if bad_time is None else bad_time, ["bend knees"],
                                                         "e1", "demo_val_1"),
                                     demonstration_entry(0.25, ["look up"], "e2", "demo_val_1")]}),
        FixtureTake("demo_val_2", split="val", downscaled=False),
        FixtureTake("demo_train_1", split="train", downscaled=False, demonstration={
            "good_executions": [demonstration_entry(1.0, ["ok"], "e3", "demo_train_1")]}),
    ]
    return write_tree(root, takes), takes


def test_references_read_every_expert_point(tmp_path):
    root, takes = _demo_tree(tmp_path)
    val = demonstration_references(root, "val")
    assert val == {
        takes[0].uid: [r(0.25, TIP), r(3.5, GOOD), r(3.5, TIP), r(12.345678, GOOD)],
        takes[1].uid: [],
    }
    assert demonstration_references(root, "validation") == val
    assert demonstration_references(str(root), "train") == {takes[2].uid: [r(1.0, GOOD)]}
    # the references score themselves perfectly
    assert demonstration_map({t: [{**x, "probability": 1.0} for x in v] for t, v in val.items()}, val)["mAP"] == 1.0


def test_references_errors(tmp_path):
    root, _ = _demo_tree(tmp_path / "bad", bad_time=-2.0)
    with pytest.raises(ValueError, match=r"proficiency_demonstration_val\.json: take .*tips_for_improvement\[0\]"):
        demonstration_references(root, "val")
    with pytest.raises(ValueError, match="unknown split 'test'"):
        demonstration_references(root, "test")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="proficiency_demonstration_train.json"):
        demonstration_references(empty, "train")


def test_references_of_a_synthetic_tree(tmp_path):
    from dataset_scripts.synthetic_egoexo4d import generate_synthetic_egoexo4d

    root = generate_synthetic_egoexo4d(tmp_path / "synthetic", 6, seed=1, size=16, seconds=3.0, progress=False,
                                       write_videos=False, events=True)
    for split, file_split in (("train", "train"), ("validation", "val")):
        records = json.loads((root / "annotations" / f"proficiency_demonstration_{file_split}.json")
                             .read_text())["annotations"]
        references = demonstration_references(root, split)
        assert set(references) == {rec["take_uid"] for rec in records}
        for rec in records:
            expected = sorted([(e["video_time"], GOOD) for e in rec["good_executions"]]
                              + [(e["video_time"], TIP) for e in rec["tips_for_improvement"]])
            assert [(x["video_time"], x["category"]) for x in references[rec["take_uid"]]] == expected
    assert sum(len(v) for v in demonstration_references(root, "train").values()) > 0


# ------------------------------------------------------------------------------------------- scoring an output file
def _write(path, obj):
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def test_score_file(tmp_path):
    root, takes = _demo_tree(tmp_path / "tree")
    uid = takes[0].uid
    out = _write(tmp_path / "out.json", {"version": 1, "takes": {
        uid: [p(0.25, TIP, 0.9), p(3.5, GOOD, 0.8), p(3.5, TIP, 0.7), p(12.0, GOOD, 0.6)],
        "not-a-val-take": [p(1.0, GOOD, 0.1)]}})
    result = score_demonstration_file(out, root, "val")
    assert result["AP"][TIP]["0.25"] == pytest.approx(ap_by_hand([True, True], 2)) == 1.0
    # 12.0 is 0.345678 s from 12.345678: a hit at 0.5 and 1.0, a miss at 0.25; the last prediction is a miss
    assert result["AP"][GOOD]["0.25"] == pytest.approx(ap_by_hand([True, False, False], 2)) == 0.5
    assert result["AP"][GOOD]["0.5"] == pytest.approx(ap_by_hand([True, True, False], 2)) == 1.0
    assert result["mAP@0.25"] == pytest.approx(0.75)
    assert result["counts"] == {
        "takes": {"predictions": 2, "references": 2, "not_in_references": 1, "without_predictions": 1},
        "predictions": {GOOD: 3, TIP: 2},
        "references": {GOOD: 2, TIP: 2},
    }
    # a take the file leaves out has no predictions
    only_other = _write(tmp_path / "other.json", {"version": 1, "takes": {}})
    assert score_demonstration_file(only_other, root, "val")["mAP"] == 0.0


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ([], "expected an object"),
    ({"takes": {}}, "version None; expected 1"),
    ({"version": 2, "takes": {}}, "version 2; expected 1"),
    ({"version": True, "takes": {}}, "version True; expected 1"),
    ({"version": 1}, "\"takes\" is NoneType"),
    ({"version": 1, "takes": []}, "\"takes\" is list"),
    ({"version": 1, "takes": {"x": [p(1.0, probability=2.0)]}}, "take 'x', index 0: probability 2.0"),
])
def test_score_file_errors(tmp_path, content, message):
    root, _ = _demo_tree(tmp_path / "tree")
    out = _write(tmp_path / "out.json", content)
    with pytest.raises(ValueError) as err:
        score_demonstration_file(out, root, "val")
    text = str(err.value)
    assert text.startswith(str(out) + ":") and message in text and "\n" not in text


def test_score_file_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json"):
        score_demonstration_file(tmp_path / "missing.json", tmp_path, "val")
