"""[demo] README.md's code runs: every Python and shell block, in page order, on tiny fixtures with the README's
paths swapped for them, so a documented command, flag or API cannot drift. A block that cannot run here carries
`<!-- not run in tests: WHY -->` on the line above it; any other block that fails fails this test, and so does a
fence whose language is neither runnable nor documentation. New sections are picked up with no change here."""
import contextlib
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.hub_cache import REPO_ROOT, HubSpace
from tests.preloaded_python import preloaded_bin
from tests.serving_helpers import write_take
from tests.video_fixtures import write_pattern_video

README = REPO_ROOT / "README.md"
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
NOT_RUN = re.compile(r"^<!--\s*not run in tests:\s*(\S.*?)\s*-->$")
RUNNABLE = {"python": "python", "bash": "shell", "sh": "shell", "shell": "shell"}
DOCUMENTATION = {"text", "bibtex"}  # output excerpts, file layouts, citations: shown, never run
PROJECT_IMPORT = re.compile(r"^\s*(?:import|from)\s+(?:profvlm|modeling_profvlm|processing|training|dataset_scripts)\b",
                            re.MULTILINE)
# The training budget of the README's SFT commands here: the flags and paths are the README's, the recipe is tiny.
TINY_SFT_RECIPE = """max_steps: 2
per_device_train_batch_size: 2
eval_split: none
save_strategy: "no"
report_to: none
logging_steps: 1
max_feedback_words: 12
dataloader_num_workers: 0
"""


@dataclass
class Block:
    """One fenced block of the README: its language, code, first line number and why it is not run (if marked)."""

    language: str
    code: str
    line: int
    not_run: str | None


def readme_blocks(text: str) -> list[Block]:
    """Every fenced block of `text` in order, with the `not run in tests` reason from the line just above it."""
    blocks = []
    for match in FENCE.finditer(text):
        above = [line.strip() for line in text[: match.start()].splitlines() if line.strip()]
        marker = NOT_RUN.match(above[-1]) if above else None
        blocks.append(Block(match.group(1).strip().lower(), match.group(2), text.count("\n", 0, match.start()) + 1,
                            marker.group(1) if marker else None))
    return blocks


def runnable_blocks(text: str) -> list[Block]:
    """The blocks to run: Python and shell blocks without a `not run in tests` marker."""
    return [b for b in readme_blocks(text) if RUNNABLE.get(b.language) and b.not_run is None]


@dataclass
class Workspace:
    """Where the README's commands run, and what its placeholders become there."""

    cwd: Path
    env: dict
    shell_swaps: list[tuple[str, str]]  # (regex, replacement), applied in order
    python_prelude: str
    python_swaps: list[tuple[str, str]]
    hub_space: HubSpace | None  # where `org/profvlm` resolves, and the project-free processes that load it

    def shell(self, code: str) -> str:
        for pattern, replacement in self.shell_swaps:
            code = re.sub(pattern, replacement, code)
        return code

    def python(self, code: str) -> str:
        for pattern, replacement in self.python_swaps:
            code = re.sub(pattern, replacement, code)
        return self.python_prelude + code


def run_block(block: Block, space: Workspace) -> None:
    """Run one block; on failure raise an AssertionError naming its README line and showing its output."""
    if block.language == "python":
        code = space.python(block.code)
        proc = subprocess.run(["python", "-c", code], cwd=space.cwd, env=space.env, capture_output=True,
                              text=True, timeout=600)
        if proc.returncode == 0 and not PROJECT_IMPORT.search(block.code):
            # Without the package, from the Hub layout: the same block must work with the checkpoint's own code.
            space.hub_space.run_isolated(code, space.cwd, timeout=600)
    else:
        code = space.shell(block.code)
        proc = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", code], cwd=space.cwd, env=space.env,
                              capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (
        f"README.md line {block.line}: this {block.language} block failed (exit {proc.returncode}); fix it, or mark "
        f"it with '<!-- not run in tests: WHY -->' on the line above if it cannot run here.\n--- block as run:\n{code}"
        f"\n--- output (tail):\n{(proc.stdout + proc.stderr)[-4000:]}")


# ------------------------------------------------------------------------------------------------------ fixtures
def write_folder_dataset(root: Path) -> Path:
    """A two-camera (front, side) dataset with three ordered levels: the README's `my_dataset`."""
    labels = ["beginner", "intermediate", "advanced"]
    (root / "videos").mkdir(parents=True)
    (root / "labels.json").write_text(json.dumps({"labels": labels}))
    rows = []
    for i in range(6):
        row = {"take_id": f"t{i:03d}", "split": "train" if i < 4 else "validation", "label": labels[i % 3],
               "feedback": f"Take {i} feedback."}
        for j, view in enumerate(("front", "side")):
            write_pattern_video(root / "videos" / f"t{i:03d}_{view}.mp4", num_frames=8, height=32, width=32,
                                seed=10 * i + j)
            row[f"{view}_file_name"] = f"videos/t{i:03d}_{view}.mp4"
        rows.append(json.dumps(row))
    (root / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    return root


@contextlib.contextmanager
def served_app(checkpoint: Path, example_dir: Path):
    """The web app on the tiny checkpoint, for the README's gradio_client block."""
    from profvlm.app import build_app
    from tests.app_helpers import serving

    demo = build_app(str(checkpoint), device="cpu", dtype="float32", max_new_tokens=4, example_dir=example_dir)
    with serving(demo) as url:
        yield url


@pytest.fixture
def workspace(tmp_path, tree, tiny_text_dir, hub_space):
    """An empty folder the README's commands run in, with its takes and datasets on disk."""
    cwd = tmp_path / "work"
    cwd.mkdir()
    take = write_take(cwd / "take", views=("ego", "exo1", "exo2"))
    for view, name in (("ego", "aria01_214-1.mp4"), ("exo1", "cam01.mp4"), ("exo2", "cam02.mp4")):
        os.replace(take[view], cwd / "take" / name)  # the README's file names
    for view in ("front", "side", "ego"):
        write_pattern_video(cwd / f"{view}.mp4", num_frames=8, height=32, width=32, seed=len(view))
    recipe = tmp_path / "tiny_sft.yaml"
    recipe.write_text(TINY_SFT_RECIPE)
    venv_bin = str(Path(sys.executable).parent)  # `python`, `profvlm` and `accelerate` of this environment
    env = dict(hub_space.env)  # offline; "org/profvlm" resolves to the tiny checkpoint
    env.update(PATH=venv_bin + os.pathsep + env.get("PATH", ""), ACCELERATE_USE_CPU="1")
    # The same python, profvlm and accelerate, each command still its own process, forked from one that imported
    # torch and transformers once (tests/preloaded_python.py): ~5 s less per command on a slow CPU.
    env["PATH"] = preloaded_bin(env) + os.pathsep + env["PATH"]
    shell_swaps = [
        (r"--config training/configs/\S+\.yaml", f"--config {recipe}"),
        (r"training/sft\.py(?![^\n]*--config)", f"training/sft.py --config {recipe}"),
        (r"(?<![\w/.-])(training|dataset_scripts|benchmarks)/(?=\S+\.py\b)", rf"{REPO_ROOT}/\1/"),
        (r"facebook/timesformer-base-finetuned-k600", "random-tiny"),
        (r"--vision random-base\b", "--vision random-tiny"),
        (r"HuggingFaceTB/SmolLM2-135M-Instruct|smollm2-offline", str(tiny_text_dir)),
        (r"\bEGOEXO\b", str(tree)),
        (r"\bmy_dataset\b", str(write_folder_dataset(tmp_path / "my_dataset"))),
    ]
    yield Workspace(cwd, env, shell_swaps, f"EGO_VIDEO = {str(cwd / 'take' / 'aria01_214-1.mp4')!r}\n"
                                           f"EXO_VIDEO = {str(cwd / 'take' / 'cam01.mp4')!r}\n",
                    [(r'"ego\.mp4"', repr(str(cwd / "ego.mp4")))], hub_space)


# --------------------------------------------------------------------------------------------------------- tests
def test_every_fence_is_runnable_or_documentation_and_every_marker_says_why():
    blocks = readme_blocks(README.read_text())
    unknown = [f"line {b.line}: ```{b.language}" for b in blocks if b.language not in {*RUNNABLE, *DOCUMENTATION}]
    assert unknown == [], f"label each fence ```python, ```bash or ```text: {unknown}"
    assert any(b.language == "python" and '"org/profvlm"' in b.code for b in blocks), "the Python usage is gone"
    assert all(b.not_run for b in blocks if b.not_run is not None)  # a marker without a reason does not match


def test_every_readme_python_and_shell_block_runs(workspace, tiny_checkpoint, tmp_path, one_thread):
    blocks = runnable_blocks(README.read_text())
    assert {b.language for b in blocks} >= {"python", "bash"}
    with contextlib.ExitStack() as stack:
        if any("gradio_client" in b.code for b in blocks):
            url = stack.enter_context(served_app(tiny_checkpoint, tmp_path / "app_example"))
            workspace.python_swaps.append((r'"http://127\.0\.0\.1:7860"', repr(url)))
        for block in blocks:
            run_block(block, workspace)
    assert (workspace.cwd / "runs" / "profvlm" / "final" / "README.md").is_file()  # the page's flow ran end to end


def test_a_block_that_cannot_run_fails_unless_marked(tmp_path):
    """What keeps the page honest: an unmarked block that cannot run here fails, a marked one is left out."""
    page = ("## New section\n\n```bash\negoexo -o EGOEXO --parts metadata\n```\n\n"
            "<!-- not run in tests: licensed download -->\n```bash\negoexo -o EGOEXO --parts takes\n```\n\n"
            "```text\nan output excerpt\n```\n")
    blocks = readme_blocks(page)
    assert [(b.language, b.not_run) for b in blocks] == [("bash", None), ("bash", "licensed download"), ("text", None)]
    to_run = runnable_blocks(page)
    assert [b.line for b in to_run] == [3]
    space = Workspace(tmp_path, {"PATH": "/usr/bin:/bin"}, [], "", [], None)
    with pytest.raises(AssertionError, match="README.md line 3: this bash block failed"):
        run_block(to_run[0], space)
