# What every ProfVLM dataset kind shares once built: the report of what a split left out, the parquet export with
# a card that loads without any script, and the push to a private (unless asked otherwise) Hub dataset repo.
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import datasets
from datasets.utils.tqdm import tqdm

logger = logging.getLogger(__name__)

# The part of every exported dataset card that says how to load it and what it holds; `{where}` becomes the Hub id
# on push.
CARD_USAGE = """```python
from datasets import load_dataset
ds = load_dataset("{where}")
```

| split | rows |
|---|---|
{split_rows}
"""
_LOAD_CALL = re.compile(r'load_dataset\("[^"]*"\)')


@dataclass
class SkipReport:
    """What one split left out and why (any dataset kind); logged once the split is built."""

    rows: int = 0
    missing_files: dict[str, int] = field(default_factory=dict)  # view -> video files not on disk (view masked)
    first_missing: str = ""
    first_unreadable: str = ""  # why the first file that is there but could not be used was refused
    takes_without_video: int = 0  # takes skipped because none of their (selected) views remained
    takes_without_commentary: int = 0
    experts_without_text: int = 0
    moments_past_end: int = 0  # timed remarks after their take's end, dropped

    def missing_video(self, view: str, path: str | os.PathLike) -> None:
        """Count one video of `view` that is not on disk (the first one is named in the message)."""
        self.missing_files[view] = self.missing_files.get(view, 0) + 1
        self.first_missing = self.first_missing or str(path)

    @property
    def missing_videos(self) -> int:
        """Video files not on disk, over all views."""
        return sum(self.missing_files.values())

    @property
    def lost_data(self) -> bool:
        """True when videos or takes are missing: then the message is a warning, else information."""
        return bool(self.missing_files or self.takes_without_video)

    def message(self, what: str) -> str:
        """One line for the log, e.g. `<what>: 3 rows; side: 1 file missing (those views are masked; first: ...)`."""
        text = f"{what}: {self.rows} rows"
        if self.missing_files:
            per_view = ", ".join(f"{view}: {n} file{'s' if n > 1 else ''} missing"
                                 for view, n in sorted(self.missing_files.items()))
            text += f"; {per_view} (those views are masked; first: {self.first_missing})"
        if self.takes_without_video:
            plural = "s" if self.takes_without_video > 1 else ""
            text += f"; skipped {self.takes_without_video} take{plural} because no view remained"
        if self.takes_without_commentary:
            text += f"; {self.takes_without_commentary} labelled takes have no commentary"
        if self.experts_without_text:
            text += f"; {self.experts_without_text} commentaries had no usable text"
        if self.moments_past_end:
            text += f"; dropped {self.moments_past_end} moments timed past their take's end"
        return text

    def log(self, what: str) -> None:
        """Log `message(what)`: a warning when data was lost, else information."""
        (logger.warning if self.lost_data else logger.info)(self.message(what))


def write_parquet_dataset(output: str | os.PathLike, splits: dict[str, datasets.Dataset], metadata: dict,
                          card_template: str, max_shard_rows: int = 50_000, **card_fields) -> Path:
    """Write `output/data/<split>-XXXXX-of-YYYYY.parquet` per split and `output/README.md`: YAML front matter (the
    splits' data files, the features with their ClassLabel names, then `metadata`) and `card_template` filled with
    `yaml`, `where`, `split_rows` and `card_fields`, so `load_dataset(output)` restores the same features."""
    import yaml  # pyyaml is a dependency of datasets

    out = Path(output)
    (out / "data").mkdir(parents=True, exist_ok=True)
    for old in (out / "data").glob("*.parquet"):  # stale shards would be picked up by the data_files glob
        old.unlink()
    for split, ds in splits.items():
        shards = max(1, -(-len(ds) // max_shard_rows))
        for i in tqdm(range(shards), desc=f"writing {split}", disable=shards < 2):
            ds.shard(shards, i, contiguous=True).to_parquet(str(out / "data" / f"{split}-{i:05d}-of-{shards:05d}.parquet"))
    features = next(iter(splits.values())).features
    front = {
        "configs": [{"config_name": "default",
                     "data_files": [{"split": s, "path": f"data/{s}-*.parquet"} for s in splits]}],
        "dataset_info": {"config_name": "default", "features": features._to_yaml_list()},
        **metadata,
    }
    card = card_template.format(yaml=yaml.safe_dump(front, sort_keys=False), where=str(out),
                                split_rows="\n".join(f"| {s} | {len(d)} |" for s, d in splits.items()), **card_fields)
    (out / "README.md").write_text(card, encoding="utf-8")
    return out


def push_dataset_folder(folder: str | os.PathLike, repo_id: str, private: bool = True, license: str | None = None,
                        public_caveat: str | None = None) -> str:
    """Upload a folder written by `write_parquet_dataset` as a dataset repo, private unless `private=False`. The
    card's load call names `repo_id`; `license` replaces the card's licence. Going public logs `public_caveat` (the
    data's terms) or, for a licence still `unknown`, a warning. Returns the dataset URL."""
    import yaml
    from huggingface_hub import HfApi

    readme = Path(folder) / "README.md"
    if not readme.is_file():
        raise FileNotFoundError(f"{readme} not found; export the dataset into {folder} first.")
    card = _LOAD_CALL.sub(f'load_dataset("{repo_id}")', readme.read_text(encoding="utf-8"))
    if license is not None:
        card = re.sub(r"^license: .*$", yaml.safe_dump({"license": license}).strip(), card, count=1, flags=re.M)
    if not private:
        if public_caveat:
            logger.warning(public_caveat)
        if "\nlicense: unknown\n" in card:
            logger.warning(f"{repo_id}: pushing a public dataset with licence 'unknown'; pass --license to set one.")
    readme.write_text(card, encoding="utf-8")
    api = HfApi()
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="dataset")
    return f"https://huggingface.co/datasets/{repo_id}"


__all__ = ["CARD_USAGE", "SkipReport", "push_dataset_folder", "write_parquet_dataset"]
