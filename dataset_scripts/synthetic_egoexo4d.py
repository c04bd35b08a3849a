"""Write a synthetic Ego-Exo4D tree (demonstrator proficiency + expert commentary) in the real on-disk layout.

The tree looks like `egoexo -o DIR --parts metadata annotations downscaled_takes/448 expert_commentary`:
`takes.json`, `annotations/splits.json`,
`annotations/proficiency_demonstrator_{train,val}.json`, `annotations/expert_commentary_{train,val}.json`,
per-expert `annotations/expert_commentary/<take>/<expert>/{data.json,transcriptions.json,recordings/*.webm}` for
some experts, and for every take one ego (`<aria>_214-1.mp4`, square) and four exo (`camNN`/`gpNN.mp4`, 16:9)
H.264 yuv420p videos at 30 fps under `takes/<take>/frame_aligned_videos/downscaled/448/`, all with the same frame
count. Only the ego RGB stream and the four exo files are written (no SLAM/eye-tracking streams, no collage
`ego_preview.mp4`, no test split). Scenarios, label mix and universities follow the real train split
(its per-scenario label counts are below); task names other than the documented examples are made up.

The performer, its motion and how the label is encoded: `synthetic_motion`. Drawing and encoding the videos:
`synthetic_render`. The expert commentary and ratings: `synthetic_commentary`. With `--events` (opt-in), performers
also slip or make a clean repetition at random seconds, seen by some cameras and named with their times in the
commentary and in `annotations/proficiency_demonstration_{train,val}.json`: `synthetic_events`. This module plans the
takes and writes the tree.

Quirks of the real data (documented at docs.ego-exo4d-data.org) appear in a fraction of takes: ego cameras other than
`aria01`, `gpNN` exo cameras (all upenn takes), takes without `cam02` (exo = cam01, cam03, cam04, cam05),
`best_exo: null`, `collage`/`best_exo` pseudo-cameras (every take), a `moblie` walk-around camera in the capture,
`takes/takes/` prefixes in `video_paths`, `origin_participant_id` as int, leading spaces in Whisper text,
`error: true` commentary entries without `text`, ratings as str/int/"N/A", and the val proficiency file as a
bare list instead of `{"annotations": [...]}`. Annotation files are byte-identical for the same arguments.

    python dataset_scripts/synthetic_egoexo4d.py --output_dir egoexo_synthetic --takes 40 --seed 0 --size 112 --seconds 4
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

if __name__ == "__main__" and __package__ in (None, ""):  # `python dataset_scripts/synthetic_egoexo4d.py`
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataset_scripts.egoexo4d_proficiency import SYNTHETIC_MARKER  # noqa: E402
from dataset_scripts.script_errors import reject_renamed_flags  # noqa: E402
from dataset_scripts.synthetic_commentary import event_remark, expert_commentary  # noqa: E402
from dataset_scripts.synthetic_events import TakeEvent, plan_events  # noqa: E402
from dataset_scripts.synthetic_features import part_by_name, write_released_features  # noqa: E402
from dataset_scripts.synthetic_motion import FPS, simulate_motion  # noqa: E402
from dataset_scripts.synthetic_render import encode_yuv420, flash_events, render_view, view_cameras  # noqa: E402
from modeling_profvlm.profvlm_facts import PROFICIENCY_LABELS, VIEW_NAMES  # noqa: E402

# Real train counts per scenario x label (Novice, Early, Intermediate, Late) of the v2 demonstrator annotations.
REAL_TRAIN_MIX = {
    "Basketball": (64, 110, 178, 223),
    "Cooking": (90, 50, 53, 7),
    "Dance": (32, 196, 68, 84),
    "Music": (0, 24, 44, 70),
    "Rock Climbing": (188, 131, 177, 65),
    "Soccer": (0, 0, 40, 89),
}
VAL_FRACTION = 561 / (1983 + 561)
# parent_task_id, a university per scenario (the real majority one) and (task_id, task_name) choices.
SCENARIO_META = {
    "Basketball": (6000, "unc", [(6001, "Basketball Drills - Mikan Layup"), (6002, "Basketball Drills - Reverse Layup"),
                                 (6003, "Basketball Drills - Mid-Range Jump Shooting")]),
    "Cooking": (1000, "sfu", [(1001, "Cooking an Omelet"), (1004, "Making Cucumber & Tomato Salad"),
                              (1008, "Making Sesame-Ginger Asian Salad")]),
    "Dance": (9000, "uniandes", [(9005, "LosAndes_Basic_Salsa"), (9006, "LosAndes_Basic_Merengue")]),
    "Music": (5000, "upenn", [(5009, "Playing Piano"), (5010, "Playing Guitar"), (5011, "Playing Violin")]),
    "Rock Climbing": (7000, "uniandes", [(7018, "LosAndes_V2_R1"), (7019, "LosAndes_V2_R2")]),
    "Soccer": (8000, "iiith", [(8003, "Soccer Drills - Dribbling"),
                               (8001, "Soccer Drills - Inside Trap and Outside Play")]),
}
UNIVERSITY_IDS = {"unc": "ego4d-unc", "sfu": "ego4d-sfu", "uniandes": "ego4d-university-sa", "upenn": "ego4d-upenn",
                  "iiith": "ego4d-iiith"}
ODD_EGO_CAMS = ("aria02", "aria", "aria1", "aria04")  # seen in the real splits besides aria01
EXPERT_POOL = 16
ARIA_STREAMS = (("rgb", "214-1"), ("slam-left", "1201-1"), ("slam-right", "1201-2"), ("et", "211-1"))
COMMENTARY_DS = "20240324_14:05:11"
SPLITS_DS = "20240404_08:13:53"


# ----------------------------------------------------------------------------------------------------- planning
@dataclass
class TakePlan:
    """Everything about one synthetic take that the annotation files and the renderer need (picklable)."""

    index: int
    take_uid: str
    take_name: str
    scenario: str
    task_id: int
    task_name: str
    university: str
    split: str  # "train" | "val"
    level: int
    participant_uid: int
    motion_seed: int
    ego_cam: str
    exo_cams: list[str]
    best_exo: str | None
    participant_id_as_int: bool
    double_takes_prefix: bool
    has_mobile_camera: bool
    experts: list[str] = field(default_factory=list)


def _every(i: int, period: int, phase: int) -> bool:
    """Deterministic 1-in-`period` choice, so even a tree of ~10 takes contains every quirk."""
    return i % period == phase % period


def _allocate(num: int, weights: np.ndarray, offset: float) -> np.ndarray:
    """Systematic sampling: `num` cell indices whose counts follow `weights` within +-1."""
    cum = np.cumsum(weights / weights.sum())
    return np.minimum(np.searchsorted(cum, (np.arange(num) + offset) / num, side="right"), len(weights) - 1)


def plan_takes(num_takes: int, seed: int) -> list[TakePlan]:
    """Draw scenario, label, split, cameras, quirks and experts for `num_takes` takes, deterministically."""
    rng = np.random.default_rng(seed)
    scenarios = list(REAL_TRAIN_MIX)
    cells = np.array([REAL_TRAIN_MIX[s][lvl] for s in scenarios for lvl in range(4)], float)
    chosen = _allocate(num_takes, cells, rng.uniform())
    rng.shuffle(chosen)
    val = set(rng.permutation(num_takes)[: max(1 if num_takes >= 2 else 0, round(num_takes * VAL_FRACTION))].tolist())
    experts = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz0123456789"), 6)) for _ in range(EXPERT_POOL)]
    plans = []
    for i, cell in enumerate(chosen.tolist()):
        scenario, level = scenarios[cell // 4], cell % 4
        parent, uni, tasks = SCENARIO_META[scenario]
        task_id, task_name = tasks[int(rng.integers(len(tasks)))]
        ego = ODD_EGO_CAMS[(i // 7) % len(ODD_EGO_CAMS)] if _every(i, 7, 3) else "aria01"
        prefix = "gp" if uni == "upenn" else "cam"
        numbers = (1, 3, 4, 5) if _every(i, 9, 4) else (1, 2, 3, 4)
        exo = [f"{prefix}{n:02d}" for n in numbers]
        has_commentary = rng.uniform() < 0.7 or i == 0
        n_experts = int(rng.integers(1, 4)) if has_commentary else 0
        if i == 0:
            n_experts = max(2, n_experts)  # at least one take with several experts
        plans.append(TakePlan(
            index=i,
            take_uid=str(uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | int(rng.integers(0, 2**63)), version=4)),
            take_name=_take_name(scenario, uni, task_name, i, rng),
            scenario=scenario, task_id=task_id, task_name=task_name, university=uni,
            split="val" if i in val else "train", level=level,
            participant_uid=int(rng.integers(100, 900)), motion_seed=int(rng.integers(0, 2**31)),
            ego_cam=ego, exo_cams=exo,
            best_exo=None if _every(i, 10, 7) else exo[int(rng.integers(4))],
            participant_id_as_int=_every(i, 3, 1), double_takes_prefix=_every(i, 11, 6),
            has_mobile_camera=_every(i, 5, 2),
            experts=[experts[j] for j in rng.choice(EXPERT_POOL, n_experts, replace=False).tolist()],
        ))
    return plans


def _take_name(scenario: str, uni: str, task_name: str, i: int, rng: np.random.Generator) -> str:
    """Take names in each university's real style (e.g. `upenn_0711_Cooking_4_2`, `iiith_cooking_23_2`), unique by the take index."""
    n = int(rng.integers(1, 40))
    if uni == "unc":
        return f"unc_basketball_03-{16 + i % 14:02d}-23_{n:02d}_{i}"
    if uni == "upenn":  # e.g. upenn_0712_Violin_2_4; the instrument is the task's
        return f"upenn_07{10 + i % 20:02d}_{task_name.split()[-1]}_{n}_{i}"
    word = {"Rock Climbing": "bouldering", "Dance": "dance", "Cooking": "cooking", "Soccer": "soccer"}[scenario]
    return f"{uni}_{word}_{n:03d}_{i}"


# ---------------------------------------------------------------------------------------------- annotation files
def _fake_uid(plan: TakePlan, salt: str) -> str:
    """A stable UUID for the ids a take record carries besides take_uid (capture, timesync, clips...)."""
    return str(uuid.uuid5(uuid.UUID(plan.take_uid), salt))


def take_record(plan: TakePlan, num_frames: int) -> dict:
    """The take's `takes.json` entry (docs.ego-exo4d-data.org, takes.json), with aria streams, exo cams and both pseudo-cams."""
    name, ego = plan.take_name, plan.ego_cam
    videos: dict[str, dict] = {ego: {}}
    for readable, stream_id in ARIA_STREAMS:
        videos[ego][readable] = {"cam_id": ego, "stream_id": stream_id, "readable_stream_id": readable,
                                 "clip_uid": _fake_uid(plan, f"{ego}_{stream_id}"), "is_collage": False,
                                 "relative_path": f"frame_aligned_videos/{ego}_{stream_id}.mp4"}
    for cam in plan.exo_cams:
        videos[cam] = {"0": {"cam_id": cam, "stream_id": "0", "readable_stream_id": "0",
                             "clip_uid": _fake_uid(plan, cam), "is_collage": False,
                             "relative_path": f"frame_aligned_videos/{cam}.mp4"}}
    videos["collage"] = {"0": {"clip_uid": _fake_uid(plan, "collage"), "is_collage": True, "stream_id": "0",
                               "readable_stream_id": "0", "relative_path": "ego_preview.mp4"}}
    videos["best_exo"] = {"0": {"clip_uid": None, "is_collage": True, "stream_id": "0", "readable_stream_id": "0",
                                "relative_path": None}}
    capture_name = name.rsplit("_", 1)[0]
    cameras = [{"cam_id": ego, "is_ego": True, "has_walkaround": True, "includes_audio": True, "device_type": "aria",
                "relative_path": f"videos/{ego}.vrs", "video_artifact_uid": _fake_uid(plan, "a" + ego)}]
    cameras += [{"cam_id": cam, "is_ego": False, "has_walkaround": False, "includes_audio": True,
                 "device_type": "hero10", "relative_path": f"videos/{cam}.mp4",
                 "video_artifact_uid": _fake_uid(plan, "a" + cam)} for cam in plan.exo_cams]
    if plan.has_mobile_camera:  # the walk-around phone camera, with the real data's typo
        cameras.append({"cam_id": "moblie", "is_ego": False, "has_walkaround": True, "includes_audio": True,
                        "device_type": "mobile", "relative_path": "videos/moblie.mp4",
                        "video_artifact_uid": _fake_uid(plan, "m")})
    parent, uni, _ = SCENARIO_META[plan.scenario]
    start = 1000 + 37 * plan.index
    return {
        "root_dir": f"takes/{name}", "take_name": name, "participant_uid": plan.participant_uid, "is_dropped": False,
        "objects": [], "task_id": plan.task_id, "task_name": plan.task_name, "parent_task_id": parent,
        "parent_task_name": plan.scenario, "take_idx": plan.index, "duration_sec": num_frames / FPS,
        "best_exo": plan.best_exo, "task_start_sec": 0.0, "task_end_sec": num_frames / FPS,
        "task_timing_annotation_uid": _fake_uid(plan, "timing_annotation"), "is_narrated": False,
        "capture_uid": _fake_uid(plan, "capture"), "take_uid": plan.take_uid,
        "take_timing_uid": _fake_uid(plan, "timing"), "timesync_uid": _fake_uid(plan, "timesync"),
        "timesync_start_idx": start, "timesync_end_idx": start + num_frames,
        "frame_aligned_videos": videos, "vrs_all_streams_relative_path": f"{ego}.vrs",
        "vrs_relative_path": f"{ego}_noimagestreams.vrs", "trimmed_eye_gaze_relative_path": "eye_gaze",
        "trimmed_trajectory_relative_path": "trajectory", "has_trimmed_eye_gaze": True, "has_trimmed_trajectory": True,
        "has_trimmed_vrs": True, "university_id": UNIVERSITY_IDS[uni], "university_name": uni,
        "origin_id": str(plan.index),
        "capture": {"root_dir": f"captures/{capture_name}", "capture_name": capture_name,
                    "capture_uid": _fake_uid(plan, "capture"), "university_name": uni, "cameras": cameras,
                    "timesync_uid": _fake_uid(plan, "timesync"), "timesync_validated": True, "validated": True},
        "physical_setting_uid": 10 + list(SCENARIO_META).index(plan.scenario), "validated": True,
    }


def proficiency_record(plan: TakePlan) -> dict:
    """The take's `proficiency_demonstrator_{split}.json` record (docs.ego-exo4d-data.org, proficiency benchmark), full-resolution paths."""
    prefix = f"takes/takes/{plan.take_name}" if plan.double_takes_prefix else f"takes/{plan.take_name}"
    files = [f"{plan.ego_cam}_214-1.mp4"] + [f"{cam}.mp4" for cam in plan.exo_cams]
    participant = 100 + plan.participant_uid % 400
    return {
        "task_id": plan.task_id, "task_name": plan.task_name, "scenario_name": plan.scenario,
        "university_id": UNIVERSITY_IDS[plan.university],
        "origin_participant_id": participant if plan.participant_id_as_int else str(participant),
        "take_uid": plan.take_uid,
        "video_paths": {view: f"{prefix}/frame_aligned_videos/{f}" for view, f in zip(VIEW_NAMES, files)},
        "proficiency_score": PROFICIENCY_LABELS[plan.level],
    }


def _dump_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")


def demonstration_record(plan: TakePlan, events: list[TakeEvent], num_frames: int) -> dict:
    """The take's `proficiency_demonstration_{split}.json` record (docs.ego-exo4d-data.org, proficiency benchmark):
    the demonstrator record plus, from the take's first expert, `good_executions` at the clean repetitions and
    `tips_for_improvement` at the slips, each at the event's onset in seconds as planned (a fraction of a second
    after a whole one, like the real file's float `video_time`): config `demonstration_moments` reads them. One
    expert marks every event: the task's metric counts every expert's point as a reference, and several synthetic
    experts would all mark the same instants, which no single answer could match more than once."""
    motion = simulate_motion(plan.level, plan.scenario, num_frames, plan.motion_seed)
    good, tips = [], []
    for k, expert in enumerate(plan.experts[:1]):
        for j, event in enumerate(events):
            entry = {"video_time": event.time, "list": [event_remark(event, plan.scenario, motion, k + j)],
                     "expert_uid": expert, "video_name": plan.take_name}
            (good if event.kind == "clean" else tips).append(entry)
    return {**proficiency_record(plan), "good_executions": good, "tips_for_improvement": tips}


def write_annotations(root: Path, plans: list[TakePlan], num_frames: int, events: bool = False) -> None:
    """Write takes.json, metadata, splits, proficiency and commentary files (no videos); deterministic. With
    `events`, the commentary names each take's events (`synthetic_events`) and the demonstration-proficiency files
    list them too. takes.json comes last: it is what marks a tree as there."""
    tasks = {str(tid): tname for _, _, ts in SCENARIO_META.values() for tid, tname in ts}
    _dump_json(root / "metadata.json", {"version": "v2", "date": "240325", "tasks": tasks})
    participants = sorted({p.participant_uid: p for p in plans}.values(), key=lambda p: p.participant_uid)
    _dump_json(root / "participants.json", [
        {"participant_uid": p.participant_uid, "origin_participant_id": str(100 + p.participant_uid % 400),
         "university_id": UNIVERSITY_IDS[p.university], "university_name": p.university,
         "collection_date": "2023-03-30", "metadata": "{}"} for p in participants])
    ann = root / "annotations"
    _dump_json(ann / "splits.json", {
        "take_uid_to_split": {p.take_uid: p.split for p in plans},
        "split_to_take_uids": {s: [p.take_uid for p in plans if p.split == s] for s in ("train", "val", "test")},
        "take_uid_to_benchmark": {p.take_uid: ["proficiency_demonstrator", "proficiency"] for p in plans},
        "ds": SPLITS_DS,
    })
    for split in ("train", "val"):
        records = [proficiency_record(p) for p in plans if p.split == split]
        # The released files wrap the list in {"annotations": ...}; the Docs sample is a bare list: val uses it.
        wrapped = records if split == "val" else {"annotations": records}
        _dump_json(ann / f"proficiency_demonstrator_{split}.json", wrapped)
        if events:
            _dump_json(ann / f"proficiency_demonstration_{split}.json", {"annotations": [
                demonstration_record(p, plan_events(p.motion_seed, num_frames), num_frames)
                for p in plans if p.split == split]})
        commentary: dict[str, list[dict]] = {}
        for p in plans:
            if p.split != split or not p.experts:
                continue
            motion = simulate_motion(p.level, p.scenario, num_frames, p.motion_seed)
            take_events = plan_events(p.motion_seed, num_frames) if events else None
            for k, expert in enumerate(p.experts):
                entries, data = expert_commentary(p.index, p.take_name, p.scenario, p.motion_seed, motion, expert, k,
                                                  take_events)
                commentary.setdefault(p.take_uid, []).append({
                    "take_name": p.take_name, "take_uid": p.take_uid, "task_id": p.task_id, "task_name": p.task_name,
                    "commentary": f"{p.take_name}/{expert}", "_debug_commentary_name": f"{expert}_{p.take_name}_{k}",
                    "commentary_data": entries})
                if (p.index + k) % 2 == 0:  # the per-expert folder exists for about half of the experts
                    _write_expert_folder(ann / "expert_commentary" / p.take_name / expert, entries, data)
        _dump_json(ann / f"expert_commentary_{split}.json", {"ds": COMMENTARY_DS, "annotations": commentary})
    _dump_json(root / "takes.json", [take_record(p, num_frames) for p in plans])


def _write_expert_folder(folder: Path, entries: list[dict], data: dict) -> None:
    """`data.json`, `transcriptions.json` and zero-byte `recordings/<i>.webm` placeholders (the expert-commentary download's layout)."""
    _dump_json(folder / "data.json", data)
    _dump_json(folder / "transcriptions.json", {
        e["recording"]: {"text": e.get("text"), "language": None if e["error"] else "en", "error": e["error"],
                         "error_desc": e["_error_desc"]} for e in entries})
    (folder / "recordings").mkdir(parents=True, exist_ok=True)
    for e in entries:
        (folder / "recordings" / e["recording"]).touch()


# ------------------------------------------------------------------------------------------------------- videos
def exo_width(size: int) -> int:
    """Width of a 16:9 exo video whose shorter side is `size` (multiple of 4, like 796 for 448)."""
    return int(round(size * 16 / 9 / 4)) * 4


def write_take_videos(job: tuple[Path, TakePlan, int, int, bool]) -> str:
    """Render and encode the ego and four exo videos of one take into its `downscaled/448` folder (with its events
    flashed into the cameras that see them when the job says so)."""
    root, plan, size, num_frames, events = job
    folder = root / "takes" / plan.take_name / "frame_aligned_videos" / "downscaled" / "448"
    folder.mkdir(parents=True, exist_ok=True)
    motion = simulate_motion(plan.level, plan.scenario, num_frames, plan.motion_seed)
    cameras = view_cameras(size, exo_width(size), np.random.default_rng([plan.motion_seed, 99]))
    files = [f"{plan.ego_cam}_214-1.mp4"] + [f"{cam}.mp4" for cam in plan.exo_cams]
    take_events = plan_events(plan.motion_seed, num_frames) if events else []
    for k, (camera, name) in enumerate(zip(cameras, files)):
        planes = render_view(motion, camera, size, size if k == 0 else exo_width(size), ego=k == 0)
        encode_yuv420(folder / name, *flash_events(planes, take_events, k))
    return plan.take_name


# ------------------------------------------------------------------------------------------------------ driver
def generate_synthetic_egoexo4d(
    out: str | os.PathLike,
    num_takes: int,
    seed: int = 0,
    size: int = 112,
    seconds: float = 4.0,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    write_videos: bool = True,
    events: bool = False,
    released_features: tuple[str, ...] = (),
) -> Path:
    """Write a synthetic Ego-Exo4D tree with `num_takes` takes into `out` and return its path.

    `size` is the shorter video side in pixels (multiple of 4; the real downscaled videos use 448), `seconds` the
    take length; `workers` processes render videos (default: up to 2); `write_videos=False` writes only the
    metadata and annotation files (e.g. to time the builder on a real-sized annotation set). `events`: performers
    slip or make a clean repetition at random seconds, flashed in some cameras and named with their times in the
    commentary (`synthetic_events`; for config `demonstrator_moments`); off, the tree is what it always was.
    `released_features` (part names, e.g. `omnivore_video`): also that part's feature files for every take and camera,
    measured from the same motion (`synthetic_features`)."""
    if num_takes < 1:
        raise ValueError(f"num_takes must be >= 1, got {num_takes}.")
    if size < 16 or size % 4:
        raise ValueError(f"size must be a multiple of 4 and >= 16 (yuv420p needs even planes), got {size}.")
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}.")
    if events and not plan_events(0, max(1, round(seconds * FPS))):
        raise ValueError(f"events need takes of at least 1 second (an event lasts about one), got seconds={seconds}.")
    sources = [part_by_name(name) for name in released_features]  # an unknown part fails before anything is written
    root = Path(out)
    if (root / "takes.json").exists() and not overwrite:
        raise FileExistsError(f"{root / 'takes.json'} already exists; pass overwrite=True (--overwrite) to write "
                              f"over it.")
    root.mkdir(parents=True, exist_ok=True)
    num_frames = max(1, round(seconds * FPS))
    plans = plan_takes(num_takes, seed)
    for source in sources:
        for p in plans:
            motion = simulate_motion(p.level, p.scenario, num_frames, p.motion_seed)
            write_released_features(root, p.take_uid, p.ego_cam, p.exo_cams, motion, source)
    jobs = [(root, p, size, num_frames, events) for p in plans] if write_videos else []
    if jobs:
        workers = max(1, min(workers or min(2, os.cpu_count() or 1), len(jobs)))
        bar = _progress(len(jobs), "rendering takes", progress)
        if workers == 1:
            for job in jobs:
                write_take_videos(job)
                bar.update(1)
        else:
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
            with context.Pool(workers) as pool:
                for _ in pool.imap_unordered(write_take_videos, jobs):
                    bar.update(1)
        bar.close()
    # The metadata last: a generation stopped part-way (a full disk, Ctrl-C) leaves no takes.json, so it is never
    # taken for a complete tree, and running it again writes it afresh.
    write_annotations(root, plans, num_frames, events)
    # Marks the tree as synthetic wherever it goes, so evaluations and model cards never mistake it for EgoExo4D.
    marker = {"synthetic": True, "generator": "dataset_scripts/synthetic_egoexo4d.py", "takes": num_takes, "seed": seed,
              "size": size, "seconds": seconds}
    _dump_json(root / SYNTHETIC_MARKER, {**marker, "events": True} if events else marker)
    return root


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="take", disable=not enabled)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The generator's options (shared by the script and `profvlm synthetic`)."""
    parser = parser or argparse.ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.description = ("Write a synthetic Ego-Exo4D tree (takes.json, annotations, 5 views per take at 30 fps) in "
                          "the real layout, whose proficiency labels are visible in the motion. It is marked "
                          f"synthetic ({SYNTHETIC_MARKER} at its root).")
    parser.add_argument("--output_dir", required=True, help="output folder (the Ego-Exo4D root)")
    parser.add_argument("--takes", type=int, required=True, help="number of takes (train and val together)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed -> identical annotation files")
    parser.add_argument("--size", type=int, default=112, help="shorter video side in pixels (multiple of 4; real: 448)")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of every take in seconds (30 fps)")
    parser.add_argument("--workers", type=int, default=None, help="rendering processes (default: up to 2)")
    parser.add_argument("--overwrite", action="store_true", help="write into a folder that already holds a tree")
    parser.add_argument("--no_videos", action="store_true", help="write only takes.json and the annotation files")
    parser.add_argument("--events", action="store_true",
                        help="timed events: performers slip or make a clean repetition at random seconds, seen by 2-3 "
                             "cameras (a background flash) and named with their times in the commentary (for "
                             "--dataset_config demonstrator_moments) and in proficiency_demonstration_<split>.json "
                             "(clean repetitions as good_executions, slips as tips_for_improvement, at their "
                             "sub-second onsets; --dataset_config demonstration_moments)")
    parser.add_argument("--released_features", nargs="+", default=[], metavar="PART",
                        help="also write EgoExo4D's released-format feature files of these parts (omnivore_video, "
                             "maws_clip_2b) for every take and camera under features/<part>/, measured from the "
                             "synthetic motion (for `profvlm init --vision egoexo4d:<part>`)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Write the tree the parsed options describe."""
    root = generate_synthetic_egoexo4d(args.output_dir, args.takes, args.seed, args.size, args.seconds, args.workers,
                                       args.overwrite, progress=not args.quiet, write_videos=not args.no_videos,
                                       events=args.events, released_features=tuple(args.released_features))
    print(f"wrote {args.takes} synthetic takes to {root}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line: write a synthetic tree (see the module docstring for what it contains)."""
    return run(reject_renamed_flags(build_parser()).parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
