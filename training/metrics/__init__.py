# Metric loading: the Hub's `evaluate` modules when the Hub is reachable, else our local copies in this folder.
import logging
import os
from pathlib import Path

import evaluate

logger = logging.getLogger(__name__)

METRICS_DIR = Path(__file__).resolve().parent
# Each local module mirrors the Hub module of the same name (inputs and outputs), so callers need not care.
LOCAL_METRICS: tuple[str, ...] = ("rouge", "sacrebleu", "bertscore")
_TRUE = {"1", "ON", "YES", "TRUE"}


def hub_offline() -> bool:
    """True when the environment says the Hub is unreachable (HF_HUB_OFFLINE, HF_EVALUATE_OFFLINE, ...)."""
    names = ("HF_HUB_OFFLINE", "HF_EVALUATE_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
    return any(os.environ.get(name, "").upper() in _TRUE for name in names)


def local_metric_path(name: str) -> Path:
    """The folder of our own `evaluate` module `name` (rouge, sacrebleu or bertscore)."""
    if name not in LOCAL_METRICS:
        raise ValueError(f"No local metric module {name!r} under {METRICS_DIR}; expected one of {LOCAL_METRICS}.")
    return METRICS_DIR / name


def load_metric(name: str, prefer_hub: bool | None = None) -> evaluate.EvaluationModule:
    """`evaluate.load(name)` from the Hub when online (or `prefer_hub=True`), falling back to the local module of
    the same name; offline it loads the local module directly, so the same code runs with and without the Hub."""
    prefer_hub = not hub_offline() if prefer_hub is None else prefer_hub
    if prefer_hub:
        try:
            return evaluate.load(name, keep_in_memory=True)
        except Exception as err:  # no network, a proxy, a Hub outage: all mean "use ours"
            logger.warning("Hub metric %r unavailable (%s); using the local module %s.", name, err, local_metric_path(name))
    return evaluate.load(str(local_metric_path(name)), keep_in_memory=True)


__all__ = ["LOCAL_METRICS", "METRICS_DIR", "hub_offline", "load_metric", "local_metric_path"]
