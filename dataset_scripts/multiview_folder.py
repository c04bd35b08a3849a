# A user's own multi-view proficiency dataset (labels.json + metadata.jsonl/csv + videos) as a `datasets.Dataset`.
"""Reads a folder in the `datasets` "folder" convention with one `<view>_file_name` column per camera (layout in
`FOLDER_LAYOUT`) and returns rows with the Ego-Exo4D builder's schema, so training and evaluation take either source:

    ds = load_multiview_folder("my_dataset", split="train")

Run as a script it writes parquet shards and a dataset card, so `load_dataset(OUTPUT)` works without this file.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import datasets

if __name__ == "__main__" and __package__ in (None, ""):  # `python dataset_scripts/multiview_folder.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataset_scripts.dataset_export import CARD_USAGE, SkipReport, push_dataset_folder, write_parquet_dataset  # noqa: E402
from dataset_scripts.script_errors import reject_renamed_flags  # noqa: E402
from dataset_scripts.egoexo4d_proficiency import FEATURES, MOMENTS_FEATURES  # noqa: E402
from modeling_profvlm.profvlm_facts import MOMENT_CATEGORIES, format_moments, normalize_moments  # noqa: E402

logger = logging.getLogger(__name__)

FOLDER_FILE_SUFFIX = "_file_name"
LABELS_FILE = "labels.json"
# Optional timed feedback: a JSON list of {"time": seconds into the take, "text": ...} (in a CSV cell, a JSON string).
MOMENTS_COLUMN = "moments"
METADATA_FILES = ("metadata.jsonl", "metadata.csv")
# split name as written in a row or asked for -> datasets split name; the order is the export order
SPLIT_ALIASES = {"train": "train", "validation": "validation", "val": "validation", "test": "test"}
SPLITS = ("train", "validation", "test")
FOLDER_LAYOUT = """folder layout:
  my_dataset/
    labels.json     {"labels": ["beginner", "intermediate", "advanced"], "views": ["front", "side"]}
    metadata.jsonl  {"take_id": "t001", "split": "train", "label": "beginner",
                     "front_file_name": "videos/t001_front.mp4", "side_file_name": "videos/t001_side.mp4",
                     "feedback": "optional expert text", "scenario": "optional group",
                     "moments": [{"time": 4.5, "text": "optional timed remark", "category": "needs_improvement"}]}
    videos/...

  labels: lowest to highest proficiency, 2 or more. views (optional): the view order, else the order in which
  the <view>_file_name columns first appear. split: train, validation (or val), test. metadata.csv with the same
  columns works too. A take without a cell for a view, or whose file is missing (unless --strict), lacks that
  view. Video paths are relative to the folder, or absolute. moments (instead of feedback) makes the feedback
  "[0:04] tip: optional timed remark ..."; a time must lie within the take's videos; category (optional):
  good_execution (written "good:") or needs_improvement ("tip:").

example:
  python dataset_scripts/multiview_folder.py --data_dir my_dataset --output_dir out --license cc-by-4.0"""


def is_multiview_folder(path: str | os.PathLike) -> bool:
    """True when `path` is a folder with a metadata.jsonl or metadata.csv."""
    return any((Path(path) / name).is_file() for name in METADATA_FILES)


def _read_labels_file(root: Path) -> tuple[Path, dict]:
    path = root / LABELS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; expected {{\"labels\": [...]}} with the proficiency levels "
                                f"ordered from lowest to highest.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err}).") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object like {{\"labels\": [...]}}, found {type(data).__name__}.")
    unknown = sorted(set(data) - {"labels", "views"})
    if unknown:  # a typo such as "label" must not leave the file half-read
        raise ValueError(f"{path}: unknown keys {unknown}; expected 'labels' and optionally 'views'.")
    return path, data


def _name_list(path: Path, key: str, value: object, minimum: int) -> list[str]:
    if not isinstance(value, list) or len(value) < minimum or not all(isinstance(v, str) and v.strip()
                                                                     for v in value):
        raise ValueError(f"{path}: {key!r} is {value!r}; expected a list of at least {minimum} non-empty strings.")
    names = [v.strip() for v in value]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{path}: {key!r} lists {repeated} more than once; expected distinct names.")
    return names


def read_labels(root: str | os.PathLike) -> list[str]:
    """The proficiency levels of labels.json, lowest first (at least two distinct non-empty strings)."""
    path, data = _read_labels_file(Path(root))
    if "labels" not in data:
        raise ValueError(f"{path}: no 'labels' key; expected {{\"labels\": [...]}} ordered from lowest to highest.")
    return _name_list(path, "labels", data["labels"], 2)


def metadata_path(root: str | os.PathLike) -> Path:
    """The folder's metadata.jsonl or metadata.csv (exactly one of them must exist)."""
    found = [Path(root) / name for name in METADATA_FILES if (Path(root) / name).is_file()]
    if not found:
        raise FileNotFoundError(f"{Path(root)}: no metadata.jsonl or metadata.csv; expected one row per take.")
    if len(found) > 1:  # which one wins would be a guess
        raise ValueError(f"{Path(root)}: both metadata.jsonl and metadata.csv exist; keep only one.")
    return found[0]


def read_metadata(path: Path) -> tuple[list[tuple[int, dict]], list[str]]:
    """(line number, row) for every row, absent and empty cells dropped, and the columns in first-seen order."""
    rows, columns = [], {}
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: spreadsheets often write a BOM
            reader = csv.DictReader(f)
            header = [c.strip() for c in reader.fieldnames or []]
            repeated = sorted({c for c in header if header.count(c) > 1})
            if repeated:
                raise ValueError(f"{path} line 1: columns {repeated} appear more than once.")
            reader.fieldnames, columns = header, dict.fromkeys(header)
            for record in reader:
                if None in record:
                    raise ValueError(f"{path} line {reader.line_num}: {record[None]!r} are cells beyond the "
                                     f"{len(header)} columns of the header.")
                rows.append((reader.line_num, {k: v for k, v in record.items() if v is not None and v.strip()}))
        return rows, list(columns)
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path} line {line_no}: not valid JSON ({err}): {line.strip()[:80]!r}.") from err
            if not isinstance(record, dict):
                raise ValueError(f"{path} line {line_no}: {record!r} is not a JSON object.")
            columns.update(dict.fromkeys(record))
            rows.append((line_no, {k: v for k, v in record.items() if v is not None and v != ""}))
    return rows, list(columns)


def _views_of(root: Path, columns: list[str]) -> list[str]:
    _, data = _read_labels_file(root)
    if "views" in data:
        return _name_list(root / LABELS_FILE, "views", data["views"], 1)
    suffix = FOLDER_FILE_SUFFIX
    return [c[: -len(suffix)] for c in columns if c.endswith(suffix) and c != suffix]


def folder_views(root: str | os.PathLike) -> list[str]:
    """The view order: labels.json "views" if given, else the first appearance of the `*_file_name` columns."""
    return _views_of(Path(root), read_metadata(metadata_path(root))[1])


@dataclass
class FolderTake:
    """One validated metadata row; `files` maps each view with a cell to its path as written."""

    line: int
    take_id: str
    split: str
    label: int
    files: dict[str, str]
    scenario: str
    feedback: str
    moments: list[dict] | None = None  # as written (times checked, never floored); None without a moments cell


def _cell(path: Path, line: int, row: dict, key: str, required: bool = False) -> str | None:
    value = row.get(key)
    if key == "take_id" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # JSON writers often emit numeric ids
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ValueError(f"{path} line {line}: missing {key!r}; every row needs take_id, label and split.")
        return None
    if not isinstance(value, str):
        raise ValueError(f"{path} line {line}: {key} is {value!r}; expected a string.")
    return value.strip()


def _moments_cell(path: Path, line: int, row: dict) -> list[dict] | None:
    """The row's `moments` as [{"time": float, "text": str, "category": optional}] (a JSON list, or a string holding
    one), times checked to be numbers >= 0 and a category to be one of MOMENT_CATEGORIES; None without the cell."""
    value = row.get(MOMENTS_COLUMN)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} line {line}: moments is not valid JSON ({err}): {value.strip()[:80]!r}.") from err
    if not isinstance(value, list):
        raise ValueError(f"{path} line {line}: moments is {value!r}; expected a list of "
                         f"{{\"time\": seconds, \"text\": \"...\"}}.")
    moments = []
    for i, moment in enumerate(value):
        if not isinstance(moment, dict) or "time" not in moment or "text" not in moment:
            raise ValueError(f"{path} line {line}: moment {i} is {moment!r}; expected {{\"time\": seconds, "
                             f"\"text\": \"...\"}}.")
        time, text = moment["time"], moment["text"]
        if isinstance(time, bool) or not isinstance(time, (int, float)) or not math.isfinite(time):
            raise ValueError(f"{path} line {line}: moment {i} has time {time!r}; expected a number of seconds.")
        if time < 0:
            raise ValueError(f"{path} line {line}: moment {i} has time {time!r}; expected seconds >= 0.")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{path} line {line}: moment {i} has text {text!r}; expected a non-empty string.")
        category = moment.get("category")
        if category not in (None, "") and category not in MOMENT_CATEGORIES:
            raise ValueError(f"{path} line {line}: moment {i} has category {category!r}; expected one of "
                             f"{list(MOMENT_CATEGORIES)} or none.")
        moments.append({"time": float(time), "text": text, **({"category": category} if category else {})})
    return moments


def read_folder(root: str | os.PathLike) -> tuple[Path, list[str], list[str], list[FolderTake]]:
    """(metadata file, labels, views, takes) with every row checked; videos on disk are not checked here."""
    root = Path(root)
    labels, path = read_labels(root), metadata_path(root)
    records, columns = read_metadata(path)
    views = _views_of(root, columns)
    if not views:
        raise ValueError(f"{path}: no <view>_file_name column; expected one per camera, e.g. front_file_name.")
    takes, seen = [], {}
    for line, row in records:
        take_id, label, split = (_cell(path, line, row, k, required=True) for k in ("take_id", "label", "split"))
        if split not in SPLIT_ALIASES:
            raise ValueError(f"{path} line {line}: unknown split {split!r}; expected one of {list(SPLIT_ALIASES)}.")
        if label not in labels:
            raise ValueError(f"{path} line {line}: unknown label {label!r}; expected one of {labels}.")
        if take_id in seen:
            raise ValueError(f"{path} line {line}: duplicate take_id {take_id!r} (also on line {seen[take_id]}).")
        seen[take_id] = line
        files = {}
        for key in row:
            if not key.endswith(FOLDER_FILE_SUFFIX):
                continue
            view = key[: -len(FOLDER_FILE_SUFFIX)]
            if view not in views:
                raise ValueError(f"{path} line {line}: column {key!r} is not a view; expected <view>_file_name with "
                                 f"a view in {views} (the views of {root / LABELS_FILE} when it lists them).")
            value = _cell(path, line, row, key)
            if value is not None:  # a whitespace-only cell is an absent view, like an empty one
                files[view] = value
        if not files:
            raise ValueError(f"{path} line {line}: take {take_id!r} has no video; expected a path in at least one of "
                             f"{[v + FOLDER_FILE_SUFFIX for v in views]}.")
        feedback, moments = _cell(path, line, row, "feedback") or "", _moments_cell(path, line, row)
        if feedback and moments:  # which one the model should learn would be a guess
            raise ValueError(f"{path} line {line}: take {take_id!r} has both feedback and moments; the feedback of "
                             f"a take with moments is its moments, so keep one of the two.")
        takes.append(FolderTake(line, take_id, SPLIT_ALIASES[split], labels.index(label),
                                {v: files[v] for v in views if v in files},
                                _cell(path, line, row, "scenario") or "", feedback, moments))
    return path, labels, views, takes


def folder_features(labels: list[str], with_moments: bool = False) -> datasets.Features:
    """The Ego-Exo4D builder's row schema with the folder's labels as the `proficiency` ClassLabel names (and its
    `moments` column when the folder has one)."""
    base = MOMENTS_FEATURES if with_moments else FEATURES
    return datasets.Features({**base, "proficiency": datasets.ClassLabel(names=list(labels))})


def has_moments(takes: list[FolderTake]) -> bool:
    """True when any take of the folder has a moments cell: then every split gets the `moments` column."""
    return any(t.moments is not None for t in takes)


def check_moments_within_videos(path: Path, take: FolderTake, video_paths: list[str]) -> None:
    """A ValueError naming the metadata line when a moment's time lies past the end of the take's longest video."""
    if not take.moments:
        return
    from processing.video_io import probe_video  # only folders with moments pay for opening their videos

    infos = {video: probe_video(video) for video in video_paths}
    lengths = {video: info.num_frames / info.fps for video, info in infos.items()}
    video, length = max(lengths.items(), key=lambda item: item[1])
    late = [m["time"] for m in take.moments if m["time"] > length]
    if late:
        raise ValueError(f"{path} line {take.line}: take {take.take_id!r} has a moment at {late[0]!r} s, past the end "
                         f"of its videos ({length:.2f} s, {video}).")


def folder_splits(root: str | os.PathLike) -> list[str]:
    """The splits that have rows in the folder's metadata, in train / validation / test order."""
    takes = read_folder(root)[3]
    return [s for s in SPLITS if any(t.split == s for t in takes)]


def load_multiview_folder_with_report(
    root: str | os.PathLike, split: str = "train", *, strict: bool = False, views: list[str] | None = None,
) -> tuple[datasets.Dataset, SkipReport]:
    """One split (`train`, `validation` or `val`, `test`) and the report of what was skipped. A missing video masks
    its view (or raises with `strict=True`); `views` keeps a subset of the views, in the folder's view order."""
    root = Path(root).expanduser().absolute()
    name = SPLIT_ALIASES.get(split)
    if name is None:
        raise ValueError(f"unknown split {split!r}; expected one of {list(SPLIT_ALIASES)}.")
    path, labels, known, takes = read_folder(root)
    unknown = [v for v in views or [] if v not in known]
    if unknown or views == []:
        raise ValueError(f"views={views!r} is not a non-empty selection of the folder's views {known}.")
    selected = [v for v in known if views is None or v in views]
    present = [s for s in SPLITS if any(t.split == s for t in takes)]
    if name not in present:
        raise ValueError(f"{path}: no rows in split {name!r}; the splits present are {present}.")
    report, rows, with_moments = SkipReport(), [], has_moments(takes)
    for take in (t for t in takes if t.split == name):
        view_names, video_paths = [], []
        for view in (v for v in selected if v in take.files):
            video = Path(take.files[view]).expanduser()
            video = video if video.is_absolute() else root / video  # relative paths are relative to the root
            if not video.is_file():
                if strict:
                    raise FileNotFoundError(f"{path} line {take.line}: video not found: {video} "
                                            f"(take {take.take_id!r}, view {view!r}).")
                report.missing_video(view, video)
                continue
            view_names.append(view)
            video_paths.append(str(video))
        if not view_names:
            report.takes_without_video += 1
            continue
        row = {"take_uid": take.take_id, "take_name": take.take_id, "scenario": take.scenario, "task_name": "",
               "university_id": None, "participant_id": None, "proficiency": take.label,
               "view_names": view_names, "video_paths": video_paths, "best_exo": None,
               "feedback": take.feedback, "expert_uid": None, "expert_rating": None}
        if with_moments:
            check_moments_within_videos(path, take, video_paths)
            row["moments"] = normalize_moments(take.moments or [], decimals=None)  # times as written
            row["feedback"] = format_moments(row["moments"]) if take.moments else take.feedback
        rows.append(row)
    report.rows = len(rows)
    report.log(f"multi-view folder {root} {name}")
    # from_list keeps it in memory: a rebuild after videos change on disk sees the new files, never a cache
    return datasets.Dataset.from_list(rows, features=folder_features(labels, with_moments)), report


def load_multiview_folder(
    root: str | os.PathLike, split: str = "train", *, strict: bool = False, views: list[str] | None = None,
) -> datasets.Dataset:
    """One split of the folder as a Dataset with the Ego-Exo4D builder's schema (see the report variant)."""
    return load_multiview_folder_with_report(root, split, strict=strict, views=views)[0]


CARD_TEMPLATE = """---
{yaml}---

# {name}

A multi-view proficiency dataset built with `dataset_scripts/multiview_folder.py` (ProfVLM). Load it with:

""" + CARD_USAGE + """
- `proficiency`: ClassLabel {labels}, ordered from lowest to highest; `take_uid` = `take_name` = the take id.
- `view_names` / `video_paths`: the views a take has, in the order {views}. Absolute paths on the machine that
  built this dataset; the videos are not included. The `license` above is the one given when it was built.
"""


def export_parquet(
    root: str | os.PathLike, output: str | os.PathLike, license: str | None = None, *, strict: bool = False,
    views: list[str] | None = None, max_shard_rows: int = 50_000,
) -> Path:
    """Write `output/data/<split>-XXXXX-of-YYYYY.parquet` for every split in the metadata and `output/README.md`
    (YAML configs, features with the ClassLabel names, `license`), so `load_dataset(output)` restores the features."""
    _, labels, known, takes = read_folder(root)
    splits = {s: load_multiview_folder(root, s, strict=strict, views=views)
              for s in SPLITS if any(t.split == s for t in takes)}
    metadata = {
        "license": license or "unknown",
        "task_categories": ["video-classification"],
        "tags": ["proficiency-estimation", "video", "multi-view"],
        "pretty_name": Path(root).expanduser().absolute().name,
    }
    return write_parquet_dataset(output, splits, metadata, CARD_TEMPLATE, max_shard_rows, name=metadata["pretty_name"],
                                 labels=labels, views=[v for v in known if views is None or v in views])


def main(argv: list[str] | None = None) -> None:
    """Command line: export a multi-view folder as parquet + dataset card, optionally pushed to the Hub."""
    parser = argparse.ArgumentParser(
        description="Turn your own multi-view proficiency dataset into parquet shards + a dataset card, loadable\n"
        "with datasets.load_dataset(OUTPUT_DIR), and optionally push it to the Hub.",
        epilog=FOLDER_LAYOUT,
        formatter_class=argparse.RawDescriptionHelpFormatter,  # keeps the layout as written
    )
    parser.add_argument("--data_dir", required=True, help="the folder with labels.json and metadata.jsonl or .csv")
    parser.add_argument("--output_dir", required=True, help="output folder for data/*.parquet and README.md")
    parser.add_argument("--license", default=None,
                        help="licence id written to the card (e.g. apache-2.0, cc-by-4.0); 'unknown' when not given")
    parser.add_argument("--views", nargs="+", default=None, metavar="VIEW",
                        help="keep only these views (default: all views of the folder)")
    parser.add_argument("--strict", action="store_true", help="a missing video is an error instead of a masked view")
    parser.add_argument("--push_to_hub", metavar="REPO", default=None, help="also upload to this Hub dataset repo")
    parser.add_argument("--public", action="store_true", help="make the Hub repo public (default private)")
    args = reject_renamed_flags(parser).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = export_parquet(args.data_dir, args.output_dir, args.license, strict=args.strict, views=args.views)
    print(f"wrote {out}/README.md and {len(list((out / 'data').glob('*.parquet')))} parquet shard(s)")
    if args.push_to_hub:
        print(f"pushed to {push_dataset_folder(out, args.push_to_hub, private=not args.public)}")


if __name__ == "__main__":
    from dataset_scripts.script_errors import run_with_one_line_errors

    sys.exit(run_with_one_line_errors("dataset_scripts/multiview_folder.py", main))
