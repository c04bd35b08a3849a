"""Hand-written Ego-Exo4D fixture trees (EGOEXO4D_FORMAT.md §8) for the builder tests: each take is described by a
`FixtureTake` so a test can switch one quirk on and keep everything else realistic."""
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dataset_scripts.synthetic_render import encode_yuv420

ARIA_STREAMS = {"rgb": "214-1", "slam-left": "1201-1", "slam-right": "1201-2", "et": "211-1"}


@dataclass
class FixtureTake:
    """One take of a fixture tree. `experts`: {expert_uid: commentary_data entries}; `ratings`: {expert_uid:
    data.json rating} (writes the per-expert folder); `skip_videos`: file names not written to disk; `demonstration`:
    the take's proficiency_demonstration record fields (good_executions / tips_for_improvement); both splits' files are
    written when any take has them."""

    name: str
    label: object = "Intermediate Expert"
    scenario: str = "Basketball"
    split: str = "train"
    ego_cam: str = "aria01"
    exo_cams: tuple = ("cam01", "cam02", "cam03", "cam04")
    best_exo: object = "cam01"
    best_exo_pseudo_path: object = None
    participant_id: object = "133"
    path_prefix: str = "takes"  # "takes/takes" reproduces the old prefix quirk in video_paths
    with_video_paths: bool = True  # False: the record has no video_paths, views come from takes.json
    downscaled: bool = True  # False: no downscaled/448 copies
    full_resolution: bool = False  # True: full-resolution files exist too
    skip_videos: tuple = ()
    extra_cams: dict = field(default_factory=dict)  # more frame_aligned_videos keys, e.g. a "moblie" camera
    experts: dict = field(default_factory=dict)
    ratings: dict = field(default_factory=dict)
    duration_sec: float = 0.1
    demonstration: dict = field(default_factory=dict)

    @property
    def uid(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, self.name))

    @property
    def files(self) -> list[str]:
        """Video file names in view order (ego, exo1..)."""
        return [f"{self.ego_cam}_214-1.mp4"] + [f"{c}.mp4" for c in self.exo_cams]


def take_json(t: FixtureTake) -> dict:
    """A takes.json entry with the §2 fields a loader may touch."""
    videos = {t.ego_cam: {k: {"cam_id": t.ego_cam, "stream_id": s, "readable_stream_id": k, "clip_uid": f"{t.name}-{s}",
                              "is_collage": False, "relative_path": f"frame_aligned_videos/{t.ego_cam}_{s}.mp4"}
                          for k, s in ARIA_STREAMS.items()}}
    for cam in t.exo_cams:
        videos[cam] = {"0": {"cam_id": cam, "stream_id": "0", "readable_stream_id": "0", "clip_uid": f"{t.name}-{cam}",
                             "is_collage": False, "relative_path": f"frame_aligned_videos/{cam}.mp4"}}
    videos.update(t.extra_cams)
    videos["collage"] = {"0": {"clip_uid": "c", "is_collage": True, "stream_id": "0", "readable_stream_id": "0",
                               "relative_path": "ego_preview.mp4"}}
    videos["best_exo"] = {"0": {"clip_uid": None, "is_collage": True, "stream_id": "0", "readable_stream_id": "0",
                                "relative_path": t.best_exo_pseudo_path}}
    cameras = [{"cam_id": t.ego_cam, "is_ego": True, "device_type": "aria"}]
    cameras += [{"cam_id": c, "is_ego": False, "device_type": "hero10"} for c in t.exo_cams]
    return {"take_uid": t.uid, "take_name": t.name, "root_dir": f"takes/{t.name}", "task_id": 6002,
            "task_name": "Basketball Drills - Reverse Layup", "parent_task_id": 6000, "parent_task_name": t.scenario,
            "duration_sec": t.duration_sec, "best_exo": t.best_exo, "university_id": "ego4d-unc", "university_name": "unc",
            "frame_aligned_videos": videos, "capture": {"capture_name": t.name, "cameras": cameras}}


def record_json(t: FixtureTake) -> dict:
    """A proficiency_demonstrator record (§3.2)."""
    rec = {"task_id": 6002, "task_name": "Basketball Drills - Reverse Layup", "scenario_name": t.scenario,
           "university_id": "ego4d-unc", "origin_participant_id": t.participant_id, "take_uid": t.uid,
           "proficiency_score": t.label}
    if t.with_video_paths:
        views = ["ego", "exo1", "exo2", "exo3", "exo4"]
        rec["video_paths"] = {v: f"{t.path_prefix}/{t.name}/frame_aligned_videos/{f}" for v, f in zip(views, t.files)}
    return rec


def write_tiny_video(path: Path, frames: int = 3, size: int = 16) -> None:
    """A real (tiny) H.264 file at 30 fps."""
    path.parent.mkdir(parents=True, exist_ok=True)
    y = np.full((frames, size, size), 100, np.uint8)
    uv = np.full((frames, size // 2, size // 2), 128, np.uint8)
    encode_yuv420(path, y, uv, uv)


def write_tree(root: Path, takes: list[FixtureTake], bare_list_splits: tuple = (), takes_dir: str = "takes",
               skip_files: tuple = ()) -> Path:
    """Write takes.json, annotations and videos for `takes`. `bare_list_splits`: proficiency files written as a
    bare list; `takes_dir`: "takes/takes" reproduces the old downloader's on-disk layout; `skip_files`: annotation
    files (relative to root) not written."""
    root = Path(root)
    files = {"takes.json": [take_json(t) for t in takes]}
    for split in ("train", "val"):
        recs = [record_json(t) for t in takes if t.split == split]
        wrapped = recs if split in bare_list_splits else {"annotations": recs}
        files[f"annotations/proficiency_demonstrator_{split}.json"] = wrapped
        files[f"annotations/expert_commentary_{split}.json"] = {"ds": "20240324_14:05:11", "annotations": {
            t.uid: [{"take_name": t.name, "take_uid": t.uid, "commentary": f"{t.name}/{e}",
                     "_debug_commentary_name": f"{e}_{t.name}_0", "commentary_data": entries}
                    for e, entries in t.experts.items()]
            for t in takes if t.split == split and t.experts}}
        if any(t.demonstration for t in takes):  # both splits, as the release ships them
            files[f"annotations/proficiency_demonstration_{split}.json"] = {"annotations": [
                {**record_json(t), **t.demonstration} for t in takes if t.split == split]}
    for t in takes:
        for expert, rating in t.ratings.items():
            files[f"annotations/expert_commentary/{t.name}/{expert}/data.json"] = {
                "user_id": expert, "video_name": t.name, "annotations": [],
                "proficiency": {"rating": rating, "why": "ok"}}
    for rel, obj in files.items():
        if rel in skip_files:
            continue
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(json.dumps(obj))
    for t in takes:
        full = root / takes_dir / t.name / "frame_aligned_videos"
        folders = ([full / "downscaled" / "448"] if t.downscaled else []) + ([full] if t.full_resolution else [])
        for folder in folders:
            for name in t.files:
                if name not in t.skip_videos:
                    write_tiny_video(folder / name)
    return root


def entry(text, video_time: float, recording: int = 0, error: bool = False) -> dict:
    """A first-form commentary entry (§4.2); `text=None` leaves the key out, as the exporter does for errors."""
    e = {"recording": f"{recording}.webm", "video_time": video_time}
    if text is not None:
        e["text"] = text
    e.update({"error": error, "_error_desc": "Traceback ..." if error else None, "duration_approx": 3.0})
    return e


def demonstration_entry(video_time: float, remarks: list, expert_uid: str = "6jm95g", video_name: str = "") -> dict:
    """A good_executions / tips_for_improvement entry of the demonstration-proficiency file (§3.6)."""
    return {"video_time": video_time, "list": remarks, "expert_uid": expert_uid, "video_name": video_name}
