# What `profvlm push` uploads: the checkpoint's files, checked for completeness (config, weights, processor, code, card).
import fnmatch
import json
import re
from pathlib import Path

# Never uploaded: caches, hidden files, intermediate trainer checkpoints and pickled training state.
IGNORED = (".*", "__pycache__", "*.pyc", "checkpoint-*", "runs", "*.bin", "*.pt", "*.pth", "*.pkl")
_RELATIVE_IMPORT = re.compile(r"^\s*from\s+\.(\w+)\s+import\b", re.MULTILINE)


def _ignored(rel: Path) -> bool:
    return any(fnmatch.fnmatch(part, pattern) for part in rel.parts for pattern in IGNORED)


def code_modules_referenced(model_dir: Path) -> dict[str, str]:
    """File name -> why it is needed, for every code module named by `auto_map` (config, processor, tokenizer) or
    `custom_pipelines`, and every module those import relatively (a class file is useless without them)."""
    needed: dict[str, str] = {}
    for name in ("config.json", "processor_config.json", "tokenizer_config.json", "preprocessor_config.json"):
        path = model_dir / name
        if path.is_file():
            data = json.loads(path.read_text())
            references = [p["impl"] for p in (data.get("custom_pipelines") or {}).values()]
            for value in (data.get("auto_map") or {}).values():  # a tokenizer maps to [slow, fast]
                references += [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str)]
            for ref in references:
                needed.setdefault(ref.split("--")[-1].split(".")[0] + ".py", f"named in {name}")
    pending = list(needed)
    while pending:
        module = pending.pop()
        if (model_dir / module).is_file():
            for imported in _RELATIVE_IMPORT.findall((model_dir / module).read_text()):
                if imported + ".py" not in needed:
                    needed[imported + ".py"] = f"imported by {module}"
                    pending.append(imported + ".py")
    return needed


def upload_plan(model_dir: str | Path) -> list[str]:
    """The relative paths `push` would upload, sorted; raises FileNotFoundError naming whatever is missing."""
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"'{model_dir}' is not a checkpoint folder: config.json not found.")
    files = sorted(
        str(p.relative_to(model_dir)) for p in model_dir.rglob("*")
        if p.is_file() and not _ignored(p.relative_to(model_dir))
    )
    missing = []
    if not any(f.endswith(".safetensors") for f in files):
        missing.append("weights (*.safetensors)")
    if "processor_config.json" not in files:
        missing.append("processor_config.json (save the processor: processor.save_pretrained(DIR))")
    if "README.md" not in files:
        missing.append(f"README.md (write it with `profvlm card --model {model_dir}`)")
    missing += [f"{name} ({why})" for name, why in sorted(code_modules_referenced(model_dir).items()) if name not in files]
    if missing:
        raise FileNotFoundError(f"'{model_dir}' is incomplete for the Hub; missing: " + "; ".join(missing))
    return files


def push_checkpoint(model_dir: str | Path, repo_id: str, private: bool = True) -> str:
    """Export the current code into the checkpoint (`finalize_checkpoint`), create `repo_id` (if needed; private
    unless `private=False`, like every push) and upload exactly `upload_plan(model_dir)`; returns the commit URL."""
    from huggingface_hub import HfApi

    from .code_export import finalize_checkpoint

    finalize_checkpoint(model_dir)  # the Hub gets the code this checkout would load the weights with
    files = upload_plan(model_dir)
    api = HfApi()
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    commit = api.upload_folder(
        folder_path=str(model_dir), repo_id=repo_id, repo_type="model", allow_patterns=files,
        commit_message="Upload ProfVLM checkpoint (weights, processor, code, model card)",
    )
    return str(getattr(commit, "commit_url", commit))


__all__ = ["upload_plan", "push_checkpoint", "code_modules_referenced", "IGNORED"]
