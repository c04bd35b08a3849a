"""Synthetic timed events (--events): planned inside the take, flashed only in the cameras that see them, named with
their times by every expert, turned into moments by the builder, and visible to a random tower per time step."""
import json
import math
from pathlib import Path

import av
import numpy as np
import pytest

from dataset_scripts.egoexo4d_proficiency import load_egoexo4d_proficiency
from dataset_scripts.synthetic_egoexo4d import generate_synthetic_egoexo4d, main as generator_main, plan_takes
from dataset_scripts.synthetic_events import plan_events

SIZE, SECONDS, TAKES, SEED = 32, 3.0, 6, 2
FRAMES = 90  # SECONDS at 30 fps


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return generate_synthetic_egoexo4d(tmp_path_factory.mktemp("events") / "t", TAKES, SEED, SIZE, SECONDS, workers=1,
                                       progress=False, events=True)


def events_of(take_uid: str):
    plan = next(p for p in plan_takes(TAKES, SEED) if p.take_uid == take_uid)
    return plan, plan_events(plan.motion_seed, FRAMES)


@pytest.mark.parametrize("seed", range(40))
def test_events_fit_the_take_on_distinct_seconds(seed):
    events = plan_events(seed, 4 * 30)
    assert 1 <= len(events) <= 3
    seconds = [math.floor(e.time) for e in events]
    assert seconds == sorted(set(seconds)) and all(0 <= s <= 3 for s in seconds)
    for e in events:
        assert e.kind in ("slip", "clean")
        assert e.time - math.floor(e.time) < 0.2 and e.duration == 0.8  # on screen over [k + 0.2, k + 0.8] at least
        assert e.time + e.duration <= 4.0 + 1e-9
        assert 2 <= len(e.cameras) <= 3 and set(e.cameras) <= {0, 1, 2, 3, 4}  # some cameras, never all
        frames = e.frames(4 * 30)
        assert frames.start == math.ceil(e.time * 30 - 1e-9) and len(frames) in (24, 25)
    assert plan_events(seed, 15) == []  # half a second: no room for an event



def test_a_four_second_take_keeps_the_events_it_always_had():
    # Recorded from the generator before long takes were cut into stretches (commit 47cbabb): the 4-second takes
    # every benchmark and demo trains on must not change.
    assert [(e.kind, e.time, e.cameras) for e in plan_events(0, 4 * 30)] == [
        ("clean", 0.168, (3, 4)), ("slip", 2.107, (1, 4)), ("slip", 3.016, (0, 1, 2))]
    assert [(e.kind, e.time, e.cameras) for e in plan_events(2, 4 * 30)] == [
        ("slip", 0.072, (0, 1, 2)), ("slip", 3.026, (0, 4))]


@pytest.mark.parametrize("seed", range(10))
def test_a_two_minute_take_has_events_from_its_start_to_its_end(seed):
    events = plan_events(seed, 120 * 30)
    stretches = [[e for e in events if 20 * i <= e.time < 20 * (i + 1)] for i in range(6)]
    assert all(1 <= len(stretch) <= 3 for stretch in stretches)  # one to three in every 20 s, none left empty
    seconds = [math.floor(e.time) for e in events]
    assert seconds == sorted(set(seconds))
    assert all(e.time - math.floor(e.time) <= 0.2 + 1e-9 and e.time + e.duration <= 120.0 + 1e-9 for e in events)
    assert plan_events(seed, 41 * 30)[-1].time < 41 - 0.8  # a last, one-second stretch still fits its event


def corner_rgb(path: str, frame: int) -> np.ndarray:
    """Mean RGB of the top-left 4x4 pixels (background in every camera) of one decoded frame."""
    with av.open(path) as container:
        for i, decoded in enumerate(container.decode(video=0)):
            if i == frame:
                return decoded.to_ndarray(format="rgb24")[:4, :4].reshape(-1, 3).mean(0)
    raise AssertionError(f"{path} has no frame {frame}")


def test_events_flash_in_the_cameras_that_see_them_only(tree):
    rows = load_egoexo4d_proficiency(tree, "demonstrator", "train", cache_dir=str(tree.parent / "cache"))
    checked = set()
    for row in rows:
        _, events = events_of(row["take_uid"])
        for event in events:
            middle = event.frames(FRAMES).start + 12
            for camera, path in enumerate(row["video_paths"]):
                r, g, b = corner_rgb(path, middle)
                if camera not in event.cameras:
                    assert abs(r - g) < 12 and abs(g - b) < 12, (row["take_uid"], camera, r, g, b)  # grey as always
                elif event.kind == "slip":
                    assert r > 200 and g < 60 and b < 60, (row["take_uid"], camera, r, g, b)  # red
                else:
                    assert g > 200 and r < 80 and b < 80, (row["take_uid"], camera, r, g, b)  # green
                checked.add((event.kind, camera in event.cameras))
            r, g, b = corner_rgb(row["video_paths"][event.cameras[0]], max(0, event.frames(FRAMES).start - 4))
            assert abs(r - g) < 12 and abs(g - b) < 12  # not before its onset
    assert {(True), (False)} <= {seen for _, seen in checked} and {"slip", "clean"} <= {k for k, _ in checked}


def test_every_expert_names_every_event_at_its_onset(tree):
    for split in ("train", "val"):
        annotations = json.loads((tree / "annotations" / f"expert_commentary_{split}.json").read_text())["annotations"]
        for take_uid, experts in annotations.items():
            _, events = events_of(take_uid)
            for expert in experts:
                spoken = sorted((e["video_time"], e["text"]) for e in expert["commentary_data"] if not e["error"])
                assert [t for t, _ in spoken] == [e.time for e in events]
                for (_, text), event in zip(spoken, events):
                    assert ("slip" in text.lower()) == (event.kind == "slip"), text
                    assert ("clean" in text.lower()) == (event.kind == "clean"), text


@pytest.mark.parametrize("config, categories, words", [
    ("demonstrator_moments", {"slip": None, "clean": None}, {"slip": "", "clean": ""}),
    ("demonstration_moments", {"slip": "needs_improvement", "clean": "good_execution"},
     {"slip": "tip: ", "clean": "good: "})])
def test_moments_configs_give_the_event_times_and_kinds(tree, config, categories, words):
    rows = [r for split in ("train", "validation") for r in load_egoexo4d_proficiency(
        tree, config, split, cache_dir=str(tree.parent / f"cache_{config}"))]
    assert rows
    for row in rows:
        _, events = events_of(row["take_uid"])
        assert [m["time"] for m in row["moments"]] == [e.time for e in events]  # at the onset, sub-second
        assert [m["category"] for m in row["moments"]] == [categories[e.kind] for e in events]
        assert row["feedback"].startswith(f"[0:0{math.floor(events[0].time)}] {words[events[0].kind]}")


def test_the_demonstration_file_has_clean_repetitions_as_good_executions_and_slips_as_tips(tmp_path):
    seconds, frames = 2.5, 75  # not a whole number of seconds: --seconds takes any length of one second or more
    assert generator_main(["--output_dir", str(tmp_path / "d"), "--takes", "6", "--seed", "3", "--seconds",
                           str(seconds), "--no_videos", "--events", "--quiet"]) == 0
    plans = {p.take_uid: p for p in plan_takes(6, 3)}
    kinds, fractions = set(), []
    for split in ("train", "val"):
        records = json.loads((tmp_path / "d" / "annotations" / f"proficiency_demonstration_{split}.json").read_text())
        for record in records["annotations"]:
            plan = plans[record["take_uid"]]
            events = plan_events(plan.motion_seed, frames)
            for key, kind in (("good_executions", "clean"), ("tips_for_improvement", "slip")):
                expected = [e.time for e in events if e.kind == kind]
                # the first expert names every event of its kind, at its onset; the others none (the metric counts
                # every expert's point, and identical points from several experts could never all be matched)
                for i, expert in enumerate(plan.experts):
                    named = [e["video_time"] for e in record[key] if e["expert_uid"] == expert]
                    assert named == (expected if i == 0 else []), (expert, named)
                assert all(e["list"] and e["video_name"] == plan.take_name for e in record[key])
                kinds |= {kind} if expected else set()
            fractions += [e.time % 1 for e in events]
            assert all(e.time + e.duration <= seconds + 1e-9 for e in events)
    assert kinds == {"clean", "slip"}
    assert any(f > 0 for f in fractions)  # sub-second times, not whole seconds


def test_the_generator_spreads_a_two_minute_takes_events_over_the_whole_take(tmp_path):
    root = tmp_path / "long"
    assert generator_main(["--output_dir", str(root), "--takes", "4", "--seed", "1", "--seconds", "120", "--no_videos",
                           "--events", "--quiet"]) == 0
    takes = {t["take_uid"]: t for t in json.loads((root / "takes.json").read_text())}
    points = {}
    for split in ("train", "val"):
        records = json.loads((root / "annotations" / f"proficiency_demonstration_{split}.json").read_text())
        for record in records["annotations"]:
            points[record["take_uid"]] = sorted(e["video_time"] for key in ("good_executions", "tips_for_improvement")
                                                for e in record[key])
    assert sorted(points) == sorted(takes)
    for uid, times in points.items():  # every 20 s of every take has an event, from its start to its end
        assert all(any(20 * i <= t < 20 * (i + 1) for t in times) for i in range(6)), (uid, times)
    rows = load_egoexo4d_proficiency(root, "demonstrator_moments", "train", cache_dir=str(tmp_path / "cache"),
                                     verify_files=False)
    named = [m["time"] for row in rows for m in row["moments"] or []]
    assert named and min(named) < 20 and max(named) >= 100  # the commentary names them at their times too


def test_without_events_the_tree_has_none(tmp_path):
    root = generate_synthetic_egoexo4d(tmp_path / "plain", 4, SEED, SIZE, SECONDS, progress=False, write_videos=False)
    assert not list((root / "annotations").glob("proficiency_demonstration_*.json"))
    assert "events" not in json.loads((root / "profvlm_synthetic.json").read_text())


def test_command_line_and_too_short_takes(tmp_path, capsys):
    assert generator_main(["--output_dir", str(tmp_path / "cli"), "--takes", "2", "--seconds", "2", "--no_videos",
                           "--events", "--quiet"]) == 0
    assert json.loads((tmp_path / "cli" / "profvlm_synthetic.json").read_text())["events"] is True
    assert (tmp_path / "cli" / "annotations" / "proficiency_demonstration_train.json").is_file()
    with pytest.raises(ValueError, match=r"events need takes of at least 1 second .*seconds=0.5"):
        generate_synthetic_egoexo4d(tmp_path / "short", 2, 0, SIZE, 0.5, progress=False, events=True)


@pytest.mark.slow
def test_events_are_visible_per_time_step_through_a_random_tiny_tower(tmp_path, tiny_tokenizer):
    """Per (view, temporal token) of the frozen random tiny tower (4 frames, 4 tokens), a linear probe tells no event,
    a slip and a clean repetition apart: what a moments model needs to say what happened when."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from transformers import TimesformerConfig, TimesformerModel

    from modeling_profvlm.configuration_profvlm import TIMESFORMER_TINY_VISION_CONFIG as TINY
    from modeling_profvlm.tower_adapter import pool_tokens
    from processing.processing_profvlm import ProfVLMProcessor

    takes, seconds, steps = 24, 4.0, 4
    root = generate_synthetic_egoexo4d(tmp_path / "probe", takes, 0, SIZE, seconds, progress=False, events=True)
    plans = {p.take_uid: p for p in plan_takes(takes, 0)}
    processor = ProfVLMProcessor(tokenizer=tiny_tokenizer, num_frames=TINY["num_frames"], image_size=TINY["image_size"])
    torch.manual_seed(0)
    tower = TimesformerModel(TimesformerConfig(**{k: v for k, v in TINY.items() if k != "model_type"})).eval()
    sampled = [15 + 30 * i for i in range(steps)]  # the uniform sampler's 4 frames of 120: one per second, mid-second
    features, classes = [], []
    with torch.inference_mode():
        for split in ("train", "validation"):
            for row in load_egoexo4d_proficiency(root, "demonstrator", split, cache_dir=str(tmp_path / "cache")):
                pixels = processor.process_videos([dict(zip(row["view_names"], row["video_paths"]))])
                tokens = tower(pixel_values=pixels["pixel_values_videos"][0]).last_hidden_state  # [V, tokens, D]
                per_step = pool_tokens(tokens, tower.config, steps, TINY["num_frames"]).numpy()  # [V, N, D]
                events = plan_events(plans[row["take_uid"]].motion_seed, round(seconds * 30))
                for view in range(per_step.shape[0]):
                    for step, frame in enumerate(sampled):
                        shown = [e.kind for e in events if view in e.cameras and frame in e.frames(120)]
                        features.append(per_step[view, step])
                        classes.append(("none", "slip", "clean").index(shown[0] if shown else "none"))
    classes = np.array(classes)
    assert np.bincount(classes, minlength=3).min() >= 20, np.bincount(classes)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    accuracy = cross_val_score(probe, np.array(features), classes, cv=StratifiedKFold(5, shuffle=True, random_state=0))
    print(f"event probe accuracy per (view, step): {accuracy.mean():.3f}")
    assert accuracy.mean() >= 0.95
