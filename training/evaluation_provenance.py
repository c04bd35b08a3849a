# Where evaluation numbers (and a trained checkpoint) come from: the dataset and its annotation fingerprint, whether
# it is synthetic, the checkpoint's weights, the frame sampling, the feedback word limit, package versions, the date.
import importlib.metadata
import logging
import os
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

from dataset_scripts.egoexo4d_proficiency import DEFAULT_MAX_FEEDBACK_WORDS, SYNTHETIC_MARKER
from dataset_scripts.hashing import sha256_of_files
from dataset_scripts.multiview_folder import METADATA_FILES, LABELS_FILE, SPLITS as FOLDER_SPLITS, read_folder
from dataset_scripts.proficiency_data import EGOEXO4D, dataset_kind, is_synthetic, load_proficiency_split

logger = logging.getLogger(__name__)

EGOEXO4D_NAME = "EgoExo4D demonstrator proficiency"
SYNTHETIC_EGOEXO4D_NAME = "Synthetic EgoExo4D-format data (not EgoExo4D)"
EGOEXO4D_BUILDER = "dataset_scripts/egoexo4d_proficiency.py"
FOLDER_LOADER = "dataset_scripts/multiview_folder.py"
EGOEXO4D_SPLITS = ("train", "validation")
VERSIONED_PACKAGES = ("torch", "transformers", "datasets", "trl", "peft")


def annotation_files(data_dir: str | os.PathLike) -> list[Path]:
    """The files whose content defines a dataset's labels and splits: takes.json + annotations/*.json for EgoExo4D,
    labels.json + metadata.jsonl / metadata.csv for a folder (videos are not hashed: too large, and not labels)."""
    root = Path(data_dir)
    if dataset_kind(root) == EGOEXO4D:
        files = [root / "takes.json", *sorted((root / "annotations").glob("*.json"))]
    else:
        files = [root / LABELS_FILE, *(root / name for name in METADATA_FILES)]
    return [f for f in files if f.is_file()]


def synthetic_dataset_name(name: str, synthetic: bool | None) -> str:
    """`name`, with " (synthetic data)" added when the data is synthetic and the name does not say so: no name given
    on a command line or in a card may hide that."""
    return f"{name} (synthetic data)" if synthetic and "synthetic" not in name.lower() else name


def dataset_identity(data_dir: str | os.PathLike, name: str | None = None) -> tuple[str, str, bool]:
    """(name, id, synthetic) of a dataset. Synthetic data is always named as such, whatever `name` says."""
    root = Path(data_dir).expanduser().absolute()
    synthetic = is_synthetic(root)
    if dataset_kind(root) == EGOEXO4D:
        default, dataset_id = (SYNTHETIC_EGOEXO4D_NAME, "synthetic_egoexo4d") if synthetic else (EGOEXO4D_NAME,
                                                                                               "egoexo4d_proficiency")
    else:
        default, dataset_id = root.name, root.name
    return synthetic_dataset_name(name or default, synthetic), dataset_id, synthetic


def labelled_takes_per_split(data_dir: str | os.PathLike, verify_files: bool = True) -> dict[str, int]:
    """Labelled takes with at least one video, per split (`verify_files=False`: every labelled take, its videos on
    disk or not, as a checkpoint on released features sees them). EgoExo4D reuses the `demonstrator` build when it
    exists (the builder makes every split at once); a folder counts the splits its metadata has."""
    root = Path(data_dir)
    if dataset_kind(root) == EGOEXO4D:
        splits = EGOEXO4D_SPLITS
    else:
        present = {take.split for take in read_folder(root)[3]}
        splits = tuple(s for s in FOLDER_SPLITS if s in present)
    listed = {} if verify_files else {"verify_files": False}
    return {split: len(set(load_proficiency_split(root, "demonstrator", split, rebuild=False, **listed)["take_uid"]))
            for split in splits}


def dataset_provenance(data_dir: str | os.PathLike, split: str, takes: dict[str, int] | None = None,
                       config: str | None = None, name: str | None = None, verify_files: bool = True) -> dict:
    """The dataset block: name, id, kind, synthetic, builder + config (EgoExo4D) or loader (folder), path, the split
    used, takes per split (counted when not given, `labelled_takes_per_split`) and the sha256 of the annotation
    files."""
    root = Path(data_dir).expanduser().absolute()
    kind = dataset_kind(root)
    name, dataset_id, synthetic = dataset_identity(root, name)
    files = annotation_files(root)
    block = {"name": name, "id": dataset_id, "kind": kind, "synthetic": synthetic, "path": str(root)}
    if kind == EGOEXO4D:
        block |= {"builder": EGOEXO4D_BUILDER, "config": config}
    else:
        block |= {"loader": FOLDER_LOADER}
    if synthetic:  # the generator's own record (takes, seed, size): how to make the same tree again
        block["synthetic_marker"] = SYNTHETIC_MARKER
    block |= {
        "split": split,
        "takes": dict(takes) if takes is not None else labelled_takes_per_split(root, verify_files),
        "annotation_files": [f.relative_to(root).as_posix() for f in files],
        "annotation_sha256": sha256_of_files(files, root),
    }
    return block


def weights_sha256(model_dir: str | os.PathLike | None) -> str | None:
    """sha256 over the checkpoint's *.safetensors files (names and bytes); None when there are none."""
    if model_dir is None or not Path(model_dir).is_dir():
        return None
    files = sorted(Path(model_dir).glob("*.safetensors"))
    return sha256_of_files(files, model_dir) if files else None


def checkpoint_provenance(model_dir: str | os.PathLike | None, config) -> dict:
    """The checkpoint block: path, weights hash, where the tower and language model came from, whether the tower is
    random, and the training facts the checkpoint carries (`training_data`, `max_feedback_words`)."""
    path = Path(model_dir).expanduser().absolute() if model_dir is not None else None
    return {
        "path": str(path) if path is not None else None,
        "weights_sha256": weights_sha256(path),
        "vision_tower_random_init": bool(config.vision_tower_random_init),
        "vision_tower_source": config.vision_tower_source,
        "language_model_source": config.language_model_source,
        "max_feedback_words": config.max_feedback_words,
        "training_data": config.training_data,
    }


def package_versions(packages: Iterable[str] = VERSIONED_PACKAGES) -> dict[str, str | None]:
    """Installed versions of the packages that shape the numbers (None when one is not installed)."""
    versions = {}
    for package in packages:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def utc_now() -> str:
    """The current time, UTC, ISO 8601 to the second (e.g. 2026-01-31T12:00:00+00:00)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def resolve_max_feedback_words(flag: int | None, config) -> tuple[int, str]:
    """(words, source): the --max_feedback_words flag when given (it overrides the checkpoint), else the value the
    checkpoint was trained with (config.max_feedback_words), else the builder default; the choice is logged."""
    trained = config.max_feedback_words
    if flag is not None:
        if trained is not None and trained != flag:
            logger.warning("--max_feedback_words %d overrides the checkpoint's %d (what it was trained with): "
                           "references are cut differently from the training targets.", flag, trained)
        else:
            logger.info("Reference feedback cut to %d words (--max_feedback_words).", flag)
        return flag, "flag"
    if trained is not None:
        logger.info("Reference feedback cut to %d words: the checkpoint's max_feedback_words (its training value).",
                    trained)
        return int(trained), "checkpoint"
    logger.info("Reference feedback cut to %d words: the builder default (the checkpoint records no "
                "max_feedback_words; pass --max_feedback_words to match its training).", DEFAULT_MAX_FEEDBACK_WORDS)
    return DEFAULT_MAX_FEEDBACK_WORDS, "default"


__all__ = [
    "EGOEXO4D_NAME",
    "SYNTHETIC_EGOEXO4D_NAME",
    "annotation_files",
    "synthetic_dataset_name",
    "dataset_identity",
    "labelled_takes_per_split",
    "dataset_provenance",
    "weights_sha256",
    "checkpoint_provenance",
    "package_versions",
    "utc_now",
    "resolve_max_feedback_words",
]
