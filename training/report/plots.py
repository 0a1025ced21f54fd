"""PNG plots for evaluation reports: ROC curves, confusion matrices, training curves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def roc_points(labels: Sequence[int], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every threshold (for plotting)."""
    y = np.asarray(labels).astype(int)
    s = np.asarray(scores, dtype=float)
    thresholds = np.r_[np.inf, np.unique(s)[::-1]]
    tpr = [((s >= t) & (y == 1)).sum() / max(1, y.sum()) for t in thresholds]
    fpr = [((s >= t) & (y == 0)).sum() / max(1, (1 - y).sum()) for t in thresholds]
    return np.array(fpr), np.array(tpr)


def plot_roc(curves: dict[str, tuple[Sequence[int], Sequence[float], float]], path: Path) -> Path:
    """One ROC curve per name: {name: (labels, scores, auroc)}."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5, 5))
    for name, (labels, scores, area) in curves.items():
        if len(set(labels)) < 2:
            continue
        fpr, tpr = roc_points(labels, scores)
        axis.plot(fpr, tpr, label=f"{name} (AUROC {area:.2f}, n={len(labels)})")
    axis.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    axis.set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC, per image")
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_confusion(matrix: Sequence[Sequence[int]], classes: Sequence[str], title: str, path: Path):
    """Confusion matrix with counts (rows true, columns predicted)."""
    plt = _pyplot()
    matrix = np.asarray(matrix)
    figure, axis = plt.subplots(figsize=(1.2 * len(classes) + 2, 1.2 * len(classes) + 1.5))
    axis.imshow(matrix, cmap="Blues")
    axis.set_xticks(range(len(classes)), classes, rotation=30)
    axis.set_yticks(range(len(classes)), classes)
    axis.set(xlabel="predicted", ylabel="true", title=title)
    for (row, column), count in np.ndenumerate(matrix):
        colour = "white" if count > matrix.max() / 2 else "black"
        axis.text(column, row, str(count), ha="center", va="center", color=colour)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_history(history: dict[str, list[float]], path: Path) -> Path:
    """Training curves: losses, bone-type accuracy and fracture AUROC per epoch."""
    plt = _pyplot()
    panels = [
        ("loss", "loss"),
        ("bone_type_accuracy", "bone-type accuracy"),
        ("fracture_auc", "fracture AUROC"),
    ]
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for axis, (key, title) in zip(axes, panels, strict=True):
        for prefix, style in (("", "-"), ("val_", "--")):
            values = history.get(prefix + key)
            if values:
                shown = (
                    np.clip(values, None, np.percentile(values, 90) * 3)
                    if key == "loss"
                    else values
                )
                axis.plot(range(1, len(values) + 1), shown, style, label=prefix + key)
        axis.set(title=title, xlabel="epoch")
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
