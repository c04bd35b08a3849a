# Writes ProfVLM's code files next to a checkpoint, flat, so `trust_remote_code=True` loads it without this package.
import json
import re
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parent.parent
_PROJECT_PACKAGES = ("modeling_profvlm", "processing")

# Every module a checkpoint needs at load time, in the flat Hub layout. On the Hub they sit in one folder,
# so their base names are unique and they may only import each other relatively.
EXPORTED_MODULES: tuple[str, ...] = (
    "modeling_profvlm/configuration_profvlm.py",
    "modeling_profvlm/modeling_profvlm.py",
    "modeling_profvlm/label_scoring.py",
    "modeling_profvlm/pipeline_profvlm.py",
    "processing/processing_profvlm.py",
    "processing/text_format.py",
    "processing/frame_sampling.py",
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
    """The code files that exist in this checkout and belong next to a checkpoint."""
    return [_REPO_ROOT / rel for rel in EXPORTED_MODULES if (_REPO_ROOT / rel).is_file()]


def export_code_files(save_directory: str | Path) -> list[str]:
    """Copy every exported module into `save_directory` with flat imports; returns the file names written."""
    save_directory = Path(save_directory)
    save_directory.mkdir(parents=True, exist_ok=True)
    written = []
    for path in exported_files():
        (save_directory / path.name).write_text(flatten_imports(path.read_text(), str(path)))
        written.append(path.name)
    return written


def available_auto_map() -> dict[str, str]:
    """AUTO_MAP restricted to the classes whose module is present (the processor may live elsewhere)."""
    names = {p.stem for p in exported_files()}
    return {k: v for k, v in AUTO_MAP.items() if v.split(".")[0] in names}


def available_custom_pipelines() -> dict[str, dict]:
    """CUSTOM_PIPELINES when the pipeline module is present, else empty."""
    names = {p.stem for p in exported_files()}
    return {k: v for k, v in CUSTOM_PIPELINES.items() if v["impl"].split(".")[0] in names}


def add_auto_map_to_json(json_path: str | Path) -> None:
    """Merge `auto_map` (and `custom_pipelines` for config.json) into a saved JSON file."""
    json_path = Path(json_path)
    data = json.loads(json_path.read_text())
    data["auto_map"] = {**data.get("auto_map", {}), **available_auto_map()}
    if json_path.name == "config.json":
        data["custom_pipelines"] = {**data.get("custom_pipelines", {}), **available_custom_pipelines()}
    json_path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
