# The one place that turns EgoExo4D proficiency rows into SFT training rows and chat messages.
from datasets import Dataset

from modeling_profvlm.configuration_profvlm import PROFICIENCY_LABELS

# Columns a training row keeps; messages are built per batch in the collator (no nested Arrow structs).
ROW_COLUMNS = ("take_uid", "scenario", "view_names", "video_paths", "label", "feedback")


def load_splits(data_dir: str, dataset_config: str, splits: list[str], rebuild: bool = True,
                **config_kwargs) -> dict[str, Dataset]:
    """The EgoExo4D proficiency builder's rows per split (`train` / `validation`). The builder runs once
    (`rebuild`: from the files on disk; else reuse the Arrow cache another process just built).
    `config_kwargs` go to the builder config (e.g. `max_feedback_words`)."""
    from dataset_scripts.egoexo4d_proficiency import load_egoexo4d_proficiency

    out = {}
    for i, split in enumerate(splits):
        mode = "force_redownload" if rebuild and i == 0 else "reuse_dataset_if_exists"
        out[split] = load_egoexo4d_proficiency(data_dir, config=dataset_config, split=split, download_mode=mode,
                                               **config_kwargs)
    return out


def load_split(data_dir: str, dataset_config: str, split: str, **config_kwargs) -> Dataset:
    """One split, built from the files on disk (`config_kwargs` as in `load_splits`)."""
    return load_splits(data_dir, dataset_config, [split], **config_kwargs)[split]


def label_names(dataset: Dataset) -> list[str]:
    """The ClassLabel names of `proficiency`; they must be PROFICIENCY_LABELS in order (one label map)."""
    feature = dataset.features.get("proficiency")
    names = list(getattr(feature, "names", []) or [])
    if names != list(PROFICIENCY_LABELS):
        raise ValueError(
            f"dataset column 'proficiency' has labels {names or feature!r}; expected a ClassLabel with "
            f"{list(PROFICIENCY_LABELS)} in this order."
        )
    return names


def to_training_rows(dataset: Dataset, max_samples: int | None = None) -> Dataset:
    """Keep what training needs: take_uid, scenario, views (names + paths), the label string and the feedback."""
    names = label_names(dataset)
    if max_samples is not None:
        dataset = dataset.select(range(min(max_samples, len(dataset))))

    def convert(row: dict) -> dict:
        return {"label": names[row["proficiency"]], "feedback": (row.get("feedback") or "").strip()}

    rows = dataset.map(convert, desc="SFT rows")
    return rows.select_columns(list(ROW_COLUMNS))


def row_messages(row: dict) -> list[dict]:
    """The chat (user prompt with `<video>`, assistant answer) for one training row."""
    from processing.text_format import build_messages

    return build_messages(label=row["label"], feedback=row["feedback"] or None)


def row_videos(row: dict) -> dict[str, str]:
    """The row's views as {view_name: path}, the form ProfVLMProcessor accepts for one sample."""
    names, paths = row["view_names"], row["video_paths"]
    if len(names) != len(paths):
        raise ValueError(f"take {row['take_uid']}: {len(names)} view_names but {len(paths)} video_paths.")
    return dict(zip(names, paths))


__all__ = ["ROW_COLUMNS", "load_split", "load_splits", "label_names", "to_training_rows", "row_messages", "row_videos"]
