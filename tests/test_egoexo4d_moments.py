"""[moments] The EgoExo4D builder's `demonstrator_moments` config: one row per (take, expert) whose feedback is the
expert's error-free remarks as timed moments (floored to whole seconds), plus a `moments` column (times as annotated,
a category when the source has one, else null); the demonstration-proficiency file as an alternative source; moments
past the take's end dropped and counted."""
import json
import logging
import math
from pathlib import Path

import datasets
import pytest

from dataset_scripts.egoexo4d_proficiency import (
    DEFAULT_MAX_MOMENTS,
    FEATURES,
    MomentOptions,
    collect_rows,
    load_egoexo4d_proficiency,
)
from dataset_scripts.synthetic_egoexo4d import generate_synthetic_egoexo4d
from tests.egoexo4d_fixtures import FixtureTake, demonstration_entry, entry, write_tree

MANY = 1000  # enough moments and words that nothing is cut
MOMENT_FEATURE = {"time": datasets.Value("float64"), "text": datasets.Value("string"),
                  "category": datasets.Value("string")}


def m(time, text, category=None):
    """A moment as the `moments` column holds it."""
    return {"time": time, "text": text, "category": category}


def load(root, config="demonstrator_moments", split="train", **kw):
    return load_egoexo4d_proficiency(root, config, split, cache_dir=str(Path(root).parent / "hf_cache"), **kw)


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> Path:
    return generate_synthetic_egoexo4d(tmp_path_factory.mktemp("moments") / "root", 8, seed=5, size=32, seconds=3.0,
                                       workers=1, progress=False)


@pytest.mark.parametrize("split, file_split", [("train", "train"), ("validation", "val")])
def test_each_rows_moments_are_the_error_free_entries_in_order_and_the_feedback_floors_them(synthetic_root, split,
                                                                                            file_split):
    ann = synthetic_root / "annotations"
    records = json.loads((ann / f"proficiency_demonstrator_{file_split}.json").read_text())
    labelled = {r["take_uid"] for r in (records["annotations"] if isinstance(records, dict) else records)}
    commentary = json.loads((ann / f"expert_commentary_{file_split}.json").read_text())["annotations"]
    expected = {}
    for uid, experts in commentary.items():
        for e in experts:
            # written here without the builder: error-free entries with text, by video time, one line
            kept = sorted((x["video_time"], " ".join(x["text"].split())) for x in e["commentary_data"]
                          if not x["error"] and x.get("text", "").strip())
            if uid in labelled and kept:
                expected[(uid, e["commentary"].split("/")[1])] = [m(t, text) for t, text in kept]
    ds = load(synthetic_root, split=split, max_moments=MANY, max_moment_words=MANY)
    assert ds.features["moments"].feature == MOMENT_FEATURE
    assert len(ds) == len(expected) > 0
    got = {(r["take_uid"], r["expert_uid"]): r["moments"] for r in ds}
    assert got == expected
    assert any(x["time"] % 1 for moments in got.values() for x in moments)  # times keep their fraction
    for r in ds:  # the feedback floors them to whole seconds, as always
        assert r["feedback"] == " ".join(
            f"[{math.floor(x['time']) // 60}:{math.floor(x['time']) % 60:02d}] {x['text']}" for x in r["moments"])


def test_error_entries_and_entries_without_text_never_appear(tmp_path):
    experts = {"qfbn5o": [
        entry(" Second, the follow-through is smooth.", 20.7, recording=0),
        entry(None, 5.0, recording=1, error=True),  # transcription failed: no text key at all
        entry(" garbage from a failed transcription", 7.0, recording=2, error=True),
        entry("   ", 9.0, recording=3),  # no words
        entry("  First,\n good stance.", 2.5, recording=4),
        entry(" At the end, a clean finish.", 75.2, recording=5),
    ], "6jm95g": [entry(None, 1.0, error=True), entry("", 3.0)]}  # nothing usable: no row for this expert
    take = FixtureTake("unc_basketball_a", experts=experts, duration_sec=80.0)
    write_tree(tmp_path / "r", [take])
    ds = load(tmp_path / "r")
    assert ds["expert_uid"] == ["qfbn5o"]
    assert ds[0]["moments"] == [m(2.5, "First, good stance."), m(20.7, "Second, the follow-through is smooth."),
                                m(75.2, "At the end, a clean finish.")]
    assert ds[0]["feedback"] == ("[0:02] First, good stance. [0:20] Second, the follow-through is smooth. "
                                 "[1:15] At the end, a clean finish.")


def test_moments_past_the_takes_end_are_dropped_and_counted(tmp_path, caplog):
    experts = {"qfbn5o": [entry("early", 1.0), entry("on the end", 10.0), entry("after the end", 10.5)],
               "6jm95g": [entry("way after", 30.0)]}
    write_tree(tmp_path / "r", [FixtureTake("unc_basketball_a", experts=experts, duration_sec=10.0)])
    rows, report = collect_rows(tmp_path / "r", "train", True, 200, True, False, moments=MomentOptions())
    assert [(r["expert_uid"], r["moments"]) for r in rows] == [
        ("qfbn5o", [{"time": 1.0, "text": "early"}, {"time": 10.0, "text": "on the end"}])]
    assert report.moments_past_end == 2
    assert report.experts_without_text == 1  # 6jm95g had only a moment after the end
    caplog.set_level(logging.INFO)
    load(tmp_path / "r")
    assert "dropped 2 moments timed past their take's end" in caplog.text  # the build's report line says so


def test_at_most_k_moments_chosen_to_cover_the_take_and_each_cut_to_the_word_limit(tmp_path):
    times = [1, 2, 3, 4, 5, 100]
    experts = {"qfbn5o": [entry(f"remark number {t} about the take.", t) for t in times]}
    write_tree(tmp_path / "r", [FixtureTake("unc_basketball_a", experts=experts, duration_sec=120.0)])
    ds = load(tmp_path / "r", max_moments=3, max_moment_words=2)
    # targets 1, 50.5, 100: 1 is closest to 1; of the rest 5 is closest to 50.5 (45.5 < 49.5); 100 to 100
    assert ds[0]["moments"] == [m(1.0, "remark number"), m(5.0, "remark number"), m(100.0, "remark number")]
    assert DEFAULT_MAX_MOMENTS == 8
    assert len(load(tmp_path / "r", max_moments=1)[0]["moments"]) == 1


def test_the_demonstration_file_as_the_source(tmp_path):
    demo = {
        "good_executions": [demonstration_entry(12.9, ["Good footwork", " soft  hands "], "6jm95g"),
                            demonstration_entry(3.2, ["Balanced stance"], "qfbn5o")],
        "tips_for_improvement": [demonstration_entry(7.5, ["Keep the elbow in"], "6jm95g"),
                                 demonstration_entry(9.0, [], "6jm95g"),  # no remark: not a moment
                                 demonstration_entry(99.0, ["after the end"], "qfbn5o")],
    }
    takes = [FixtureTake("unc_basketball_a", duration_sec=60.0, demonstration=demo,
                         experts={"zzzzzz": [entry("commentary is not used here", 1.0)]}),
             FixtureTake("unc_basketball_b")]  # no demonstration remarks
    write_tree(tmp_path / "r", takes)
    ds = load(tmp_path / "r", moments_source="demonstration")
    assert {r["expert_uid"]: r["moments"] for r in ds} == {
        "6jm95g": [m(7.5, "Keep the elbow in", "needs_improvement"),
                   m(12.9, "Good footwork; soft hands", "good_execution")],
        "qfbn5o": [m(3.2, "Balanced stance", "good_execution")],
    }
    assert {r["take_name"] for r in ds} == {"unc_basketball_a"}
    by_expert = {r["expert_uid"]: r["feedback"] for r in ds}
    assert by_expert["6jm95g"] == "[0:07] tip: Keep the elbow in [0:12] good: Good footwork; soft hands"
    _, report = collect_rows(tmp_path / "r", "train", True, 200, True, False,
                             moments=MomentOptions(source="demonstration"))
    assert report.moments_past_end == 1 and report.takes_without_commentary == 1


def test_the_demonstration_config_keeps_sub_second_times_and_categories_from_a_real_format_file(tmp_path):
    # EgoExo4D's proficiency_demonstration_<split>.json (§3.6): video_time is a float point in seconds
    demo = {
        "good_executions": [demonstration_entry(12.345678, ["Good footwork"], "6jm95g", "unc_basketball_a"),
                            demonstration_entry(0.25, ["Set up early"], "6jm95g", "unc_basketball_a")],
        "tips_for_improvement": [demonstration_entry(7.05, ["Keep the elbow in", "follow through"], "6jm95g",
                                                     "unc_basketball_a"),
                                 demonstration_entry(7.05, ["also the wrist"], "qfbn5o", "unc_basketball_a")],
    }
    write_tree(tmp_path / "r", [FixtureTake("unc_basketball_a", duration_sec=60.0, demonstration=demo,
                                            experts={"zzzzzz": [entry("commentary is not read", 1.0)]})])
    ds = load(tmp_path / "r", "demonstration_moments")
    assert ds.features["moments"].feature == MOMENT_FEATURE
    assert {r["expert_uid"]: r["moments"] for r in ds} == {
        "6jm95g": [m(0.25, "Set up early", "good_execution"),
                   m(7.05, "Keep the elbow in; follow through", "needs_improvement"),
                   m(12.345678, "Good footwork", "good_execution")],
        "qfbn5o": [m(7.05, "also the wrist", "needs_improvement")],
    }
    # the built feedback is today's whole-second text; a checkpoint's time_decimals rewrites it (training.sft_data)
    by_expert = {r["expert_uid"]: r["feedback"] for r in ds}
    assert by_expert["6jm95g"] == ("[0:00] good: Set up early [0:07] tip: Keep the elbow in; follow through "
                                   "[0:12] good: Good footwork")
    # the same rows as config demonstrator_moments with the demonstration file as its source
    same = load(tmp_path / "r", moments_source="demonstration")
    assert [r["moments"] for r in same] == [r["moments"] for r in ds]
    with pytest.raises(ValueError, match="config demonstration_moments reads the demonstration file, not "
                                         "moments_source 'commentary'"):
        load(tmp_path / "r", "demonstration_moments", moments_source="commentary")


def test_a_missing_demonstration_file_names_the_path(tmp_path):
    write_tree(tmp_path / "r", [FixtureTake("unc_basketball_a", experts={"q": [entry("x", 1.0)]})])
    with pytest.raises(FileNotFoundError, match="proficiency_demonstration_train.json"):
        load(tmp_path / "r", moments_source="demonstration")


@pytest.mark.parametrize("bad", ["soon", -1.0, None])
def test_a_bad_video_time_names_the_file_the_take_and_the_value(tmp_path, bad):
    take = FixtureTake("unc_basketball_a", experts={"q": [entry("fine", 1.0), entry("bad", 1.0)]})
    write_tree(tmp_path / "r", [take])
    path = tmp_path / "r" / "annotations" / "expert_commentary_train.json"
    data = json.loads(path.read_text())
    data["annotations"][take.uid][0]["commentary_data"][1]["video_time"] = bad
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=rf"expert_commentary_train.json: take {take.uid}: video_time {bad!r} "):
        load(tmp_path / "r")


@pytest.mark.parametrize("kw, message", [({"max_moments": 0}, "max_moments is 0"),
                                         ({"max_moment_words": -2}, "max_words is -2"),
                                         ({"moments_source": "audio"}, "moments_source 'audio'")])
def test_bad_moment_options_are_named(tmp_path, kw, message):
    write_tree(tmp_path / "r", [FixtureTake("unc_basketball_a", experts={"q": [entry("x", 1.0)]})])
    with pytest.raises(ValueError, match=message):
        load(tmp_path / "r", **kw)


def test_label_only_and_commentary_configs_have_no_moments_column(tmp_path):
    write_tree(tmp_path / "r", [FixtureTake("unc_basketball_a", experts={"q": [entry("x", 61.0)]}, duration_sec=70)])
    for config in ("demonstrator", "demonstrator_commentary"):
        ds = load(tmp_path / "r", config)
        assert "moments" not in ds.features and ds.features == FEATURES
    assert load(tmp_path / "r", "demonstrator_commentary")[0]["feedback"] == "x"
