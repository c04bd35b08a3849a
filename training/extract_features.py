"""Run ProfVLM's frozen video tower once per take and view and cache the pooled features (V, N, D).
A checkpoint on EgoExo4D's released features (`profvlm init --vision egoexo4d:omnivore_video`) has no tower: the same
cache is filled from ROOT/features/<part>/<take_uid>_<cam_id>_<stream_id>.pt, each view's vectors mean-pooled into
its temporal tokens' spans (training/released_features.py); a missing or unreadable file masks that view.

    python training/extract_features.py --model CKPT --data_dir ROOT --output_dir CACHE
    accelerate launch training/extract_features.py ...           (takes are sharded across the processes)
    ACCELERATE_USE_CPU=1 torchrun --nproc_per_node 2 training/extract_features.py ...

Writes CACHE/manifest.json (tower type, config + weights hash, pooling and temporal_tokens N, frame sampling and
normalisation, views, dtype) and one CACHE/features/<take_uid>.safetensors per take (an (N, D) tensor per present
view, and with N > 1 the tokens' times, which the training prompt states). A video that cannot be read (corrupt,
truncated) masks its view with a warning naming the file, like a missing one. Interrupted runs resume: takes already
cached are skipped. Train on it with `training/sft.py --features CACHE`.
"""
import argparse
import logging
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # `python training/extract_features.py` / `accelerate launch ...`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from accelerate import PartialState  # noqa: E402
from accelerate.utils import parse_flag_from_env  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from dataset_scripts.dataset_export import SkipReport  # noqa: E402
from dataset_scripts.script_errors import reject_renamed_flags  # noqa: E402
from modeling_profvlm.configuration_profvlm import require_profvlm_checkpoint  # noqa: E402
from modeling_profvlm.device_policy import add_device_arguments, resolve_device_policy  # noqa: E402
from modeling_profvlm.modeling_profvlm import ProfVLMForConditionalGeneration  # noqa: E402
from processing.video_io import VideoReadError  # noqa: E402
from training.feature_cache import (  # noqa: E402
    COMPATIBILITY_KEYS,
    FEATURES_DIR,
    MANIFEST_NAME,
    LEGACY_VERSION,
    CorruptFeatureCacheError,
    StaleFeatureCacheError,
    check_manifest,
    manifest_fingerprint,
    read_raw_manifest,
    read_take,
    take_path,
    write_manifest,
    write_take,
)
from training.released_features import cache_manifest, take_features  # noqa: E402
from training.sft_data import load_splits, row_videos  # noqa: E402

logger = logging.getLogger("training.extract_features")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see `--help`)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="ProfVLM checkpoint folder (its tower and processor are used)")
    parser.add_argument("--data_dir", required=True,
                        help="EgoExo4D root (real or synthetic) or a multi-view folder (metadata.jsonl/.csv + labels.json)")
    parser.add_argument("--views", nargs="+", default=None, help="extract only these views (default: every view)")
    parser.add_argument("--output_dir", required=True, help="feature cache folder (created; resumed when it exists)")
    parser.add_argument("--dataset_config", default="demonstrator",
                        help="builder config whose takes are cached (default: demonstrator = every labelled take)")
    parser.add_argument("--splits", nargs="+", default=["train", "validation"], help="splits whose takes are cached")
    add_device_arguments(parser)  # --device, --dtype: the shared device policy's overrides
    parser.add_argument("--num_workers", type=int, default=0, help="DataLoader workers that decode videos (a "
                        "checkpoint with clips over the take decodes in this process, each clip through the tower as "
                        "it is read)")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete a cache made by another tower/sampling/dtype instead of refusing it")
    return reject_renamed_flags(parser).parse_args(argv)


def collect_takes(data_dir: str, dataset_config: str, splits: list[str], rebuild: bool = True,
                  views: list[str] | None = None, **config_kwargs) -> dict[str, dict[str, str]]:
    """{take_uid: {view: path}} over the splits, sorted by take_uid (every rank sees the same order).
    `config_kwargs` go to the loader (`verify_files=False`: every listed view, videos on disk or not)."""
    takes = {}
    for dataset in load_splits(data_dir, dataset_config, splits, rebuild, views=views, **config_kwargs).values():
        for row in dataset:
            takes.setdefault(row["take_uid"], row_videos(row))
    return dict(sorted(takes.items()))


def prepare_cache(output: Path, manifest: dict, overwrite: bool, state: PartialState) -> None:
    """Rank 0 writes the manifest (or checks it, so a resume cannot mix towers); other ranks check it after."""
    with state.main_process_first():
        if (output / MANIFEST_NAME).is_file():
            try:
                if read_raw_manifest(output).get("version") == LEGACY_VERSION:  # readable as N = 1, not extendable
                    raise StaleFeatureCacheError(f"{output}: a version-1 feature cache (one vector per view, made "
                                                 "before temporal tokens); pass --overwrite to extract it again.")
                check_manifest(output, manifest, keys=COMPATIBILITY_KEYS + ("dtype",))
            except ValueError:
                if not (overwrite and state.is_main_process):
                    raise
                logger.warning("--overwrite: deleting the feature cache %s made by another tower/sampling.", output)
                shutil.rmtree(output / FEATURES_DIR, ignore_errors=True)
                write_manifest(output, manifest)
        elif state.is_main_process:
            write_manifest(output, manifest)


class TakeVideos(torch.utils.data.Dataset):
    """(take_uid, pixel_values_videos (V, T, 3, H, W), or (V, K, T, 3, H, W) with clips over the take, view_mask (V,),
    token times or None, unreadable [(view, path, error)]) per take, decoded by the processor. Token times are kept
    where the prompt states them (N > 1 temporal tokens, or clips). A view whose video cannot be read (corrupt,
    truncated, not a video) is masked like a missing one and listed in `unreadable`; when no view is readable the
    pixels, mask and times are None. With `clip_encoder` (clips over the take), each clip goes through it as it is
    decoded and the take's tower features (V, K x N, D) come in place of its pixels, which are never all held."""

    def __init__(self, takes: list[tuple[str, dict[str, str]]], processor,
                 clip_encoder: Callable[[torch.Tensor], torch.Tensor] | None = None):
        self.takes, self.processor = takes, processor
        self.streamed = {} if clip_encoder is None else {"clip_encoder": clip_encoder}

    def __len__(self) -> int:
        return len(self.takes)

    def __getitem__(self, i: int):
        take_uid, videos = self.takes[i]
        videos, unreadable = dict(videos), []
        while any(path is not None for path in videos.values()):
            try:
                # The processor's default (deterministic) sampling.
                out = self.processor.process_videos([videos], **self.streamed)
            except VideoReadError as err:
                if videos.get(err.view) is None:  # not one of this take's views: nothing to mask, so say it
                    raise
                unreadable.append((err.view, err.path, str(err)))
                videos[err.view] = None  # masked, as a missing file is; the other views are read again
                continue
            # The prompt states the tokens' times with N > 1 temporal tokens or clips over the take: keep them.
            times = self.processor.token_times(out["video_metadata"])[0] if self.processor.states_token_times else None
            inputs = out["video_features" if self.streamed else "pixel_values_videos"][0]
            return take_uid, inputs, out["view_mask"][0], times, unreadable
        return take_uid, None, None, None, unreadable


def pending_takes(output: Path, takes: dict, manifest: dict) -> list[tuple[str, dict]]:
    """Takes whose file is missing or unreadable (a corrupt file is reported and re-extracted)."""
    fingerprint, todo = manifest_fingerprint(manifest), []
    for take_uid, videos in takes.items():
        path = take_path(output, take_uid)
        if path.is_file():
            try:
                read_take(path, manifest["view_names"], manifest["feature_dim"], fingerprint,
                          manifest["temporal_tokens"], max_clips=(manifest.get("clips") or {}).get("max_clips"))
                continue
            except CorruptFeatureCacheError as err:
                logger.warning("%s -- extracting it again.", err)
        todo.append((take_uid, videos))
    return todo


@torch.no_grad()
def extract(args: argparse.Namespace) -> dict:
    """Extract this rank's shard of the takes; returns counts and the rate."""
    from processing.processing_profvlm import ProfVLMProcessor

    # PartialState does not read ACCELERATE_USE_CPU itself (Accelerator does); without it CPU ranks never meet.
    cpu = parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available() or args.device == "cpu"
    state = PartialState(cpu=cpu)
    model = ProfVLMForConditionalGeneration.from_pretrained(require_profvlm_checkpoint(args.model), dtype=torch.float32)
    processor = ProfVLMProcessor.from_pretrained(args.model)
    if model.config.video_feature_source is not None:  # no tower: the released vectors fill the cache
        return extract_released(args, model.config, processor, state)
    # The tower in bf16 on a GPU or a CPU with native bf16, float32 elsewhere (or as --dtype says).
    # One process may run on the device asked for; ranks of a launch get theirs from accelerate.
    device = torch.device(args.device) if args.device and state.num_processes == 1 else state.device
    policy = resolve_device_policy(device, args.dtype)
    dtype, device = policy.tower_dtype, policy.device
    output = Path(args.output_dir)
    manifest = cache_manifest(model, processor, dtype, source_model=str(args.model))  # hashes fp32 weights
    prepare_cache(output, manifest, args.overwrite, state)
    encoder = model.model
    del encoder.language_model, model.lm_head  # only the tower runs here; free the LM's memory
    encoder.vision_tower.to(device, dtype).eval()

    with state.local_main_process_first():  # it builds the dataset; the other ranks reuse its Arrow cache
        takes = collect_takes(args.data_dir, args.dataset_config, args.splits, rebuild=state.is_local_main_process,
                              views=args.views)
    shard = dict(list(takes.items())[state.process_index :: state.num_processes])
    todo = pending_takes(output, shard, manifest)
    logger.info("rank %d: %d takes in shard, %d cached already, %d to extract (%s, dtype %s)", state.process_index,
                len(shard), len(shard) - len(todo), len(todo), device, str(dtype).removeprefix("torch."))
    fingerprint, start, report = manifest_fingerprint(manifest), time.perf_counter(), SkipReport()
    tower_seconds, clips_encoded, capped, unreadable_takes = 0.0, 0, 0, {}
    streamed, workers = None, args.num_workers
    if processor.clip_seconds is not None:
        # Clips over the take: each clip through the tower as it is decoded, in this process where the tower is (the
        # views still decode in parallel threads), so a long take's pixels never exist all at once.
        def streamed(clip: torch.Tensor) -> torch.Tensor:
            nonlocal tower_seconds
            began = time.perf_counter()
            features = encoder.encode_clip(clip)
            tower_seconds += time.perf_counter() - began
            return features

        workers = 0
    loader = torch.utils.data.DataLoader(TakeVideos(todo, processor, streamed), batch_size=None, num_workers=workers)
    for take_uid, inputs, view_mask, times, unreadable in tqdm(loader, total=len(todo), unit="take",
                                                               desc=f"rank {state.process_index}",
                                                               disable=not state.is_local_main_process):
        for view, path, error in unreadable:
            logger.warning("%s -- view %s masked.", error, view)
            report.missing_video(view, path)
        if inputs is None:  # no readable view: not cached (a take needs one view); named at the end
            report.takes_without_video += 1
            unreadable_takes[take_uid] = unreadable[0][2]
            continue
        report.rows += 1
        if streamed is not None:  # (V, K x N, D): already through the tower, clip by clip
            features = inputs
            clips_encoded += int(view_mask.sum()) * (inputs.shape[1] // processor.temporal_tokens)
        else:  # (V, T, 3, H, W), one clip per view
            began = time.perf_counter()
            features = encoder.encode_views(inputs[None].to(device, dtype), view_mask[None].to(device))[0]
            tower_seconds += time.perf_counter() - began
            clips_encoded += int(view_mask.sum())
        capped += bool(times and times.get("clips_capped"))
        write_take(output, take_uid, features.cpu(), view_mask, manifest["view_names"], fingerprint, times)
    if report.lost_data:
        report.log(f"tower features of rank {state.process_index} -> {output}")
    seconds = time.perf_counter() - start
    state.wait_for_everyone()
    summary = {"rank": state.process_index, "extracted": report.rows, "skipped": len(shard) - len(todo),
               "seconds": round(seconds, 2), "takes_per_second": round(len(todo) / seconds, 3) if todo else None,
               "clips": clips_encoded,  # present (view, clip) pairs through the tower
               "tower_seconds_per_clip": round(tower_seconds / clips_encoded, 4) if clips_encoded else None,
               "clips_capped_takes": capped,  # takes longer than max_clips x clip_seconds: max_clips longer windows
               "masked_views": report.missing_videos, "masked_per_view": dict(report.missing_files),
               "takes_without_video": report.takes_without_video}
    logger.info("rank %d done: %s", state.process_index, summary)
    if unreadable_takes:  # every other take is cached (a rerun resumes); these need their files fixed or removed
        first, error = next(iter(unreadable_takes.items()))
        raise RuntimeError(f"{output}: {len(unreadable_takes)} take(s) have no readable video of any view and were not "
                           f"cached, e.g. {first} ({error}); replace those files, or delete them so that the take is "
                           "left out of the dataset, and run again.")
    if state.is_main_process:
        missing = [uid for uid in takes if not take_path(output, uid).is_file()]
        if missing:
            raise RuntimeError(f"{output}: {len(missing)} take(s) missing after extraction, e.g. {missing[:3]}.")
        logger.info("Feature cache %s complete: %d takes.", output, len(takes))
    return summary


def extract_released(args: argparse.Namespace, config, processor, state: PartialState) -> dict:
    """`extract` for a checkpoint on released features: this rank's shard of the takes from their feature files. The
    summary counts the views masked because their file is missing or unreadable, and the takes with no file at all
    (not cached: a take needs one view)."""
    from dataset_scripts.egoexo4d_proficiency import load_takes
    from training.released_features import released_manifest, require_egoexo4d_root

    require_egoexo4d_root(args.data_dir, config)
    output = Path(args.output_dir)
    manifest = released_manifest(config, processor, source_model=str(args.model))
    prepare_cache(output, manifest, args.overwrite, state)
    with state.local_main_process_first():  # every listed view: the videos need not be on disk, the features must
        takes = collect_takes(args.data_dir, args.dataset_config, args.splits, rebuild=state.is_local_main_process,
                              views=args.views, verify_files=False)
    metadata = load_takes(Path(args.data_dir))
    shard = dict(list(takes.items())[state.process_index :: state.num_processes])
    todo = pending_takes(output, shard, manifest)
    fingerprint, report, start, capped = manifest_fingerprint(manifest), SkipReport(), time.perf_counter(), 0
    for take_uid, videos in tqdm(todo, unit="take", desc=f"rank {state.process_index}",
                                 disable=not state.is_local_main_process):
        entry = take_features(args.data_dir, config, processor, metadata[take_uid], videos, report)
        if entry is not None:
            features, view_mask, times = entry
            capped += bool(times.get("clips_capped"))
            write_take(output, take_uid, features, view_mask, manifest["view_names"], fingerprint,
                       times if processor.states_token_times else None)
            report.rows += 1
    report.log(f"{config.video_feature_source} features of rank {state.process_index} -> {output}")
    seconds = time.perf_counter() - start
    state.wait_for_everyone()
    if todo and not report.rows and len(todo) == len(shard):  # an empty cache: say why here, not later in SFT
        why = report.first_unreadable or f"no file found, e.g. {report.first_missing}"
        raise RuntimeError(f"{output}: none of the {len(todo)} take(s) to extract had a usable "
                           f"{config.video_feature_source} feature file ({why}). A checkpoint made without --data_dir "
                           "takes the documented width; `profvlm init --vision "
                           f"{config.video_feature_source} --data_dir ROOT` reads it from the files.")
    summary = {"rank": state.process_index, "extracted": report.rows, "skipped": len(shard) - len(todo),
               "masked_views": report.missing_videos, "masked_per_view": dict(report.missing_files),
               "takes_without_features": report.takes_without_video, "clips_capped_takes": capped,
               "seconds": round(seconds, 2)}
    logger.info("rank %d done: %s", state.process_index, summary)
    return summary


def main(argv: list[str] | None = None) -> dict:
    """Entry point for `python training/extract_features.py` and `accelerate launch`."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    return extract(parse_args(argv))


if __name__ == "__main__":
    from dataset_scripts.script_errors import run_with_one_line_errors

    sys.exit(run_with_one_line_errors("training/extract_features.py", main))
