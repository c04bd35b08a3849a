"""Synthetic Ego-Exo4D generator: real layout, determinism, quirks, label mix, commentary grounded in the motion."""
import json
import re
from pathlib import Path

import av
import numpy as np
import pytest

from dataset_scripts.synthetic_commentary import PHRASES, SCENARIO_WORDS
from dataset_scripts.synthetic_egoexo4d import (
    REAL_TRAIN_MIX,
    exo_width,
    generate_synthetic_egoexo4d,
    main as generator_main,
    plan_takes,
)
from dataset_scripts.synthetic_motion import SCENARIO_PATTERNS, motion_grades, motion_statistics, simulate_motion
from modeling_profvlm.configuration_profvlm import PROFICIENCY_LABELS

SIZE, SECONDS, TAKES, SEED = 32, 0.5, 12, 5
SCENARIOS = {"Basketball", "Cooking", "Dance", "Music", "Rock Climbing", "Soccer"}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return generate_synthetic_egoexo4d(tmp_path_factory.mktemp("syn") / "a", TAKES, SEED, SIZE, SECONDS, workers=2,
                                       progress=False)


def annotation_files(root: Path) -> dict[str, bytes]:
    """Every non-video file of a tree, by relative path."""
    return {str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() and p.suffix != ".mp4"}


def records(root: Path, split: str) -> list[dict]:
    data = json.loads((root / "annotations" / f"proficiency_demonstrator_{split}.json").read_text())
    return data["annotations"] if isinstance(data, dict) else data


def commentary(root: Path, split: str) -> dict:
    return json.loads((root / "annotations" / f"expert_commentary_{split}.json").read_text())["annotations"]


def test_same_seed_gives_byte_identical_annotation_files(tree, tmp_path):
    again = generate_synthetic_egoexo4d(tmp_path / "b", TAKES, SEED, SIZE, SECONDS, workers=1, progress=False,
                                        write_videos=False)
    first, second = annotation_files(tree), annotation_files(again)
    assert "takes.json" in first and "annotations/expert_commentary_val.json" in first
    assert first == second
    other = annotation_files(generate_synthetic_egoexo4d(tmp_path / "c", TAKES, SEED + 1, SIZE, SECONDS,
                                                         progress=False, write_videos=False))
    assert other["takes.json"] != first["takes.json"]


def test_layout_and_videos(tree):
    takes = json.loads((tree / "takes.json").read_text())
    assert len(takes) == TAKES and (tree / "annotations" / "splits.json").is_file()
    splits = json.loads((tree / "annotations" / "splits.json").read_text())["take_uid_to_split"]
    assert {r["take_uid"] for s in ("train", "val") for r in records(tree, s)} == {t["take_uid"] for t in takes}
    assert all(splits[r["take_uid"]] == s for s in ("train", "val") for r in records(tree, s))
    for rec in records(tree, "train") + records(tree, "val"):
        counts = set()
        assert list(rec["video_paths"]) == ["ego", "exo1", "exo2", "exo3", "exo4"]
        for view, rel in rec["video_paths"].items():
            rel = re.sub(r"^(takes/)+", "takes/", rel)
            rel = rel.replace("frame_aligned_videos/", "frame_aligned_videos/downscaled/448/")
            with av.open(str(tree / rel)) as c:
                s = c.streams.video[0]
                frames = sum(1 for _ in c.decode(s))
                codec = (s.codec_context.name, s.codec_context.pix_fmt, float(s.average_rate))
                assert codec == ("h264", "yuv420p", 30.0)
                assert (s.width, s.height) == ((SIZE, SIZE) if view == "ego" else (exo_width(SIZE), SIZE))
            counts.add(frames)
        assert counts == {round(SECONDS * 30)}, rec["take_uid"]  # frame-aligned: the same count in every view


@pytest.mark.parametrize("num_takes", [12, 40])
def test_quirks_appear(tmp_path, num_takes):
    tree = generate_synthetic_egoexo4d(tmp_path / "q", num_takes, SEED, progress=False, write_videos=False)
    takes = json.loads((tree / "takes.json").read_text())
    egos = {next(c for c in t["frame_aligned_videos"] if c.startswith("aria")) for t in takes}
    exo_sets = [sorted(c for c in t["frame_aligned_videos"] if c[:2] in ("ca", "gp") and c != "collage") for t in takes]
    assert egos - {"aria01"} and "aria01" in egos
    assert any([c[-2:] for c in s] == ["01", "03", "04", "05"] for s in exo_sets)
    gopro = [t["university_name"] == "upenn" for t in takes]
    assert [s[0].startswith("gp") for s in exo_sets] == gopro  # all upenn takes, and only those, use gp cameras
    if num_takes >= 40:
        assert any(gopro)
    assert any(t["best_exo"] is None for t in takes) and any(t["best_exo"] for t in takes)
    assert all({"collage", "best_exo"} <= set(t["frame_aligned_videos"]) for t in takes)
    assert any(c["cam_id"] == "moblie" for t in takes for c in t["capture"]["cameras"])
    recs = records(tree, "train") + records(tree, "val")
    assert isinstance(json.loads((tree / "annotations/proficiency_demonstrator_val.json").read_text()), list)
    assert isinstance(json.loads((tree / "annotations/proficiency_demonstrator_train.json").read_text()), dict)
    assert any(p.startswith("takes/takes/") for r in recs for p in r["video_paths"].values())
    assert {type(r["origin_participant_id"]) for r in recs} == {int, str}
    entries = [e for s in ("train", "val") for experts in commentary(tree, s).values() for x in experts
               for e in x["commentary_data"]]
    assert any(e["error"] and "text" not in e for e in entries)
    assert all(e["text"].startswith(" ") for e in entries if not e["error"])
    assert any(len(experts) >= 2 for s in ("train", "val") for experts in commentary(tree, s).values())
    assert list((tree / "annotations" / "expert_commentary").glob("*/*/data.json"))


def test_label_and_scenario_mix_like_the_real_split():
    plans = plan_takes(1000, seed=0)
    assert {p.scenario for p in plans} == SCENARIOS == set(REAL_TRAIN_MIX)
    real = np.array([REAL_TRAIN_MIX[s] for s in sorted(SCENARIOS)], float)
    ours = np.zeros_like(real)
    for p in plans:
        ours[sorted(SCENARIOS).index(p.scenario), p.level] += 1
    assert np.abs(ours / ours.sum() - real / real.sum()).max() < 0.005  # systematic sampling: within +-1 take per cell
    assert not any(p.level == 0 and p.scenario in ("Music", "Soccer") for p in plans)
    assert abs(sum(p.split == "val" for p in plans) / 1000 - 561 / 2544) < 0.01


@pytest.mark.parametrize("scenario", sorted(SCENARIO_PATTERNS))
def test_motion_statistics_grade_like_the_label(scenario):
    for level in range(len(PROFICIENCY_LABELS)):
        for seed in range(5):
            stats = motion_statistics(simulate_motion(level, scenario, 120, seed))
            expected = dict.fromkeys(("extension", "range", "speed", "tremor"), level)
            assert motion_grades(stats, scenario) == expected, (level, seed)


def test_commentary_describes_the_motion(tree):
    """Every graded sentence is at most one grade off the take's level: comments are measured on the ~1 s window
    around their video_time (here the takes are only 0.5 s long); whole takes grade exactly, see above."""
    takes = {r["take_uid"]: r for s in ("train", "val") for r in records(tree, s)}
    checked = 0
    for s in ("train", "val"):
        for uid, experts in commentary(tree, s).items():
            move, moves = SCENARIO_WORDS[takes[uid]["scenario_name"]]
            level = PROFICIENCY_LABELS.index(takes[uid]["proficiency_score"])
            for e in (e for x in experts for e in x["commentary_data"] if not e["error"]):
                for aspect, grades in PHRASES.items():
                    for grade, variants in enumerate(grades):
                        if any(v.format(move=move, moves=moves) in e["text"] for v in variants):
                            checked += 1
                            assert abs(grade - level) <= 1, (aspect, e["text"], level)
    assert checked >= TAKES


def test_argument_errors(tmp_path, tree):
    with pytest.raises(ValueError, match="multiple of 4"):
        generate_synthetic_egoexo4d(tmp_path / "x", 2, size=30)
    with pytest.raises(ValueError, match="num_takes"):
        generate_synthetic_egoexo4d(tmp_path / "x", 0)
    with pytest.raises(FileExistsError, match="takes.json"):
        generate_synthetic_egoexo4d(tree, 2, write_videos=False)


def test_a_generation_stopped_part_way_is_not_taken_for_a_tree_and_runs_again(tmp_path, monkeypatch):
    """A full disk or Ctrl-C while rendering leaves no takes.json (what marks a tree as complete for its readers and
    for the benchmarks that reuse one), so the same call afterwards writes the whole tree without --overwrite."""
    import dataset_scripts.synthetic_egoexo4d as generator

    render, rendered = generator.write_take_videos, []

    def stop_at_the_third_take(job):
        if len(rendered) == 2:
            raise OSError(28, "No space left on device")
        rendered.append(render(job))

    monkeypatch.setattr(generator, "write_take_videos", stop_at_the_third_take)
    with pytest.raises(OSError, match="No space left"):
        generate_synthetic_egoexo4d(tmp_path / "t", 4, SEED, SIZE, SECONDS, workers=1, progress=False)
    assert len(rendered) == 2 and not (tmp_path / "t" / "takes.json").exists()
    monkeypatch.setattr(generator, "write_take_videos", render)
    root = generate_synthetic_egoexo4d(tmp_path / "t", 4, SEED, SIZE, SECONDS, workers=1, progress=False)
    assert len(json.loads((root / "takes.json").read_text())) == 4 and len(list(root.rglob("*.mp4"))) == 4 * 5


def test_command_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        generator_main(["--help"])
    assert "--takes" in capsys.readouterr().out
    generator_main(["--output_dir", str(tmp_path / "t"), "--takes", "3", "--seed", "1", "--no_videos", "--quiet"])
    assert len(json.loads((tmp_path / "t" / "takes.json").read_text())) == 3
