# The evaluation's figures: a confusion matrix, per-scenario accuracy and a reliability diagram, as PNG files.
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on training machines; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_confusion_matrix(matrix: list[list[int]], labels: tuple[str, ...], path: str | Path,
                          title: str = "Proficiency confusion matrix") -> Path:
    """Counts with row percentages in each cell; colour = fraction of the true label's takes."""
    counts = np.asarray(matrix, dtype=float)
    if counts.shape != (len(labels), len(labels)):
        raise ValueError(f"confusion matrix has shape {counts.shape}, expected ({len(labels)}, {len(labels)}) for {labels}.")
    rows = counts.sum(1, keepdims=True)
    fractions = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    fig, ax = plt.subplots(figsize=(6.4, 5.4), dpi=110)
    image = ax.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(len(labels)):
        for j in range(len(labels)):
            color = "white" if fractions[i, j] > 0.6 else "black"
            ax.text(j, i, f"{int(counts[i, j])}\n{fractions[i, j]:.0%}", ha="center", va="center", color=color, fontsize=9)
    ax.set_xticks(range(len(labels)), labels, rotation=25, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of true label")
    return _save(fig, path)


def plot_per_scenario(per_scenario: dict[str, float | None], counts: dict[str, int], path: str | Path,
                      overall: float | None = None, chance: float | None = None) -> Path:
    """One bar per scenario (accuracy, n above it), with the overall accuracy and chance as lines."""
    scenarios = list(per_scenario)
    values = [per_scenario[s] if per_scenario[s] is not None else 0.0 for s in scenarios]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(scenarios) + 2), 4.2), dpi=110)
    bars = ax.bar(range(len(scenarios)), values, color="#4C72B0")
    for bar, scenario in zip(bars, scenarios):
        ax.annotate(f"{bar.get_height():.0%}\nn={counts.get(scenario, 0)}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
    if overall is not None:
        ax.axhline(overall, color="#C44E52", linestyle="--", label=f"overall {overall:.0%}")
    if chance is not None:
        ax.axhline(chance, color="gray", linestyle=":", label=f"chance {chance:.0%}")
    ax.set_xticks(range(len(scenarios)), scenarios, rotation=20, ha="right")
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("label accuracy")
    ax.set_title("Accuracy per scenario (all views)")
    if overall is not None or chance is not None:
        ax.legend(loc="upper right", fontsize=8)
    return _save(fig, path)


def plot_reliability_diagram(bins: list[dict], path: str | Path, ece: float | None = None,
                             title: str = "Label confidence reliability") -> Path:
    """Accuracy per confidence bin (bars, n above each) against the diagonal of perfect calibration, ECE in the
    legend. `bins` are `training.evaluation_metrics.reliability_bins` dicts; empty bins are drawn as gaps."""
    fig, ax = plt.subplots(figsize=(5.4, 5.0), dpi=110)
    ax.plot([0, 1], [0, 1], color="gray", linestyle="--", label="perfect calibration")
    for i, b in enumerate(bins):
        lower, upper, count = float(b["lower"]), float(b["upper"]), int(b["count"])
        accuracy = b["accuracy"] if b["accuracy"] is not None else 0.0
        # label only the first bar so the legend has one entry however many bins there are
        ax.bar(lower, accuracy, width=upper - lower, align="edge", color="#4C72B0", edgecolor="white",
               label="accuracy" if i == 0 else None)
        if count:
            ax.plot((lower + upper) / 2, b["confidence"], marker="_", color="#C44E52", markersize=12,
                    label="mean confidence" if not any(bb["count"] for bb in bins[:i]) else None)
        ax.annotate(f"n={count}", ((lower + upper) / 2, accuracy), ha="center", va="bottom", fontsize=7,
                    xytext=(0, 2), textcoords="offset points")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.1)
    ax.set_xlabel("confidence (top-label probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(title if ece is None else f"{title} (ECE {ece:.3f})")
    # a legend-only handle carries the ECE so it is readable even when the title is cut
    ax.plot([], [], " ", label="ECE n/a" if ece is None else f"ECE = {ece:.3f}")
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


__all__ = ["plot_confusion_matrix", "plot_per_scenario", "plot_reliability_diagram"]
