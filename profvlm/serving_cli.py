# `profvlm predict | card | push`: one take's report, the Hub model card, and the upload of a checkpoint.
import argparse
import json
import sys
from pathlib import Path

from modeling_profvlm.answering import DEFAULT_MAX_NEW_TOKENS
from modeling_profvlm.device_policy import add_device_arguments

from .batch_predict import add_batch_arguments
from .report import format_report

def take_from_args(ego: str | None, exo: list[str] | None, view_names: list[str],
                   views: list[str] | None = None) -> dict[str, str]:
    """{view name: path} from --view NAME=PATH (any checkpoint) and --ego/--exo (EgoExo4D-style checkpoints);
    errors name the option and the views the checkpoint has."""
    take: dict[str, str] = {}
    for item in views or []:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--view {item!r}: expected NAME=PATH with NAME one of {view_names}.")
        if name not in view_names:
            raise ValueError(f"--view {item!r}: the checkpoint has no view {name!r}; its views are {view_names}.")
        take[name] = path
    if ego is not None:
        if "ego" not in view_names:
            raise ValueError(f"--ego: this checkpoint has no 'ego' view; use --view NAME=PATH with NAME in {view_names}.")
        take["ego"] = ego
    exo = exo or []
    exo_views = [v for v in view_names if v != "ego"]
    if len(exo) > len(exo_views):
        raise ValueError(f"{len(exo)} exo videos given ({exo}), but the model has only {len(exo_views)} exo views {exo_views}.")
    take |= dict(zip(exo_views, exo))
    if not take:
        raise ValueError(f"No video given: pass --view NAME=PATH (views {view_names}), or --ego PATH / --exo PATH ...")
    return take


def run_predict(args: argparse.Namespace) -> int:
    """`profvlm predict`: run the pipeline on one take and print the report (or JSON); with --data_dir, every take
    of a folder into --output_dir (`batch_predict`)."""
    import processing  # noqa: F401  (registers AutoProcessor for the installed classes)
    if args.data_dir is not None:
        from .batch_predict import run_batch_command

        return run_batch_command(args)
    from modeling_profvlm.configuration_profvlm import ProfVLMConfig, require_profvlm_checkpoint
    from modeling_profvlm.pipeline_profvlm import load_proficiency_pipeline

    config = ProfVLMConfig.from_pretrained(require_profvlm_checkpoint(args.model))
    take = take_from_args(args.ego, args.exo, list(config.view_names), args.view)
    # The installed class, not the checkpoint's copy (which transformers would pick from custom_pipelines).
    pipe = load_proficiency_pipeline(args.model, args.device, args.dtype)
    result = pipe(take, return_feedback=not args.no_feedback, max_new_tokens=args.max_new_tokens)
    if args.json:
        print(json.dumps({**result, "video_paths": take}, indent=2))
    else:
        print(format_report(result, take, bool(config.vision_tower_random_init)))
    return 0


def run_card(args: argparse.Namespace) -> int:
    """`profvlm card`: write README.md (the model card) into the checkpoint folder; the dataset, split and licence
    come from metrics.json's provenance and the checkpoint's config unless the options say otherwise."""
    from .model_card import build_model_card

    card = build_model_card(args.model, args.eval, repo_id=args.repo, dataset_id=args.dataset,
                            dataset_name=args.dataset_name, split=args.split)
    out = Path(args.model) / "README.md"
    card.save(out)
    print(f"Model card written to {out}")
    return 0


def run_push(args: argparse.Namespace) -> int:
    """`profvlm push`: upload the checkpoint, or with --dry-run list exactly what would be uploaded."""
    from .hub_upload import push_checkpoint, upload_plan

    files = upload_plan(args.model)
    if args.dry_run:
        visibility = "public" if args.public else "private"
        print(f"Would upload {len(files)} files from {args.model} to {args.repo} ({visibility}), after writing "
              "this checkout's code files into the folder (as a real push does first):")
        for name in files:
            print(f"  {name}  ({(Path(args.model) / name).stat().st_size:,} bytes)")
        return 0
    try:
        url = push_checkpoint(args.model, args.repo, private=not args.public)
    except Exception as err:  # network, auth and offline mode all end here; say which and stop
        print(f"profvlm push: upload to {args.repo} failed: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    print(f"Uploaded {len(files)} files to {args.repo}: {url}")
    return 0


def add_parser(sub) -> None:
    """Register `predict`, `card` and `push` on the `profvlm` sub-command parser."""
    p = sub.add_parser("predict", help="proficiency level, probabilities, feedback and camera weights for one take")
    p.add_argument("--model", required=True, help="checkpoint folder")
    p.add_argument("--view", action="append", metavar="NAME=PATH",
                   help="one view's video, by the checkpoint's view name (repeat for several views)")
    p.add_argument("--ego", help="egocentric video (EgoExo4D-style checkpoints; same as --view ego=PATH)")
    p.add_argument("--exo", nargs="+", help="exocentric videos, in camera order (exo1, exo2, ...)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the report")
    p.add_argument("--max_new_tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS,
                   help=f"feedback length limit (default {DEFAULT_MAX_NEW_TOKENS})")
    p.add_argument("--no_feedback", action="store_true", help="label and probabilities only (faster)")
    add_device_arguments(p)
    add_batch_arguments(p)
    p.set_defaults(func=run_predict)

    p = sub.add_parser("card", help="write the model card (README.md) into a checkpoint folder")
    p.add_argument("--model", required=True, help="checkpoint folder")
    p.add_argument("--eval", help="metrics.json from training/evaluate_profvlm.py (its plots are copied too)")
    p.add_argument("--repo", default="org/profvlm", help="Hub repo id used in the usage snippets")
    p.add_argument("--dataset", default=None,
                   help="dataset id for the model-index (default: the one metrics.json's provenance records)")
    p.add_argument("--dataset_name", default=None,
                   help="dataset name for the model-index (default: the one metrics.json's provenance records, e.g. "
                        "a folder dataset's folder name; synthetic data keeps 'synthetic' in it)")
    p.add_argument("--split", default=None, help="evaluated split (default: the one metrics.json records)")
    p.set_defaults(func=run_card)

    p = sub.add_parser("push", help="upload a checkpoint (weights, processor, code, card) to the Hub")
    p.add_argument("--model", required=True, help="checkpoint folder")
    p.add_argument("--repo", required=True, help="Hub repo id, e.g. org/profvlm")
    p.add_argument("--public", action="store_true", help="create the repo public (default private, as every push)")
    p.add_argument("--dry-run", action="store_true", help="list what would be uploaded, upload nothing")
    p.set_defaults(func=run_push)
