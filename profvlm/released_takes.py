# `profvlm predict --data_dir ROOT` with a checkpoint on EgoExo4D's released features: each take's inputs read from its
# feature files (pooled as training/extract_features.py pools them) instead of decoded from videos.
from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch.utils.data import Dataset

from dataset_scripts.dataset_export import SkipReport
from dataset_scripts.egoexo4d_proficiency import load_takes
from modeling_profvlm.label_scoring import unpadded_rows
from modeling_profvlm.profvlm_facts import released_feature_source
from training.released_features import take_features

from .batch_takes import TakeError, TakeJob

logger = logging.getLogger(__name__)


class ReleasedFeatureTakes(Dataset):
    """Take i -> what `batch_predict.DecodedTakes` gives for it (prompt ids, view_mask, duration, token times), with
    `video_features` (1, V, N, D) from its feature files in place of pixels; a take with no readable file becomes its
    errors.jsonl record. A view whose file is missing or unreadable is masked, as a missing video is."""

    def __init__(self, jobs: list[TakeJob], processor, config, data_dir: str | Path):
        self.jobs, self.processor, self.config, self.root = jobs, processor, config, Path(data_dir)
        self.prompt, self.takes = processor.build_prompt(), load_takes(self.root)

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, index: int) -> dict:
        job, report = self.jobs[index], SkipReport()
        entry = take_features(self.root, self.config, self.processor, self.takes[job.take_uid], job.views, report)
        if report.missing_files:
            logger.warning(report.message(f"take {job.take_name}"))
        if entry is None:
            part = released_feature_source(self.config.video_feature_source).part
            return {"index": index, "errors": [TakeError(job.take_name, None, report.first_missing or None,
                                                         f"no readable {part} file of the views {list(job.views)}")
                                               .to_dict()]}
        features, view_mask, times = entry
        token_times = [times] if self.processor.states_token_times else None
        batch = self.processor(text=[self.prompt], token_times=token_times, return_tensors="pt")
        masked = [view for view, present in zip(self.processor.view_names, view_mask.tolist()) if not present]
        return {"index": index, "prompt_row": unpadded_rows(batch["input_ids"], batch.get("attention_mask"))[0],
                "video_features": features[None], "view_mask": view_mask[None],
                # clips over the take: all K of this take's own (the batch pads shorter takes after them)
                "time_mask": None if self.processor.clip_seconds is None else
                torch.ones(1, features.shape[1] // self.processor.temporal_tokens, dtype=torch.long),
                "duration": times["duration"], "token_times": times["times"] if token_times else None,
                "missing_views": masked}


__all__ = ["ReleasedFeatureTakes"]
