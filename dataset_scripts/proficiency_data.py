# One entry for either kind of `--data_dir`: an EgoExo4D root (takes.json) or a user's multi-view folder
# (metadata.jsonl / metadata.csv + labels.json). Both give rows with the same schema.
import os
from pathlib import Path

import datasets

from dataset_scripts.egoexo4d_proficiency import (
    SYNTHETIC_MARKER,
    check_views,
    load_egoexo4d_proficiency,
    truncate_words,
)
from dataset_scripts.multiview_folder import (
    METADATA_FILES,
    folder_splits,
    folder_views,
    is_multiview_folder,
    load_multiview_folder,
    read_labels,
)
from modeling_profvlm.profvlm_facts import PROFICIENCY_LABELS, VIEW_NAMES

EGOEXO4D, FOLDER = "egoexo4d", "folder"


def dataset_kind(data_dir: str | os.PathLike) -> str:
    """`egoexo4d` when `data_dir` has takes.json, `folder` when it has metadata.jsonl / metadata.csv; else an error
    naming the folder and what was expected."""
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"--data_dir {root}: not a folder; expected an EgoExo4D root (takes.json) or a "
                                f"multi-view folder ({' or '.join(METADATA_FILES)} + labels.json).")
    if (root / "takes.json").is_file():
        return EGOEXO4D
    if is_multiview_folder(root):
        return FOLDER
    raise FileNotFoundError(f"--data_dir {root}: neither takes.json (EgoExo4D) nor {' / '.join(METADATA_FILES)} "
                            "(a multi-view folder dataset) is there.")


def dataset_views_and_labels(data_dir: str | os.PathLike, views: list[str] | None = None) -> tuple[list[str], list[str]]:
    """(view names in order, ordered labels) of a dataset: what `profvlm init --data_dir` puts in a checkpoint."""
    if dataset_kind(data_dir) == EGOEXO4D:
        return list(check_views(views) or VIEW_NAMES), list(PROFICIENCY_LABELS)
    known = folder_views(data_dir)
    unknown = [v for v in views or [] if v not in known]
    if unknown:
        raise ValueError(f"--views {views}: {unknown} are not views of {data_dir}; its views are {known}.")
    return [v for v in known if views is None or v in views], read_labels(data_dir)


def available_splits(data_dir: str | os.PathLike) -> list[str]:
    """The splits a data_dir can give: train and validation for EgoExo4D, the splits with rows for a folder."""
    if dataset_kind(data_dir) == EGOEXO4D:
        return ["train", "validation"]
    return folder_splits(data_dir)


def is_synthetic(data_dir: str | os.PathLike) -> bool:
    """True for a tree written by the synthetic generator (it leaves a marker file at the root)."""
    return (Path(data_dir) / SYNTHETIC_MARKER).is_file()


def load_proficiency_split(data_dir: str | os.PathLike, config: str, split: str, *, rebuild: bool = True,
                           views: list[str] | None = None, strict: bool = False, **config_kwargs) -> datasets.Dataset:
    """One split of either kind of data_dir. EgoExo4D: the builder `config` (`demonstrator`: one row per take;
    `demonstrator_commentary`: per take and expert), rebuilt from the files on disk unless `rebuild=False`. A folder
    has one row per take with its optional feedback, whatever the config; `max_feedback_words` cuts it the same way."""
    if dataset_kind(data_dir) == EGOEXO4D:
        mode = "force_redownload" if rebuild else "reuse_dataset_if_exists"
        if views is not None:
            config_kwargs["views"] = views
        return load_egoexo4d_proficiency(data_dir, config=config, split=split, download_mode=mode, strict=strict,
                                         **config_kwargs)
    unknown = sorted(set(config_kwargs) - {"max_feedback_words", "verify_files"})
    if unknown:
        raise ValueError(f"{data_dir}: options {unknown} apply to EgoExo4D roots only, not to a multi-view folder.")
    dataset = load_multiview_folder(data_dir, split, strict=strict, views=views)
    max_words = config_kwargs.get("max_feedback_words")
    if max_words is not None:
        # timed moments are already short remarks, and a cut could end a moment mid-way
        dataset = dataset.map(lambda row: {"feedback": row["feedback"] if row.get("moments") else
                                           truncate_words(row["feedback"] or "", max_words)}, desc="cut feedback")
    return dataset


__all__ = ["EGOEXO4D", "FOLDER", "available_splits", "dataset_kind", "dataset_views_and_labels", "is_synthetic", "load_proficiency_split"]
