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
