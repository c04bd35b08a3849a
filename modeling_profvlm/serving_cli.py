# `profvlm predict | card | push`: one take's report, the Hub model card, and the upload of a checkpoint.
import argparse
import json
import sys
import textwrap
from pathlib import Path

BAR_WIDTH = 30


def text_bar(fraction: float, width: int = BAR_WIDTH) -> str:
    """A fixed-width bar, e.g. `█████░░░░░` for 0.5 at width 10."""
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "█" * filled + "░" * (width - filled)


def take_from_args(ego: str | None, exo: list[str] | None, view_names: list[str]) -> dict[str, str]:
    """{"ego": path, "exo1": path, ...} from --ego/--exo; errors name the files that do not fit."""
    exo = exo or []
    exo_views = [v for v in view_names if v != "ego"]
    if len(exo) > len(exo_views):
        raise ValueError(f"{len(exo)} exo videos given ({exo}), but the model has only {len(exo_views)} exo views {exo_views}.")
    take = ({"ego": ego} if ego else {}) | dict(zip(exo_views, exo))
    if not take:
        raise ValueError("No video given: pass --ego PATH and/or --exo PATH [PATH ...].")
    return take


def format_report(result: dict, take: dict[str, str], random_tower: bool = False) -> str:
    """The human-readable prediction: level, probability bars, feedback, and which cameras mattered."""
    width = max(map(len, result["scores"]))
    lines = [f"Proficiency: {result['proficiency']}", "", "Probabilities:"]
    for label, p in result["scores"].items():
        marker = "  <" if label == result["proficiency"] else ""
        lines.append(f"  {label:<{width}}  {text_bar(p)}  {100 * p:5.1f}%{marker}")
    if result.get("feedback"):
        lines += ["", "Feedback:"] + ["  " + line for line in textwrap.wrap(result["feedback"], 96)]
    lines += ["", "Cameras (share of the view attention):"]
    for view, w in sorted(result["view_weights"].items(), key=lambda kv: -kv[1]):
        lines.append(f"  {view:<5} {text_bar(w, 20)}  {w:.2f}  {Path(str(take.get(view, ''))).name}")
    if random_tower:
        lines += ["", "note: this checkpoint's video tower is randomly initialised; treat the level as a demo."]
    return "\n".join(lines)


def run_predict(args: argparse.Namespace) -> int:
    """`profvlm predict`: run the pipeline on one take and print the report (or JSON)."""
    from transformers import pipeline

    from modeling_profvlm.configuration_profvlm import ProfVLMConfig
    from modeling_profvlm.pipeline_profvlm import ProficiencyEstimationPipeline

    config = ProfVLMConfig.from_pretrained(args.model)
    try:
        take = take_from_args(args.ego, args.exo, list(config.view_names))
        # The installed class, not the checkpoint's copy (which transformers would pick from custom_pipelines).
        pipe = pipeline("proficiency-estimation", model=args.model, pipeline_class=ProficiencyEstimationPipeline)
        result = pipe(take, return_feedback=not args.no_feedback, max_new_tokens=args.max_new_tokens)
    except (FileNotFoundError, ValueError) as err:
        print(f"profvlm predict: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({**result, "views": take}, indent=2))
    else:
        print(format_report(result, take, bool(config.vision_tower_random_init)))
    return 0


def run_card(args: argparse.Namespace) -> int:
    """`profvlm card`: write README.md (the model card) into the checkpoint folder."""
    from modeling_profvlm.model_card import build_model_card

    try:
        card = build_model_card(args.model, args.eval, repo_id=args.repo, dataset_id=args.dataset,
                                dataset_name=args.dataset_name, split=args.split)
    except (FileNotFoundError, ValueError) as err:
        print(f"profvlm card: {err}", file=sys.stderr)
        return 2
    out = Path(args.model) / "README.md"
    card.save(out)
    print(f"Model card written to {out}")
    return 0


def run_push(args: argparse.Namespace) -> int:
    """`profvlm push`: upload the checkpoint, or with --dry-run list exactly what would be uploaded."""
    from modeling_profvlm.hub_upload import push_checkpoint, upload_plan

    try:
        files = upload_plan(args.model)
    except FileNotFoundError as err:
        print(f"profvlm push: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        visibility = "private" if args.private else "public"
        print(f"Would upload {len(files)} files from {args.model} to {args.repo} ({visibility}):")
        for name in files:
            print(f"  {name}  ({(Path(args.model) / name).stat().st_size:,} bytes)")
        return 0
    try:
        url = push_checkpoint(args.model, args.repo, private=args.private)
    except Exception as err:  # network, auth and offline mode all end here; say which and stop
        print(f"profvlm push: upload to {args.repo} failed: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    print(f"Uploaded {len(files)} files to {args.repo}: {url}")
    return 0


def add_parser(sub) -> None:
    """Register `predict`, `card` and `push` on the `profvlm` sub-command parser."""
    p = sub.add_parser("predict", help="proficiency level, probabilities, feedback and camera weights for one take")
    p.add_argument("--model", required=True, help="checkpoint folder")
    p.add_argument("--ego", help="egocentric video")
    p.add_argument("--exo", nargs="+", help="exocentric videos, in camera order (exo1, exo2, ...)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the report")
    p.add_argument("--max_new_tokens", type=int, default=128, help="feedback length limit (default 128)")
    p.add_argument("--no_feedback", action="store_true", help="label and probabilities only (faster)")
    p.set_defaults(func=run_predict)

    p = sub.add_parser("card", help="write the model card (README.md) into a checkpoint folder")
    p.add_argument("--model", required=True, help="checkpoint folder")
    p.add_argument("--eval", help="metrics.json from training/evaluate_profvlm.py (its plots are copied too)")
    p.add_argument("--repo", default="org/profvlm", help="Hub repo id used in the usage snippets")
    p.add_argument("--dataset", default="egoexo4d_proficiency", help="dataset id for the model-index")
    p.add_argument("--dataset_name", default="EgoExo4D demonstrator proficiency", help="dataset name for the model-index")
    p.add_argument("--split", default="validation", help="evaluated split (default validation)")
    p.set_defaults(func=run_card)

    p = sub.add_parser("push", help="upload a checkpoint (weights, processor, code, card) to the Hub")
    p.add_argument("--model", required=True, help="checkpoint folder")
    p.add_argument("--repo", required=True, help="Hub repo id, e.g. org/profvlm")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--dry_run", "--dry-run", action="store_true", help="list what would be uploaded, upload nothing")
    p.set_defaults(func=run_push)
