"""The field's metrics in numpy: AUROC, Cohen's kappa, sensitivity, specificity, bootstrap CIs."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def auroc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Area under the ROC curve (Mann-Whitney; ties count one half). NaN if a class is missing."""
    y = np.asarray(labels).astype(int)
    s = np.asarray(scores, dtype=float)
    positives, negatives = s[y == 1], s[y == 0]
    if len(positives) == 0 or len(negatives) == 0:
        return float("nan")
    greater = (positives[:, None] > negatives[None, :]).sum()
    ties = (positives[:, None] == negatives[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(positives) * len(negatives)))


def confusion_matrix(
    truth: Sequence[int], predicted: Sequence[int], classes: int = 2
) -> np.ndarray:
    """Counts with rows = true class and columns = predicted class."""
    matrix = np.zeros((classes, classes), dtype=int)
    np.add.at(matrix, (np.asarray(truth, dtype=int), np.asarray(predicted, dtype=int)), 1)
    return matrix


def cohen_kappa(truth: Sequence[int], predicted: Sequence[int], classes: int = 2) -> float:
    """Agreement beyond chance: (p_observed - p_expected) / (1 - p_expected)."""
    matrix = confusion_matrix(truth, predicted, classes).astype(float)
    total = matrix.sum()
    if total == 0:
        return float("nan")
    observed = np.trace(matrix) / total
    expected = (matrix.sum(axis=0) * matrix.sum(axis=1)).sum() / total**2
    if expected == 1:
        return float("nan") if observed < 1 else 1.0
    return float((observed - expected) / (1 - expected))


def binary_rates(labels: Sequence[int], scores: Sequence[float], threshold: float) -> dict:
    """Sensitivity, specificity and accuracy at `threshold` (score >= threshold is positive)."""
    y = np.asarray(labels).astype(int)
    predicted = (np.asarray(scores, dtype=float) >= threshold).astype(int)
    matrix = confusion_matrix(y, predicted)
    tn, fp, fn, tp = matrix.ravel()
    return {
        "sensitivity": float(tp / (tp + fn)) if tp + fn else float("nan"),
        "specificity": float(tn / (tn + fp)) if tn + fp else float("nan"),
        "accuracy": float((tp + tn) / matrix.sum()) if matrix.sum() else float("nan"),
        "kappa": cohen_kappa(y, predicted),
        "confusion": matrix.tolist(),
    }


def bootstrap_ci(
    metric: Callable[[np.ndarray, np.ndarray], float],
    labels: Sequence[int],
    scores: Sequence[float],
    n: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile bootstrap interval of `metric(labels, scores)`, resampling cases."""
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=float)
    if len(y) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n):
        index = rng.integers(0, len(y), len(y))
        value = metric(y[index], s[index])
        if not np.isnan(value):
            values.append(value)
    if not values:
        return float("nan"), float("nan")
    low, high = np.percentile(values, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


def study_scores(
    studies: Sequence[str], labels: Sequence[int], scores: Sequence[float]
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Per-study label and probability; a study's probability is the mean over its images."""
    grouped: dict[str, list[float]] = {}
    study_label: dict[str, int] = {}
    for study, label, score in zip(studies, labels, scores, strict=True):
        grouped.setdefault(study, []).append(float(score))
        study_label[study] = int(label)
    names = sorted(grouped)
    return (
        names,
        np.array([study_label[name] for name in names]),
        np.array([np.mean(grouped[name]) for name in names]),
    )


def summarise(
    labels: Sequence[int], scores: Sequence[float], threshold: float, seed: int = 0
) -> dict:
    """AUROC, kappa, sensitivity, specificity and accuracy, each with a 95% bootstrap interval."""
    y = np.asarray(labels).astype(int)
    s = np.asarray(scores, dtype=float)
    rates = binary_rates(y, s, threshold)
    result = {
        "n": int(len(y)),
        "positives": int(y.sum()),
        "threshold": threshold,
        "auroc": auroc(y, s),
        "auroc_ci": bootstrap_ci(auroc, y, s, seed=seed),
        "confusion": rates.pop("confusion"),
    }
    for name, value in rates.items():
        result[name] = value
        result[f"{name}_ci"] = bootstrap_ci(
            lambda a, b, name=name: binary_rates(a, b, threshold)[name], y, s, n=500, seed=seed
        )
    return result
