# The one place that turns proficiency rows (EgoExo4D or a multi-view folder) into SFT training rows and chat messages.
from collections.abc import Sequence

from datasets import Dataset

from modeling_profvlm.profvlm_facts import check_time_decimals, format_moments, parse_moments
from processing.text_format import build_messages

# Columns a training row keeps; messages are built per batch in the collator (no nested Arrow structs).
ROW_COLUMNS = ("take_uid", "scenario", "view_names", "video_paths", "label", "feedback")


def load_splits(data_dir: str, dataset_config: str, splits: list[str], rebuild: bool = True,
                **config_kwargs) -> dict[str, Dataset]:
    """The proficiency rows per split (`train` / `validation`) of an EgoExo4D root or a multi-view folder
    (`dataset_scripts.proficiency_data`). The EgoExo4D builder runs once (`rebuild`: from the files on disk; else
    reuse the Arrow cache another process just built). `config_kwargs` go to the loader (`max_feedback_words`,
    `views`, `strict`)."""
    from dataset_scripts.proficiency_data import load_proficiency_split

    return {split: load_proficiency_split(data_dir, dataset_config, split, rebuild=rebuild and i == 0, **config_kwargs)
            for i, split in enumerate(splits)}


def load_split(data_dir: str, dataset_config: str, split: str, **config_kwargs) -> Dataset:
    """One split, built from the files on disk (`config_kwargs` as in `load_splits`)."""
    return load_splits(data_dir, dataset_config, [split], **config_kwargs)[split]


def label_names(dataset: Dataset, checkpoint_labels: Sequence[str]) -> list[str]:
    """The ClassLabel names of `proficiency`; they must be the checkpoint's `config.proficiency_labels`, in order.
    A dataset with other labels is an error naming both lists, never a silent index map."""
    feature = dataset.features.get("proficiency")
    names = list(getattr(feature, "names", []) or [])
    if names != list(checkpoint_labels):
        raise ValueError(
            f"the dataset's 'proficiency' labels {names or feature!r} differ from the checkpoint's proficiency_labels "
            f"{list(checkpoint_labels)}; build the checkpoint from this dataset (`profvlm init --data_dir DIR`) or use "
            "a dataset with the checkpoint's labels in the same order."
        )
    return names


def check_views(dataset: Dataset, view_names: Sequence[str], where: str) -> None:
    """Every view the dataset's rows use must be one of the checkpoint's `view_names`; else an error naming both."""
    used = sorted({view for views in dataset["view_names"] for view in views}) if len(dataset) else []
    unknown = [view for view in used if view not in view_names]
    if unknown:
        raise ValueError(f"{where}: the data has views {unknown} that the checkpoint does not know (its view_names are "
                         f"{list(view_names)}); build the checkpoint from this dataset (`profvlm init --data_dir DIR`).")


def to_training_rows(dataset: Dataset, checkpoint_labels: Sequence[str], max_samples: int | None = None,
                     time_decimals: int = 0) -> Dataset:
    """Keep what training needs: take_uid, scenario, views (names + paths), the label string and the feedback. A row
    with moments gets them as its feedback in the checkpoint's time format (`time_decimals`, its config's: the data
    keeps full-precision times and their categories, `format_moments` writes "[m:ss.d] good: ..."); with 0 that is
    the feedback the dataset built."""
    names = label_names(dataset, checkpoint_labels)
    decimals = check_time_decimals(time_decimals)
    if max_samples is not None:
        dataset = dataset.select(range(min(max_samples, len(dataset))))

    def convert(row: dict) -> dict:
        moments = row.get("moments")
        feedback = format_moments(moments, decimals) if moments else (row.get("feedback") or "").strip()
        return {"label": names[row["proficiency"]], "feedback": feedback}

    rows = dataset.map(convert, desc="SFT rows")
    return rows.select_columns(list(ROW_COLUMNS))


def snap_moments_to_tokens(feedback: str, token_times: Sequence[float], time_decimals: int = 0) -> str:
    """The answer with each moment's time moved to the time of the video token that shows it (the nearest token,
    `training.projector_alignment.nearest_step`), written as the prompt writes that token's time: with clips over a
    take a token spans several seconds, and an answer time the prompt never states ("[0:05]" between tokens marked
    "[0:04]" and "[0:06]") asks the model for more than its tokens can tell; naming the token's own mark makes it a
    copy of a time in the prompt. Feedback without moments is returned unchanged."""
    from training.projector_alignment import nearest_step

    moments = parse_moments(feedback)
    if not moments or not token_times:
        return feedback
    snapped = [{**m, "time": token_times[nearest_step(token_times, m["time"])]} for m in moments]
    return format_moments(snapped, check_time_decimals(time_decimals))


def row_messages(row: dict, labels: Sequence[str]) -> list[dict]:
    """The chat (user prompt with `<video>`, assistant answer) for one training row; `labels` are the checkpoint's."""
    return build_messages(label=row["label"], feedback=row["feedback"] or None, labels=labels)


def row_videos(row: dict) -> dict[str, str]:
    """The row's views as {view_name: path}, the form ProfVLMProcessor accepts for one sample."""
    names, paths = row["view_names"], row["video_paths"]
    if len(names) != len(paths):
        raise ValueError(f"take {row['take_uid']}: {len(names)} view_names but {len(paths)} video_paths.")
    return dict(zip(names, paths))


__all__ = ["ROW_COLUMNS", "load_split", "load_splits", "label_names", "check_views", "to_training_rows", "row_messages", "row_videos"]
