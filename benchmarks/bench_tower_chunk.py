"""How many clips the frozen tower takes at once (`modeling_profvlm.modeling_profvlm.TOWER_CLIPS_PER_CHUNK`) against
peak memory and time, on a take with clips over it. Each run is a fresh process that loads the pipeline, decodes the
take's clips and runs `encode_views` with one chunk size; sizes alternate over --rounds so the machine's drift
falls on both. Reported per run: the peak RSS after loading, after decoding and after encoding, and the encode time.

    python benchmarks/bench_tower_chunk.py --checkpoint CKPT_WITH_CLIPS --take_dir DIR_OF_VIEW_MP4S [--sizes 16 4]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # runnable as a plain script from anywhere
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.report import RESULTS_DIR, cpu_kind, peak_rss_gb, write_report  # noqa: E402
from dataset_scripts.script_errors import reject_renamed_flags  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="a ProfVLM checkpoint with --clip_seconds")
    parser.add_argument("--take_dir", required=True, help="a folder of one take's view videos (<view>.mp4)")
    parser.add_argument("--sizes", nargs="+", type=int, default=[16, 4], help="clips per tower call to compare")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--output_dir", default=str(RESULTS_DIR), help="folder of bench_tower_chunk.json")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    return reject_renamed_flags(parser).parse_args(argv)


def child(args: argparse.Namespace) -> dict:
    """One chunk size in this process: load, decode, encode; the peaks after each and the encode seconds."""
    import torch

    import modeling_profvlm.modeling_profvlm as modeling
    import profvlm  # noqa: F401  (registers the model and the proficiency-estimation task)
    from modeling_profvlm.pipeline_profvlm import load_proficiency_pipeline

    modeling.TOWER_CLIPS_PER_CHUNK = args.child
    pipe = load_proficiency_pipeline(args.checkpoint)
    loaded = peak_rss_gb()
    take = {p.stem: str(p) for p in sorted(Path(args.take_dir).glob("*.mp4"))}
    out = pipe.processor.process_videos([take])
    decoded = peak_rss_gb()
    began = time.perf_counter()
    with torch.no_grad():
        pipe.model.model.encode_views(out["pixel_values_videos"], out["view_mask"], out["time_mask"])
    return {"chunk": args.child, "clips": int(out["time_mask"].sum()), "views": len(take),
            "encode_s": round(time.perf_counter() - began, 2), "peak_gb_loaded": loaded,
            "peak_gb_decoded": decoded, "peak_gb_encoded": peak_rss_gb()}


def main(argv: list[str] | None = None) -> dict:
    """Alternate the sizes over the rounds, each in its own process; write the JSON."""
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return {}
    runs = []
    for _ in range(args.rounds):
        for size in args.sizes:
            done = subprocess.run([sys.executable, __file__, "--checkpoint", args.checkpoint, "--take_dir",
                                   args.take_dir, "--child", str(size)], check=True, capture_output=True, text=True,
                                  cwd=REPO_ROOT)
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(runs[-1]), flush=True)
    config = json.loads((Path(args.checkpoint) / "config.json").read_text())
    report = {"benchmark": "tower_chunk", "date": time.strftime("%Y-%m-%d"), "cpu_kind": cpu_kind(),
              "tower": config.get("vision_config", {}).get("model_type"),
              "tower_hidden_size": config.get("vision_config", {}).get("hidden_size"),
              "take_dir": args.take_dir, "runs": runs,
              "median_by_size": {str(size): {key: statistics.median(r[key] for r in runs if r["chunk"] == size)
                                             for key in ("encode_s", "peak_gb_encoded")} for size in args.sizes}}
    write_report(Path(args.output_dir) / "bench_tower_chunk.json", report, report["median_by_size"])
    return report


if __name__ == "__main__":
    main()
