# Writes ProfVLM's code files next to a checkpoint, flat, so `trust_remote_code=True` loads it without this package.
import json
import re
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parent.parent
_PROJECT_PACKAGES = ("modeling_profvlm", "processing")

# Every module a checkpoint needs at load time, in the flat Hub layout. On the Hub they sit in one folder,
# so their base names are unique and they may only import each other relatively.
EXPORTED_MODULES: tuple[str, ...] = (
    "modeling_profvlm/profvlm_facts.py",
    "modeling_profvlm/take_inputs.py",
    "modeling_profvlm/tower_adapter.py",
    "modeling_profvlm/device_policy.py",
    "modeling_profvlm/configuration_profvlm.py",
    "modeling_profvlm/modeling_profvlm.py",
    "modeling_profvlm/peft_unwrap.py",
    "modeling_profvlm/label_scoring.py",
    "modeling_profvlm/answer.py",
    "modeling_profvlm/answering.py",
    "modeling_profvlm/pipeline_profvlm.py",
    "processing/processing_profvlm.py",
    "processing/text_format.py",
    "processing/frame_sampling.py",
    "processing/take_clips.py",
    "processing/video_io.py",
)

AUTO_MAP: dict[str, str] = {
    "AutoConfig": "configuration_profvlm.ProfVLMConfig",
    # AutoModel maps to the generating model, as in other custom-code VLM repos.
    "AutoModel": "modeling_profvlm.ProfVLMForConditionalGeneration",
    "AutoModelForImageTextToText": "modeling_profvlm.ProfVLMForConditionalGeneration",
    "AutoProcessor": "processing_profvlm.ProfVLMProcessor",
}

PIPELINE_TASK = "proficiency-estimation"
CUSTOM_PIPELINES: dict[str, dict] = {
    PIPELINE_TASK: {
        "impl": "pipeline_profvlm.ProficiencyEstimationPipeline",
        "pt": ["AutoModelForImageTextToText"],
        "type": "multimodal",
    }
}

_ABSOLUTE_IMPORT = re.compile(rf"^(\s*)from\s+(?:{'|'.join(_PROJECT_PACKAGES)})\.(\w+)\s+import\b", re.MULTILINE)
_LEFTOVER_IMPORT = re.compile(rf"^\s*(?:from|import)\s+(?:{'|'.join(_PROJECT_PACKAGES)})\b", re.MULTILINE)


def flatten_imports(source: str, name: str = "<source>") -> str:
    """Rewrite `from modeling_profvlm.x import y` / `from processing.x import y` into `from .x import y`."""
    flat = _ABSOLUTE_IMPORT.sub(r"\1from .\2 import", source)
    leftover = _LEFTOVER_IMPORT.search(flat)
    if leftover:
        raise ValueError(
            f"{name}: cannot export `{leftover.group(0).strip()}` to a flat Hub folder; "
            "import a module (`from modeling_profvlm.x import y`), not a package."
        )
    return flat


def exported_files() -> list[Path]:
    """The code files that belong next to a checkpoint; a missing one means a broken checkout, and is an error."""
    missing = [rel for rel in EXPORTED_MODULES if not (_REPO_ROOT / rel).is_file()]
    if missing:
        raise FileNotFoundError(f"cannot export the checkpoint code: {missing} not found under {_REPO_ROOT}.")
    return [_REPO_ROOT / rel for rel in EXPORTED_MODULES]


def export_code_files(save_directory: str | Path) -> list[str]:
    """Copy every exported module into `save_directory` with flat imports; returns the file names written."""
    save_directory = Path(save_directory)
    save_directory.mkdir(parents=True, exist_ok=True)
    written = []
    for path in exported_files():
        (save_directory / path.name).write_text(flatten_imports(path.read_text(), str(path)))
        written.append(path.name)
    return written


def add_auto_map_to_json(json_path: str | Path) -> None:
    """Merge `auto_map` into a saved JSON file, and `custom_pipelines` into config.json (where pipeline() reads it)."""
    json_path = Path(json_path)
    data = json.loads(json_path.read_text())
    data["auto_map"] = {**data.get("auto_map", {}), **AUTO_MAP}
    if json_path.name == "config.json":
        data["custom_pipelines"] = {**data.get("custom_pipelines", {}), **CUSTOM_PIPELINES}
    json_path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def finalize_checkpoint(checkpoint_dir: str | Path) -> list[str]:
    """Make a saved checkpoint self-contained for `trust_remote_code=True`: the code files once, `auto_map` in
    config.json and processor_config.json, `custom_pipelines` in config.json. Returns the code files written."""
    checkpoint_dir = Path(checkpoint_dir)
    for name in ("config.json", "processor_config.json"):
        if not (checkpoint_dir / name).is_file():
            raise FileNotFoundError(f"{checkpoint_dir}: {name} not found; save the model and the processor first.")
    written = export_code_files(checkpoint_dir)
    add_auto_map_to_json(checkpoint_dir / "config.json")
    add_auto_map_to_json(checkpoint_dir / "processor_config.json")
    return written
