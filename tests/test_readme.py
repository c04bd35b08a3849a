"""[demo] Every fenced Python block of the README runs, against a tiny local checkpoint laid out as the Hub cache."""
import re

from tests.hub_cache import REPO_ROOT, make_hub_cache, run_isolated
from tests.serving_helpers import write_take

FENCED_PYTHON = re.compile(r"```python\n(.*?)```", re.DOTALL)


def readme_python_blocks() -> list[str]:
    """The README's fenced ```python blocks, in order."""
    return FENCED_PYTHON.findall((REPO_ROOT / "README.md").read_text())


def test_readme_has_python_snippets_that_use_the_hub_id():
    blocks = readme_python_blocks()
    assert blocks, "the README lost its Python usage snippets"
    assert any('"org/profvlm"' in b for b in blocks)


def test_every_readme_python_snippet_runs(tiny_checkpoint, tmp_path):
    take = write_take(tmp_path / "take")
    hub = make_hub_cache(tiny_checkpoint, tmp_path / "hub")  # "org/profvlm" resolves here, offline
    prelude = f"EGO_VIDEO = {take['ego']!r}\nEXO_VIDEO = {take['exo1']!r}\n"
    for block in readme_python_blocks():
        run_isolated(prelude + block, hub, tmp_path)
