"""Ego-Exo4D demonstrator proficiency (optionally joined with expert commentary) as a `datasets` builder.

This is the one place that knows the Ego-Exo4D layout (documented at https://docs.ego-exo4d-data.org/). It reads `takes.json`,
`annotations/proficiency_demonstrator_{train,val}.json` and, for the `demonstrator_commentary` config,
`annotations/expert_commentary_{train,val}.json` plus the optional per-expert `data.json` files (for
`demonstration_moments`, `annotations/proficiency_demonstration_{train,val}.json` instead), and yields one row per take
(`demonstrator`) or per (take, expert) (the other configs). datasets 5 has no loading scripts, so
the builder is used by instantiating it, or through `load_egoexo4d_proficiency`:

    ds = load_egoexo4d_proficiency("/data/egoexo", config="demonstrator", split="train")

Run as a script it writes parquet shards and a dataset card, so `load_dataset(DIR)` works without this file:

    python dataset_scripts/egoexo4d_proficiency.py --data_dir /data/egoexo --dataset_config demonstrator --output_dir out/
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import datasets
from datasets.utils.tqdm import tqdm

if __name__ == "__main__" and __package__ in (None, ""):  # `python dataset_scripts/egoexo4d_proficiency.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataset_scripts.dataset_export import CARD_USAGE, SkipReport, push_dataset_folder, write_parquet_dataset  # noqa: E402
from dataset_scripts.script_errors import reject_renamed_flags  # noqa: E402
from modeling_profvlm.profvlm_facts import (  # noqa: E402
    PROFICIENCY_LABELS,
    VIEW_NAMES,
    format_moments,
    normalize_moments,
)

logger = logging.getLogger(__name__)

# datasets split name -> the suffix of the Ego-Exo4D annotation files
FILE_SPLITS = {"train": "train", "validation": "val"}
# Written at the root of every tree the synthetic generator makes: such a tree is never mistaken for EgoExo4D.
SYNTHETIC_MARKER = "profvlm_synthetic.json"
# Feedback longer than this is cut (at a sentence boundary when possible); training and evaluation import it.
DEFAULT_MAX_FEEDBACK_WORDS = 200
# Config `demonstrator_moments`: at most this many timed moments per row, each cut to this many words (a row's feedback
# stays about as long as the default feedback limit), taken from the expert commentary or the demonstration file.
DEFAULT_MAX_MOMENTS = 8
DEFAULT_MAX_MOMENT_WORDS = 25
MOMENT_SOURCES = ("commentary", "demonstration")
# The configs whose feedback is timed moments, and the source each one reads by default: `demonstration_moments` is
# `demonstrator_moments` with the demonstration-proficiency file as its source (categorised moments), a config of its
# own so that training and evaluation pick it by name.
MOMENT_CONFIGS = {"demonstrator_moments": "commentary", "demonstration_moments": "demonstration"}
# The demonstration-proficiency file's entry lists and the category (`profvlm_facts.MOMENT_CATEGORIES`) of each one's
# points: a moment from it says which kind of remark it is.
DEMONSTRATION_CATEGORIES = {"good_executions": "good_execution", "tips_for_improvement": "needs_improvement"}
# How to fetch each input with the `egoexo` downloader (pip install ego4d); {root} is the Ego-Exo4D root the user passed.
DOWNLOAD_COMMANDS = {
    "takes": "egoexo -o {root} --parts metadata -y",
    "proficiency": "egoexo -o {root} --parts annotations --benchmarks proficiency_demonstrator -y",
    "commentary": "egoexo -o {root} --parts annotations -y",
    "videos": "egoexo -o {root} --parts downscaled_takes/448 --uids <take_uid> ... -y",
}
# Keys of take["frame_aligned_videos"] that are not cameras, and walk-around phones (the `moblie` typo is real).
PSEUDO_CAMERAS = frozenset({"collage", "best_exo"})
WALKAROUND_CAMERAS = frozenset({"mobile", "moblie"})
EGO_RGB_STREAM = "rgb"
EXO_STREAM = "0"  # a GoPro's one stream, in takes.json and in the released feature files' names
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")

FEATURES = datasets.Features(
    {
        "take_uid": datasets.Value("string"),
        "take_name": datasets.Value("string"),
        "scenario": datasets.Value("string"),
        "task_name": datasets.Value("string"),
        "university_id": datasets.Value("string"),
        "participant_id": datasets.Value("string"),
        "proficiency": datasets.ClassLabel(names=list(PROFICIENCY_LABELS)),
        "view_names": datasets.List(datasets.Value("string")),
        "video_paths": datasets.List(datasets.Value("string")),
        "best_exo": datasets.Value("string"),
        "feedback": datasets.Value("string"),
        "expert_uid": datasets.Value("string"),
        "expert_rating": datasets.Value("int32"),
    }
)
# The moments configs add the moments their feedback renders: [{"time": seconds as annotated (full precision), "text":
# str, "category": one of MOMENT_CATEGORIES, or null when the source has none (expert commentary)}].
MOMENT_FEATURE = {"time": datasets.Value("float64"), "text": datasets.Value("string"),
                  "category": datasets.Value("string")}
MOMENTS_FEATURES = datasets.Features({**FEATURES, "moments": datasets.List(MOMENT_FEATURE)})


# ----------------------------------------------------------------------------------------------- layout helpers
def require_file(path: Path, what: str, command_key: str, root: Path) -> Path:
    """Return `path` if it is a file, else raise FileNotFoundError naming it and the `egoexo` command to fetch it."""
    if not path.is_file():
        command = DOWNLOAD_COMMANDS[command_key].format(root=root)
        raise FileNotFoundError(f"{what} not found: expected {path}. Download it with: {command}")
    return path


def read_json(path: Path):
    """json.load with the file name in the error."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err}).") from err


def read_record_list(path: Path) -> list[dict]:
    """Proficiency records: the released files wrap them as {"annotations": [...]}, the Docs sample is a bare list."""
    data = read_json(path)
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        return data["annotations"]
    if isinstance(data, list):
        return data
    found = f"an object with keys {sorted(data)[:5]}" if isinstance(data, dict) else type(data).__name__
    raise ValueError(f"{path}: expected a list of take records or {{'annotations': [...]}}, found {found}.")


def normalize_take_path(relative: str) -> str:
    """Collapse the old downloader's `takes/takes/<take>/...` prefix (and any repeats) to `takes/<take>/...`."""
    parts = [p for p in PurePosixPath(relative.replace("\\", "/")).parts if p not in ("/", ".")]
    while len(parts) > 1 and parts[0] == parts[1] == "takes":
        parts.pop(0)
    return "/".join(parts)


def downscaled_path(relative: str) -> str:
    """`.../frame_aligned_videos/x.mp4` -> `.../frame_aligned_videos/downscaled/448/x.mp4` (the `downscaled_takes/448` download)."""
    path = PurePosixPath(relative)
    if path.parent.name != "frame_aligned_videos":
        return relative
    return str(path.parent / "downscaled" / "448" / path.name)


class VideoResolver:
    """Turns an annotation's relative video path into an absolute file: the downscaled/448 copy when present,
    else the full-resolution one, under `root/takes/` or, for trees from the pre-Dec-2023 downloader,
    `root/takes/takes/`. With `verify=False` nothing is checked and the downscaled path is returned."""

    def __init__(self, root: Path, verify: bool):
        self.root, self.verify = root, verify
        self.nested = (root / "takes" / "takes").is_dir()  # one stat, not one per file

    def candidates(self, relative: str) -> list[Path]:
        """Where the file may be, best first."""
        rel = normalize_take_path(relative)
        bases = [self.root]
        if self.nested:
            bases = [self.root / "takes"] + bases  # root/takes/ + takes/<take>/... = root/takes/takes/<take>/...
        return [base / r for r in (downscaled_path(rel), rel) for base in bases]

    def resolve(self, relative: str) -> Path | None:
        """The absolute path to use, or None when no candidate exists (only with `verify=True`)."""
        candidates = self.candidates(relative)
        if not self.verify:
            return candidates[0].absolute()
        return next((c.absolute() for c in candidates if c.is_file()), None)


def parse_label(value, take_uid: str, source: Path) -> int:
    """Label string -> id in PROFICIENCY_LABELS order. Anything else is an error, never class 0."""
    if isinstance(value, str) and value.strip() in PROFICIENCY_LABELS:
        return PROFICIENCY_LABELS.index(value.strip())
    raise ValueError(
        f"{source}: take {take_uid} has proficiency_score {value!r}; expected one of {list(PROFICIENCY_LABELS)}."
    )


def views_from_take(take: dict) -> list[tuple[str, str]]:
    """(view name, relative path) from a `takes.json` entry: the ego Aria RGB stream, then up to four exo cameras
    in cam-id order. Pseudo-cameras (`collage`, `best_exo`) and walk-around phones are not views; the ego camera
    is not always `aria01`, and exo cameras may be `gpNN` or skip `cam02`."""
    videos, root_dir = take.get("frame_aligned_videos") or {}, take.get("root_dir") or f"takes/{take['take_name']}"
    ego_ids = {c["cam_id"] for c in (take.get("capture") or {}).get("cameras", []) if c.get("is_ego")}
    views: list[tuple[str, str]] = []
    ego = sorted(ego_ids & set(videos)) or sorted(cam for cam in videos if cam.startswith("aria"))
    if ego and (videos[ego[0]].get(EGO_RGB_STREAM) or {}).get("relative_path"):
        views.append((VIEW_NAMES[0], f"{root_dir}/{videos[ego[0]][EGO_RGB_STREAM]['relative_path']}"))
    exo = []
    for cam in sorted(videos):
        stream = (videos[cam] or {}).get(EXO_STREAM) or {}
        if cam in PSEUDO_CAMERAS or cam in WALKAROUND_CAMERAS or cam in ego:
            continue
        if stream.get("relative_path"):
            exo.append(f"{root_dir}/{stream['relative_path']}")
    views += list(zip(VIEW_NAMES[1:], exo))
    return views


def views_from_record(record: dict, take: dict, source: Path) -> list[tuple[str, str]]:
    """(view name, relative path) in VIEW_NAMES order from the record's `video_paths`, or from takes.json when the
    record has none."""
    paths = record.get("video_paths")
    if not paths:
        return views_from_take(take)
    if not isinstance(paths, dict):
        raise ValueError(f"{source}: take {record['take_uid']} has video_paths of type {type(paths).__name__}; "
                         f"expected a dict keyed by {list(VIEW_NAMES)}.")
    unknown = sorted(set(paths) - set(VIEW_NAMES))
    if unknown:
        raise ValueError(f"{source}: take {record['take_uid']} has video_paths keys {unknown}; "
                         f"expected only {list(VIEW_NAMES)}.")
    return [(view, paths[view]) for view in VIEW_NAMES if paths.get(view)]


def best_exo_view(take: dict, views: list[tuple[str, str]]) -> str | None:
    """The view name showing the take's `best_exo` camera; None when it is null (some takes have none) or not a view."""
    cam = take.get("best_exo")
    if not cam:
        return None
    return next((view for view, rel in views if view != VIEW_NAMES[0] and PurePosixPath(rel).stem == cam), None)


def truncate_words(text: str, max_words: int) -> str:
    """At most `max_words` words, cut after the last full sentence when one ends inside the limit."""
    words = text.split()
    if len(words) <= max_words:
        return text
    head = " ".join(words[:max_words])
    ends = [m.end() for m in _SENTENCE_END.finditer(head)]
    return head[: ends[-1]] if ends else head


def feedback_text(entries: list[dict], max_words: int) -> str:
    """An expert's commentary as one text: entries without an error, stripped (Whisper adds a leading space),
    in video-time order, joined and truncated. Error entries may have no `text` at all."""
    kept = [e for e in entries if not e.get("error") and isinstance(e.get("text"), str) and e["text"].strip()]
    kept.sort(key=lambda e: float(e.get("video_time") or 0.0))
    # split() + join drops Whisper's leading space and any doubled spaces
    return truncate_words(" ".join(" ".join(e["text"].split()) for e in kept), max_words)


def moment_time(value, where: str) -> float:
    """An annotation's `video_time` as seconds >= 0; a ValueError naming `where` and the value otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or value == float("inf"):
        raise ValueError(f"{where}: video_time {value!r} is not a number of seconds >= 0.")
    return float(value)


def commentary_moments(entries: list[dict], max_words: int, where: str) -> list[dict]:
    """An expert's commentary as moments: the entries without an error that have text, {"time": video_time, "text":
    the text on one line, cut to `max_words`}, in the entries' order (times are floored only where the answer
    format writes them)."""
    moments = []
    for e in entries:
        if e.get("error") or not isinstance(e.get("text"), str) or not e["text"].strip():
            continue
        text = truncate_words(" ".join(e["text"].split()), max_words)
        moments.append({"time": moment_time(e.get("video_time"), where), "text": text})
    return moments


def demonstration_moments(record: dict, max_words: int, where: str) -> dict[str, list[dict]]:
    """A demonstration-proficiency record's timed remarks per expert: {expert_uid: moments}, one moment per entry of
    `good_executions` (category `good_execution`) and `tips_for_improvement` (`needs_improvement`), at its
    `video_time` as annotated, its `list` of remarks joined with "; "; entries without any remark are left out."""
    by_expert: dict[str, list[dict]] = {}
    for key, category in DEMONSTRATION_CATEGORIES.items():
        for e in record.get(key) or []:
            remarks = [" ".join(r.split()) for r in e.get("list") or [] if isinstance(r, str) and r.strip()]
            if not remarks:
                continue
            expert = e.get("expert_uid")
            if not isinstance(expert, str) or not expert:
                raise ValueError(f"{where}: a {key} entry has expert_uid {expert!r}; expected the expert's id.")
            text = truncate_words("; ".join(remarks), max_words)
            by_expert.setdefault(expert, []).append({"time": moment_time(e.get("video_time"), where), "text": text,
                                                     "category": category})
    return by_expert


def spread_moments(moments: list[dict], max_moments: int) -> list[dict]:
    """At most `max_moments` of `moments`, chosen to cover the take rather than its opening: for each of
    `max_moments` times evenly spaced from the first to the last moment, the closest one not chosen yet (the
    earlier on a tie). Returned in time order."""
    ordered = sorted(moments, key=lambda m: m["time"])  # stable: simultaneous remarks keep their order
    if len(ordered) <= max_moments:
        return ordered
    first, last = ordered[0]["time"], ordered[-1]["time"]
    targets = [first + (last - first) * k / (max_moments - 1) for k in range(max_moments)] if max_moments > 1 \
        else [(first + last) / 2]
    chosen: set[int] = set()
    for target in targets:
        chosen.add(min((i for i in range(len(ordered)) if i not in chosen),
                       key=lambda i: (abs(ordered[i]["time"] - target), i)))
    return [ordered[i] for i in sorted(chosen)]


def fit_moments(moments: list[dict], duration_sec, max_moments: int) -> tuple[list[dict], int]:
    """(the row's moments, how many were past the take's end): moments after `duration_sec` (when known) are dropped,
    then `spread_moments` keeps at most `max_moments`, checked and in time order (`normalize_moments`) with their
    times as annotated: the answer format floors them to the checkpoint's digits when it writes them."""
    inside = [m for m in moments if duration_sec is None or m["time"] <= float(duration_sec)]
    return normalize_moments(spread_moments(inside, max_moments), decimals=None), len(moments) - len(inside)


def parse_rating(value) -> int | None:
    """`data.json` proficiency.rating ("7", 7, "N/A", "_none") -> int, or None when it is not a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def expert_rating(root: Path, commentary: str) -> int | None:
    """The expert's 1-10 rating from `annotations/expert_commentary/<take>/<expert>/data.json`, when downloaded."""
    path = root / "annotations" / "expert_commentary" / commentary / "data.json"
    if not path.is_file():
        return None
    return parse_rating((read_json(path).get("proficiency") or {}).get("rating"))


# -------------------------------------------------------------------------------------------------- row building
def load_takes(root: Path) -> dict[str, dict]:
    """takes.json as {take_uid: take}."""
    path = require_file(root / "takes.json", "Ego-Exo4D takes metadata (takes.json)", "takes", root)
    takes = read_json(path)
    if not isinstance(takes, list):
        raise ValueError(f"{path}: expected a list of takes, found {type(takes).__name__}.")
    return {t["take_uid"]: t for t in takes}


def load_commentary(root: Path, file_split: str) -> dict[str, list[dict]]:
    """expert_commentary_<split>.json as {take_uid: [one entry per expert]}."""
    path = require_file(root / "annotations" / f"expert_commentary_{file_split}.json",
                        "Ego-Exo4D expert commentary annotations", "commentary", root)
    data = read_json(path)
    annotations = data.get("annotations") if isinstance(data, dict) else None
    if not isinstance(annotations, dict):
        raise ValueError(f"{path}: expected {{'annotations': {{take_uid: [...]}}}}, found {type(data).__name__}.")
    return annotations


def load_demonstration(root: Path, file_split: str) -> tuple[dict[str, dict], Path]:
    """proficiency_demonstration_<split>.json as ({take_uid: record}, its path)."""
    path = require_file(root / "annotations" / f"proficiency_demonstration_{file_split}.json",
                        "Ego-Exo4D demonstration proficiency annotations", "commentary", root)
    return {r.get("take_uid"): r for r in read_record_list(path)}, path


@dataclass(frozen=True)
class MomentOptions:
    """How config `demonstrator_moments` makes a row's moments: at most `max_moments` per row, each cut to
    `max_words` words, from the expert `commentary` or the `demonstration` file (`MOMENT_SOURCES`)."""

    max_moments: int = DEFAULT_MAX_MOMENTS
    max_words: int = DEFAULT_MAX_MOMENT_WORDS
    source: str = "commentary"

    def __post_init__(self):
        for name in ("max_moments", "max_words"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} is {value!r}; expected a whole number >= 1.")
        if self.source not in MOMENT_SOURCES:
            raise ValueError(f"moments_source {self.source!r}; expected one of {list(MOMENT_SOURCES)}.")


def check_views(views) -> tuple[str, ...] | None:
    """A `views` selection as a tuple in VIEW_NAMES order; unknown names are an error listing the known ones."""
    if views is None:
        return None
    views = tuple(views)
    unknown = [v for v in views if v not in VIEW_NAMES]
    if unknown or not views:
        raise ValueError(f"views {list(views)}: unknown or empty selection {unknown}; expected some of {list(VIEW_NAMES)}.")
    return tuple(v for v in VIEW_NAMES if v in views)


def collect_rows(root: Path, file_split: str, with_commentary: bool, max_feedback_words: int, verify_files: bool,
                 strict: bool, takes: dict[str, dict] | None = None,
                 views: tuple[str, ...] | None = None,
                 moments: MomentOptions | None = None) -> tuple[list[dict], SkipReport]:
    """All rows of one split plus the report of what was left out. A missing video drops that view, not the take
    (the model masks missing views); a take with no view on disk is skipped. `views` keeps only those views.
    With `moments` (and `with_commentary`), each (take, expert) row's feedback is its timed moments (`moment_rows`).
    Raises on inconsistent annotations, and on any missing file with `strict`."""
    source = require_file(root / "annotations" / f"proficiency_demonstrator_{file_split}.json",
                          "Ego-Exo4D demonstrator proficiency annotations", "proficiency", root)
    records = read_record_list(source)
    takes = load_takes(root) if takes is None else takes
    from_demonstration = with_commentary and moments is not None and moments.source == "demonstration"
    commentary = load_commentary(root, file_split) if with_commentary and not from_demonstration else {}
    demonstration, demonstration_path = load_demonstration(root, file_split) if from_demonstration else ({}, None)
    resolver = VideoResolver(root, verify_files)
    selected = check_views(views)
    report, rows, seen = SkipReport(), [], set()
    for record in tqdm(records, desc=f"Ego-Exo4D {file_split}", unit="take", disable=len(records) < 500):
        take_uid = record.get("take_uid")
        if take_uid not in takes:
            raise ValueError(f"{source}: take_uid {take_uid!r} is not in {root / 'takes.json'}; the annotation and "
                             f"metadata downloads are from different releases "
                             f"({DOWNLOAD_COMMANDS['takes'].format(root=root)}).")
        if take_uid in seen:
            raise ValueError(f"{source}: take {take_uid} appears twice; expected one record per take.")
        seen.add(take_uid)
        take = takes[take_uid]
        label = parse_label(record.get("proficiency_score"), take_uid, source)
        all_views = views_from_record(record, take, source)
        if not all_views:
            raise ValueError(f"{source}: take {take_uid} has no video_paths and takes.json lists no camera for it; "
                             f"expected at least the ego view.")
        take_views, paths = [], []
        for view, rel in all_views:
            if selected is not None and view not in selected:
                continue
            path = resolver.resolve(rel)
            if path is None:
                missing = resolver.candidates(rel)[0]
                if strict:
                    raise FileNotFoundError(f"{source}: take {take_uid} ({take['take_name']}): {view} video not found: "
                                            f"{missing} (strict=True). Download it with: "
                                            f"{DOWNLOAD_COMMANDS['videos'].format(root=root)}")
                report.missing_video(view, missing)
                continue
            take_views.append((view, rel))
            paths.append(path)
        if not take_views:
            report.takes_without_video += 1
            continue
        participant = record.get("origin_participant_id")  # int in some files, str in others
        base = {
            "take_uid": take_uid,
            "take_name": take["take_name"],
            "scenario": record.get("scenario_name") or take.get("parent_task_name"),
            "task_name": record.get("task_name") or take.get("task_name"),
            "university_id": record.get("university_id") or take.get("university_id"),
            "participant_id": None if participant is None else str(participant),
            "proficiency": label,
            "view_names": [view for view, _ in take_views],
            "video_paths": [str(p) for p in paths],
            "best_exo": best_exo_view(take, take_views),
            "feedback": "",
            "expert_uid": None,
            "expert_rating": None,
        }
        if not with_commentary:
            rows.append(base)
            continue
        if moments is not None:
            where = demonstration_path if from_demonstration else \
                root / "annotations" / f"expert_commentary_{file_split}.json"
            rows += moment_rows(root, base, take, commentary.get(take_uid) or [], demonstration.get(take_uid),
                                moments, f"{where}: take {take_uid}", report)
            continue
        experts = commentary.get(take_uid) or []
        if not experts:
            report.takes_without_commentary += 1
        for entry in experts:
            if not entry.get("commentary"):
                raise ValueError(f"{root / 'annotations'}/expert_commentary_{file_split}.json: take {take_uid} has an "
                                 f"entry without 'commentary'; expected '<take_name>/<expert_uid>'.")
            text = feedback_text(entry.get("commentary_data") or [], max_feedback_words)
            if not text:
                report.experts_without_text += 1
                continue
            rows.append({**base, "feedback": text, "expert_uid": entry["commentary"].split("/")[-1],
                         "expert_rating": expert_rating(root, entry["commentary"])})
    report.rows = len(rows)
    return rows, report


def moment_rows(root: Path, base: dict, take: dict, experts: list[dict], demonstration: dict | None,
                options: MomentOptions, where: str, report: SkipReport) -> list[dict]:
    """The (take, expert) rows of config `demonstrator_moments`: feedback = the expert's moments in the answer format,
    `moments` = those moments. From `experts` (the take's expert-commentary entries) or, with source `demonstration`,
    from the take's demonstration record. Moments past the take's `duration_sec` are dropped and counted in `report`;
    an expert left without moments gives no row."""
    if options.source == "demonstration":
        per_expert = demonstration_moments(demonstration or {}, options.max_words, where)
        sources = [(expert, f"{take['take_name']}/{expert}", found) for expert, found in per_expert.items()]
    else:
        sources = []
        for entry in experts:
            if not entry.get("commentary"):
                raise ValueError(f"{where} has an entry without 'commentary'; expected '<take_name>/<expert_uid>'.")
            found = commentary_moments(entry.get("commentary_data") or [], options.max_words, where)
            sources.append((entry["commentary"].split("/")[-1], entry["commentary"], found))
    if not sources:
        report.takes_without_commentary += 1
    rows = []
    for expert, commentary_path, found in sources:
        kept, past_end = fit_moments(found, take.get("duration_sec"), options.max_moments)
        report.moments_past_end += past_end
        if not kept:
            report.experts_without_text += 1
            continue
        rows.append({**base, "feedback": format_moments(kept), "moments": kept, "expert_uid": expert,
                     "expert_rating": expert_rating(root, commentary_path)})
    return rows


# ------------------------------------------------------------------------------------------------------- builder
@dataclass
class EgoExo4DProficiencyConfig(datasets.BuilderConfig):
    """Config of the builder. `with_commentary`: one row per (take, expert) with the expert's feedback text;
    `verify_files`: check every video exists (missing -> that view dropped and counted, or an error with `strict`);
    `views`: use only these views (e.g. ("ego",): Ego-only training needs only the ego downloads); `with_moments`:
    the feedback is timed moments (`max_moments`, `max_moment_words`, `moments_source`: see `MomentOptions`) and
    `max_feedback_words` does not apply."""

    with_commentary: bool = False
    max_feedback_words: int = DEFAULT_MAX_FEEDBACK_WORDS
    verify_files: bool = True
    strict: bool = False
    views: tuple[str, ...] | None = None
    with_moments: bool = False
    max_moments: int = DEFAULT_MAX_MOMENTS
    max_moment_words: int = DEFAULT_MAX_MOMENT_WORDS
    moments_source: str = "commentary"

    def moment_options(self) -> MomentOptions | None:
        """The checked moment options of a `with_moments` config, else None."""
        if not self.with_moments:
            return None
        return MomentOptions(self.max_moments, self.max_moment_words, self.moments_source)


class EgoExo4DProficiency(datasets.GeneratorBasedBuilder):
    """Ego-Exo4D demonstrator proficiency: configs `demonstrator` (one row per labelled take),
    `demonstrator_commentary` (one row per labelled take and expert, with that expert's commentary as `feedback`),
    `demonstrator_moments` (its timed remarks as moments) and `demonstration_moments` (the expert's
    demonstration-proficiency points as categorised moments). Splits `train` and `validation`; pass the Ego-Exo4D
    root as `data_dir`."""

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIG_CLASS = EgoExo4DProficiencyConfig
    BUILDER_CONFIGS = [
        EgoExo4DProficiencyConfig(name="demonstrator", version=VERSION, with_commentary=False,
                                  description="One row per take with its demonstrator proficiency label."),
        EgoExo4DProficiencyConfig(name="demonstrator_commentary", version=VERSION, with_commentary=True,
                                  description="One row per (take, expert): the label plus the expert's commentary."),
        EgoExo4DProficiencyConfig(name="demonstrator_moments", version=VERSION, with_commentary=True,
                                  with_moments=True,
                                  description="One row per (take, expert): the label plus the expert's timed remarks "
                                              "as moments, '[m:ss] text [m:ss] text ...', and a `moments` column."),
        EgoExo4DProficiencyConfig(name="demonstration_moments", version=VERSION, with_commentary=True,
                                  with_moments=True, moments_source=MOMENT_CONFIGS["demonstration_moments"],
                                  description="One row per (take, expert): the label plus the expert's demonstration-"
                                              "proficiency points as categorised moments, '[m:ss] good: text [m:ss] "
                                              "tip: text ...', and a `moments` column with their categories."),
    ]
    DEFAULT_CONFIG_NAME = "demonstrator_commentary"

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description="Ego-Exo4D demonstrator proficiency (4 ordinal levels) with ego + exo video paths"
            + (" and expert commentary feedback." if self.config.with_commentary else "."),
            features=MOMENTS_FEATURES if self.config.with_moments else FEATURES,
            homepage="https://docs.ego-exo4d-data.org/",
            license="Ego-Exo4D license (https://ego4d.dev/request/ego-exo4d)",
        )

    def _split_generators(self, dl_manager) -> list[datasets.SplitGenerator]:
        # Rows are built here, not in _generate_examples: datasets wraps errors raised while generating into a
        # DatasetGenerationError, and a wrong label or a missing file must reach the caller as itself.
        if not self.config.data_dir:
            raise ValueError("EgoExo4DProficiency needs data_dir=<Ego-Exo4D root> (the folder with takes.json).")
        root = Path(self.config.data_dir).expanduser().absolute()
        if not root.is_dir():
            raise FileNotFoundError(f"Ego-Exo4D root not found: expected a folder at {root}. "
                                    f"Download it with: {DOWNLOAD_COMMANDS['proficiency'].format(root=root)}")
        moments = self.config.moment_options()  # checked before any file is read
        takes = load_takes(root)
        self.reports: dict[str, SkipReport] = {}
        self._rows: dict[str, list[dict]] = {}
        for split, file_split in FILE_SPLITS.items():
            rows, report = collect_rows(root, file_split, self.config.with_commentary, self.config.max_feedback_words,
                                        self.config.verify_files, self.config.strict, takes, self.config.views,
                                        moments)
            self._rows[split], self.reports[split] = rows, report
            report.log(f"EgoExo4DProficiency[{self.config.name}] {split}")
        return [datasets.SplitGenerator(name=split, gen_kwargs={"split": split}) for split in FILE_SPLITS]

    def _generate_examples(self, split: str):
        # The row index is the key: one expert may have annotated the same take twice (`..._<take>_1`).
        yield from enumerate(self._rows[split])


def load_egoexo4d_proficiency(
    data_dir: str | os.PathLike,
    config: str = "demonstrator_commentary",
    split: str = "train",
    *,
    cache_dir: str | os.PathLike | None = None,
    download_mode: str = "force_redownload",
    **config_kwargs,
) -> datasets.Dataset:
    """Build (or, with `download_mode="reuse_dataset_if_exists"`, reuse) the dataset from an Ego-Exo4D root and
    return one split (`train`, `validation`; `val` is accepted). `config_kwargs`: max_feedback_words,
    verify_files, strict, views; for `demonstrator_moments` max_moments, max_moment_words, moments_source (the
    same for `demonstration_moments`, whose source is the demonstration file). Rebuilding is the default because
    the annotations and videos on disk may have changed."""
    split = {"val": "validation"}.get(split, split)
    if split not in FILE_SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {list(FILE_SPLITS)}.")
    names = [c.name for c in EgoExo4DProficiency.BUILDER_CONFIGS]
    if config not in names:
        raise ValueError(f"unknown config {config!r}; expected one of {names}.")
    source = config_kwargs.get("moments_source")
    if config == "demonstration_moments" and source not in (None, MOMENT_CONFIGS[config]):
        raise ValueError(f"config demonstration_moments reads the demonstration file, not moments_source {source!r}; "
                         "use config demonstrator_moments for another source.")
    if config_kwargs.get("views") is not None:
        config_kwargs["views"] = check_views(config_kwargs["views"])
    builder = EgoExo4DProficiency(config_name=config, data_dir=str(data_dir),
                                  cache_dir=None if cache_dir is None else str(cache_dir), **config_kwargs)
    # The files on disk may have changed since the last build (a download finished, a video was removed): the split
    # sizes recorded then are no promise, so datasets must not verify against them (NonMatchingSplitsSizesError).
    builder.download_and_prepare(download_mode=download_mode, verification_mode=datasets.VerificationMode.NO_CHECKS)
    return builder.as_dataset(split=split)


# ---------------------------------------------------------------------------------------------------- script mode
CARD_TEMPLATE = """---
{yaml}---

# Ego-Exo4D demonstrator proficiency — `{config}`

Built from an Ego-Exo4D root with `dataset_scripts/egoexo4d_proficiency.py` (ProfVLM). Load it without any script:

""" + CARD_USAGE + """
- `proficiency`: ClassLabel {labels} (ordinal; Ego-Exo4D itself has no integer ids).
- `view_names` / `video_paths`: `ego` first, then `exo1`..`exo4`; absolute paths on the machine that built this
  dataset (the downscaled/448 file when present). The videos are not included.
- `feedback`, `expert_uid`, `expert_rating` (config `demonstrator_commentary`): one expert's commentary (Whisper
  transcripts, errors dropped, video-time order, at most {max_words} words), its id and its 1-10 rating when the
  per-expert `data.json` was downloaded. Empty / null in config `demonstrator`.{moments_note}
- `best_exo`: the view of the take's best exo camera (null for takes without one).

## Source and licence

Derived from Ego-Exo4D (Grauman et al., CVPR 2024; https://ego-exo4d-data.org/): the demonstrator proficiency
labels{commentary_note} of the Ego-Exo4D release the builder read. Ego-Exo4D is not an open dataset: each user
signs the Ego-Exo4D licence (https://ego4d.dev/request/ego-exo4d) before downloading it, and its labels and expert
commentary are not ours to republish. Keep this repository private, shared only with people who have signed that
licence, unless the licence terms you agreed to allow more.
"""
# The card's description of a moments config (filled by `export_parquet` with the options it was built with).
MOMENTS_CARD_NOTE = """
- Config `{config}`: one row per (take, expert) whose `feedback` is that expert's remarks as timed
  moments, `[m:ss] remark [m:ss] remark ...` (times in whole seconds, floored; `h:mm:ss` past an hour; time order;
  a remark with a category opens with its word, `good:` or `tip:`), and `moments` the same as a list of
  {{"time": seconds as annotated (not floored), "text": remark, "category": good_execution / needs_improvement, or
  null when the source has none}}. Source: {source}. Entries with
  `error: true` or without text are left out; each remark is cut to {max_words} words; at most {max_moments}
  moments per row, chosen to cover the take (the closest to evenly spaced times from its first to its last remark),
  not only its opening; moments timed after the take's `duration_sec` are dropped (the build log counts them). The
  remark at a time is about what the expert had just watched."""
MOMENTS_SOURCE_NAMES = {
    "commentary": "the expert commentary (`annotations/expert_commentary_<split>.json`; `video_time` of each entry)",
    "demonstration": ("`annotations/proficiency_demonstration_<split>.json` (`good_executions` as category "
                      "good_execution, 'good: ...', `tips_for_improvement` as needs_improvement, 'tip: ...', each at "
                      "its `video_time`, per `expert_uid`)"),
}
PUBLIC_CAVEAT = (
    "--public: this dataset is derived from Ego-Exo4D, which each user must license individually "
    "(https://ego4d.dev/request/ego-exo4d); publishing its labels or commentary may breach those terms."
)


def export_parquet(
    data_dir: str | os.PathLike,
    config: str,
    output: str | os.PathLike,
    *,
    max_shard_rows: int = 50_000,
    cache_dir: str | os.PathLike | None = None,
    **config_kwargs,
) -> Path:
    """Write `output/data/<split>-XXXXX-of-YYYYY.parquet` and `output/README.md` (YAML configs + features), so
    `load_dataset(output)` restores the same features (ClassLabel names included) without this file."""
    splits = {s: load_egoexo4d_proficiency(data_dir, config, s, cache_dir=cache_dir, **config_kwargs)
              for s in FILE_SPLITS}
    metadata = {
        "license": "other",
        "license_name": "ego-exo4d",
        "license_link": "https://ego4d.dev/request/ego-exo4d",
        "task_categories": ["video-classification"],
        "tags": ["egoexo4d", "proficiency-estimation", "video", "multi-view"],
        "pretty_name": f"Ego-Exo4D demonstrator proficiency ({config})",
    }
    moments_note, commentary_note = "", " and expert commentary" if config == "demonstrator_commentary" else ""
    if config in MOMENT_CONFIGS:
        options = MomentOptions(config_kwargs.get("max_moments", DEFAULT_MAX_MOMENTS),
                                config_kwargs.get("max_moment_words", DEFAULT_MAX_MOMENT_WORDS),
                                config_kwargs.get("moments_source", MOMENT_CONFIGS[config]))
        moments_note = MOMENTS_CARD_NOTE.format(
            config=config, max_moments=options.max_moments, max_words=options.max_words,
            source=MOMENTS_SOURCE_NAMES[options.source])
        commentary_note = (" and expert commentary" if options.source == "commentary"
                           else " and demonstration-proficiency remarks")
    return write_parquet_dataset(
        output, splits, metadata, CARD_TEMPLATE, max_shard_rows, config=config, labels=list(PROFICIENCY_LABELS),
        max_words=config_kwargs.get("max_feedback_words", DEFAULT_MAX_FEEDBACK_WORDS),
        commentary_note=commentary_note, moments_note=moments_note,
    )


def main(argv: list[str] | None = None) -> None:
    """Command line: build one config from an Ego-Exo4D root and export it as parquet (+ optional Hub push)."""
    parser = argparse.ArgumentParser(
        description="Build the Ego-Exo4D demonstrator proficiency dataset from a downloaded Ego-Exo4D root and "
        "write parquet shards + a dataset card, loadable with datasets.load_dataset(OUTPUT_DIR). Needs: "
        + "; ".join(f"{k}: {v.format(root='ROOT')}" for k, v in DOWNLOAD_COMMANDS.items()),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--data_dir", required=True,
                        help="Ego-Exo4D root (the folder with takes.json and annotations/)")
    parser.add_argument("--dataset_config", default="demonstrator_commentary",
                        choices=[c.name for c in EgoExo4DProficiency.BUILDER_CONFIGS],
                        help="demonstrator: one row per take; demonstrator_commentary: one row per (take, expert); "
                             "demonstrator_moments: one row per (take, expert), feedback as timed moments; "
                             "demonstration_moments: the same from the demonstration-proficiency file, each moment "
                             "a good execution or a tip")
    parser.add_argument("--output_dir", required=True, help="output folder for data/*.parquet and README.md")
    parser.add_argument("--push_to_hub", metavar="REPO", default=None, help="also upload to this Hub dataset repo")
    parser.add_argument("--public", action="store_true",
                        help="make the Hub repo public (default private: EgoExo4D's licence is signed per user)")
    parser.add_argument("--views", nargs="+", default=None, choices=list(VIEW_NAMES),
                        help="keep only these views (e.g. --views ego: only the ego downloads are needed)")
    parser.add_argument("--max_feedback_words", type=int, default=DEFAULT_MAX_FEEDBACK_WORDS,
                        help="truncate each feedback text to this many words")
    parser.add_argument("--max_moments", type=int, default=None,
                        help=f"the moments configs: at most this many moments per row (default {DEFAULT_MAX_MOMENTS})")
    parser.add_argument("--max_moment_words", type=int, default=None,
                        help=f"the moments configs: cut each moment's remark to this many words (default "
                             f"{DEFAULT_MAX_MOMENT_WORDS})")
    parser.add_argument("--moments_source", default=None, choices=list(MOMENT_SOURCES),
                        help="demonstrator_moments: the expert commentary (default) or the demonstration-proficiency "
                             "file's good_executions / tips_for_improvement")
    parser.add_argument("--no_verify_files", action="store_true", help="do not check that the videos exist (faster)")
    parser.add_argument("--strict", action="store_true", help="a missing video is an error instead of a masked view")
    parser.add_argument("--cache_dir", default=None, help="datasets cache folder (default: the HF datasets cache)")
    args = reject_renamed_flags(parser).parse_args(argv)
    moment_flags = {"max_moments": args.max_moments, "max_moment_words": args.max_moment_words,
                    "moments_source": args.moments_source}
    moment_kwargs = {k: v for k, v in moment_flags.items() if v is not None}
    if moment_kwargs and args.dataset_config not in MOMENT_CONFIGS:
        given = ", ".join(f"--{k}" for k in moment_kwargs)
        raise ValueError(f"{given} only apply to --dataset_config {' or '.join(MOMENT_CONFIGS)}, not "
                         f"{args.dataset_config}.")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = export_parquet(args.data_dir, args.dataset_config, args.output_dir, cache_dir=args.cache_dir,
                         max_feedback_words=args.max_feedback_words, verify_files=not args.no_verify_files,
                         strict=args.strict, views=args.views, **moment_kwargs)
    print(f"wrote {out}/README.md and {len(list((out / 'data').glob('*.parquet')))} parquet shard(s)")
    if args.push_to_hub:
        url = push_dataset_folder(out, args.push_to_hub, private=not args.public, public_caveat=PUBLIC_CAVEAT)
        print(f"pushed ({'public' if args.public else 'private'}) to {url}")


if __name__ == "__main__":
    from dataset_scripts.script_errors import run_with_one_line_errors

    sys.exit(run_with_one_line_errors("dataset_scripts/egoexo4d_proficiency.py", main))
