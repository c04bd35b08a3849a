# `profvlm predict --data_dir DIR --output_dir OUT`: many takes, decoded ahead of the model, batched, resumable.
"""Worker processes decode takes (the processor's own __call__) into a bounded prefetch queue while the main process
runs the model: `answer_takes`, the one path every prediction takes (the tower over takes x views in one forward per
batch, every label continuation in one LM pass, the feedback in one batched generate), each line its answer's
`to_dict()`. Each prediction is one JSON line written with a single write, so a killed run leaves whole lines
(a torn tail, were one ever left, is cut on resume) and a rerun skips the takes already written. Under `accelerate
launch` / torchrun every rank takes every world-size-th pending take into a file of its own; rank 0 merges them."""
from __future__ import annotations

import csv
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from dataset_scripts.script_errors import EXPECTED_ERRORS, one_line
from modeling_profvlm.answer import ProfVLMAnswer
from modeling_profvlm.answering import DEFAULT_MAX_NEW_TOKENS, answer_items, take_duration
from modeling_profvlm.label_scoring import unpadded_rows

if TYPE_CHECKING:
    from .batch_takes import TakeError, TakeJob

logger = logging.getLogger(__name__)

PREDICTIONS_FILE, ERRORS_FILE, CSV_FILE = "predictions.jsonl", "errors.jsonl", "predictions.csv"
DEFAULT_BATCH_SIZE = 4  # takes per model batch: 20 clips through the tower for 5-view takes
# Decoded takes each worker may hold ahead of the model (~25 MB each at 5 x 8 x 224 px); takes cut into clips are
# not prefetched: their clips stream through the tower in the main process (`predict_shard`).
PREFETCH_PER_WORKER = 2
DECODE_NICENESS = 10  # how much lower the decoding workers' CPU priority is than the model's


@dataclass
class BatchOptions:
    """How a batch run works: takes per batch, decoding workers (0: decode in the main process), feedback or not,
    its length, the challenge entries, and the progress bar."""

    batch_size: int = DEFAULT_BATCH_SIZE
    num_workers: int = min(2, os.cpu_count() or 1)
    feedback: bool = True
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    challenge: bool = False
    progress: bool = True
    # A checkpoint on released features (no tower) reads each take's feature files under this EgoExo4D root.
    feature_root: str | None = None


@dataclass
class BatchSummary:
    """What a run did: takes listed, predicted now, already in the output, unreadable; seconds of the predict loop."""

    takes: int
    predicted: int
    resumed: int
    errors: int
    seconds: float
    output_dir: str
    challenge: dict | None = None
    lines: list[dict] = field(default_factory=list, repr=False)
    demonstration: dict | None = None

    @property
    def takes_per_second(self) -> float:
        """Predicted takes per second of the predict loop (model load and merging excluded)."""
        return self.predicted / self.seconds if self.seconds > 0 else 0.0


# ---------------------------------------------------------------------------------------------- resumable JSONL
def append_line(handle, record: dict) -> None:
    """One JSON line in a single unbuffered write: a kill lands before or after it, never inside a buffer flush."""
    handle.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))


def read_lines(path: Path) -> list[dict]:
    """The complete lines of a JSONL file (a last line without its newline is a torn write and is ignored)."""
    if not path.is_file():
        return []
    lines = []
    for raw in path.read_bytes().split(b"\n")[:-1]:
        if raw.strip():
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError:
                logger.warning("%s: skipping a line that is not JSON: %r", path, raw[:80])
    return lines


def cut_torn_tail(path: Path) -> None:
    """Truncate `path` after its last newline, so appending never glues a new line to half of an old one."""
    if not path.is_file():
        return
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end != len(data):
        with open(path, "r+b") as f:
            f.truncate(end)


def rank_file(output: Path, name: str, rank: int) -> Path:
    """This rank's part of `name` under a launch (`predictions.rank1.jsonl`), merged by rank 0 at the end."""
    stem, suffix = name.rsplit(".", 1)
    return output / f"{stem}.rank{rank}.{suffix}"


def written_lines(output: Path) -> list[dict]:
    """Every prediction line in the output: the merged file, then any rank parts a killed launch left."""
    parts = sorted(output.glob("predictions.rank*.jsonl"))
    return [line for path in [output / PREDICTIONS_FILE, *parts] for line in read_lines(path)]


def is_complete(line: dict, options: BatchOptions) -> bool:
    """Whether a written line has what this run writes: a run with feedback or --challenge_json redoes the takes
    whose line lacks them (the merge keeps the newer line)."""
    return ("take_uid" in line and (not options.feedback or "feedback" in line)
            and (not options.challenge or "challenge" in line))


# ----------------------------------------------------------------------------------------------------- decoding
def _as_is(item):
    return item  # the DataLoader's collate step: one take per item, already in the processor's tensors


def _decode_in_the_background(worker_id: int) -> None:
    # The tower's threads meet at every op, so a decoder that preempts one of them stalls both; at a lower priority
    # the decoders take the cycles the model leaves (decoding needs a small fraction of the tower's time on a CPU).
    try:
        os.nice(DECODE_NICENESS)
    except OSError:  # a platform or sandbox without nice(): decoding still works, only unprioritised
        pass


class DecodedTakes(Dataset):
    """Take i -> its prompt's token ids and pixel tensors from the processor, or the errors.jsonl records of the
    views that could not be read (each view decoded alone to say which one). With `clip_encoder` (clips over the
    take), each clip goes through it as it is decoded and the take comes as "video_features" (1, V, K x N, D): a long
    take's pixels are never held all at once, as in `pipeline()`."""

    def __init__(self, jobs: list[TakeJob], processor,
                 clip_encoder: Callable[[torch.Tensor], torch.Tensor] | None = None):
        self.jobs, self.processor, self.prompt = jobs, processor, processor.build_prompt()
        self.streamed = {} if clip_encoder is None else {"clip_encoder": clip_encoder}

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, index: int) -> dict:
        job = self.jobs[index]
        try:
            batch = self.processor(text=[self.prompt], videos=[job.views], return_tensors="pt", return_metadata=True,
                                   **self.streamed)
        except EXPECTED_ERRORS as err:
            return {"index": index, "errors": [e.to_dict() for e in self._culprits(job, err)]}
        metadata = batch["video_metadata"]
        token_times = None
        if self.processor.states_token_times:
            token_times = self.processor.token_times(metadata)[0]["times"]
        inputs = "video_features" if self.streamed else "pixel_values_videos"
        return {"index": index, "prompt_row": unpadded_rows(batch["input_ids"], batch.get("attention_mask"))[0],
                inputs: batch[inputs], "view_mask": batch["view_mask"], "time_mask": batch.get("time_mask"),
                "duration": take_duration(metadata[0]), "token_times": token_times}

    def _culprits(self, job: TakeJob, err: BaseException) -> list[TakeError]:
        from .batch_takes import TakeError

        found = []
        for view, file in job.views.items():
            try:
                self.processor.process_videos([{view: file}])
            except EXPECTED_ERRORS as view_err:
                found.append(TakeError(job.take_name, view, file, one_line(view_err)))
        return found or [TakeError(job.take_name, None, None, one_line(err))]


def decoded_takes(jobs: list[TakeJob], processor, num_workers: int, dataset: Dataset | None = None):
    """Decoded takes in order; with workers, decoded in other processes at most PREFETCH_PER_WORKER takes ahead.
    `dataset`: what reads the takes instead of `DecodedTakes` (released feature files: `ReleasedFeatureTakes`)."""
    dataset = DecodedTakes(jobs, processor) if dataset is None else dataset
    if num_workers <= 0:
        return (dataset[i] for i in range(len(dataset)))
    loader = DataLoader(dataset, batch_size=None, num_workers=min(num_workers, max(1, len(jobs))), collate_fn=_as_is,
                        prefetch_factor=PREFETCH_PER_WORKER, worker_init_fn=_decode_in_the_background)
    return iter(loader)


# ------------------------------------------------------------------------------------------------------- model
@torch.no_grad()
def predict_batch(pipe, items: list[dict], jobs: list[TakeJob], options: BatchOptions) -> list[dict]:
    """The prediction lines of a batch of decoded takes (`answer_items`), with the challenge entries from the same
    tower features."""
    from .challenge_submission import challenge_entries

    model, processor = pipe.model, pipe.processor
    for item, job in zip(items, jobs):  # a released-feature take knows its masked views only once its files are read
        job.missing_views = item.get("missing_views", job.missing_views)
    # Takes of different lengths (clips over the take, or released features) are padded into one batch there.
    answered = answer_items(model, processor, items, feedback=options.feedback,
                            generate_kwargs={"max_new_tokens": options.max_new_tokens})
    entries = None
    if options.challenge:
        entries = challenge_entries(model, processor, answered.scores.prompt_rows, answered.scores.video_features,
                                    answered.view_mask, answered.scores.time_mask)
    return [prediction_line(job, answer, options, None if entries is None else entries[b])
            for b, (job, answer) in enumerate(zip(jobs, answered.answers))]


def prediction_line(job: TakeJob, answer: ProfVLMAnswer, options: BatchOptions, challenge: dict | None) -> dict:
    """One line of predictions.jsonl: the take (uid, name, the views it lacked, its reference level when the data has
    one), its answer's `to_dict()` (without feedback and moments under --no_feedback) and the challenge entries."""
    line = {"take_uid": job.take_uid, "take_name": job.take_name, **answer.to_dict(),
            "missing_views": job.missing_views}
    if not options.feedback:
        del line["feedback"], line["moments"]
    if job.reference is not None:
        line["reference"] = job.reference
    if challenge is not None:
        line["challenge"] = challenge
    return line


# ------------------------------------------------------------------------------------------------------ outputs
def write_csv(path: Path, lines: list[dict], labels: list[str]) -> None:
    """predictions.csv: one row per take, one probability column per level (and the reference when known)."""
    with_reference = any("reference" in line for line in lines)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["take_uid", "take_name", "proficiency", *labels] + (["reference"] if with_reference else []))
        for line in lines:
            probabilities = [f"{line['probabilities'].get(label, float('nan')):.6f}" for label in labels]
            reference = [line.get("reference", "")] if with_reference else []
            writer.writerow([line["take_uid"], line["take_name"], line["proficiency"], *probabilities, *reference])
    os.replace(tmp, path)


def merge_outputs(output: Path, jobs: list[TakeJob], options: BatchOptions) -> list[dict]:
    """Rank 0 at the end: one line per take (the newest complete one) in the order of the takes, then any lines of
    takes from other runs; rank parts and their errors folded into predictions.jsonl / errors.jsonl."""
    newest: dict[str, dict] = {}
    for line in written_lines(output):
        if is_complete(line, options) or line.get("take_uid") not in newest:
            newest[line.get("take_uid")] = line
    order = [job.take_uid for job in jobs if job.take_uid in newest]
    order += [uid for uid in newest if uid not in set(order)]
    lines = [newest[uid] for uid in order]
    tmp = output / (PREDICTIONS_FILE + ".tmp")
    tmp.write_bytes(b"".join((json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8") for line in lines))
    os.replace(tmp, output / PREDICTIONS_FILE)
    error_parts = sorted(output.glob("errors.rank*.jsonl"))
    if error_parts:
        with open(output / ERRORS_FILE, "ab", buffering=0) as f:
            for part in error_parts:
                for record in read_lines(part):
                    append_line(f, record)
    for part in [*output.glob("predictions.rank*.jsonl"), *error_parts]:
        part.unlink()
    return lines


# ----------------------------------------------------------------------------------------------------- the run
def _launch_state(device: str | None):
    """accelerate's PartialState under a multi-process launch (WORLD_SIZE > 1), else None (one process)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    # PartialState does not read ACCELERATE_USE_CPU itself (Accelerator does); without it CPU ranks never meet.
    cpu = parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available() or device == "cpu"
    return PartialState(cpu=cpu)


def predict_shard(pipe, shard: list[TakeJob], unreadable: list[TakeError], predictions_path: Path, errors_path: Path,
                  options: BatchOptions, desc: str, show: bool) -> tuple[int, int]:
    """Decode `shard` ahead of the model, predict it batch by batch, append each line as it is made; the takes that
    cannot be read (and `unreadable`, found before decoding) go to `errors_path`. Returns (predicted, failed)."""
    predicted, failed = 0, 0
    with open(predictions_path, "ab", buffering=0) as out, open(errors_path, "wb", buffering=0) as errors:
        for error in unreadable:
            append_line(errors, error.to_dict())
        bar = tqdm(total=len(shard), unit="take", desc=desc, disable=not show)
        waiting: list[dict] = []

        def flush():
            nonlocal predicted
            if waiting:
                for line in predict_batch(pipe, waiting, [shard[item["index"]] for item in waiting], options):
                    append_line(out, line)
                predicted += len(waiting)
                bar.update(len(waiting))
                waiting.clear()

        reader, workers = None, options.num_workers
        if options.feature_root is not None:
            from .released_takes import ReleasedFeatureTakes

            reader = ReleasedFeatureTakes(shard, pipe.processor, pipe.model.config, options.feature_root)
        elif pipe.model.config.clip_seconds is not None:
            # Clips over the take: the tower encodes each clip as it is decoded, here, where the model is (the views
            # still decode in parallel threads), so a batch holds features, never a long take's pixels.
            reader, workers = DecodedTakes(shard, pipe.processor, clip_encoder=pipe.model.model.encode_clip), 0
        for item in decoded_takes(shard, pipe.processor, workers, reader):
            if "errors" in item:
                for record in item["errors"]:
                    append_line(errors, record)
                failed += 1
                bar.update(1)
                continue
            waiting.append(item)
            if len(waiting) == options.batch_size:
                flush()
        flush()
        bar.close()
    return predicted, failed


def run_batch_predict(model: str, data_dir: str, output_dir: str, *, split: str | None = None,
                      takes_file: str | None = None, challenge_json: str | None = None,
                      demonstration_json: str | None = None, options: BatchOptions | None = None,
                      device: str | None = None, dtype: str | None = None) -> BatchSummary:
    """Predict every take of `data_dir` into `output_dir` (predictions.jsonl, predictions.csv, errors.jsonl), resuming
    what is already there; with `challenge_json`, also the challenge submission in the order of the takes; with
    `demonstration_json`, the demonstration-proficiency file (every take's categorised moments)."""
    from modeling_profvlm.configuration_profvlm import ProfVLMConfig, require_profvlm_checkpoint
    from modeling_profvlm.pipeline_profvlm import load_proficiency_pipeline

    from .batch_takes import find_takes
    from .challenge_submission import challenge_label_index, write_submission

    options = options or BatchOptions()
    options.challenge = options.challenge or challenge_json is not None
    if demonstration_json is not None and not options.feedback:
        raise ValueError("--demonstration_json: its entries are the feedback's timed moments; drop --no_feedback.")
    if options.batch_size < 1:
        raise ValueError(f"--batch_size {options.batch_size}: expected 1 or more takes per batch.")
    config = ProfVLMConfig.from_pretrained(require_profvlm_checkpoint(model))
    view_names, labels = list(config.view_names), list(config.proficiency_labels)
    if options.challenge:
        challenge_label_index(labels)
    state = _launch_state(device)
    rank, world = (0, 1) if state is None else (state.process_index, state.num_processes)
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)

    released = config.video_feature_source is not None  # no tower: the takes' feature files, not their videos
    if released:
        from training.released_features import require_egoexo4d_root

        require_egoexo4d_root(data_dir, config)  # before any take is looked for
    options.feature_root = data_dir if released else None

    def find():  # rank 0 builds an EgoExo4D split first; the other ranks then reuse its Arrow cache
        return find_takes(data_dir, view_names, split, takes_file, rebuild=rank == 0, verify_files=not released)

    if state is None:
        kind, jobs, unreadable = find()
    else:
        with state.main_process_first():
            kind, jobs, unreadable = find()
    if challenge_json is not None and kind != "egoexo4d":
        raise ValueError(f"--challenge_json: {data_dir} is not an EgoExo4D root (takes.json); the submission names "
                         "Ego-Exo4D takes.")
    predictions_path = output / PREDICTIONS_FILE if state is None else rank_file(output, PREDICTIONS_FILE, rank)
    errors_path = output / ERRORS_FILE if state is None else rank_file(output, ERRORS_FILE, rank)
    if rank == 0:
        cut_torn_tail(output / PREDICTIONS_FILE)
    cut_torn_tail(predictions_path)  # each file has one writer, and only it cuts
    if state is not None:
        state.wait_for_everyone()
    done = {line["take_uid"] for line in written_lines(output) if is_complete(line, options)}
    pending = [job for job in jobs if job.take_uid not in done]
    shard = pending[rank::world]
    if state is not None:
        state.wait_for_everyone()  # every rank read the same done set before any rank writes: one sharding
        if rank == 0:
            (output / ERRORS_FILE).write_bytes(b"")  # this run's errors only; the ranks' parts are added at the end

    pipe = load_proficiency_pipeline(model, state.device if state is not None else device, dtype)
    pipe.model.eval()
    start = time.perf_counter()
    predicted, failed = predict_shard(pipe, shard, unreadable if rank == 0 else [], predictions_path, errors_path,
                                      options, f"predicting (rank 0's share of {world})" if world > 1 else "predicting",
                                      show=options.progress and rank == 0)
    seconds = time.perf_counter() - start

    if state is not None:
        state.wait_for_everyone()
        counts = torch.tensor([predicted, failed])
        if state.num_processes > 1:
            import torch.distributed as dist

            dist.all_reduce(counts)
        predicted, failed = counts.tolist()
        if rank != 0:
            return BatchSummary(len(jobs), predicted, len(done), failed + len(unreadable), seconds, str(output))
    lines = merge_outputs(output, jobs, options)
    write_csv(output / CSV_FILE, lines, labels)
    challenge = None
    if challenge_json is not None:
        challenge = write_submission(challenge_json, lines, [job.take_name for job in jobs])
    demonstration = None
    if demonstration_json is not None:
        from .demonstration_file import write_demonstration_file

        # Every listed take, also the ones whose videos could not be decoded (an empty list there).
        demonstration = write_demonstration_file(demonstration_json, lines, [job.take_uid for job in jobs])
    return BatchSummary(len(jobs), predicted, len(jobs) - len(pending), failed + len(unreadable), seconds,
                        str(output), challenge, lines, demonstration)


def report_summary(summary: BatchSummary, challenge_json: str | None = None,
                   demonstration_json: str | None = None) -> str:
    """The lines `profvlm predict --data_dir` prints at the end of a run."""
    out = [f"{summary.predicted} takes predicted in {summary.seconds:.1f} s ({summary.takes_per_second:.2f} takes/s), "
           f"{summary.resumed} already in {summary.output_dir}, {summary.errors} unreadable"
           + (f" (see {Path(summary.output_dir) / ERRORS_FILE})" if summary.errors else "")]
    out.append(f"  -> {Path(summary.output_dir) / PREDICTIONS_FILE}, {Path(summary.output_dir) / CSV_FILE}")
    from .report import text_bar  # the one-take report's bars

    levels = [line["proficiency"] for line in summary.lines]
    for level in dict.fromkeys(next(iter(summary.lines))["probabilities"]) if summary.lines else []:
        count = levels.count(level)
        out.append(f"  {level:<20} {text_bar(count / len(levels), 20)}  {count}")
    if summary.challenge is not None:
        c = summary.challenge
        out.append(f"  -> challenge submission {challenge_json}: {c['takes']} takes; {c['fallback']} lack a view and "
                   "took that entry from the views they have"
                   + (f"; {len(c['missing'])} listed takes have no prediction (unreadable), e.g. {c['missing'][:3]}"
                      if c["missing"] else ""))
    if summary.demonstration is not None:
        d = summary.demonstration
        out.append(f"  -> demonstration file {demonstration_json}: {d['takes']} takes, {d['entries']} timed entries; "
                   f"{d['empty']} takes with none" + (f" ({len(d['unpredicted'])} unreadable)" if d["unpredicted"] else ""))
    return "\n".join(out)


def add_batch_arguments(parser) -> None:
    """The many-takes options of `profvlm predict` (`--data_dir` switches the command to them)."""
    group = parser.add_argument_group("many takes (--data_dir)")
    group.add_argument("--data_dir", help="predict every take of an EgoExo4D root (with --split or --takes_file), a "
                                          "folder dataset, or a folder of take subfolders holding <view>.mp4 files")
    group.add_argument("--output_dir", help="where predictions.jsonl, predictions.csv and errors.jsonl go (a rerun "
                                            "resumes: takes already there are skipped)")
    group.add_argument("--split", help="the split to predict (EgoExo4D: train, validation; folder dataset: any)")
    group.add_argument("--takes_file", help="EgoExo4D: a JSON list of take names (e.g. the official test list), "
                                            "predicted in its order")
    group.add_argument("--challenge_json", help="EgoExo4D: also write the demonstrator-proficiency challenge "
                                                "submission here, in the order of the takes")
    group.add_argument("--demonstration_json", help="also write the demonstration-proficiency file here: per take, each "
                                                    "timed good execution / tip with its probability")
    group.add_argument("--batch_size", type=int, default=DEFAULT_BATCH_SIZE,
                       help=f"takes per model batch (default {DEFAULT_BATCH_SIZE})")
    group.add_argument("--num_workers", type=int, default=BatchOptions.num_workers,
                       help="processes decoding ahead of the model (default: up to 2; 0 decodes in the main process). "
                            "A checkpoint with clips over the take decodes in the main process, each clip "
                            "through the tower as it is read, so a long take is never held as pixels")


def run_batch_command(args) -> int:
    """`profvlm predict --data_dir DIR --output_dir OUT`: the run, then its summary (on rank 0 of a launch)."""
    if args.output_dir is None:
        raise ValueError("--data_dir needs --output_dir, the folder for predictions.jsonl, predictions.csv and "
                         "errors.jsonl.")
    given = [flag for flag, value in (("--ego", args.ego), ("--exo", args.exo), ("--view", args.view),
                                      ("--json", args.json)) if value]
    if given:
        raise ValueError(f"{' '.join(given)} name one take; with --data_dir every take comes from the folder.")
    options = BatchOptions(batch_size=args.batch_size, num_workers=args.num_workers, feedback=not args.no_feedback,
                           max_new_tokens=args.max_new_tokens)
    summary = run_batch_predict(args.model, args.data_dir, args.output_dir, split=args.split,
                                takes_file=args.takes_file, challenge_json=args.challenge_json,
                                demonstration_json=args.demonstration_json, options=options, device=args.device,
                                dtype=args.dtype)
    if int(os.environ.get("RANK", "0")) == 0:  # one summary for a launch, from the rank that merged
        print(report_summary(summary, args.challenge_json, args.demonstration_json))
    # Some unreadable takes are a normal batch outcome; none readable at all is a failed run for a script to see.
    return 1 if summary.errors and not (summary.predicted or summary.resumed) else 0


__all__ = ["BatchOptions", "BatchSummary", "CSV_FILE", "ERRORS_FILE", "PREDICTIONS_FILE", "add_batch_arguments",
           "append_line", "cut_torn_tail", "merge_outputs", "predict_batch", "predict_shard", "prediction_line",
           "read_lines", "report_summary", "run_batch_command", "run_batch_predict"]
