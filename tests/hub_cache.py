"""The Hugging Face folders of the processes the tests start, a checkpoint laid out as the Hub cache holds a repo,
and code run in a process that cannot see this project."""
import atexit
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
FAKE_REVISION = "0123456789abcdef0123456789abcdef01234567"

# Prepended to isolated snippets: drop the editable-install finder and the checkout from sys.path, then prove it.
_ISOLATION_PRELUDE = f"""
import importlib.util, sys
sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
sys.path[:] = [p for p in sys.path if p not in ("", ".", {str(REPO_ROOT)!r})]
for name in ("modeling_profvlm", "processing", "training", "dataset_scripts"):
    assert importlib.util.find_spec(name) is None, f"project package {{name}} is importable"
"""


_SESSION_ROOT: list[Path] = []


def session_hf_env() -> dict:
    """HF_HUB_CACHE, HF_HOME, HF_MODULES_CACHE and HF_DATASETS_CACHE for every process the tests start: one temporary
    folder per session (removed at exit), so that those processes share one preloaded interpreter (these are read at
    import) and never write to the user's ~/.cache/huggingface."""
    if not _SESSION_ROOT:
        _SESSION_ROOT.append(Path(tempfile.mkdtemp(prefix="profvlm_tests_hf_")))
        atexit.register(shutil.rmtree, _SESSION_ROOT[0], True)
    root = _SESSION_ROOT[0]
    return {"HF_HUB_CACHE": str(root / "hub"), "HF_HOME": str(root / "home"), "HF_MODULES_CACHE": str(root / "modules"),
            "HF_DATASETS_CACHE": str(root / "datasets")}


def process_env(**extra: str) -> dict:
    """The environment of a process a test starts: this one's, offline, single-threaded math (2 shared cores), the
    session's Hugging Face folders; without PYTHONPATH unless `extra` sets it."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # HF_HUB_DISABLE_TELEMETRY as gradio's import sets it in this process: the same before and after test_app
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="True",
               TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1", **session_hf_env())
    env.update(extra)
    return env


def make_hub_cache(checkpoint_dir: Path, cache_root: Path, repo_id: str = "org/profvlm") -> Path:
    """Copy `checkpoint_dir` to `<cache_root>/models--org--name/snapshots/<rev>/` with `refs/main` -> rev."""
    repo_dir = Path(cache_root) / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo_dir / "snapshots" / FAKE_REVISION
    shutil.copytree(checkpoint_dir, snapshot, dirs_exist_ok=True)
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(FAKE_REVISION)
    return Path(cache_root)


class HubSpace:
    """The session's Hub cache, where `org/profvlm` is the tiny checkpoint (tests add their own repos), and the
    processes that load from it: offline, in `process_env`."""

    def __init__(self, checkpoint: Path):
        self.env = process_env()
        self.hub = make_hub_cache(checkpoint, Path(self.env["HF_HUB_CACHE"]))

    def add(self, checkpoint_dir: Path, repo_id: str) -> str:
        """Lay `checkpoint_dir` out as `repo_id` in this cache; returns the repo id."""
        make_hub_cache(checkpoint_dir, self.hub, repo_id)
        return repo_id

    @property
    def python(self) -> str:
        """The `python` of these processes: forked from a preloaded interpreter (tests/preloaded_python.py), which has
        imported torch and transformers but nothing of this project."""
        from tests.preloaded_python import preloaded_python

        return preloaded_python(self.env)

    def run_isolated(self, code: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
        """Run `code` in its own process that cannot see this project (asserted before `code` runs), from `cwd`."""
        result = subprocess.run([self.python, "-c", _ISOLATION_PRELUDE + code], cwd=cwd, env=self.env,
                                capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, (f"isolated run failed:\nSTDOUT:\n{result.stdout}\n"
                                        f"STDERR:\n{result.stderr[-4000:]}")
        return result
