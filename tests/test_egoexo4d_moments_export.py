"""The EgoExo4D builder's command line for config `demonstrator_moments` (--max_moments, --max_moment_words,
--moments_source) and the exported dataset card's description of it."""
import datasets
import pytest

from dataset_scripts.egoexo4d_proficiency import main
from tests.egoexo4d_fixtures import FixtureTake, demonstration_entry, entry, write_tree


@pytest.fixture
def root(tmp_path):
    demo = {"good_executions": [demonstration_entry(3.2, ["Balanced stance, soft knees"], "qfbn5o"),
                                demonstration_entry(40.0, ["Quick release"], "qfbn5o")],
            "tips_for_improvement": [demonstration_entry(20.5, ["Keep the elbow in"], "qfbn5o")]}
    commentary = {"6jm95g": [entry(" Nice start to the drill", 1.5), entry(" The elbow flares out here", 27.9, 1),
                             entry(" Strong finish", 55.0, 2)]}
    return write_tree(tmp_path / "r", [FixtureTake("unc_basketball_a", duration_sec=60.0, experts=commentary,
                                                   demonstration=demo),
                                       FixtureTake("unc_basketball_v", split="val", duration_sec=60.0,
                                                   experts=commentary, demonstration=demo)])


def test_moment_flags_reach_the_rows_and_the_card(root, tmp_path):
    out = tmp_path / "out"
    main(["--data_dir", str(root), "--dataset_config", "demonstrator_moments", "--output_dir", str(out),
          "--cache_dir", str(tmp_path / "c"), "--max_moments", "2", "--max_moment_words", "2"])
    rows = datasets.load_dataset(str(out), split="train", cache_dir=str(tmp_path / "c2"))
    # three remarks at 1.5, 27.9 and 55 s, two kept to cover the take (the first and the last), two words each
    assert rows[0]["moments"] == [{"time": 1.5, "text": "Nice start", "category": None},
                                  {"time": 55.0, "text": "Strong finish", "category": None}]
    assert rows[0]["feedback"] == "[0:01] Nice start [0:55] Strong finish"
    card = (out / "README.md").read_text()
    for said in ("Config `demonstrator_moments`", "`[m:ss] remark [m:ss] remark ...`", "at most 2", "cut to 2 words",
                 "the expert commentary (`annotations/expert_commentary_<split>.json`", "after the take's `duration_sec`",
                 "labels and expert commentary of the Ego-Exo4D release"):
        assert said in card, said


def test_the_demonstration_source_from_the_command_line(root, tmp_path):
    out = tmp_path / "out"
    main(["--data_dir", str(root), "--dataset_config", "demonstrator_moments", "--output_dir", str(out),
          "--cache_dir", str(tmp_path / "c"), "--moments_source", "demonstration"])
    rows = datasets.load_dataset(str(out), split="validation", cache_dir=str(tmp_path / "c2"))
    assert rows[0]["feedback"] == ("[0:03] good: Balanced stance, soft knees [0:20] tip: Keep the elbow in "
                                   "[0:40] good: Quick release")
    card = (out / "README.md").read_text()
    assert "`annotations/proficiency_demonstration_<split>.json`" in card and "at most 8" in card
    assert "demonstration-proficiency remarks of the Ego-Exo4D release" in card


def test_the_demonstration_config_exports_categorised_moments_and_says_so(root, tmp_path):
    out = tmp_path / "out"
    main(["--data_dir", str(root), "--dataset_config", "demonstration_moments", "--output_dir", str(out),
          "--cache_dir", str(tmp_path / "c"), "--max_moments", "2"])
    rows = datasets.load_dataset(str(out), split="train", cache_dir=str(tmp_path / "c2"))
    assert rows[0]["moments"] == [{"time": 3.2, "text": "Balanced stance, soft knees", "category": "good_execution"},
                                  {"time": 40.0, "text": "Quick release", "category": "good_execution"}]
    assert rows[0]["feedback"] == "[0:03] good: Balanced stance, soft knees [0:40] good: Quick release"
    card = (out / "README.md").read_text()
    for said in ("Config `demonstration_moments`", "`annotations/proficiency_demonstration_<split>.json`",
                 "at most 2", '"category": good_execution / needs_improvement'):
        assert said in card, said


def test_moment_flags_with_another_config_are_refused(root, tmp_path):
    with pytest.raises(ValueError, match=r"--max_moments, --moments_source only apply to --dataset_config "
                                         r"demonstrator_moments or demonstration_moments, not demonstrator_commentary"):
        main(["--data_dir", str(root), "--output_dir", str(tmp_path / "out"), "--max_moments", "3",
              "--moments_source", "demonstration"])


def test_other_configs_cards_do_not_describe_moments(root, tmp_path):
    main(["--data_dir", str(root), "--dataset_config", "demonstrator_commentary", "--output_dir", str(tmp_path / "o"),
          "--cache_dir", str(tmp_path / "c")])
    assert "demonstrator_moments" not in (tmp_path / "o" / "README.md").read_text()
