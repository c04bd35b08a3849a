"""[long-takes] bench_learnability.py's --clip_seconds: which runs it makes and what they are held to."""
import pytest

from benchmarks import bench_learnability


def test_clip_seconds_values_run_in_order_and_are_scored_within_two_seconds():
    args = bench_learnability.parse_args(["--moments", "--seconds", "60", "--clip_seconds", "4", "0"])
    assert args.clip_seconds_values == [4.0, 0.0] and args.clip_seconds == 4.0
    # a 60-s take's tokens are seconds long: the moments are held to 2 s, the label as always; time is only stated
    assert bench_learnability.targets_for(args) == {"accuracy": 0.90, "time_grounding_f1_within_2s": 0.70}
    plain = bench_learnability.parse_args(["--moments"])
    assert plain.clip_seconds_values == [None]
    assert bench_learnability.targets_for(plain) == {"accuracy": 0.90, "time_grounding_f1": 0.70,
                                                     "training_seconds": 900}


def test_negative_clip_seconds_are_refused_naming_the_value(capsys):
    with pytest.raises(SystemExit):
        bench_learnability.parse_args(["--moments", "--clip_seconds", "-4"])
    assert "--clip_seconds [-4.0]: expected seconds > 0, or 0 for one clip" in capsys.readouterr().err


def _fake_run(args, work):
    # what run_seed reports, without training: a score that names the run
    score = 0.5 + args.seed / 10 + (args.clip_seconds or 0) / 100
    return {"seed": args.seed, "time_decimals": args.time_decimals, "clip_seconds": args.clip_seconds,
            "measured": {"accuracy": score, "time_grounding_f1_within_2s": score}, "passed": {}, "all_passed": False,
            "timings_s": {}}


def test_append_keeps_the_earlier_runs_and_refuses_other_settings(tmp_path, monkeypatch):
    import json

    monkeypatch.setattr(bench_learnability, "run_seed", _fake_run)
    common = ["--moments", "--seconds", "60", "--output_dir", str(tmp_path), "--work_dir", str(tmp_path / "w")]
    bench_learnability.main([*common, "--seeds", "0", "--clip_seconds", "4"])
    report = bench_learnability.main([*common, "--append", "--seeds", "1", "0", "--clip_seconds", "0"])
    # seed 0 with clips was kept, the rest added; the summary stays the first command's setting (4 s clips)
    assert [(run["seed"], run["clip_seconds"]) for run in report["runs"]] == [(0, 4.0), (1, 0.0), (0, 0.0)]
    assert report["summary"]["accuracy"]["per_seed"] == {0: 0.54}
    assert set(report["summary_by_clip_seconds"]) == {"4.0", "0.0"}
    assert json.loads((tmp_path / "bench_learnability.json").read_text())["runs"] == json.loads(
        json.dumps(report["runs"]))
    # a run redone replaces its earlier self
    report = bench_learnability.main([*common, "--append", "--seeds", "0", "--clip_seconds", "4"])
    assert [(run["seed"], run["clip_seconds"]) for run in report["runs"]] == [(1, 0.0), (0, 0.0), (0, 4.0)]
    assert report["summary"]["accuracy"]["per_seed"] == {0: 0.54}  # still the 4-s clips
    # another setting would make runs that do not compare: refused, naming it
    with pytest.raises(ValueError, match="was made with takes=200, this command has 100"):
        bench_learnability.main([*common, "--append", "--seeds", "2", "--takes", "100"])
