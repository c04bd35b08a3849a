"""`profvlm predict --data_dir`: many takes, unreadable views reported, resumable after a kill, equal to the pipeline
take by take, sharded over ranks into one output, and the Ego-Exo4D challenge submission."""
import json
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from modeling_profvlm.profvlm_facts import VIEW_NAMES
from profvlm.batch_predict import BatchOptions, run_batch_predict
from profvlm.challenge_submission import CHALLENGE_LABELS, challenge_accuracies
from tests.serving_helpers import check_result, timed, write_take
from tests.training_helpers import REPO_ROOT, script_env, script_python

TINY_TOKENS = 4


def lines_of(path: Path) -> list[dict]:
    text = path.read_text()
    assert text == "" or text.endswith("\n"), "the file ends in a partial line"
    return [json.loads(line) for line in text.splitlines()]


def plain_folder(root: Path, takes: int, corrupt: str | None = None, missing: str | None = None) -> Path:
    """`takes` take subfolders of 5 tiny views; `corrupt` gets a garbage exo2 file, `missing` no exo3 file."""
    for i in range(takes):
        name = f"t{i:03d}"
        write_take(root / name, seed=i, num_frames=8)
        if name == corrupt:
            (root / name / "exo2.mp4").write_bytes(b"\x00\x01 not a video " * 64)
        if name == missing:
            (root / name / "exo3.mp4").unlink()
    return root


@pytest.fixture(scope="module")
def takes_dir(tmp_path_factory) -> Path:
    return plain_folder(tmp_path_factory.mktemp("takes"), 4, corrupt="t002", missing="t003")


@pytest.fixture(scope="module")
def one_process_run(tiny_checkpoint, takes_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    summary = run_batch_predict(str(tiny_checkpoint), str(takes_dir), str(out), device="cpu", dtype="float32",
                                options=BatchOptions(batch_size=3, num_workers=1, max_new_tokens=TINY_TOKENS,
                                                     progress=False))
    return out, summary


def test_plain_folder_predicts_every_readable_take_reports_the_corrupt_view_and_masks_the_missing_one(
        one_process_run, takes_dir):
    out, summary = one_process_run
    lines = {line["take_uid"]: line for line in lines_of(out / "predictions.jsonl")}
    assert sorted(lines) == ["t000", "t001", "t003"]
    errors = lines_of(out / "errors.jsonl")
    corrupt = str(takes_dir / "t002" / "exo2.mp4")
    assert [(e["take"], e["view"], e["file"]) for e in errors] == [("t002", "exo2", corrupt)]
    assert errors[0]["reason"] and "\n" not in errors[0]["reason"]
    masked = lines["t003"]
    assert masked["missing_views"] == ["exo3"] and set(masked["view_weights"]) == set(VIEW_NAMES) - {"exo3"}
    for line in lines.values():
        assert set(line["probabilities"]) == set(CHALLENGE_LABELS) and isinstance(line["feedback"], str)
        assert abs(sum(line["probabilities"].values()) - 1) < 1e-5
    csv_rows = (out / "predictions.csv").read_text().splitlines()
    assert csv_rows[0].split(",")[:3] == ["take_uid", "take_name", "proficiency"] and len(csv_rows) == 4
    assert (summary.predicted, summary.errors, summary.resumed) == (3, 1, 0)


def test_batched_labels_and_probabilities_equal_the_pipeline_take_by_take(one_process_run, tiny_checkpoint, takes_dir):
    from modeling_profvlm.pipeline_profvlm import load_proficiency_pipeline
    from profvlm.batch_takes import plain_jobs

    out, _ = one_process_run
    lines = {line["take_uid"]: line for line in lines_of(out / "predictions.jsonl")}
    pipe = load_proficiency_pipeline(str(tiny_checkpoint), "cpu", "float32")
    jobs, _ = plain_jobs(takes_dir, list(VIEW_NAMES))
    readable = [job for job in jobs if job.take_uid != "t002"]  # t002's exo2 is corrupt
    for job in readable:  # the batch of three held a take with a masked view beside two complete ones
        expected = pipe(job.views, return_feedback=False)
        line = lines[job.take_uid]
        assert line["proficiency"] == expected["proficiency"]
        for label, p in expected["probabilities"].items():
            assert abs(line["probabilities"][label] - p) < 1e-4, (job.take_uid, label)
        for view, w in expected["view_weights"].items():
            assert abs(line["view_weights"][view] - w) < 1e-4


def test_a_folder_dataset_needs_no_labels_and_keeps_the_ones_it_has(tiny_checkpoint, tmp_path):
    from tests.video_fixtures import write_pattern_video

    root = tmp_path / "my_dataset"
    (root / "videos").mkdir(parents=True)
    for i, name in enumerate(("a_ego", "a_exo1", "b_ego", "c_ego")):
        write_pattern_video(root / "videos" / f"{name}.mp4", num_frames=8, height=32, width=32, seed=i)
    rows = [{"take_id": "a", "split": "test", "label": "Novice", "ego_file_name": "videos/a_ego.mp4",
             "exo1_file_name": "videos/a_exo1.mp4"},
            {"take_id": "b", "split": "test", "ego_file_name": "videos/b_ego.mp4",
             "exo1_file_name": "videos/b_exo1_never_recorded.mp4"},
            {"take_id": "c", "split": "train", "label": "Late Expert", "ego_file_name": "videos/c_ego.mp4"}]
    (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    run_batch_predict(str(tiny_checkpoint), str(root), str(out), split="test", device="cpu", dtype="float32",
                      options=BatchOptions(feedback=False, num_workers=0, progress=False))
    lines = lines_of(out / "predictions.jsonl")
    assert [line["take_uid"] for line in lines] == ["a", "b"]  # the test split only, in metadata order
    assert lines[0]["reference"] == "Novice" and "reference" not in lines[1]
    assert lines[1]["missing_views"] == ["exo1", "exo2", "exo3", "exo4"] and list(lines[1]["view_weights"]) == ["ego"]
    assert "feedback" not in lines[0]
    assert (out / "predictions.csv").read_text().splitlines()[0].endswith(",reference")


def test_killed_mid_run_then_rerun_predicts_every_take_exactly_once(tiny_checkpoint, tmp_path):
    data = plain_folder(tmp_path / "takes", 6)
    out = tmp_path / "out"
    env = script_env()
    # `profvlm predict` in its own process, SIGKILLed right after its second line (tests/training_helpers.py)
    cmd = [script_python(env), "-m", "tests.training_helpers", "kill-after-lines", "2", "predict", "--model",
           str(tiny_checkpoint), "--data_dir", str(data), "--output_dir", str(out), "--no_feedback", "--batch_size",
           "1", "--num_workers", "1", "--dtype", "float32"]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    predictions = out / "predictions.jsonl"
    before = lines_of(predictions)
    assert len(before) == 2
    with open(predictions, "ab") as f:  # what a write torn by a crash would leave: half a line
        f.write(b'{"take_uid": "t0')

    summary = run_batch_predict(str(tiny_checkpoint), str(data), str(out), device="cpu", dtype="float32",
                                options=BatchOptions(feedback=False, num_workers=0, progress=False))
    after = lines_of(predictions)
    assert sorted(line["take_uid"] for line in after) == [f"t{i:03d}" for i in range(6)]  # each exactly once
    assert (summary.resumed, summary.predicted) == (2, 4)
    assert after[:2] == before  # kept as written


def test_two_cpu_ranks_write_the_same_takes_as_one(one_process_run, tiny_checkpoint, takes_dir, tmp_path):
    out = tmp_path / "out"
    env = script_env(ACCELERATE_USE_CPU="1")
    cmd = [script_python(env), "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",  # a free port
           "-m", "profvlm.cli", "predict", "--model", str(tiny_checkpoint), "--data_dir", str(takes_dir),
           "--output_dir", str(out), "--max_new_tokens", str(TINY_TOKENS), "--batch_size", "3", "--dtype", "float32"]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "3 takes predicted" in proc.stdout and proc.stdout.count("takes predicted") == 1  # one summary
    one = {line["take_uid"]: line for line in lines_of(one_process_run[0] / "predictions.jsonl")}
    two = lines_of(out / "predictions.jsonl")
    assert [line["take_uid"] for line in two] == list(one)  # one merged file, in the takes' order
    for line in two:
        assert line["proficiency"] == one[line["take_uid"]]["proficiency"]
        for label, p in line["probabilities"].items():
            assert abs(p - one[line["take_uid"]]["probabilities"][label]) < 1e-4
    assert lines_of(out / "errors.jsonl") == lines_of(one_process_run[0] / "errors.jsonl")
    assert sorted(p.name for p in out.iterdir()) == ["errors.jsonl", "predictions.csv", "predictions.jsonl"]


# --------------------------------------------------------------------------------------------- the challenge file
@pytest.fixture(scope="module")
def egoexo_tree(tmp_path_factory) -> Path:
    from dataset_scripts.synthetic_egoexo4d import generate_synthetic_egoexo4d

    return generate_synthetic_egoexo4d(tmp_path_factory.mktemp("egoexo") / "tree", 16, seed=3, size=32, seconds=1.0,
                                       progress=False)


@torch.no_grad()
def direct_view_probabilities(tiny_checkpoint, rows) -> dict[str, dict[str, torch.Tensor]]:
    """{take name: {view: label probabilities (checkpoint order) with that view alone}}, take by take, unbatched."""
    from modeling_profvlm.label_scoring import score_labels
    from modeling_profvlm.pipeline_profvlm import load_proficiency_pipeline
    from training.evaluation_predictions import view_setting_mask
    from training.sft_data import row_videos

    pipe = load_proficiency_pipeline(str(tiny_checkpoint), "cpu", "float32")
    model, processor = pipe.model, pipe.processor
    out = {}
    for row in rows:
        batch = processor(text=[processor.build_prompt()], videos=[row_videos(row)], return_tensors="pt")
        features = model.model.encode_views(batch["pixel_values_videos"], batch["view_mask"])
        out[row["take_name"]] = {
            view: score_labels(model, processor, {"input_ids": batch["input_ids"], "video_features": features,
                                                  "view_mask": view_setting_mask(batch["view_mask"], VIEW_NAMES, view)}
                               ).probabilities[0]
            for view in VIEW_NAMES}
    return out


def test_challenge_file_has_the_benchmark_structure_and_order_and_its_accuracies_match_direct_ones(
        tiny_checkpoint, egoexo_tree, tmp_path):
    from dataset_scripts.proficiency_data import load_proficiency_split

    rows = load_proficiency_split(egoexo_tree, "demonstrator", "validation")
    names = rows.features["proficiency"].names
    assert all(len(r["view_names"]) == 5 for r in rows)  # every view on disk: no fallback in the direct settings
    submission_path = tmp_path / "val_submission.json"
    run_batch_predict(str(tiny_checkpoint), str(egoexo_tree), str(tmp_path / "out"), split="validation",
                      challenge_json=str(submission_path), device="cpu", dtype="float32",
                      options=BatchOptions(feedback=False, num_workers=0, progress=False))
    submission = json.loads(submission_path.read_text())
    assert list(submission) == ["videos", "ego_model_predictions", "exo_model_predictions"]
    assert submission["videos"] == [r["take_name"] for r in rows]
    assert all(len(ego) == 4 for ego in submission["ego_model_predictions"])
    assert all(len(exo) == 4 and all(len(e) == 4 for e in exo) for exo in submission["exo_model_predictions"])

    direct = direct_view_probabilities(tiny_checkpoint, rows)
    order = [names.index(label) for label in CHALLENGE_LABELS]  # the benchmark's index order of the levels
    for i, name in enumerate(submission["videos"]):
        entries = [submission["ego_model_predictions"][i], *submission["exo_model_predictions"][i]]
        for view, logits in zip(VIEW_NAMES, entries):
            assert torch.allclose(torch.tensor(logits).softmax(-1), direct[name][view][order].float(), atol=1e-4)

    references = {r["take_name"]: names[r["proficiency"]] for r in rows}
    truth = {name: names.index(label) for name, label in references.items()}

    def accuracy(views: tuple[str, ...]) -> float:
        hits = [torch.stack([direct[n][v] for v in views]).mean(0).argmax().item() == truth[n] for n in truth]
        return sum(hits) / len(hits)

    recomputed = challenge_accuracies(submission, references)
    assert recomputed == pytest.approx({"ego": accuracy(("ego",)), "exo": accuracy(VIEW_NAMES[1:]),
                                        "ego_exo": accuracy(VIEW_NAMES)})


def test_challenge_follows_the_takes_file_and_fills_a_missing_view_from_the_take_s_other_views(
        tiny_checkpoint, egoexo_tree, tmp_path):
    takes = json.loads((egoexo_tree / "takes.json").read_text())
    tree = tmp_path / "tree"
    shutil.copytree(egoexo_tree, tree)
    lacking = takes[0]
    videos = lacking["frame_aligned_videos"]
    exo_cam = sorted(c for c in videos if not c.startswith("aria") and c not in ("collage", "best_exo"))[2]  # exo3
    (tree / lacking["root_dir"] / "frame_aligned_videos" / "downscaled" / "448" / f"{exo_cam}.mp4").unlink()
    listed = [t["take_name"] for t in takes[:5]][::-1]
    (tmp_path / "test_takes.json").write_text(json.dumps(listed))
    submission_path = tmp_path / "submission.json"
    env = script_env()
    proc = subprocess.run([script_python(env), "-m", "profvlm.cli", "predict", "--model", str(tiny_checkpoint),
                           "--data_dir", str(tree), "--takes_file", str(tmp_path / "test_takes.json"), "--output_dir",
                           str(tmp_path / "out"), "--challenge_json", str(submission_path), "--no_feedback",
                           "--num_workers", "0", "--dtype", "float32"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "1 lack a view" in proc.stdout
    submission = json.loads(submission_path.read_text())
    assert submission["videos"] == listed
    line = next(l for l in lines_of(tmp_path / "out" / "predictions.jsonl") if l["take_name"] == lacking["take_name"])
    assert line["missing_views"] == ["exo3"] and line["challenge"]["fallback"] == ["exo3"]
    exo = torch.tensor(line["challenge"]["exo"])  # log-probabilities: they tell apart what saturated softmaxes hide
    assert all(not torch.allclose(exo[2], exo[k], atol=1e-4) for k in (0, 1, 3))  # exo1, exo2, exo4 together


def test_bad_input_ends_in_one_line(tiny_checkpoint, egoexo_tree, tmp_path):
    env = script_env()
    base = [script_python(env), "-m", "profvlm.cli", "predict", "--model", str(tiny_checkpoint)]
    cases = [
        (["--data_dir", str(egoexo_tree), "--output_dir", str(tmp_path / "o")], "--split"),
        (["--data_dir", str(tmp_path / "nowhere"), "--output_dir", str(tmp_path / "o")], "not a folder"),
        (["--data_dir", str(egoexo_tree)], "--output_dir"),
    ]
    (tmp_path / "names.json").write_text(json.dumps(["no_such_take"]))
    cases.append((["--data_dir", str(egoexo_tree), "--takes_file", str(tmp_path / "names.json"), "--output_dir",
                   str(tmp_path / "o")], "no_such_take"))
    for args, expected in cases:
        proc = subprocess.run(base + args, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0 and expected in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_a_moments_checkpoint_writes_each_takes_moments_timeline_and_cameras(tiny_moments_checkpoint, tmp_path):
    """Batch lines are the pipeline's answer: moments within the take, each with its camera, and the timeline."""
    from tests.moments_checkpoint import EXPECTED_MOMENTS, MOMENTS_FEEDBACK

    root = tmp_path / "takes"
    for i in range(2):
        write_take(root / f"t{i}", seed=i, num_frames=75)  # 2.5 s: 0:00 and 0:02 lie inside, 9:59 does not
    out = tmp_path / "out"
    run_batch_predict(str(tiny_moments_checkpoint), str(root), str(out), device="cpu", dtype="float32",
                      options=BatchOptions(batch_size=2, num_workers=0, max_new_tokens=48, progress=False))
    lines = lines_of(out / "predictions.jsonl")
    assert [line["feedback"] for line in lines] == [MOMENTS_FEEDBACK] * 2
    assert [timed(line["moments"]) for line in lines] == [EXPECTED_MOMENTS] * 2  # the late 9:59 remark dropped
    for line in lines:
        answer = {k: v for k, v in line.items() if k not in ("take_uid", "take_name", "missing_views")}
        check_result(answer, VIEW_NAMES, temporal_tokens=2, duration=2.5)  # timeline steps, each moment's camera
        assert len(line["timeline"]) == 2 and all(m["camera"] in VIEW_NAMES for m in line["moments"])
