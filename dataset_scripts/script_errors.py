# One-line errors for every ProfVLM command line (profvlm, the training and the dataset scripts): the expected
# failures (a missing folder, an unreachable Hub id, a wrong checkpoint, bad data) print one line that says what to
# do; the full trace only with --verbose. A flag under an old name is one of those failures: `reject_renamed_flags`
# turns it into one line naming today's flag. It lives in the lowest layer that has scripts, so all of them can use it.
import argparse
import os
import sys
import traceback
from collections.abc import Callable

# Failures a user causes and can fix; anything else is a bug and keeps its traceback.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, ImportError, KeyError)
VERBOSE_FLAG = "--verbose"
# The exit status of an expected failure, for `profvlm` and every script alike (argparse keeps 2 for usage errors).
EXPECTED_ERROR_EXIT = 1


def one_line(err: BaseException) -> str:
    """The first non-empty line of an exception's message (transformers' Hub errors run to many lines)."""
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def wants_verbose(argv: list[str] | None) -> bool:
    """True when `--verbose` is on the command line or PROFVLM_VERBOSE=1."""
    args = sys.argv[1:] if argv is None else argv
    return VERBOSE_FLAG in args or os.environ.get("PROFVLM_VERBOSE") == "1"


def call_with_one_line_errors(prog: str, call: Callable[[], object], verbose: bool = False,
                              expected: tuple[type[BaseException], ...] = EXPECTED_ERRORS) -> int:
    """`call()`; an expected error prints `prog: <one line>` (the trace first when `verbose`) and returns
    EXPECTED_ERROR_EXIT. The one handler of every command line: `profvlm` and each script."""
    try:
        result = call()
    except expected as err:
        if verbose:
            traceback.print_exc()
        hint = "" if verbose else f" (run with {VERBOSE_FLAG} for the full trace)"
        print(f"{prog}: {one_line(err)}{hint}", file=sys.stderr)
        return EXPECTED_ERROR_EXIT
    return result if isinstance(result, int) else 0


def run_with_one_line_errors(prog: str, main: Callable[[list[str] | None], object], argv: list[str] | None = None,
                             expected: tuple[type[BaseException], ...] = EXPECTED_ERRORS) -> int:
    """Run a script's `main(argv)` (argv without `--verbose`) under `call_with_one_line_errors`."""
    args = [a for a in (sys.argv[1:] if argv is None else argv) if a != VERBOSE_FLAG]
    return call_with_one_line_errors(prog, lambda: main(args), wants_verbose(argv), expected)


# Old spelling -> today's flag. One name per concept on every command line: `--output_dir` for every output folder,
# `--dry-run`, `--model` for a checkpoint, `--config` only for sft.py's YAML (a dataset builder config is
# `--dataset_config`), a Hub repo private unless `--public`, and underscores between words.
RENAMED_FLAGS: dict[str, str] = {
    "--out": "--output_dir", "--output": "--output_dir", "--dry_run": "--dry-run", "--config": "--dataset_config",
    "--private": "--public", "--checkpoint": "--model", "--video-dir": "--video_dir", "--num-frames": "--num_frames",
    "--full-repeats": "--full_repeats",
}
# Today's flag -> what the one-line error adds, where the new name alone does not say it.
RENAME_REASONS: dict[str, str] = {
    "--output_dir": "every output folder is --output_dir", "--model": "a checkpoint folder is --model on every command",
    "--dataset_config": "the dataset builder config; --config is only training/sft.py's YAML file",
    "--public": "Hub repos are private unless --public",
}


class _RenamedFlag(argparse.Action):
    """Stops the parse at an old flag with one line: `prog: --out is now --output_dir (why)`."""

    def __init__(self, option_strings, dest, new: str, why: str, **kwargs):
        super().__init__(option_strings, dest, nargs="?", default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kwargs)
        self.new, self.why = new, why

    def __call__(self, parser, namespace, values, option_string=None):
        why = f" ({self.why})" if self.why else ""
        parser.exit(2, f"{parser.prog}: {option_string} is now {self.new}{why}\n")


def reject_renamed_flags(parser: argparse.ArgumentParser, keep: tuple[str, ...] = ()) -> argparse.ArgumentParser:
    """Make every old spelling in `RENAMED_FLAGS` whose new flag `parser` (or any of its sub-commands) has an error
    naming the new flag; without this, argparse would take `--out` as an abbreviation of `--output_dir` silently or
    answer only `unrecognized arguments`. `keep`: old spellings a parser handles itself (TRL's `--config YAML`).
    Call it once the parser has all its options; returns `parser`."""
    options = set(parser._option_string_actions)
    for old, new in RENAMED_FLAGS.items():
        if new in options and old not in options and old not in keep:
            parser.add_argument(old, action=_RenamedFlag, new=new, why=RENAME_REASONS.get(new, ""),
                                dest=f"renamed_{old.strip('-')}")
    for action in parser._actions:  # sub-commands (`profvlm init`, `profvlm push`, ...) have parsers of their own
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                reject_renamed_flags(sub, keep)
    return parser


__all__ = ["EXPECTED_ERRORS", "EXPECTED_ERROR_EXIT", "RENAMED_FLAGS", "call_with_one_line_errors", "RENAME_REASONS", "one_line", "reject_renamed_flags",
           "run_with_one_line_errors", "wants_verbose"]
