"""One name per concept on every command line: an old spelling (`--out`, `--output`, `--dry_run`, a builder
`--config`, `--private`, ...) stops with one line naming today's flag, on every command that had it."""
import importlib

import pytest

from dataset_scripts.script_errors import RENAMED_FLAGS, reject_renamed_flags

# (module, function, argv): each call must stop at the old flag, before doing any work
OLD_SPELLINGS = [
    ("profvlm.cli", "main", ["init", "--vision", "random-tiny", "--text", "t", "--out", "base"]),
    ("profvlm.cli", "main", ["synthetic", "--takes", "2", "--out", "tree"]),
    ("profvlm.cli", "main", ["push", "--model", "m", "--repo", "org/x", "--dry_run"]),
    ("profvlm.cli", "main", ["push", "--model", "m", "--repo", "org/x", "--private"]),
    ("profvlm.cli", "main", ["demo", "--output", "d"]),
    ("training.extract_features", "parse_args", ["--model", "m", "--data_dir", "d", "--output", "cache"]),
    ("training.evaluate_profvlm", "parse_args", ["--model", "m", "--data_dir", "d", "--out", "eval"]),
    ("training.sft", "parse_args", ["--model", "m", "--data_dir", "d", "--output", "run"]),
    ("dataset_scripts.egoexo4d_proficiency", "main", ["--data_dir", "d", "--config", "demonstrator", "--output_dir", "o"]),
    ("dataset_scripts.egoexo4d_proficiency", "main", ["--data_dir", "d", "--output", "o"]),
    ("dataset_scripts.multiview_folder", "main", ["--data_dir", "d", "--output=o"]),
    ("dataset_scripts.synthetic_egoexo4d", "main", ["--out", "tree", "--takes", "2"]),
    ("benchmarks.gpu_check", "main", ["--dry_run"]),
    ("benchmarks.run_all", "main", ["--output", "summary.json"]),
    ("benchmarks.bench_training", "main", ["--checkpoint", "base"]),
    ("benchmarks.bench_processing", "main", ["--video-dir", "videos"]),
]


def old_flag(argv: list[str]) -> str:
    return next(a.split("=")[0] for a in argv if a.split("=")[0] in RENAMED_FLAGS)


@pytest.mark.parametrize("module, function, argv", OLD_SPELLINGS,
                         ids=[f"{m.split('.')[-1]} {old_flag(a)}" for m, _, a in OLD_SPELLINGS])
def test_an_old_spelling_fails_in_one_line_naming_the_new_flag(module, function, argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        getattr(importlib.import_module(module), function)(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    old = old_flag(argv)
    assert err.count("\n") == 1, err  # one line, no usage block
    assert f"{old} is now {RENAMED_FLAGS[old]}" in err, err


def test_old_spellings_are_not_taken_as_abbreviations_and_the_parser_keeps_its_own_flags():
    import argparse

    parser = argparse.ArgumentParser(prog="x")
    parser.add_argument("--output_dir")
    parser.add_argument("--config")  # a parser that owns an old name keeps it
    reject_renamed_flags(parser)
    assert vars(parser.parse_args(["--output_dir", "a", "--config", "c.yaml"])) == {"output_dir": "a", "config": "c.yaml"}
    with pytest.raises(SystemExit):
        parser.parse_args(["--out", "a"])  # argparse alone would read it as --output_dir


def test_no_command_line_declares_an_old_spelling():
    """The commands of the `profvlm` CLI, walked through their sub-parsers: none offers a renamed flag for real."""
    import argparse

    from profvlm.cli import build_parser

    def walk(parser):
        yield parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from walk(sub)

    for parser in walk(build_parser()):
        for option, action in parser._option_string_actions.items():
            if option in RENAMED_FLAGS:
                assert type(action).__name__ == "_RenamedFlag", (parser.prog, option)
