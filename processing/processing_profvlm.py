# ProfVLMProcessor: a take's camera views -> pixel_values_videos + view_mask; text -> input_ids with <video> expanded.
import json
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from transformers import BatchFeature
from transformers.processing_utils import ProcessorMixin
from transformers.utils import cached_file

from modeling_profvlm.configuration_profvlm import ProfVLMConfig, raw_video_refused
from modeling_profvlm.profvlm_facts import (
    DEFAULT_MAX_CLIPS,
    VIDEO_TOKEN,
    VIEW_NAMES,
    check_clip_options,
    check_time_decimals,
    parse_feedback_continuation,
)
from modeling_profvlm.take_inputs import split_takes, take_views
from processing.frame_sampling import FRAME_SAMPLERS, clip_windows, clips_capped, sample_frame_indices, snap_to_keyframes
from modeling_profvlm.tower_adapter import (
    TOWER_FAMILIES,
    frames_per_time_step,
    tower_family,
    tower_image_size,
    token_start_frames,
)
from processing.text_format import CHAT_TEMPLATE, DEFAULT_INSTRUCTION, build_messages, expand_video_placeholder
from processing.take_clips import CallerThreadEncoder, probe_view, read_view_clips
from processing.video_io import DEFAULT_FPS, frames_to_rgb, keyframes_near, probe_video, read_frames_with_times

# A processor built by hand without a normalisation gets the paper's tower's (TimeSformer checkpoints use 0.45/0.225,
# not ImageNet's 0.485/0.229). A checkpoint's processor takes its model's (`ProfVLMProcessor.from_model_config`).
TIMESFORMER_MEAN = TOWER_FAMILIES["timesformer"].image_mean
TIMESFORMER_STD = TOWER_FAMILIES["timesformer"].image_std

# The processor's settings that are facts of its model (`model_facts`): a checkpoint's processor_config.json must
# agree with its config.json on each.
MODEL_FACTS = ("num_frames", "image_size", "frames_per_time_step", "image_mean", "image_std", "temporal_tokens",
               "num_video_tokens", "video_token", "view_names", "time_decimals", "clip_seconds", "max_clips",
               "video_feature_source")


# Enough for a batch of a few 5-view takes; decoding threads hold one view's frames each (~8 MB at 448 px).
_MAX_DECODE_WORKERS = 16


class ProfVLMProcessor(ProcessorMixin):
    """Tokenizer plus a torch video pipeline (decode with PyAV, sample T frames per view, resize the shorter side
    to `image_size`, centre-crop, normalise). torchvision cannot be installed here, so there is no
    `image_processor`. One `video_token` in a text stands for one take (all of its views).

    With `clip_seconds` (the model's, `ProfVLMConfig.clip_seconds`) each view is K clips of T frames, one per window of
    `clip_seconds` laid end to end over the take (`frame_sampling.clip_windows`, at most `max_clips`), and the take's
    `<video>` becomes K x temporal_tokens timed tokens."""

    def __init__(
        self,
        tokenizer=None,
        chat_template: str | None = None,
        video_token: str = VIDEO_TOKEN,
        num_video_tokens: int = 1,
        num_frames: int | None = None,
        image_size: int | None = None,
        image_mean: list[float] | None = None,
        image_std: list[float] | None = None,
        view_names: list[str] | None = None,
        frame_sampler: str = "uniform",
        snap_to_keyframes: bool = False,
        temporal_tokens: int = 1,
        frames_per_time_step: int = 1,
        time_decimals: int = 0,
        clip_seconds: float | None = None,
        max_clips: int = DEFAULT_MAX_CLIPS,
        video_feature_source: str | None = None,
        **kwargs,
    ):
        if num_frames is None or image_size is None:  # the tower's facts: the processor has no numbers of its own
            raise ValueError(f"ProfVLMProcessor needs its tower's num_frames and image_size (got num_frames="
                             f"{num_frames}, image_size={image_size}): build it with "
                             "ProfVLMProcessor.from_model_config(config, tokenizer), or load a checkpoint's with "
                             "ProfVLMProcessor.from_pretrained(path).")
        self.video_token, self.num_video_tokens, self.num_frames = video_token, num_video_tokens, num_frames
        # The model's temporal tokens per take and the frames one tower time step covers (`tower_adapter`): with
        # N > 1 each token is written into the prompt with its time.
        self.temporal_tokens, self.frames_per_time_step = int(temporal_tokens), int(frames_per_time_step)
        # Digits after the second in the prompt's token times (the model's `time_decimals`; 0: whole seconds).
        self.time_decimals = check_time_decimals(time_decimals, "ProfVLMProcessor time_decimals")
        # Clips over the whole take (the model's `clip_seconds` / `max_clips`; None: one clip over the whole take).
        self.clip_seconds, self.max_clips = check_clip_options(clip_seconds, max_clips, "ProfVLMProcessor")
        # The model's released-feature source (`ProfVLMConfig.video_feature_source`): such a model takes no video.
        self.video_feature_source = video_feature_source
        self.image_size, self.frame_sampler, self.snap_to_keyframes = image_size, frame_sampler, snap_to_keyframes
        self.image_mean = list(image_mean if image_mean is not None else TIMESFORMER_MEAN)
        self.image_std = list(image_std if image_std is not None else TIMESFORMER_STD)
        self.view_names = list(view_names if view_names is not None else VIEW_NAMES)
        super().__init__(tokenizer, chat_template=chat_template or CHAT_TEMPLATE, **kwargs)
        if frame_sampler not in FRAME_SAMPLERS:
            raise ValueError(f"unknown frame_sampler {frame_sampler!r}; expected one of {sorted(FRAME_SAMPLERS)}.")
        if video_token not in tokenizer.get_vocab():
            raise ValueError(f"the tokenizer has no {video_token!r} token; add it as a special token first.")
        self.video_token_id = tokenizer.convert_tokens_to_ids(video_token)

    @classmethod
    def from_model_config(cls, config: ProfVLMConfig, tokenizer, **overrides) -> "ProfVLMProcessor":
        """The processor of a model with `config`: its tower's frames, size, time steps and normalisation, its
        `<video>` expansion and its views (`model_facts`). `overrides` go to the constructor (e.g. `frame_sampler`)."""
        return cls(tokenizer=tokenizer, **{**model_facts(config), **overrides})

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, cache_dir=None,
                        force_download: bool = False, local_files_only: bool = False, token=None,
                        revision: str = "main", **kwargs) -> "ProfVLMProcessor":
        """`ProcessorMixin.from_pretrained`, then, when the same folder or repo holds a ProfVLM config.json, a check
        that the processor agrees with that model on every fact of `MODEL_FACTS`: a one-line ValueError naming the
        key and both values otherwise. A config.json from before `image_mean`/`image_std` were recorded in it has
        no normalisation to compare, so the processor's own is kept unchecked."""
        hub = {"cache_dir": cache_dir, "force_download": force_download, "local_files_only": local_files_only,
               "token": token, "revision": revision}
        loaded = super().from_pretrained(pretrained_model_name_or_path, **hub, **kwargs)
        config = _model_config_next_to(pretrained_model_name_or_path, subfolder=kwargs.get("subfolder", ""), **hub)
        if config is not None:
            processor = loaded[0] if isinstance(loaded, tuple) else loaded  # (processor, unused) if asked for
            folder = os.path.join(str(pretrained_model_name_or_path), kwargs.get("subfolder") or "")
            where = os.path.join(folder, "processor_config.json")
            processor.check_matches_model(config, where, overridden=frozenset(kwargs))
        return loaded

    def check_matches_model(self, config: ProfVLMConfig, where: str = "the processor",
                            overridden: frozenset[str] = frozenset()) -> None:
        """A one-line ValueError when this processor disagrees with the model of `config` on a fact of `MODEL_FACTS`
        (`where` names the processor's file; a key in `overridden` was passed to `from_pretrained` instead).
        The normalisation is compared only when `config` records it."""
        expected = model_facts(config)
        family = tower_family(config.vision_config)
        source = {"num_frames": f"vision_config.{family.frames_key}",
                  "image_size": f"vision_config.{family.image_size_key}",
                  "frames_per_time_step": f"the {family.name} tower's frames per time step"}
        for key in MODEL_FACTS:
            if key in ("image_mean", "image_std") and config.image_mean is None:
                continue
            got, want = getattr(self, key), expected[key]
            if _same(got, want):
                continue
            if key in overridden:
                mine, fix = f"from_pretrained({key}={got!r})", f"drop the {key} argument"
            else:
                mine, fix = f"{where} {key}={got!r}", f"set {key} to {want!r} there"
            raise ValueError(f"{mine} disagrees with the model's config.json ({source.get(key, key)}={want!r}): a "
                             f"processor takes its model's facts; {fix}, or rebuild the processor with "
                             "ProfVLMProcessor.from_model_config(config, tokenizer).")

    def post_process_feedback(self, texts: list[str]) -> list[str]:
        """The feedback in each generated text, where a text is what the model generated right after its answer's
        label line `Proficiency: <label>` (`parse_feedback_continuation`: the `Feedback:` prefix and surrounding
        whitespace go; off-format text comes back stripped, as generated)."""
        return [parse_feedback_continuation(text) for text in texts]

    @property
    def model_input_names(self) -> list[str]:
        """The keys `__call__` returns for the model (`time_mask` with clips over the take)."""
        names = ["input_ids", "attention_mask", "pixel_values_videos", "view_mask"]
        return names + ["time_mask"] if self.clip_seconds is not None else names

    @property
    def states_token_times(self) -> bool:
        """Whether each take's prompt states its video tokens' times: N > 1 temporal tokens or clips over the take."""
        return self.temporal_tokens > 1 or self.clip_seconds is not None

    def build_prompt(self, instruction: str = DEFAULT_INSTRUCTION) -> str:
        """The inference prompt: the chat template applied to `build_messages()`, ending with the assistant header."""
        return self.apply_chat_template(build_messages(instruction=instruction), add_generation_prompt=True)

    def __call__(
        self,
        text=None,
        videos=None,
        return_tensors="pt",
        frame_sampler: str | None = None,
        seed: int | None = None,
        clip_encoder: Callable[[torch.Tensor], torch.Tensor] | None = None,
        **kwargs,
    ) -> BatchFeature:
        """`text`: a string or list; each `video_token` is one take. `videos`: one take or a list of takes
        (`modeling_profvlm.take_inputs`: a dict {view name: path or frames}, a list in view order (None = missing)
        or a single clip (the first view)).
        Returns input_ids, attention_mask, pixel_values_videos (B, V, T, 3, H, W) and view_mask (B, V); with
        `clip_seconds`, pixel_values_videos (B, V, K, T, 3, H, W) and time_mask (B, K) instead (`process_videos`).
        `frame_sampler`/`seed` override the sampler for this call; `clip_encoder` streams clips through the tower
        (see `process_videos`)."""
        if text is None and videos is None:
            raise ValueError("ProfVLMProcessor needs `text`, `videos` or both; got neither.")
        return_metadata = kwargs.pop("return_metadata", False)
        return_offsets = kwargs.pop("return_text_replacement_offsets", False)
        token_times = kwargs.pop("token_times", None)
        data = self.process_videos(videos, frame_sampler, seed, clip_encoder) if videos is not None else {}
        if videos is not None and self.states_token_times:
            token_times = self.token_times(data["video_metadata"])
        if not return_metadata:
            data.pop("video_metadata", None)
        if text is not None:
            texts = [text] if isinstance(text, str) else list(text)
            num_placeholders = sum(t.count(self.video_token) for t in texts)
            if videos is not None and num_placeholders != len(data["view_mask"]):
                raise ValueError(
                    f"expected one {self.video_token!r} per take: got {len(data['view_mask'])} takes in `videos` "
                    f"and {num_placeholders} {self.video_token!r} in `text`."
                )
            expanded = self._video_replacements(num_placeholders, token_times)
            texts, offsets = self.get_text_with_replacements(texts, videos_replacements=expanded)
            data.update(self.tokenizer(texts, **{"padding": True, **kwargs}))
            if return_offsets:
                data["text_replacement_offsets"] = offsets
        return BatchFeature(data, tensor_type=return_tensors, skip_tensor_conversion=self.skip_tensor_conversion)

    def token_times(self, video_metadata: list) -> list[dict]:
        """Per take, {"times": the start time in seconds of each video token (N temporal tokens per clip, K clips in
        time order: K x N), "duration": seconds}, from the first present view's sampled frame times (the views of a
        take are frame-aligned); with clips over the take also "clips_capped" (the take needed more than max_clips
        windows, so its K windows are longer than clip_seconds). This is what a feature cache stores so that a prompt
        built without the videos says the same times."""
        out = []
        for b, views in enumerate(video_metadata):
            meta = next((m for m in views if m is not None), None)
            if meta is None or meta.get("times") is None:
                raise ValueError(f"take {b}: no sampled frame times in the video metadata; the prompt of a model with "
                                 f"temporal_tokens={self.temporal_tokens}, clip_seconds={self.clip_seconds} needs them.")
            clips = int(meta.get("clips", 1))
            per_clip = len(meta["times"]) // clips
            starts = token_start_frames(per_clip, self.frames_per_time_step, self.temporal_tokens)
            times = [float(meta["times"][k * per_clip + i]) for k in range(clips) for i in starts]
            entry = {"times": times, "duration": meta.get("duration")}
            if "clips" in meta:  # clips over the take: whether the windows were stretched to stay within max_clips
                entry["clips_capped"] = bool(meta.get("clips_capped", False))
            out.append(entry)
        return out

    def _video_replacements(self, num_placeholders: int, token_times: list[dict] | None) -> list[str]:
        """What each take's `<video>` expands to: today's placeholders with one temporal token and one clip; with
        N > 1 or clips over the take, the take's duration and each token's time before its placeholders
        (`expand_video_placeholder`): N per clip, K x N with K clips."""
        if not self.states_token_times:
            return [expand_video_placeholder(self.num_video_tokens, video_token=self.video_token)] * num_placeholders
        if token_times is None or len(token_times) != num_placeholders:
            got = "none" if token_times is None else f"{len(token_times)}"
            raise ValueError(
                f"this processor's model has temporal_tokens={self.temporal_tokens}, clip_seconds={self.clip_seconds}: "
                f"each take's prompt states its tokens' times, so pass `videos`, or `token_times` (one "
                f"{{'times': [...], 'duration': s}} per take, as a feature cache stores them) for each of the "
                f"{num_placeholders} {self.video_token!r}; got {got}."
            )
        out = []
        for b, entry in enumerate(token_times):
            times = list(entry["times"])
            if self.clip_seconds is None and len(times) != self.temporal_tokens:
                raise ValueError(f"token_times[{b}] has {len(times)} times; expected temporal_tokens="
                                 f"{self.temporal_tokens}.")
            clips, rest = divmod(len(times), self.temporal_tokens)
            if self.clip_seconds is not None and (rest or not 1 <= clips <= self.max_clips):
                raise ValueError(f"token_times[{b}] has {len(times)} times; expected K x temporal_tokens="
                                 f"{self.temporal_tokens} for K = 1..max_clips={self.max_clips} clips.")
            out.append(expand_video_placeholder(self.num_video_tokens, times, entry.get("duration"), self.video_token,
                                                self.time_decimals))
        return out

    def process_videos(self, videos, frame_sampler: str | None = None, seed: int | None = None,
                       clip_encoder: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict:
        """Video side only: {"pixel_values_videos": float32 (B, V, T, 3, S, S), "view_mask": long (B, V),
        "video_metadata": per take, per view a dict or None (a missing view)}. A view's dict: "indices" (the T
        frames read, ranks in presentation order), "num_frames", "sampler", "repeated", "fps" (a VFR file's average;
        None for decoded frames), "source", "times" (T floats: the presentation time in seconds, from the view's
        first frame, of the frame shown at each sample), "duration" (the view's length in seconds) and
        "times_assumed_fps" (None when the times are the file's timestamps; else the rate they assume: decoded
        frames have none, so index / DEFAULT_FPS). With `seed`, take b uses seed + b, and all views of a take the
        same seed (frame-aligned views get the same window).

        With `clip_seconds` (clips over the whole take): "pixel_values_videos" (B, V, K, T, 3, S, S), K = the batch's
        most clips, and "time_mask" long (B, K): 1 for each of a take's own clips, 0 for the padding after a shorter
        take's last clip (padded clips hold zeros). A take's windows come from its longest present view
        (`frame_sampling.clip_windows`) and are the same for all its views; a view's "indices"/"times" then hold
        K x T entries in time order, with "clips" (K), "clip_windows" ([start, end] seconds each), "clip_seconds"
        (the windows' length: the model's, or longer when "clips_capped": the take needed more than max_clips).

        `clip_encoder` (clips over the take only; e.g. the model's `ProfVLMModel.encode_clip`): each clip goes
        through it as soon as it is decoded and resized, one clip at a time, and "video_features" (B, V, K x N, D)
        replace "pixel_values_videos": a long take's pixels never exist all at once (the model then takes the
        features as it takes a feature cache's).

        A processor of a model without a tower (`video_feature_source`) refuses videos in one line."""
        if self.video_feature_source is not None:
            raise raw_video_refused(self.video_feature_source, "videos")
        takes = self._as_batch(videos)
        if self.clip_seconds is not None:
            return self._process_clips(takes, frame_sampler, seed, clip_encoder)
        if clip_encoder is not None:
            raise ValueError("clip_encoder streams clips over the take; this processor has clip_seconds=None (one clip "
                             "per view): call it without clip_encoder.")
        num_views, size = len(self.view_names), self.image_size
        pixels = torch.zeros(len(takes), num_views, self.num_frames, 3, size, size)
        view_mask = torch.zeros(len(takes), num_views, dtype=torch.long)
        metadata = [[None] * num_views for _ in takes]
        views = [self._views_of(take, b) for b, take in enumerate(takes)]
        jobs = [(b, v, src) for b, srcs in enumerate(views) for v, src in enumerate(srcs) if src is not None]

        # PyAV decodes without the GIL, so views decode in parallel: one thread per view (more views than cores
        # still pays, because 5 views on 2 workers leave one core idle for the last view), and the decoder's own
        # threads only when there are fewer views than cores.
        cores = os.cpu_count() or 1
        workers = max(1, min(len(jobs), _MAX_DECODE_WORKERS))
        threads = max(1, cores // len(jobs)) if jobs else 1

        def run(job):
            b, v, src = job
            seed_b = None if seed is None else seed + b
            frames, meta = self._load_view(src, self.view_names[v], frame_sampler, seed_b, threads)
            return b, v, self._to_pixels(frames), meta

        with ThreadPoolExecutor(max_workers=workers) as pool:
            for b, v, view_pixels, meta in pool.map(run, jobs):
                pixels[b, v], view_mask[b, v], metadata[b][v] = view_pixels, 1, meta
        return {"pixel_values_videos": pixels, "view_mask": view_mask, "video_metadata": metadata}

    def _process_clips(self, takes: list, frame_sampler: str | None, seed: int | None,
                       clip_encoder: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict:
        """`process_videos` with clips over the whole take (`take_clips`): every view is probed first (the take's
        windows need its length, and the output its size), then each view's clips are read a few at a time and
        written into the output as pixels, so a long take never holds its decoded frames all at once; with
        `clip_encoder`, each clip's features instead, so it never holds its pixels all at once either."""
        num_views, size, frames = len(self.view_names), self.image_size, self.num_frames
        sampler = frame_sampler or self.frame_sampler
        views = [self._views_of(take, b) for b, take in enumerate(takes)]
        jobs = [(b, v, src) for b, srcs in enumerate(views) for v, src in enumerate(srcs) if src is not None]
        cores = os.cpu_count() or 1
        workers = max(1, min(len(jobs), _MAX_DECODE_WORKERS))
        threads = max(1, cores // len(jobs)) if jobs else 1
        with ThreadPoolExecutor(max_workers=workers) as pool:
            probed = list(pool.map(lambda job: probe_view(job[2], self.view_names[job[1]]), jobs))
            durations = [0.0] * len(takes)
            for (b, _, _), view in zip(jobs, probed):
                durations[b] = max(durations[b], view.duration)
            windows = [clip_windows(d, self.clip_seconds, self.max_clips) for d in durations]
            most = max((len(w) for w in windows), default=1)
            if clip_encoder is not None:
                return self._encode_clips(takes, jobs, probed, windows, durations, sampler, seed, threads, pool,
                                          clip_encoder)
            pixels = torch.zeros(len(takes), num_views, most, frames, 3, size, size)

            def run(item):
                (b, v, src), view = item
                seed_b = None if seed is None else seed + b
                # Each clip goes into its place in `pixels` as soon as it is read and resized.
                _, meta = read_view_clips(src, self.view_names[v], view, windows[b], sampler, frames, seed_b,
                                          self.snap_to_keyframes, threads, transform=self._to_pixels,
                                          out=pixels[b, v, : len(windows[b])])
                meta["clips_capped"] = clips_capped(durations[b], self.clip_seconds, self.max_clips)
                return b, v, meta

            loaded = list(pool.map(run, zip(jobs, probed)))
        view_mask = torch.zeros(len(takes), num_views, dtype=torch.long)
        time_mask = torch.zeros(len(takes), most, dtype=torch.long)
        metadata = [[None] * num_views for _ in takes]
        for b, take_windows in enumerate(windows):
            time_mask[b, : len(take_windows)] = 1
        for b, v, meta in loaded:
            view_mask[b, v], metadata[b][v] = 1, meta
        return {"pixel_values_videos": pixels, "view_mask": view_mask, "time_mask": time_mask,
                "video_metadata": metadata}

    def _encode_clips(self, takes, jobs, probed, windows, durations, sampler, seed, threads, pool,
                      clip_encoder) -> dict:
        """`_process_clips` with a `clip_encoder`: the views still decode in parallel, and each clip is resized as
        soon as it is read, but this thread runs every encoder call, one clip at a time (`CallerThreadEncoder`: the
        tower uses every core; decoding goes on in the other threads meanwhile); returns "video_features"
        (B, V, K x N, D) in place of the pixels."""
        encoder = CallerThreadEncoder(clip_encoder)

        def encode(rgb):
            return encoder(self._to_pixels(rgb))  # (N, D)

        def run(item):
            (b, v, src), view = item
            seed_b = None if seed is None else seed + b
            features, meta = read_view_clips(src, self.view_names[v], view, windows[b], sampler, self.num_frames,
                                             seed_b, self.snap_to_keyframes, threads, transform=encode)
            meta["clips_capped"] = clips_capped(durations[b], self.clip_seconds, self.max_clips)
            return b, v, features, meta  # features (K x N, D)

        running = [pool.submit(run, item) for item in zip(jobs, probed)]
        encoder.serve(running)
        loaded = [job.result() for job in running]
        most = max((len(w) for w in windows), default=1)
        per_clip = loaded[0][2].shape[0] // len(windows[loaded[0][0]]) if loaded else self.temporal_tokens
        dim, dtype = (loaded[0][2].shape[1], loaded[0][2].dtype) if loaded else (1, torch.float32)
        features = torch.zeros(len(takes), len(self.view_names), most * per_clip, dim, dtype=dtype)
        view_mask = torch.zeros(len(takes), len(self.view_names), dtype=torch.long)
        time_mask = torch.zeros(len(takes), most, dtype=torch.long)
        metadata = [[None] * len(self.view_names) for _ in takes]
        for b, take_windows in enumerate(windows):
            time_mask[b, : len(take_windows)] = 1
        for b, v, own, meta in loaded:
            features[b, v, : len(own)] = own
            view_mask[b, v], metadata[b][v] = 1, meta
        return {"video_features": features, "view_mask": view_mask, "time_mask": time_mask,
                "video_metadata": metadata}

    def _as_batch(self, videos) -> list:
        # apply_chat_template hands one list of video blocks (dicts) per conversation: flatten those first.
        if isinstance(videos, (list, tuple)) and videos and all(
            isinstance(x, list) and x and all(isinstance(d, dict) for d in x) for x in videos
        ):
            videos = [take for conversation in videos for take in conversation]
        return split_takes(videos)[0]  # the same classifier as the pipeline's

    def _views_of(self, take, b: int) -> list:
        """The take's sources in `view_names` order, None where a view is missing."""
        return take_views(take, self.view_names, b)

    def _load_view(self, src, view: str, frame_sampler: str | None, seed: int | None, threads: int = 0):
        """Sample and read T frames of one view: (T, H, W, 3) uint8 as displayed and its metadata (chosen by
        presentation time: a VFR file's own frame times, `process_videos` lists the keys)."""
        sampler = frame_sampler or self.frame_sampler
        if isinstance(src, (str, os.PathLike)):
            info = probe_video(src, view, displayed_size=False)  # reading turns the frames; the size is unused
            sampled = sample_frame_indices(sampler, info.num_frames, self.num_frames, fps=info.fps, seed=seed,
                                           times=info.frame_times, duration=info.duration)
            indices = sampled.indices
            if self.snap_to_keyframes:
                indices = snap_to_keyframes(indices, keyframes_near(src, indices, view, info))
            decoded = read_frames_with_times(src, indices, view, threads, info)
            meta = {**sampled.to_dict(), "indices": list(indices), "fps": info.fps, "source": str(src),
                    "times": decoded.times, "duration": info.duration, "times_assumed_fps": decoded.times_assumed_fps}
            return decoded.rgb, meta
        frames = frames_to_rgb(src, view)
        sampled = sample_frame_indices(sampler, len(frames), self.num_frames, seed=seed)
        times = [i / DEFAULT_FPS for i in sampled.indices]  # decoded frames carry no timestamps
        return frames[list(sampled.indices)], {**sampled.to_dict(), "fps": None, "source": "frames", "times": times,
                                               "duration": len(frames) / DEFAULT_FPS, "times_assumed_fps": DEFAULT_FPS}

    def _to_pixels(self, frames: np.ndarray) -> torch.Tensor:
        """Resize the shorter side to `image_size` (bilinear, antialiased, rounded to uint8 like PIL), centre-crop,
        normalise. uint8 channels-last resizing is torch's fast path (far faster than float); the elementwise rest runs in
        numpy, which stays single-threaded and so does not fight the decoder threads for the cores."""
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # [T, H, W, 3] -> [T, 3, H, W]
        x = x.contiguous(memory_format=torch.channels_last)  # a no-op for decoded THWC frames
        h, w, s = x.shape[-2], x.shape[-1], self.image_size
        long = int(s * max(h, w) / min(h, w))  # same rounding as transformers' get_resize_output_image_size
        out_h, out_w = (s, long) if h <= w else (long, s)
        x = F.interpolate(x, size=(out_h, out_w), mode="bilinear", align_corners=False, antialias=True)
        top, left = (out_h - s) // 2, (out_w - s) // 2
        crop = x[..., top : top + s, left : left + s].numpy().astype(np.float32, order="C")
        std = np.asarray(self.image_std, dtype=np.float32).reshape(3, 1, 1)
        crop *= 1.0 / (255.0 * std)
        crop -= np.asarray(self.image_mean, dtype=np.float32).reshape(3, 1, 1) / std
        return torch.from_numpy(crop)


def model_facts(config: ProfVLMConfig) -> dict:
    """The processor settings a model's config fixes (the keys of `MODEL_FACTS`): the tower's frame count, input
    size, frames per time step and normalisation (`config.tower_normalisation`: the recorded one, else the tower
    family's), the temporal tokens, the `<video>` token and its count, the view names, the digits of the prompt's
    times (`time_decimals`), the clips over the take (`clip_seconds`, `max_clips`) and the released-feature source of
    a model without a tower (`video_feature_source`: one "frame" per temporal token, so the token spans are N equal
    parts of the take)."""
    vision, towerless = config.vision_config, config.video_feature_source is not None
    mean, std = config.tower_normalisation
    return {"num_frames": config.num_frames, "image_size": tower_image_size(vision),
            "frames_per_time_step": 1 if towerless else frames_per_time_step(vision), "image_mean": mean,
            "image_std": std,
            "temporal_tokens": int(config.temporal_tokens), "num_video_tokens": int(config.num_video_tokens),
            "video_token": config.video_token, "view_names": list(config.view_names),
            "time_decimals": int(config.time_decimals), "clip_seconds": config.clip_seconds,
            "max_clips": int(config.max_clips), "video_feature_source": config.video_feature_source}


def _same(got, want) -> bool:
    """Equal, with floats (and lists of them) compared to a relative 1e-6 (a JSON round trip is exact; this also
    accepts a tuple for a list)."""
    if isinstance(want, (list, tuple)):
        return isinstance(got, (list, tuple)) and len(got) == len(want) and all(map(_same, got, want))
    if isinstance(want, float) and isinstance(got, (int, float)) and not isinstance(got, bool):
        return math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9)
    return type(got) is type(want) and got == want


def _model_config_next_to(path: str | os.PathLike, subfolder: str = "", **hub) -> ProfVLMConfig | None:
    """The ProfVLMConfig of the config.json in the same folder or repo as a processor, None when there is none or it
    is not a ProfVLM model's (a processor saved on its own)."""
    if os.path.isfile(path):  # a processor_config.json passed as a file: no folder to look in
        return None
    found = cached_file(path, "config.json", subfolder=subfolder, _raise_exceptions_for_missing_entries=False,
                        _raise_exceptions_for_connection_errors=False, **hub)
    if not found:
        return None
    with open(found, encoding="utf-8") as handle:
        data = json.load(handle)
    if data.get("model_type") != ProfVLMConfig.model_type:
        return None
    return ProfVLMConfig.from_dict(data)


__all__ = ["MODEL_FACTS", "ProfVLMProcessor", "model_facts"]
