"""Helpers for the evaluation and model-card tests: a tiny multi-view folder dataset (views front/side, three labels),
its base checkpoint, a non-synthetic twin of the synthetic tree, and one evaluation run of the CLI."""
import json
import os
from pathlib import Path

from dataset_scripts.egoexo4d_proficiency import SYNTHETIC_MARKER
from tests.video_fixtures import write_pattern_video

FOLDER_LABELS = ["beginner", "intermediate", "advanced"]  # ordered low -> high, not alphabetically
FOLDER_VIEWS = ["front", "side"]
# (take_id, split, label, views, feedback): t6 has no side video, so its `side` setting is not scored
FOLDER_TAKES = [
    ("t1", "train", "beginner", FOLDER_VIEWS, "Keep the elbow in and slow down the last move of the set."),
    ("t2", "train", "advanced", FOLDER_VIEWS, "Clean and fast."),
    ("t3", "train", "intermediate", FOLDER_VIEWS, ""),
    ("t4", "validation", "beginner", FOLDER_VIEWS, "The stance is too narrow and the weight sits on the heels."),
    ("t5", "validation", "advanced", FOLDER_VIEWS, "Fluent, confident and precise from start to finish."),
    ("t6", "validation", "intermediate", ["front"], "Good rhythm, but the turn is late."),
]


def write_folder_dataset(root: Path) -> Path:
    """labels.json + metadata.jsonl + 8-frame 32-px videos in the multi-view folder layout."""
    (root / "videos").mkdir(parents=True, exist_ok=True)
    (root / "labels.json").write_text(json.dumps({"labels": FOLDER_LABELS, "views": FOLDER_VIEWS}))
    lines = []
    for i, (take_id, split, label, views, feedback) in enumerate(FOLDER_TAKES):
        row = {"take_id": take_id, "split": split, "label": label, "scenario": "drill", "feedback": feedback}
        for j, view in enumerate(views):
            path = f"videos/{take_id}_{view}.mp4"
            write_pattern_video(root / path, num_frames=8, height=32, width=32, seed=10 * i + j)
            row[f"{view}_file_name"] = path
        lines.append(json.dumps(row) + "\n")
    (root / "metadata.jsonl").write_text("".join(lines))
    return root


def folder_checkpoint(tiny_text_dir: Path, out: Path) -> Path:
    """A base checkpoint with the folder's views and labels (random-tiny tower, tiny LM)."""
    from profvlm.assemble import build_base_checkpoint

    return build_base_checkpoint("random-tiny", str(tiny_text_dir), out, num_views=len(FOLDER_VIEWS),
                                 view_names=FOLDER_VIEWS, proficiency_labels=FOLDER_LABELS)


def non_synthetic_twin(tree: Path, out: Path) -> Path:
    """The synthetic tree without its synthetic marker (links to the same files): the same data, no longer
    recognisable as synthetic, as a real EgoExo4D root would be."""
    out.mkdir(parents=True, exist_ok=True)
    for child in tree.iterdir():
        if child.name not in (SYNTHETIC_MARKER, ".complete") and not (out / child.name).exists():
            os.symlink(child, out / child.name)
    return out


def evaluate(model: Path, data_dir: Path, out: Path, *extra: str) -> dict:
    """training/evaluate_profvlm.py in-process (2 new tokens: the tiny LM's feedback is noise anyway)."""
    from training import evaluate_profvlm

    return evaluate_profvlm.main(["--model", str(model), "--data_dir", str(data_dir), "--split", "validation",
                                  "--output_dir", str(out), "--max_new_tokens", "2", "--batch_size", "4", *extra])
