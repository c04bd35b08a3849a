"""How many clips a view decodes per pass (`processing.take_clips.CLIPS_PER_READ`) against decode time and peak
memory, on takes with clips over them. Each run is a fresh process that loads only the processor and decodes one take
(all its views in parallel, as `process_videos` does); sizes alternate over --rounds.

    python benchmarks/bench_clip_reads.py --checkpoint CKPT_WITH_CLIPS --take_dirs DIR [DIR ...] [--sizes 8 2]
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
    parser.add_argument("--take_dirs", nargs="+", required=True, help="folders of one take's view videos each")
    parser.add_argument("--sizes", nargs="+", type=int, default=[8, 2], help="clips per decoding pass to compare")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--output_dir", default=str(RESULTS_DIR), help="folder of bench_clip_reads.json")
    parser.add_argument("--child", nargs=2, metavar=("SIZE", "TAKE_DIR"), help=argparse.SUPPRESS)
    return reject_renamed_flags(parser).parse_args(argv)


def child(checkpoint: str, size: int, take_dir: str) -> dict:
    """One size and take in this process: the processor's decode of the take, its seconds and the peaks."""
    import processing.take_clips as take_clips
    from processing.processing_profvlm import ProfVLMProcessor

    take_clips.CLIPS_PER_READ = size
    processor = ProfVLMProcessor.from_pretrained(checkpoint)
    before = peak_rss_gb()
    take = {p.stem: str(p) for p in sorted(Path(take_dir).glob("*.mp4"))}
    began = time.perf_counter()
    out = processor.process_videos([take])
    return {"clips_per_read": size, "take": Path(take_dir).name, "clips": int(out["time_mask"].sum()),
            "views": len(take), "decode_s": round(time.perf_counter() - began, 2), "peak_gb_before": before,
            "peak_gb": peak_rss_gb(), "batch_gb": round(out["pixel_values_videos"].numel() * 4 / 1024**3, 3)}


def main(argv: list[str] | None = None) -> dict:
    """Alternate the sizes over the rounds for every take, each in its own process; write the JSON."""
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(args.checkpoint, int(args.child[0]), args.child[1])))
        return {}
    runs = []
    for take_dir in args.take_dirs:
        for _ in range(args.rounds):
            for size in args.sizes:
                done = subprocess.run([sys.executable, __file__, "--checkpoint", args.checkpoint, "--take_dirs",
                                       take_dir, "--child", str(size), take_dir], check=True, capture_output=True,
                                      text=True, cwd=REPO_ROOT)
                runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(json.dumps(runs[-1]), flush=True)
    medians = {f"{take}/{size}": {key: statistics.median(r[key] for r in runs
                                                         if r["take"] == take and r["clips_per_read"] == size)
                                  for key in ("decode_s", "peak_gb")}
               for take in dict.fromkeys(r["take"] for r in runs) for size in args.sizes}
    report = {"benchmark": "clip_reads", "date": time.strftime("%Y-%m-%d"), "cpu_kind": cpu_kind(), "runs": runs,
              "median_by_take_and_size": medians}
    write_report(Path(args.output_dir) / "bench_clip_reads.json", report, medians)
    return report


if __name__ == "__main__":
    main()
