# The takes of a `profvlm predict --data_dir DIR` run: an EgoExo4D root, a folder dataset, or a plain folder of takes.
"""Every kind of DIR becomes the same list of `TakeJob`s (take id, name, {view: file}, reference label or None), in a
fixed order that every rank of a launch agrees on. A view whose file is absent is left out (the model masks it); a
take with no view at all becomes a `TakeError` for errors.jsonl instead of stopping the run."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from dataset_scripts.egoexo4d_proficiency import VideoResolver, load_takes, views_from_take
from dataset_scripts.multiview_folder import FOLDER_FILE_SUFFIX, SPLIT_ALIASES, metadata_path, read_metadata
from dataset_scripts.proficiency_data import EGOEXO4D, FOLDER, dataset_kind

PLAIN = "plain"  # one subfolder per take holding <view>.<ext> files
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")


@dataclass
class TakeJob:
    """One take to predict: its id (the resume key), a readable name, its views' files and its label when known."""

    take_uid: str
    take_name: str
    views: dict[str, str]
    reference: str | None = None
    missing_views: list[str] = field(default_factory=list)


@dataclass
class TakeError:
    """One line of errors.jsonl: the take, the view and file that could not be read (None when no file), and why."""

    take: str
    view: str | None
    file: str | None
    reason: str

    def to_dict(self) -> dict:
        """The errors.jsonl record."""
        return {"take": self.take, "view": self.view, "file": self.file, "reason": self.reason}


def data_kind(data_dir: str | os.PathLike) -> str:
    """`egoexo4d`, `folder` (metadata.jsonl/csv) or `plain` (subfolders of videos); an error naming DIR otherwise."""
    root = Path(data_dir)
    try:
        return dataset_kind(root)
    except FileNotFoundError:
        if root.is_dir() and any(p.is_dir() for p in root.iterdir()):
            return PLAIN
        raise


def read_takes_file(path: str | os.PathLike) -> list[str]:
    """A JSON list of take names (the official test list's form) or take uids; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--takes_file {path}: not found; expected a JSON list of take names.")
    try:
        names = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"--takes_file {path}: not valid JSON ({err}).") from err
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise ValueError(f"--takes_file {path}: expected a non-empty JSON list of take names (strings).")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"--takes_file {path}: {repeated[:3]} listed more than once.")
    return [n.strip() for n in names]


def _split_jobs(root: Path, split: str, view_names: list[str], rebuild: bool, verify_files: bool = True
                ) -> list[TakeJob]:
    """The labelled takes of one split through the dataset loaders (EgoExo4D builder or folder dataset);
    `verify_files=False` lists every view, its video on disk or not."""
    from dataset_scripts.proficiency_data import load_proficiency_split

    rows = load_proficiency_split(root, "demonstrator", split, rebuild=rebuild,
                                  **({} if verify_files else {"verify_files": False}))
    names = rows.features["proficiency"].names
    return [TakeJob(row["take_uid"], row["take_name"] or row["take_uid"],
                    dict(zip(row["view_names"], row["video_paths"])), names[row["proficiency"]],
                    [v for v in view_names if v not in row["view_names"]]) for row in rows]


def egoexo4d_jobs(root: Path, view_names: list[str], split: str | None, takes_file: str | None,
                  rebuild: bool = True, verify_files: bool = True) -> tuple[list[TakeJob], list[TakeError]]:
    """EgoExo4D takes: a labelled `split` (the builder's rows), or the takes of `takes_file` in its order, found in
    takes.json by name (or uid) with their downscaled videos; a take with none of its videos on disk is an error
    (`verify_files=False`: every listed view, for a checkpoint that reads released feature files instead)."""
    if split is not None:
        return _split_jobs(root, split, view_names, rebuild, verify_files), []
    takes = load_takes(root)
    by_name = {t["take_name"]: t for t in takes.values()}
    wanted = read_takes_file(takes_file)
    unknown = [n for n in wanted if n not in by_name and n not in takes]
    if unknown:
        raise ValueError(f"--takes_file {takes_file}: {len(unknown)} take(s) not in {root / 'takes.json'}, e.g. "
                         f"{unknown[:3]}; the list and the metadata download must be of the same release.")
    resolver, jobs, errors = VideoResolver(root, verify=verify_files), [], []
    for name in wanted:
        take = by_name.get(name) or takes[name]
        listed = [(view, rel) for view, rel in views_from_take(take) if view in view_names]
        views = {view: str(path) for view, rel in listed if (path := resolver.resolve(rel)) is not None}
        if views:
            jobs.append(TakeJob(take["take_uid"], take["take_name"], views, None,
                                [v for v in view_names if v not in views]))
        else:
            where = str(resolver.candidates(listed[0][1])[0]) if listed else None
            errors.append(TakeError(take["take_name"], None, where, f"no video of the views {view_names} on disk"))
    return jobs, errors


def folder_jobs(root: Path, view_names: list[str], split: str | None) -> tuple[list[TakeJob], list[TakeError]]:
    """A folder dataset's rows (all splits, or `split`); labels and splits optional, views from `<view>_file_name`."""
    path = metadata_path(root)
    records, _ = read_metadata(path)
    wanted = None if split is None else SPLIT_ALIASES.get(split)
    if split is not None and wanted is None:
        raise ValueError(f"--split {split!r}: expected one of {list(SPLIT_ALIASES)}.")
    jobs, errors, seen = [], [], {}
    for line, row in records:
        take_id = str(row.get("take_id", "")).strip()
        if not take_id:
            raise ValueError(f"{path} line {line}: missing 'take_id'; every row needs one.")
        if take_id in seen:
            raise ValueError(f"{path} line {line}: duplicate take_id {take_id!r} (also on line {seen[take_id]}).")
        seen[take_id] = line
        if wanted is not None and SPLIT_ALIASES.get(str(row.get("split", ""))) != wanted:
            continue
        columns = {k[: -len(FOLDER_FILE_SUFFIX)]: v for k, v in row.items() if k.endswith(FOLDER_FILE_SUFFIX)}
        unknown = sorted(set(columns) - set(view_names))
        if unknown:
            raise ValueError(f"{path} line {line}: columns {[v + FOLDER_FILE_SUFFIX for v in unknown]} name views the "
                             f"checkpoint does not have; its views are {view_names}.")
        views = {}
        for view in view_names:
            if view in columns:
                file = Path(str(columns[view])).expanduser()
                file = file if file.is_absolute() else root / file
                if file.exists():  # an absent file masks its view; an unreadable one is reported when decoded
                    views[view] = str(file)
        if not views:
            errors.append(TakeError(take_id, None, str(path), f"line {line}: no video file of the views "
                                                              f"{view_names} exists"))
            continue
        label = row.get("label")
        jobs.append(TakeJob(take_id, take_id, views, None if label is None else str(label),
                            [v for v in view_names if v not in views]))
    if split is not None and not jobs and not errors:
        raise ValueError(f"{path}: no rows in split {wanted!r}.")
    return jobs, errors


def plain_jobs(root: Path, view_names: list[str]) -> tuple[list[TakeJob], list[TakeError]]:
    """One take per subfolder (sorted by name), each view the file named after it (`ego.mp4`, `front.mov`)."""
    jobs, errors = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = {p.stem: p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES}
        views = {v: str(files[v]) for v in view_names if v in files}
        if not views:
            errors.append(TakeError(folder.name, None, str(folder),
                                    f"no video named after a view ({', '.join(v + '.mp4' for v in view_names)})"))
            continue
        jobs.append(TakeJob(folder.name, folder.name, views, None, [v for v in view_names if v not in views]))
    if not jobs and not errors:
        example = root / "t001" / f"{view_names[0]}.mp4"
        raise FileNotFoundError(f"--data_dir {root}: no take subfolders; expected e.g. {example}.")
    return jobs, errors


def find_takes(data_dir: str | os.PathLike, view_names: list[str], split: str | None = None,
               takes_file: str | None = None, rebuild: bool = True,
               verify_files: bool = True) -> tuple[str, list[TakeJob], list[TakeError]]:
    """(kind, takes to predict, takes that cannot be read) of any kind of `data_dir`, for a checkpoint's views.
    `verify_files=False` (EgoExo4D only: a checkpoint on released features) lists views whose video is not on disk."""
    root = Path(data_dir).expanduser().absolute()
    kind = data_kind(root)
    if split is not None and takes_file is not None:
        raise ValueError("pass --split or --takes_file, not both: the takes file already names the takes.")
    if kind == EGOEXO4D:
        if split is None and takes_file is None:
            raise ValueError(f"--data_dir {root} is an EgoExo4D root: pass --split (train, validation) or --takes_file "
                             "(a JSON list of take names, e.g. the official test list).")
        return kind, *egoexo4d_jobs(root, view_names, split, takes_file, rebuild, verify_files)
    if not verify_files:
        raise ValueError(f"--data_dir {root}: released EgoExo4D features need an EgoExo4D root (takes.json); this "
                         "checkpoint has no video tower for another dataset.")
    if takes_file is not None:
        raise ValueError(f"--takes_file applies to an EgoExo4D root (takes.json), and {root} is not one.")
    if kind == FOLDER:
        return kind, *folder_jobs(root, view_names, split)
    if split is not None:
        raise ValueError(f"--split: {root} is a plain folder of takes, which has no splits.")
    return kind, *plain_jobs(root, view_names)


__all__ = ["PLAIN", "TakeJob", "TakeError", "data_kind", "find_takes", "read_takes_file"]
