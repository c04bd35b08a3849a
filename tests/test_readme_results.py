"""README.md's results tables are generated from benchmarks/results/*.json (`make results`,
benchmarks/readme_tables.py): the page and the JSON agree, a number changed on either side is reported with the table
and the file named, and the benchmarks' own report shapes render as they are written."""
import json
import shutil
from pathlib import Path

import pytest

from benchmarks import bench_learnability, bench_sft_step, readme_tables

REPO_ROOT = Path(__file__).resolve().parent.parent
README = REPO_ROOT / "README.md"
RESULTS = REPO_ROOT / "benchmarks" / "results"


def block_body(text: str, name: str) -> str:
    """The generated lines of table `name` in `text`."""
    return next(match["body"] for match in readme_tables.BLOCK.finditer(text) if match["name"] == name)


def test_readme_tables_match_their_json():
    assert readme_tables.check(README.read_text()) == []


def test_every_table_has_its_json_and_every_record_its_provenance():
    for name, (file, render) in readme_tables.TABLES.items():
        data = json.loads((RESULTS / file).read_text())
        if render is readme_tables.render_record:
            assert not file.startswith("bench_"), f"{name}: a record named like a benchmark report would be overwritten"
            assert data.get("provenance"), f"{file} says nowhere where its numbers come from"


def test_a_number_changed_in_the_json_is_reported_with_table_and_file(tmp_path, capsys):
    results = tmp_path / "results"
    shutil.copytree(RESULTS, results)
    path = results / "bench_learnability.json"
    report = json.loads(path.read_text())
    report["runs"][1]["measured"]["accuracy"] += 0.05  # one number
    path.write_text(json.dumps(report, indent=2))

    problems = readme_tables.check(README.read_text(), results)
    assert len(problems) == 1
    assert "results:learnability" in problems[0] and "benchmarks/results/bench_learnability.json" in problems[0]
    assert readme_tables.main(["--check", "--results_dir", str(results)]) == 1
    assert "results:learnability differs from benchmarks/results/bench_learnability.json" in capsys.readouterr().err


def test_a_number_changed_in_the_readme_is_reported_and_make_results_restores_it(tmp_path):
    original = README.read_text()
    body = block_body(original, "make_commands")
    assert "10 min 38 s" in body
    changed = original.replace(body, body.replace("10 min 38 s", "10 min 39 s"))
    readme = tmp_path / "README.md"
    readme.write_text(changed)

    problems = readme_tables.check(changed)
    assert problems == ["README.md table results:make_commands differs from benchmarks/results/make_commands.json "
                        "(edit the JSON, then run `make results`)"]
    assert readme_tables.main(["--readme", str(readme)]) == 0
    assert readme.read_text() == original


def test_a_broken_marker_is_an_error_naming_it():
    text = README.read_text().replace("<!-- /results:sft_step -->", "")
    with pytest.raises(ValueError, match="results:sft_step"):
        readme_tables.check(text)


def test_learnability_renders_the_shape_bench_learnability_writes():
    runs = [{"seed": seed, "measured": {"accuracy": accuracy, "rouge_l": 0.3, "training_seconds": seconds,
                                        "training_steps": 58, "time_grounding_f1": f1,
                                        "time_grounding_tolerance_s": 1.0},
             "passed": {}, "all_passed": False, "metrics": {"num_samples": 44}, "timings_s": {}, "cpu_seconds": {}}
            for seed, accuracy, f1, seconds in ((0, 42 / 44, 0.71, 171.26), (3, 37 / 44, 0.69, 169.8))]
    targets = bench_learnability.MOMENTS_TARGETS
    report = {"benchmark": "learnability", "settings": {"moments": True, "takes": 200, "seeds": [0, 3],
                                                        "recipe": "training/configs/cpu_demo.yaml"},
              "targets": targets, "summary": bench_learnability.summarize(runs, targets), "all_passed": False,
              "runs": runs, "machine": {"cpu_kind": {"cpu": "Some CPU", "cores": 2, "native_bf16": False},
                                        "torch_threads": 2, "load_average_1m": 0.5}}
    lines = readme_tables.render_learnability(json.loads(json.dumps(report)))  # as read back from the file
    assert "| 0 | 95.5% (42 of 44) | 0.710 | 171 s (58 steps) |" in lines
    assert "| 3 | 84.1% (37 of 44) | 0.690 | 170 s (58 steps) |" in lines
    assert lines[-1] == ("Over the 2 seeds: accuracy mean 89.8%, worst 84.1% (seed 3); "
                         "moments F1 mean 0.700, worst 0.690 (seed 3).")
    assert "Some CPU, 2 cores, no native bf16 (float32), 2 torch threads" in lines[0]


def test_long_take_learnability_shows_each_video_setting_and_the_two_second_scores():
    def run(seed, clip_seconds, tokens, f1_2s, blind_2s):
        return {"seed": seed, "clip_seconds": clip_seconds, "settings": {"temporal_tokens": tokens},
                "measured": {"accuracy": 0.95, "training_seconds": 600.0, "training_steps": 112,
                             "time_grounding_f1": 0.99, "time_grounding_tolerance_s": 15.0,  # a 15-s token's score
                             "time_grounding_f1_within_2s": f1_2s, "time_grounding_f1_every_token": 0.9,
                             "time_grounding_f1_every_token_within_2s": blind_2s},
                "passed": {}, "all_passed": False, "metrics": {"num_samples": 40}}
    runs = [run(0, 4.0, 2, 0.8, 0.5), run(0, 0.0, 4, 0.2, 0.1), run(1, 4.0, 2, 0.7, 0.4)]
    targets = bench_learnability.LONG_TAKE_TARGETS
    report = {"benchmark": "learnability", "settings": {"moments": True, "takes": 200}, "targets": targets,
              "summary": bench_learnability.summarize([runs[0], runs[2]], targets), "runs": runs,
              "machine": {"cpu_kind": {"cpu": "Some CPU", "cores": 2, "native_bf16": True}}}
    lines = readme_tables.render_learnability(json.loads(json.dumps(report)))
    assert "moments F1 within 2 s >= 0.7" in lines[0]
    assert "| 0 | 4 s clips, 2 tokens each | 95.0% (38 of 40) | 0.800 | 0.500 | 600 s (112 steps) |" in lines
    assert "| 0 | one clip, 4 tokens | 95.0% (38 of 40) | 0.200 | 0.100 | 600 s (112 steps) |" in lines
    assert lines[-1].startswith("Over the 2 seeds (the first video setting, 4 s clips): accuracy mean 95.0%")
    assert "moments F1 within 2 s mean 0.750, worst 0.700 (seed 1)" in lines[-1]


def test_sft_step_renders_every_case_bench_sft_step_writes():
    assert set(bench_sft_step.CASES) == set(readme_tables.SFT_STEP_CASES)
    report = {"cpu_kind": {"cpu": "Some CPU", "cores": 2, "native_bf16": False},
              "recipe": "training/configs/cpu_demo.yaml", "avx2_emulation": bench_sft_step.AVX2_EMULATION}
    for case in bench_sft_step.CASES:
        report[case] = ({"skipped": "this CPU has no native bf16"} if "bf16" in case else
                        {"step_s_median": 6.0, "step_s": [6.0] * 4, "losses": [1.0] * 4})
    report["avx2_float32"]["step_s_median"] = 9.0
    report["load_average_after"] = [1.5, 1.0, 1.0]
    lines = readme_tables.render_sft_step(report)
    assert "seconds per step (median of 4)" in lines[2]
    assert any(line.startswith("| `avx2_float32` |") and "| 9.00 | 1.50x `float32` |" in line for line in lines)
    assert any(line.startswith("| `bf16_autocast` |") and "skipped: this CPU has no native bf16" in line
               for line in lines)


def test_learnability_shows_the_blind_base_rate_where_the_report_has_it():
    run = {"seed": 0, "measured": {"accuracy": 0.5, "training_seconds": 10.0, "training_steps": 2,
                                   "time_grounding_f1": 0.6, "time_grounding_tolerance_s": 1.0,
                                   "time_grounding_f1_every_token": 0.662},
           "metrics": {"num_samples": 2}}
    report = {"settings": {"moments": True}, "targets": {}, "runs": [run], "machine": {}}
    lines = readme_tables.render_learnability(report)
    assert "| seed | held-out accuracy | moments F1 within 1 s | F1 naming every token's time, blind | training |" \
        in lines
    assert "| 0 | 50.0% (1 of 2) | 0.600 | 0.662 | 10 s (2 steps) |" in lines
    del run["measured"]["time_grounding_f1_every_token"]
    assert not any("blind" in line for line in readme_tables.render_learnability(report))


def test_long_takes_renders_the_shape_bench_long_takes_writes():
    from benchmarks import bench_long_takes

    run = {"clips": 64, "decode_s": 3.15, "tower_s": 0.1, "tower_s_per_view_clip": 0.0003, "extraction_s": 3.25,
           "pipeline_s": 3.69, "proficiency": "Novice", "peak_rss_gb": 2.702, "tower": "tiny", "seconds": 256.0,
           "video_written_s": 0.0, "extraction_s_per_minute": 0.762}
    part = {"benchmark": "long_takes", "date": "2026-12-07", "settings": {"clip_seconds": 4.0, "max_clips": 64,
                                                                            "fps": 10, "gop_seconds": 8.0},
            "cpu_kind": {"cpu": "Some CPU", "cores": 2, "native_bf16": True}, "full_clips_seconds": 256.0,
            "targets": bench_long_takes.TARGETS, "runs": [run],
            "summary": {"tiny": {"peak_rss_gb": 2.839, "per_minute_spread_up_to_full_clips": 1.076,
                                 "longest_vs_full_clips_time": 2.856, "longest_vs_full_clips_extraction": 3.05}}}
    lines = readme_tables.render_long_takes({"reports": [part, part]})
    assert lines.count("| random-tiny | 256 s | 64 | 3.15 | 0.10 | 0.0003 | 0.76 | 3.69 | 2.70 |") == 2
    assert ("random-tiny: extraction per minute up to 256 s within 1.076x (target <= 1.1x); the longest take's "
            "pipeline() against the 256 s take's 2.856x (target <= 1.2x); peak RSS 2.839 GB (target <= 3.0 GB).") in lines
    assert "a keyframe every 8 s" in lines[0] and "Some CPU, 2 cores, native bf16, 2026-12-07" in lines[0]
    assert "snap" not in lines[0]
    part["settings"]["snap_to_keyframes"] = True
    assert "frames snapped to the keyframes of their clip's window" in readme_tables.render_long_takes(part)[0]
    batch = {**part, "settings": {**part["settings"], "entry": "batch_predict", "snap_to_keyframes": False},
             "summary": {"base": {"peak_rss_gb": 2.1}},
             "runs": [{"entry": "batch_predict", "predicted": 1, "batch_predict_s": 412.345, "proficiency": "Novice",
                       "clips": 64, "peak_rss_gb": 2.104, "workers_peak_rss_gb": 0.0, "tower": "base",
                       "seconds": 1800.0, "video_written_s": 0.0}]}
    lines = readme_tables.render_long_takes(batch)
    assert "| random-base | 1800 s | 412.35 | 2.10 | 0.00 |" in lines and "through `profvlm predict --data_dir`" in lines[0]


def test_released_features_renders_one_row_per_way_in():
    report = {"date": "2026-12-07", "cpu_kind": {"cpu": "Some CPU", "cores": 2, "native_bf16": False},
              "settings": {"takes": 24, "seconds": 8.0, "size": 224, "towers": ["tiny"]},
              "runs": {"video, random-tiny TimeSformer": {"loop_takes_per_second": 36.36, "wall_takes_per_second": 20.077,
                                                          "wall_s": 1.2},
                       "released omnivore_video files": {"loop_takes_per_second": 300.0,
                                                         "wall_takes_per_second": 71.738, "wall_s": 0.33}}}
    lines = readme_tables.render_released_features(report)
    assert "| video, random-tiny TimeSformer | 36.36 | 20.077 | 1.20 |" in lines
    assert "| released omnivore_video files | 300 | 71.738 | 0.33 |" in lines
    assert "the same 24 synthetic takes (8 s," in lines[0] and "no native bf16 (float32)" in lines[0]


def test_tower_chunk_renders_every_run():
    run = {"chunk": 4, "clips": 15, "views": 5, "encode_s": 91.78, "peak_gb_loaded": 1.845, "peak_gb_decoded": 3.207,
           "peak_gb_encoded": 3.207}
    report = {"date": "2026-12-07", "cpu_kind": {"cpu": "Some CPU", "cores": 2, "native_bf16": True},
              "tower": "timesformer", "tower_hidden_size": 768, "runs": [{**run, "chunk": 16}, run]}
    lines = readme_tables.render_tower_chunk(report)
    assert "| 4 | 91.8 | 1.84 | 3.21 | 3.21 |" in lines and "| 16 | 91.8 | 1.84 | 3.21 | 3.21 |" in lines
    assert lines[0].startswith("`bench_tower_chunk.py`: a 15-clip, 5-view take through the random timesformer")


def test_clip_reads_renders_every_run():
    run = {"clips_per_read": 2, "take": "take_256s", "clips": 64, "views": 5, "decode_s": 4.42, "peak_gb_before": 0.44,
           "peak_gb": 2.562, "batch_gb": 1.436}
    report = {"date": "2026-12-07", "cpu_kind": {"cpu": "Some CPU", "cores": 2, "native_bf16": True}, "runs": [run]}
    lines = readme_tables.render_clip_reads(report)
    assert "| take_256s | 64 | 2 | 4.42 | 1.44 | 2.56 |" in lines
    assert "Some CPU, 2 cores, native bf16, 2026-12-07" in lines[0]
