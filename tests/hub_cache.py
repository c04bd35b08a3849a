"""Lay a checkpoint out as the Hub cache holds a repo, and run code in a Python that cannot see this project."""
import os
import shutil
import subprocess
import sys
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


def make_hub_cache(checkpoint_dir: Path, cache_root: Path, repo_id: str = "org/profvlm") -> Path:
    """Copy `checkpoint_dir` to `<cache_root>/models--org--name/snapshots/<rev>/` with `refs/main` -> rev."""
    repo_dir = Path(cache_root) / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo_dir / "snapshots" / FAKE_REVISION
    shutil.copytree(checkpoint_dir, snapshot, dirs_exist_ok=True)
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(FAKE_REVISION)
    return Path(cache_root)


def run_isolated(code: str, hub_cache: Path, tmp_path: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter, offline, with the Hub cache at `hub_cache` and without this project."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(
        HF_HUB_OFFLINE="1",
        HF_HUB_CACHE=str(hub_cache),
        HF_HOME=str(tmp_path / "hf_home"),
        HF_MODULES_CACHE=str(tmp_path / "hf_modules"),
    )
    result = subprocess.run(
        [sys.executable, "-c", _ISOLATION_PRELUDE + code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"isolated run failed:\nSTDOUT:\n{result.stdout}\nSTDERR:\n{result.stderr[-4000:]}"
    return result
