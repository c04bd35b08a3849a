"""Learnability: can ProfVLM with the real SmolLM2 and a frozen, RANDOM tower learn the synthetic proficiency signal?

Path (the same one `make demo` runs, with training/configs/cpu_demo.yaml): synthetic EgoExo4D tree -> base checkpoint
(random tower + offline SmolLM2) -> feature cache -> LoRA SFT on cached features -> evaluation on the held-out split.
Targets (issue [training]): held-out label accuracy >= 0.90 (chance ~0.25-0.35) and feedback ROUGE-L >= 0.40,
with <= 15 minutes of training on 2 CPU cores. With --moments (issue [moments]) the takes have timed events, the
feedback is the experts' timed commentary as moments ("[0:02] ..."), the model has temporal tokens (default one per
second) and the targets are label accuracy >= 0.90 and time-grounding F1 >= 0.70 within one token's length. With
--demonstration (issue [demonstration]) the same takes train on their demonstration-proficiency file instead: each
moment a good execution or a tip ("[0:02.1] good: ...", config demonstration_moments) with times to the tenth
(`--time_decimals`, default 1; `--time_decimals 1 0` adds the whole-second contrast to the same JSON), scored by the
task's mAP (targets: label accuracy >= 0.90 and mAP@1.0 >= 0.60; mAP@0.5 and @0.25 reported) and time grounding.

    python benchmarks/bench_learnability.py [--output_dir benchmarks/results]
        [--tower random-tiny] [--takes 200] [--seeds 0 1 2 3 4] [--epochs N] [--learning_rate LR] [--work_dir DIR]
        [any training/sft.py option, e.g. --projector_learning_rate 1e-2]

Each seed makes its own data, base checkpoint and training run (the seed of all three); the report has every seed's
figures, their mean and the worst, and passes only when every seed meets every target. Run it with
`PROFVLM_DTYPE=float32` (and the AVX2 kernel caps, see the README) to measure the slow CPU kind on a fast one.
"""
import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # runnable as a plain script from anywhere
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.report import RESULTS_DIR, cpu_kind, write_report  # noqa: E402
from dataset_scripts.script_errors import reject_renamed_flags  # noqa: E402
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TARGETS = {"accuracy": 0.90, "rouge_l": 0.40, "training_seconds": 15 * 60}
MOMENTS_TARGETS = {"accuracy": 0.90, "time_grounding_f1": 0.70, "training_seconds": 15 * 60}
# issue [demonstration]: label accuracy and the demonstration task's mAP at 1 s (0.5 and 0.25 s reported)
DEMONSTRATION_TARGETS = {"accuracy": 0.90, "demonstration_map_1.0": 0.60, "training_seconds": 15 * 60}
# issue [long-takes]: minutes-long takes (--clip_seconds), moments scored within 2 s whatever a token's length; the
# training time is reported, not a target (a minute's prompt and answer are several times a 4-second take's)
LONG_TAKE_TARGETS = {"accuracy": 0.90, "time_grounding_f1_within_2s": 0.70}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; the defaults are the fastest settings found to pass (see the report in the JSON). Options
    this parser does not know go to training/sft.py unchanged (`args.sft_args`)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", default=str(RESULTS_DIR), help="folder of the report bench_learnability.json")
    parser.add_argument("--work_dir", default=None, help="where data, cache and checkpoints go (default: a temp dir)")
    parser.add_argument("--tower", default="random-tiny", choices=["random-tiny", "random-base"])
    parser.add_argument("--temporal_tokens", type=int, default=None,
                        help="temporal tokens per take (default 1, the paper; with --moments one per second)")
    parser.add_argument("--moments", action="store_true",
                        help="timed events in the data, timed commentary as feedback, time grounding measured")
    parser.add_argument("--demonstration", action="store_true",
                        help="timed events in the data, the demonstration-proficiency file as feedback: categorised "
                             "moments ('[0:02.1] good: ...', config demonstration_moments)")
    parser.add_argument("--time_decimals", type=int, nargs="+", default=None,
                        help="digits after the second in the checkpoint's times (default 1 with --demonstration, "
                             "else 0: whole seconds); several values run each seed once per value, in one JSON "
                             "(the summary is the first value's, `summary_by_time_decimals` has each)")
    parser.add_argument("--num_frames", type=int, default=None,
                        help="the random tower's frames (default: its preset's; N = 8 needs 8 with random-tiny)")
    parser.add_argument("--takes", type=int, default=200, help="synthetic takes, train and validation together")
    parser.add_argument("--size", type=int, default=64, help="shorter video side of the synthetic videos (pixels)")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each synthetic take")
    parser.add_argument("--clip_seconds", type=float, nargs="+", default=None,
                        help="clips over the take, S seconds each (config clip_seconds, with --temporal_tokens tokens "
                             "per clip); 0 is today's single clip over the whole take with "
                             "--single_clip_temporal_tokens tokens; several values run each seed once per value, in "
                             "one JSON (`summary_by_clip_seconds`)")
    parser.add_argument("--append", action="store_true",
                        help="keep the runs already in OUTPUT_DIR/bench_learnability.json (made with the same "
                             "settings) and add this command's, e.g. a second seed later; a run of the same seed, "
                             "time_decimals and clip_seconds is replaced")
    parser.add_argument("--max_clips", type=int, default=64, help="config max_clips with --clip_seconds")
    parser.add_argument("--single_clip_temporal_tokens", type=int, default=4,
                        help="temporal tokens of the --clip_seconds 0 runs (4: the random-tiny tower's time steps)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="one run per seed (data, base checkpoint and training all use it)")
    parser.add_argument("--epochs", type=float, default=None, help="default: cpu_demo.yaml's num_train_epochs")
    parser.add_argument("--max_steps", type=int, default=-1, help="overrides --epochs when > 0")
    parser.add_argument("--batch_size", type=int, default=None, help="default: cpu_demo.yaml's")
    parser.add_argument("--learning_rate", type=float, default=None, help="default: cpu_demo.yaml's")
    parser.add_argument("--label_loss_weight", type=float, default=None,
                        help="weight of the label's tokens in the loss (default: cpu_demo.yaml's)")
    parser.add_argument("--time_loss_weight", type=float, default=None,
                        help="weight of the [m:ss] markers' tokens (and category words) in the loss (default: "
                             "cpu_demo.yaml's)")
    parser.add_argument("--max_new_tokens", type=int, default=96, help="generation length in evaluation")
    parser.add_argument("--max_feedback_words", type=int, default=None,
                        help="feedback targets cut to this many words (default: cpu_demo.yaml's value)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's choice, all cores); 1 is faster on cores shared with others")
    args, sft_args = reject_renamed_flags(parser).parse_known_args(argv)
    if any(arg in ("--seed", "--output_dir", "--model", "--data_dir", "--features") for arg in sft_args):
        parser.error(f"{sft_args}: --seeds sets the seed, and the benchmark sets the training folders itself.")
    if args.moments and args.demonstration:
        parser.error("--moments and --demonstration train on different answers of the same takes; pass one.")
    args.time_decimals_values = args.time_decimals or [1 if args.demonstration else 0]
    args.time_decimals = args.time_decimals_values[0]
    args.clip_seconds_values = args.clip_seconds or [None]
    if any(value is not None and value < 0 for value in args.clip_seconds_values):
        parser.error(f"--clip_seconds {args.clip_seconds}: expected seconds > 0, or 0 for one clip over the take.")
    args.clip_seconds = args.clip_seconds_values[0]
    args.sft_args = sft_args
    return args


CPU_SECONDS: dict[str, float] = {}


def timed(fn, *args, **kwargs):
    """(result, wall seconds) of one call; its CPU seconds (all threads) go to CPU_SECONDS[fn name]. On shared cores
    CPU seconds / 2 estimates the wall time on 2 dedicated cores."""
    start, cpu = time.perf_counter(), time.process_time()
    result = fn(*args, **kwargs)
    CPU_SECONDS[fn.__name__] = time.process_time() - cpu
    return result, time.perf_counter() - start


def build_base(tower: str, out: Path, seed: int, temporal_tokens: int = 1, num_frames: int | None = None,
               time_decimals: int = 0, clip_seconds: float | None = None, max_clips: int | None = None) -> Path:
    """A base checkpoint with a random frozen tower and the real SmolLM2-135M-Instruct (converted offline); with
    `clip_seconds`, clips over the take (`max_clips` at most)."""
    from profvlm.assemble import build_base_checkpoint
    from profvlm.assets import ensure_smollm2

    if (out / "config.json").is_file():
        return out
    extra = {"time_decimals": time_decimals} if time_decimals else {}  # 0: the config's default, as before
    if clip_seconds:
        extra.update(clip_seconds=clip_seconds, max_clips=max_clips)
    return build_base_checkpoint(tower, str(ensure_smollm2()), out, seed=seed, num_frames=num_frames,
                                 temporal_tokens=temporal_tokens, **extra)


def timed_events(args: argparse.Namespace) -> bool:
    """Whether the takes need timed events: both --moments and --demonstration answer with them."""
    return args.moments or args.demonstration


def dataset_config(args: argparse.Namespace) -> str:
    """The builder config training reads: the answers the run learns."""
    if args.demonstration:
        return "demonstration_moments"
    return "demonstrator_moments" if args.moments else "demonstrator_commentary"


def make_data(args: argparse.Namespace, out: Path) -> Path:
    """The synthetic tree (reused when it already exists); with --moments or --demonstration its takes have timed
    events (and the demonstration-proficiency files)."""
    from dataset_scripts.synthetic_egoexo4d import generate_synthetic_egoexo4d

    if (out / "takes.json").is_file():
        return out
    return generate_synthetic_egoexo4d(out, args.takes, seed=args.seed, size=args.size, seconds=args.seconds,
                                       events=timed_events(args))


def train(args: argparse.Namespace, base: Path, data: Path, cache: Path, out: Path) -> Path:
    """LoRA SFT on cached features (the paper recipe's adapter, our learning rate and epochs); returns OUT/final."""
    from training import sft

    argv = ["--config", str(REPO_ROOT / "training" / "configs" / "cpu_demo.yaml"), "--model", str(base),
            "--data_dir", str(data), "--features", str(cache), "--output_dir", str(out),
            "--dataset_config", dataset_config(args),
            "--eval_strategy", "no", "--save_strategy", "no",
            "--max_steps", str(args.max_steps), "--max_feedback_words", str(args.max_feedback_words),
            "--logging_steps", "10", "--seed", str(args.seed), *args.sft_args]
    overrides = {"--per_device_train_batch_size": args.batch_size, "--learning_rate": args.learning_rate,
                 "--num_train_epochs": args.epochs, "--label_loss_weight": args.label_loss_weight,
                 "--time_loss_weight": args.time_loss_weight}  # None: the YAML's value
    argv += [item for key, value in overrides.items() if value is not None for item in (key, str(value))]
    return sft.main(argv)


def split_counts(data: Path) -> dict:
    """Rows per split and config, and the held-out majority-label rate (the chance floor)."""
    from collections import Counter

    from training.sft_data import load_split

    counts = {}
    for config in ("demonstrator", "demonstrator_commentary"):
        for split in ("train", "validation"):
            counts[f"{config}/{split}"] = len(load_split(str(data), config, split))
    val = load_split(str(data), "demonstrator", "validation")
    majority = Counter(val["proficiency"]).most_common(1)[0][1] / max(1, len(val))
    return {"rows": counts, "validation_majority_rate": majority}


def run_seed(args: argparse.Namespace, work: Path) -> dict:
    """One seed's run (args.seed): data, base checkpoint, features, training, evaluation; its figures."""
    from training import extract_features
    from training.evaluate_profvlm import evaluate_checkpoint, load_checkpoint

    timings = {}
    tree = f"data{'-events' if timed_events(args) else ''}-seed{args.seed}"
    data, timings["generate_data_s"] = timed(make_data, args, work / tree)
    single_clip = args.clip_seconds == 0
    tokens = args.single_clip_temporal_tokens if single_clip else args.temporal_tokens
    clips = f"-c{args.clip_seconds:g}" if args.clip_seconds else ""
    name = f"{args.tower}-f{args.num_frames or 'preset'}-n{tokens}{clips}"
    digits = f"-d{args.time_decimals}" if args.time_decimals else ""  # the tower's features do not depend on it
    base, timings["build_base_s"] = timed(build_base, args.tower, work / f"base-{name}{digits}-seed{args.seed}",
                                          args.seed, tokens, args.num_frames, args.time_decimals,
                                          args.clip_seconds or None, args.max_clips)
    cache = work / f"features-{name}-{tree}"  # each tree has its own videos
    _, timings["extract_features_s"] = timed(extract_features.main,
                                             ["--model", str(base), "--data_dir", str(data), "--output_dir", str(cache)])
    name += digits + ("-moments" if args.moments else "-demonstration" if args.demonstration else "")
    out = work / f"sft-{name}-seed{args.seed}"
    final, timings["training_s"] = timed(train, args, base, data, cache, out)
    # one temporal token's length: the finest tolerance (with clips, a clip's S seconds over its N tokens)
    bin_seconds = round((args.clip_seconds or args.seconds) / tokens, 3)
    tolerances = tuple(dict.fromkeys((bin_seconds, 2.0, 5.0)))  # a 2-s token's tolerance is the 2-s one
    model, processor = load_checkpoint(final)
    # --demonstration is scored against the demonstration file itself: mAP (its task's metric) and time grounding.
    timed_answer = timed_events(args)
    metrics, timings["evaluation_s"] = timed(evaluate_checkpoint, model, processor, data, "validation",
                                             work / f"eval-{name}-seed{args.seed}",
                                             features=cache, max_new_tokens=args.max_new_tokens,
                                             max_feedback_words=args.max_feedback_words, moments=timed_answer,
                                             demonstration=args.demonstration,
                                             **({"time_tolerances": tolerances} if timed_answer else {}))
    measured = {"accuracy": metrics["accuracy"], "rouge_l": metrics["feedback"]["rouge_l"],
                "training_seconds": timings["training_s"], "training_steps": trained_steps(out)}
    if timed_answer:
        from training.time_grounding import every_token_f1_of_run, tolerance_key

        overall = metrics["time_grounding"]["overall"]
        measured["time_grounding_f1"] = overall[tolerance_key(bin_seconds)]["f1"]
        measured["time_grounding_tolerance_s"] = bin_seconds
        measured["time_grounding_f1_within_2s"] = overall[tolerance_key(2.0)]["f1"]
        predictions = work / f"eval-{name}-seed{args.seed}" / "predictions.jsonl"
        measured["time_grounding_f1_every_token"] = every_token_f1_of_run(predictions, cache, bin_seconds,
                                                                          args.time_decimals)
        measured["time_grounding_f1_every_token_within_2s"] = every_token_f1_of_run(predictions, cache, 2.0,
                                                                                    args.time_decimals)
    if args.demonstration:
        block = metrics.get("demonstration") or {}
        measured.update({f"demonstration_map_{k}": block.get(f"mAP@{k}") for k in ("0.25", "0.5", "1.0")})
        measured["demonstration_map"] = block.get("mAP")
    targets = targets_for(args)
    passed = {key: (measured[key] or 0.0) >= target if key != "training_seconds" else measured[key] <= target
              for key, target in targets.items()}
    return {"seed": args.seed, "time_decimals": args.time_decimals, "clip_seconds": args.clip_seconds,
            "data": split_counts(data), "timings_s": {k: round(v, 1) for k, v in timings.items()},
            "cpu_seconds": {k: round(v, 1) for k, v in CPU_SECONDS.items()}, "measured": measured, "passed": passed,
            "all_passed": all(passed.values()), "metrics": metrics,
            "settings": {"frames": processor.num_frames, "image_size": processor.image_size,
                         "temporal_tokens": model.config.temporal_tokens,
                         "clip_seconds": model.config.clip_seconds, "max_clips": model.config.max_clips,
                         "time_decimals": model.config.time_decimals}}


def targets_for(args: argparse.Namespace) -> dict:
    """The targets of this kind of run: the demonstration task's, the moments', or the plain feedback's."""
    if args.demonstration:
        return DEMONSTRATION_TARGETS
    if args.moments:
        return MOMENTS_TARGETS if args.clip_seconds_values == [None] else LONG_TAKE_TARGETS
    return TARGETS


def trained_steps(out: Path) -> int | None:
    """The optimizer steps the run took (Trainer's trainer_state.json in the final checkpoint folder's parent)."""
    import json

    for state in (out / "trainer_state.json", *sorted(out.glob("checkpoint-*/trainer_state.json"))):
        if state.is_file():
            return json.loads(state.read_text()).get("global_step")
    return None


def summarize(runs: list[dict], targets: dict) -> dict:
    """Mean and worst of each measured target over the seeds (worst: lowest score, longest training)."""
    summary = {}
    for key in targets:
        values = [run["measured"][key] or 0.0 for run in runs]
        worst = max(values) if key == "training_seconds" else min(values)
        summary[key] = {"mean": round(sum(values) / len(values), 4), "worst": round(worst, 4),
                        "per_seed": {run["seed"]: round(run["measured"][key] or 0.0, 4) for run in runs}}
    return summary


# Settings that may differ between the runs of one report (--append): which runs, and where they ran.
PER_RUN_SETTINGS = ("seeds", "time_decimals_values", "clip_seconds_values", "append", "output_dir", "work_dir",
                    "seed", "time_decimals", "clip_seconds", "threads")


def earlier_runs(path: Path, args: argparse.Namespace, recipe_values: dict,
                 variants: list) -> tuple[list[dict], dict]:
    """`--append`: the runs of the report at `path` that this command does not redo, and the report's settings; a
    ValueError naming the setting when the report was made with other settings or another recipe (its runs would
    not compare)."""
    if not path.is_file():
        return [], {}
    report = json.loads(path.read_text())
    settings = report.get("settings", {})
    for key, value in vars(args).items():
        if key not in PER_RUN_SETTINGS and key in settings and settings[key] != value:
            raise ValueError(f"--append: {path} was made with {key}={settings[key]!r}, this command has {value!r}; "
                             "write to another --output_dir.")
    if settings.get("recipe_values") not in (None, recipe_values):
        raise ValueError(f"--append: {path} was made with another training/configs/cpu_demo.yaml; write to another "
                         "--output_dir.")
    redone = {tuple(v) for v in variants}
    return [run for run in report.get("runs", [])
            if (run["seed"], run["time_decimals"], run["clip_seconds"]) not in redone], settings


def git_commit() -> str | None:
    """The repository's HEAD commit (a run's code), or None outside a git checkout."""
    import subprocess

    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True)
    return done.stdout.strip() or None


def main(argv: list[str] | None = None) -> dict:
    """Run every stage for every seed, time it, evaluate on the validation split and write the JSON."""
    import torch

    args = parse_args(argv)
    if args.temporal_tokens is None:  # with moments, one token per second of the take (4 for the 4-second takes)
        args.temporal_tokens = max(1, round(args.seconds)) if timed_events(args) else 1
    if args.max_feedback_words is None:
        from dataset_scripts.egoexo4d_proficiency import DEFAULT_MAX_FEEDBACK_WORDS
        from profvlm.demo import sft_config_value

        args.max_feedback_words = int(sft_config_value("max_feedback_words", DEFAULT_MAX_FEEDBACK_WORDS))
    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench_learnability_"))
    work.mkdir(parents=True, exist_ok=True)
    targets = targets_for(args)
    machine = {"cpu_kind": cpu_kind(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
               "platform": platform.platform()}
    recipe_values = yaml.safe_load((REPO_ROOT / "training" / "configs" / "cpu_demo.yaml").read_text())
    variants = [(seed, d, c) for seed in args.seeds for d in args.time_decimals_values
                for c in args.clip_seconds_values]
    runs, earlier = earlier_runs(Path(args.output_dir) / "bench_learnability.json", args, recipe_values, variants) \
        if args.append else ([], {})
    # The report's groups include the kept runs, its own values first: its summary stays the first command's setting
    for key in ("time_decimals_values", "clip_seconds_values"):
        setattr(args, key, list(dict.fromkeys([*earlier.get(key, []), *getattr(args, key)])))
    commit = git_commit()
    for seed, decimals, clip_seconds in variants:
        args.seed, args.time_decimals, args.clip_seconds = seed, decimals, clip_seconds
        runs.append({**run_seed(args, work), "commit": commit})
        primary = [run for run in runs if run["time_decimals"] == args.time_decimals_values[0]
                   and run["clip_seconds"] == args.clip_seconds_values[0]]
        report = {  # written after every seed, so a long run that is stopped keeps what it measured
            "benchmark": "learnability",
            "settings": {**{k: v for k, v in vars(args).items()
                            if k not in ("output_dir", "work_dir", "seed", "time_decimals", "clip_seconds")},
                         "recipe": "training/configs/cpu_demo.yaml",
                         # the recipe as it was when this ran (the file changes; the command-line flags above win)
                         "recipe_values": recipe_values,
                         "lora": "r=8, alpha=32, q_proj/v_proj (paper default)", "work_dir": str(work)},
            "targets": targets,
            "summary": summarize(primary, targets) if primary else {},
            "summary_by_time_decimals": {str(d): summarize(group, targets) for d in args.time_decimals_values
                                         if (group := [run for run in runs if run["time_decimals"] == d])},
            "summary_by_clip_seconds": {str(c): summarize(group, targets) for c in args.clip_seconds_values
                                        if (group := [run for run in runs if run["clip_seconds"] == c])},
            "all_passed": bool(primary) and all(run["all_passed"] for run in primary),
            "runs": runs,
            "machine": {**machine, "load_average_1m": os.getloadavg()[0]},
        }
        write_report(Path(args.output_dir) / "bench_learnability.json", report,
                     {"seed": seed, "measured": runs[-1]["measured"], "passed": runs[-1]["passed"],
                      "timings_s": runs[-1]["timings_s"]})
    print(json.dumps({"summary": report["summary"], "all_passed": report["all_passed"]}, indent=2))
    return report


if __name__ == "__main__":
    main()
