"""Fine-tune ProfVLM with TRL's SFTTrainer: LoRA on the language model, the projector fully trained, the tower frozen.

    accelerate launch training/sft.py --model CKPT --data_dir ROOT --output_dir OUT [--features CACHE] [--config YAML]
    python training/sft.py ...                                     (same, one process; CPU needs no extra flag)
    ACCELERATE_USE_CPU=1 torchrun --nproc_per_node 2 training/sft.py ...        (two CPU ranks)

Every SFTConfig / TrainingArguments field is an option too (--num_train_epochs, --max_steps, --learning_rate, ...),
and `--config YAML` sets any of them, script options included (command-line options win; ready-made YAMLs in
training/configs/). `--resume_from_checkpoint last` resumes from the newest OUT/checkpoint-*. Writes checkpoints to OUT/checkpoint-*, the LoRA
adapter (+ projector) to OUT/adapter and a merged, self-contained checkpoint (model, processor, code files,
auto_map) to OUT/final, whose config.json records max_feedback_words, the labels and the training data's provenance.
"""
import argparse
import json
import logging
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # `python training/sft.py` / `accelerate launch training/sft.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from transformers.trainer_utils import get_last_checkpoint  # noqa: E402
from trl import SFTConfig, SFTTrainer, TrlParser  # noqa: E402

from dataset_scripts.egoexo4d_proficiency import DEFAULT_MAX_FEEDBACK_WORDS  # noqa: E402
from dataset_scripts.script_errors import reject_renamed_flags  # noqa: E402
from modeling_profvlm.configuration_profvlm import require_profvlm_checkpoint  # noqa: E402
from modeling_profvlm.cpu_attention import use_cpu_training_attention  # noqa: E402
from modeling_profvlm.device_policy import resolve_device_policy  # noqa: E402
from modeling_profvlm.lora import count_parameters, default_lora_config  # noqa: E402
from modeling_profvlm.modeling_profvlm import ProfVLMForConditionalGeneration  # noqa: E402
from modeling_profvlm.profvlm_facts import parse_moments  # noqa: E402
from training.collator import ProfVLMCollator  # noqa: E402
from training.feature_cache import FeatureCache  # noqa: E402
from training.released_features import cache_manifest  # noqa: E402
from training.sft_data import check_views, label_names, load_splits, to_training_rows  # noqa: E402
from training.trl_compat import score_only_labelled_positions_on_cpu  # noqa: E402

logger = logging.getLogger("training.sft")


@dataclass
class ProfVLMArguments:
    """What to train and on which data (the SFTConfig fields say how)."""

    model: str = field(metadata={"help": "Base ProfVLM checkpoint folder (`profvlm init --output_dir DIR`)."})
    data_dir: str = field(metadata={"help": "EgoExo4D root (takes.json, annotations/; real or synthetic) or a multi-view "
                                            "folder dataset (metadata.jsonl or .csv + labels.json)."})
    dataset_config: str = field(
        default="demonstrator_commentary",
        metadata={"help": "`demonstrator_commentary` (label + feedback) or `demonstrator` (label only)."},
    )
    max_feedback_words: int = field(
        default=DEFAULT_MAX_FEEDBACK_WORDS,
        metadata={"help": "Feedback targets are cut to this many words, at a sentence boundary when possible."},
    )
    max_moment_words: int | None = field(
        default=None,
        metadata={"help": "Moments data: each moment's text is cut to this many words, after its last full sentence "
                          "when one ends inside the limit (default: the dataset's). A step's cost grows with the "
                          "answer's tokens, and the moment markers get a larger share of them."},
    )
    train_split: str = field(default="train", metadata={"help": "Split to train on."})
    eval_split: str = field(default="validation", metadata={"help": "Split evaluated each epoch; `none` to skip."})
    features: str | None = field(
        default=None,
        metadata={"help": "Feature cache from training/extract_features.py; without it, train from pixels."},
    )
    frame_sampler: str | None = field(
        default=None, metadata={"help": "Frame sampler for pixel training (processor default: uniform)."}
    )
    label_loss_weight: float = field(
        default=1.0,
        metadata={"help": "Weight of the proficiency label's tokens in the loss (the other answer tokens weigh 1). A "
                          "long answer (timed moments) is mostly feedback tokens, so the label gets a small share of "
                          "the gradient; > 1 gives it more."},
    )
    time_loss_weight: float = field(
        default=1.0,
        metadata={"help": "Weight of the tokens of the answer's `[m:ss]` moment markers, with a moment's category "
                          "word (`good:` / `tip:`) when it has one, in the loss (moments data). "
                          "With the label weighted up, the times get a smaller share of the gradient; > 1 gives "
                          "them more."},
    )
    end_loss_weight: float = field(
        default=1.0,
        metadata={"help": "Weight of the answer's end token in the loss, in answers with moments: where to stop is "
                          "a decision about the moments too, and with only the markers weighted up "
                          "(--time_loss_weight) a model trained on long takes writes moments past the last one; > 1 "
                          "weighs the end up."},
    )
    snap_moments_to_tokens: bool = field(
        default=True,
        metadata={"help": "A checkpoint with clips over the take (clip_seconds) trained on a feature cache: each "
                          "moment in the answers is written at the time of the video token that shows it, a time "
                          "the prompt states, instead of its own (training/sft_data.py snap_moments_to_tokens). "
                          "Evaluation still scores against the experts' own times. No effect on other checkpoints."},
    )
    projector_learning_rate: float | None = field(
        default=None,
        metadata={"help": "Learning rate of the projector, which starts from random weights while LoRA starts from a "
                          "pretrained LM (default: --learning_rate). The scheduler scales both alike."},
    )
    projector_alignment_steps: int = field(
        default=0,
        metadata={"help": "Before SFT, train the projector alone for this many full-batch steps on the feature cache so "
                          "that each take's video tokens point towards the LM's embedding of its label's first "
                          "token (training/projector_alignment.py; needs --features). 0: off."},
    )
    projector_alignment_learning_rate: float | None = field(
        default=None,
        metadata={"help": "Learning rate of the alignment stage (default: --projector_learning_rate, else "
                          "--learning_rate). A lower --projector_learning_rate after it keeps SFT from undoing what "
                          "the alignment taught the video tokens."},
    )
    projector_alignment_moments: bool = field(
        default=False,
        metadata={"help": "With --projector_alignment_steps on moments data: also pull each video time step's token "
                          "towards the LM's embedding of a word for 'a moment is named here' or one for 'none' "
                          "(training/projector_alignment.py), so the LM starts from tokens that say where the "
                          "moments are."},
    )
    lora_b_learning_rate_ratio: float = field(
        default=1.0,
        metadata={"help": "LoRA+ (Hayou et al. 2024, arXiv 2402.12354): the LoRA B matrices learn this many times "
                          "faster than the A matrices (1 = plain LoRA)."},
    )
    lora_r: int = field(default=8, metadata={"help": "LoRA rank on the language model."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.1, metadata={"help": "LoRA dropout."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "v_proj"], metadata={"help": "LM linears that get LoRA."}
    )
    views: list[str] | None = field(
        default=None, metadata={"help": "Use only these views (e.g. `--views ego`: Ego-only needs only the ego files)."}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training rows."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N evaluation rows."})
    log_seen_takes: bool = field(
        default=False,
        metadata={"help": "Append the take_uids of every training batch to OUT/seen_takes/rank<N>.jsonl."},
    )


def training_defaults() -> dict:
    """SFTConfig defaults for ProfVLM; a YAML config and the command line override them."""
    defaults = {
        "output_dir": "outputs/profvlm-sft",
        "eval_strategy": "epoch",
        "save_strategy": "epoch",
        "prediction_loss_only": True,  # no compute_metrics: skip the extra full-logits forward in evaluation
        "learning_rate": 2e-4,
        "report_to": "none",
        "logging_steps": 10,
    }
    if not torch.cuda.is_available():  # a machine without a GPU trains with no extra flag
        # bf16 autocast only where the device policy picks bf16 for the language model (a CPU with native bf16,
        # unless PROFVLM_DTYPE says otherwise): elsewhere bf16 is emulated and several times slower than float32.
        defaults.update(use_cpu=True, bf16=resolve_device_policy("cpu").lm_dtype == torch.bfloat16)
    return defaults


def parse_args(argv: list[str] | None = None) -> tuple[ProfVLMArguments, SFTConfig]:
    """Parse the command line and `--config YAML` into (ProfVLMArguments, SFTConfig)."""
    formatter = type("HelpFormatter", (argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter), {})
    parser = TrlParser((ProfVLMArguments, SFTConfig), description=__doc__, formatter_class=formatter)
    parser.set_defaults(**training_defaults())
    reject_renamed_flags(parser, keep=("--config",))  # TRL reads `--config YAML` before argparse sees it
    script_args, training_args = parser.parse_args_and_config(argv)
    # The collator renders, tokenizes and labels every batch itself: TRL must pass rows through untouched.
    training_args.remove_unused_columns = False
    training_args.dataset_kwargs = {**(training_args.dataset_kwargs or {}), "skip_prepare_dataset": True}
    training_args.max_length = None  # truncation could cut the <video> placeholder
    return script_args, training_args


def load_datasets(script_args: ProfVLMArguments, training_args: SFTConfig, labels: list[str], view_names: list[str],
                  time_decimals: int = 0, verify_files: bool = True):
    """(train rows, eval rows or None), checked against the checkpoint's `labels` and `view_names`; moments are
    written with the checkpoint's `time_decimals`. `verify_files=False` keeps every listed view whether its video is
    on disk or not (a checkpoint on released features reads feature files, not videos). The local main process builds
    the dataset first; the other ranks reuse its Arrow cache instead of rebuilding it under their feet."""
    from dataset_scripts.proficiency_data import available_splits

    splits = [script_args.train_split]
    if script_args.eval_split.lower() != "none":
        if {"val": "validation"}.get(script_args.eval_split, script_args.eval_split) in available_splits(script_args.data_dir):
            splits.append(script_args.eval_split)
        else:  # e.g. a folder dataset with train rows only: train without the per-epoch evaluation, and say so
            logger.warning("%s has no split '%s': no evaluation during training (pass --eval_split NAME or none).",
                           script_args.data_dir, script_args.eval_split)
    with training_args.main_process_first(desc="load dataset"):
        loaded = load_splits(script_args.data_dir, script_args.dataset_config, splits,
                             rebuild=training_args.local_process_index == 0,
                             max_feedback_words=script_args.max_feedback_words, views=script_args.views,
                             **({} if script_args.max_moment_words is None else
                                {"max_moment_words": script_args.max_moment_words}),
                             **({} if verify_files else {"verify_files": False}))
    for split, dataset in loaded.items():  # labels first: a dataset of another label set is the likelier mistake
        label_names(dataset, labels)
        check_views(dataset, view_names, f"{script_args.data_dir} ({split})")
    train = to_training_rows(loaded[script_args.train_split], labels, script_args.max_train_samples, time_decimals)
    if len(train) == 0:
        raise ValueError(f"{script_args.data_dir}: split '{script_args.train_split}' of config "
                         f"'{script_args.dataset_config}' has no rows to train on.")
    evaluation = None
    if len(splits) > 1:
        evaluation = to_training_rows(loaded[script_args.eval_split], labels, script_args.max_eval_samples,
                                      time_decimals)
        if len(evaluation) == 0:
            logger.warning("Split '%s' is empty: no evaluation.", script_args.eval_split)
            evaluation = None
    if evaluation is None:
        training_args.eval_strategy = "no"
    return train, evaluation


def load_feature_cache(path: str, model, processor, datasets) -> FeatureCache:
    """Open the cache, refuse it if another tower or sampling made it, and load every take the data needs."""
    cache = FeatureCache(path, expected_manifest=cache_manifest(model, processor, model.dtype))
    cache.preload([uid for ds in datasets if ds is not None for uid in ds["take_uid"]])
    return cache


def drop_takes_without_feature_files(path: str, datasets: list) -> list:
    """A checkpoint on released features: the rows of takes that have no feature file of any view are left out (the
    extraction reported them: `takes_without_features`), with a warning naming how many and a few; a tower's cache
    that lacks takes is still an error (`load_feature_cache`), since extracting again fills it."""
    cached = {p.stem for p in (Path(path) / "features").glob("*.safetensors")}
    kept = []
    for dataset in datasets:
        if dataset is None:
            kept.append(None)
            continue
        missing = sorted({uid for uid in dataset["take_uid"] if uid not in cached})
        if missing:
            logger.warning("%d take(s) have no released feature file of any view and are left out: %s%s.",
                           len(missing), ", ".join(missing[:3]), " ..." if len(missing) > 3 else "")
            dataset = dataset.filter(lambda uid: uid in cached, input_columns="take_uid")
        kept.append(dataset)
    return kept


class ProfVLMSFTTrainer(SFTTrainer):
    """SFTTrainer that drops the collator's `take_uids` before the forward, optionally logging them per rank, weights
    the proficiency label's tokens by `label_loss_weight` and the moment markers' tokens by `time_loss_weight` (the
    collator's `label_token_mask`, `time_token_mask`), and whose fused LM head scores only the answer positions on
    CPU too (`trl_compat`)."""

    def __init__(self, *args, seen_takes_path: Path | None = None, label_loss_weight: float = 1.0,
                 time_loss_weight: float = 1.0, end_loss_weight: float = 1.0,
                 projector_learning_rate: float | None = None,
                 lora_b_learning_rate_ratio: float = 1.0, **kwargs):
        score_only_labelled_positions_on_cpu()
        super().__init__(*args, **kwargs)
        self.seen_takes_path = seen_takes_path
        self.token_weights = {"label_token_mask": float(label_loss_weight), "time_token_mask": float(time_loss_weight),
                              "end_token_mask": float(end_loss_weight)}
        self.projector_learning_rate = projector_learning_rate
        self.lora_b_learning_rate_ratio = float(lora_b_learning_rate_ratio)

    def parameter_learning_rates(self, model) -> dict[int, float]:
        """{id(parameter): learning rate} for the parameters that do not learn at --learning_rate: the projector's
        (`projector_learning_rate`) and the LoRA B matrices (`learning_rate * lora_b_learning_rate_ratio`)."""
        rates = {}
        for name, param in model.named_parameters():
            if "multi_modal_projector" in name and self.projector_learning_rate is not None:
                rates[id(param)] = float(self.projector_learning_rate)
            elif ".lora_B." in name and self.lora_b_learning_rate_ratio != 1.0:
                rates[id(param)] = self.args.learning_rate * self.lora_b_learning_rate_ratio
        return rates

    def create_optimizer(self, model=None):
        """Trainer's optimizer, with the parameters of `parameter_learning_rates` moved to groups of their own at
        their learning rate (same weight decay split), before any step and before the scheduler is made (it scales
        every group alike)."""
        optimizer = super().create_optimizer(model)
        if getattr(optimizer, "_profvlm_learning_rates", False):
            return optimizer
        rates = self.parameter_learning_rates(model or self.model)
        for group in list(optimizer.param_groups):
            for rate in sorted(set(rates.values())):
                moved = [p for p in group["params"] if rates.get(id(p)) == rate]
                if moved:
                    group["params"] = [p for p in group["params"] if rates.get(id(p)) != rate]
                    optimizer.add_param_group({**{k: v for k, v in group.items() if k != "params"}, "params": moved,
                                               "lr": rate})
        optimizer.param_groups[:] = [group for group in optimizer.param_groups if group["params"]]
        optimizer._profvlm_learning_rates = True
        return optimizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        take_uids = inputs.pop("take_uids", None)
        if self.seen_takes_path is not None and model.training and take_uids is not None:
            self.seen_takes_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.seen_takes_path, "a") as f:  # appended per batch, so a killed run keeps its record
                f.write(json.dumps({"step": self.state.global_step, "take_uids": take_uids}) + "\n")
        masks = {name: inputs.pop(name) for name in self.token_weights if name in inputs}
        masks = {name: mask for name, mask in masks.items() if self.token_weights[name] != 1.0}
        if not masks:
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        # SFTTrainer's nll loss (-sum(log p) over the answer tokens / their count) with the label's tokens counted
        # `label_loss_weight` times, the moment markers' `time_loss_weight` times and the end's `end_loss_weight`
        # times (they never overlap: the label line precedes the feedback, whose markers precede its end). TRL's
        # entropy / token-accuracy logs are skipped on this path.
        inputs["use_cache"] = False
        outputs = model(**inputs, fused_lm_head=True)
        weights = torch.ones_like(outputs.log_probs)
        for name, mask in masks.items():  # per next token, hence the shift
            weights = weights + (self.token_weights[name] - 1.0) * mask[:, 1:].to(outputs.log_probs)
        count = outputs.label_mask.sum() if num_items_in_batch is None else num_items_in_batch
        loss = -(outputs.log_probs * weights).sum() / torch.as_tensor(count).clamp(min=1)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes  # as SFTTrainer: DDP averages, the count spans all ranks
        return (loss, outputs) if return_outputs else loss


def build_trainer(script_args: ProfVLMArguments, training_args: SFTConfig) -> ProfVLMSFTTrainer:
    """Model, processor, data, collator and LoRA config wired into the trainer."""
    from processing.processing_profvlm import ProfVLMProcessor

    base = require_profvlm_checkpoint(script_args.model)
    model = ProfVLMForConditionalGeneration.from_pretrained(base)
    if training_args.device.type == "cpu":  # SDPA's backward is slow at short CPU sequences: see cpu_attention
        use_cpu_training_attention(model)
    processor = ProfVLMProcessor.from_pretrained(base)
    labels = list(model.config.proficiency_labels)
    train, evaluation = load_datasets(script_args, training_args, labels, list(model.config.view_names),
                                      model.config.time_decimals, model.config.video_feature_source is None)
    features = None
    if script_args.features:
        if model.config.video_feature_source is not None:
            train, evaluation = drop_takes_without_feature_files(script_args.features, [train, evaluation])
            if len(train) == 0:
                raise ValueError(f"--features {script_args.features}: no training take has a released feature file.")
        features = load_feature_cache(script_args.features, model, processor, (train, evaluation))
        if script_args.frame_sampler:
            logger.warning("--frame_sampler %s is ignored: cached features were made with the processor's "
                           "default sampling.", script_args.frame_sampler)
    if features is not None and model.config.clip_seconds and script_args.snap_moments_to_tokens:
        train, evaluation = (None if rows is None else snapped_to_tokens(rows, features, model.config.time_decimals)
                             for rows in (train, evaluation))
    for option in ("projector_learning_rate", "projector_alignment_learning_rate", "lora_b_learning_rate_ratio"):
        value = getattr(script_args, option)
        if value is not None and value <= 0:
            raise ValueError(f"--{option} {value}: expected a number > 0.")
    if script_args.projector_alignment_steps < 0:
        raise ValueError(f"--projector_alignment_steps {script_args.projector_alignment_steps}: expected 0 (off) or "
                         "a number of steps.")
    for option in ("label_loss_weight", "time_loss_weight", "end_loss_weight"):
        if getattr(script_args, option) <= 0:
            raise ValueError(f"--{option} {getattr(script_args, option)}: expected a weight > 0 (1 = no extra "
                             "weight).")
    collator = ProfVLMCollator(processor, labels, features=features, frame_sampler=script_args.frame_sampler,
                               mark_label_tokens=script_args.label_loss_weight != 1.0,
                               mark_time_tokens=script_args.time_loss_weight != 1.0,
                               mark_end_tokens=script_args.end_loss_weight != 1.0)
    if training_args.train_sampling_strategy == "group_by_length":
        # Trainer's LengthGroupedSampler batches rows of similar length (less padding) from the `length` column: the
        # rendered chat's characters, a proxy for its tokens that needs no tokenizer pass.
        train, evaluation = (None if rows is None else rows.map(lambda row: {"length": len(collator.render(row)[0])},
                                                                desc="row lengths")
                             for rows in (train, evaluation))
        training_args.length_column_name = "length"
    if script_args.projector_alignment_steps > 0:
        align_on_cache(model, processor, features, train, labels, script_args, training_args)
    lora = default_lora_config(script_args.lora_r, script_args.lora_alpha, script_args.lora_dropout,
                               tuple(script_args.lora_target_modules))
    seen = None
    if script_args.log_seen_takes:
        seen = Path(training_args.output_dir) / "seen_takes" / f"rank{training_args.process_index}.jsonl"
    trainer = ProfVLMSFTTrainer(model=model, args=training_args, train_dataset=train, eval_dataset=evaluation,
                                processing_class=processor, data_collator=collator, peft_config=lora,
                                seen_takes_path=seen, label_loss_weight=script_args.label_loss_weight,
                                time_loss_weight=script_args.time_loss_weight,
                                end_loss_weight=script_args.end_loss_weight,
                                projector_learning_rate=script_args.projector_learning_rate,
                                lora_b_learning_rate_ratio=script_args.lora_b_learning_rate_ratio)
    trainer.script_args = script_args  # save_final records the training facts from them
    total, trainable = count_parameters(trainer.model)
    if training_args.process_index == 0:
        logger.info("Parameters: %s total, %s trainable (LoRA r=%d + projector); training from %s.", f"{total:,}",
                    f"{trainable:,}", script_args.lora_r, "cached features" if features else "pixels")
    return trainer


def snapped_to_tokens(rows, features: FeatureCache, time_decimals: int):
    """`--snap_moments_to_tokens`: the rows with their answers' moments at the times of the tokens that show them
    (the cache's token times of each take)."""
    from training.sft_data import snap_moments_to_tokens

    def snap(row: dict) -> dict:
        if not row["feedback"]:
            return {"feedback": row["feedback"]}
        times = (features.times_of(row["take_uid"]) or {}).get("times") or []
        return {"feedback": snap_moments_to_tokens(row["feedback"], times, time_decimals)}

    logger.info("Clips over the take: each moment in the answers is written at its video token's time.")
    return rows.map(snap, desc="moments on the token times")


def align_on_cache(model, processor, features: FeatureCache | None, train, labels: list[str],
                   script_args: ProfVLMArguments, training_args: SFTConfig) -> dict:
    """`--projector_alignment_steps`: align the projector on the cached features of the training takes (one row per
    take), before PEFT wraps the model, at the projector's learning rate. Resuming a run repeats it identically (it
    is seeded), then the checkpoint's weights replace it."""
    from training.projector_alignment import align_projector, label_token_ids

    if features is None:
        raise ValueError(f"--projector_alignment_steps {script_args.projector_alignment_steps} needs --features: it "
                         "trains the projector on the feature cache (training/extract_features.py).")
    takes = {}
    for row in train:  # one row per take
        takes.setdefault(row["take_uid"], row)
    cached, masks, time_mask = features.stack(list(takes), [row["view_names"] for row in takes.values()])
    targets = [labels.index(row["label"]) for row in takes.values()]
    rate = (script_args.projector_alignment_learning_rate or script_args.projector_learning_rate
            or training_args.learning_rate)
    device = model.device
    steps = {}
    if script_args.projector_alignment_moments:
        from training.projector_alignment import moment_step_targets, moment_word_ids

        moments = {uid: [] for uid in takes}
        # Every expert's moments of the take, as the answers write them (floored to the checkpoint's time digits):
        # a floored time lies at or before the step that shows the event, and a tie goes to the later step.
        for row in train:
            moments[row["take_uid"]] += [m["time"] for m in parse_moments(row["feedback"] or "")]
        times = features.prompt_kwargs(list(takes)).get("token_times")
        if times is None or not any(moments.values()):
            # One token per take has no time steps to tell apart, and data without moments nothing to point at.
            logger.info("--projector_alignment_moments: %s; the projector is aligned to the labels only.",
                        "one video token per take (no time steps)" if times is None else "the data has no moments")
        else:
            steps = {"step_targets": moment_step_targets([moments[uid] for uid in takes], [t["times"] for t in times],
                                                         model.config.num_video_tokens).to(device),
                     "step_ids": moment_word_ids(processor.tokenizer)}
    return align_projector(model, cached.to(device), masks.to(device), torch.tensor(targets, device=device),
                           label_token_ids(processor.tokenizer, labels), script_args.projector_alignment_steps,
                           learning_rate=rate, seed=training_args.seed,
                           time_mask=None if time_mask is None else time_mask.to(device), **steps)


def resolve_resume(training_args: SFTConfig) -> str | None:
    """`--resume_from_checkpoint PATH`, or `true`/`last` for the newest checkpoint in OUTPUT_DIR."""
    resume = training_args.resume_from_checkpoint
    if resume is not None and resume.lower() in ("true", "last"):
        resume = get_last_checkpoint(training_args.output_dir)
        if resume is None:
            raise FileNotFoundError(f"--resume_from_checkpoint {training_args.resume_from_checkpoint}: no "
                                    f"checkpoint-* folder in {training_args.output_dir}.")
    return resume


# The keys that make a checkpoint loadable with trust_remote_code: config.json's `auto_map` and `custom_pipelines`
# (where pipeline() reads them) and processor_config.json's `auto_map`.
_HUB_CODE_KEYS = {"config.json": ("auto_map", "custom_pipelines"), "processor_config.json": ("auto_map",)}


def carry_hub_code(base_dir: str | Path, final_dir: str | Path) -> list[str]:
    """Give the trained checkpoint the code its base checkpoint carries (`profvlm init` exported it once): the
    base's top-level *.py files and its `auto_map` / `custom_pipelines` entries. Returns the code files copied."""
    base_dir, final_dir = Path(base_dir), Path(final_dir)
    copied = []
    for module in sorted(base_dir.glob("*.py")):
        shutil.copy2(module, final_dir / module.name)
        copied.append(module.name)
    for name, keys in _HUB_CODE_KEYS.items():
        source, target = base_dir / name, final_dir / name
        if not (source.is_file() and target.is_file()):
            continue
        carried = {k: v for k, v in json.loads(source.read_text()).items() if k in keys}
        if carried:
            target.write_text(json.dumps({**json.loads(target.read_text()), **carried}, indent=2, sort_keys=True) + "\n")
    if not copied:
        logger.warning("%s carries no code files; %s loads only where this package is installed (`profvlm push` "
                       "exports the code).", base_dir, final_dir)
    return copied


def training_facts(script_args: ProfVLMArguments, train_rows, labels: list[str]) -> dict:
    """What the final checkpoint's config records about its training: the feedback word limit, the label and time
    tokens' loss weights, the label list, the
    dtype of the cached features (if any) and the training data's provenance (the dataset block of training/evaluation_provenance.py, for the train split,
    with the labels the rows were checked against)."""
    from training.evaluation_provenance import dataset_provenance

    from training.feature_cache import read_manifest

    takes = {script_args.train_split: len(set(train_rows["take_uid"]))} if train_rows is not None else None
    data = dataset_provenance(script_args.data_dir, script_args.train_split, takes, config=script_args.dataset_config)
    # Inference then runs the tower in the dtype the training features were made in (the device policy reads it).
    feature_dtype = read_manifest(script_args.features).get("dtype") if script_args.features else None
    return {
        "max_feedback_words": int(script_args.max_feedback_words),
        "max_moment_words": script_args.max_moment_words,
        "label_loss_weight": float(script_args.label_loss_weight),
        "time_loss_weight": float(script_args.time_loss_weight),
        "end_loss_weight": float(script_args.end_loss_weight),
        "proficiency_labels": list(labels),
        "training_data": {**data, "labels": list(labels), "views": script_args.views},
        "vision_feature_dtype": feature_dtype,
    }


def save_final(trainer: ProfVLMSFTTrainer, output_dir: str | Path, base_dir: str | Path | None = None,
               script_args: ProfVLMArguments | None = None) -> Path:
    """OUT/adapter (LoRA + projector) and OUT/final (merged model, processor, and the base checkpoint's code files
    and auto_map); rank 0 writes. Training is over: rank 0 merges the adapter into the trainer's model in place.
    The final config records the training facts (`training_facts`: max_feedback_words, training_data) and the
    label list, so evaluation, the model card and the demo read them instead of being told again. `base_dir` and
    `script_args` default to what `build_trainer` used."""
    output_dir = Path(output_dir)
    script_args = script_args or getattr(trainer, "script_args", None)
    trainer.save_model(str(output_dir / "adapter"))  # PEFT adapter; Trainer writes on the main process only
    final = output_dir / "final"
    if trainer.is_world_process_zero():
        merged = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload()
        base_dir = base_dir if base_dir is not None else merged.config._name_or_path  # the folder it was loaded from
        if script_args is not None:
            labels = list(merged.config.proficiency_labels)  # to_training_rows checked the data against them
            for key, value in training_facts(script_args, trainer.train_dataset, labels).items():
                setattr(merged.config, key, value)  # on the config before save_pretrained: config.json has them
        else:
            logger.warning("No training arguments given: %s/config.json records no max_feedback_words or "
                           "training_data.", final)
        merged.save_pretrained(final)
        trainer.processing_class.save_pretrained(final)
        carry_hub_code(base_dir, final)
        logger.info("Merged checkpoint written to %s", final)
    trainer.accelerator.wait_for_everyone()
    return final


def main(argv: list[str] | None = None) -> Path:
    """Parse options, train (resuming if asked), evaluate each epoch, and write OUT/adapter and OUT/final."""
    script_args, training_args = parse_args(argv)
    logging.basicConfig(format=f"%(asctime)s [rank {training_args.process_index}] %(levelname)s %(name)s: %(message)s")
    logger.setLevel(logging.INFO)
    trainer = build_trainer(script_args, training_args)
    trainer.train(resume_from_checkpoint=resolve_resume(training_args))
    trainer.save_state()  # OUT/trainer_state.json: steps taken and the loss log, as transformers' example scripts do
    final = save_final(trainer, training_args.output_dir, script_args.model, script_args)
    logger.info("Training done (global step %d).", trainer.state.global_step)
    return final


if __name__ == "__main__":
    from dataset_scripts.script_errors import run_with_one_line_errors

    sys.exit(run_with_one_line_errors("training/sft.py", main))
