# One-line errors for every ProfVLM command line (profvlm, the training and the dataset scripts): the expected
# failures (a missing folder, an unreachable Hub id, a wrong checkpoint, bad data) print one line that says what to
# do; the full trace only with --verbose. It lives in the lowest layer that has scripts, so all of them can use it.
import os
import sys
import traceback
from collections.abc import Callable

# Failures a user causes and can fix; anything else is a bug and keeps its traceback.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, ImportError, KeyError)
VERBOSE_FLAG = "--verbose"


def one_line(err: BaseException) -> str:
    """The first non-empty line of an exception's message (transformers' Hub errors run to many lines)."""
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def wants_verbose(argv: list[str] | None) -> bool:
    """True when `--verbose` is on the command line or PROFVLM_VERBOSE=1."""
    args = sys.argv[1:] if argv is None else argv
    return VERBOSE_FLAG in args or os.environ.get("PROFVLM_VERBOSE") == "1"


def run_with_one_line_errors(prog: str, main: Callable[[list[str] | None], object], argv: list[str] | None = None,
                             expected: tuple[type[BaseException], ...] = EXPECTED_ERRORS) -> int:
    """Run `main(argv)` (argv without `--verbose`); an expected error prints `prog: <one line>` and returns 1."""
    verbose = wants_verbose(argv)
    args = [a for a in (sys.argv[1:] if argv is None else argv) if a != VERBOSE_FLAG]
    try:
        result = main(args)
    except expected as err:
        if verbose:
            traceback.print_exc()
        hint = "" if verbose else f" (run with {VERBOSE_FLAG} for the full trace)"
        print(f"{prog}: {one_line(err)}{hint}", file=sys.stderr)
        return 1
    return result if isinstance(result, int) else 0


__all__ = ["EXPECTED_ERRORS", "one_line", "wants_verbose", "run_with_one_line_errors"]
