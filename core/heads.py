"""Linear heads on a feature map: per-cell logits, their pooling into image logits, and the CAM.

A head is `kernel` (C, n) and `bias` (n,). Per cell, logits = features @ kernel + bias. With
"mean" pooling the image logits equal global-average pooling followed by the dense layer; "lse"
(log-sum-exp with sharpness r) lies between the mean (small r) and the maximum (large r).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Head:
    """A loaded head and its pooling."""

    kernel: np.ndarray
    bias: np.ndarray
    pooling: str = "mean"
    pooling_r: float = 1.0

    def cell_logits(self, features: np.ndarray) -> np.ndarray:
        """(h, w, C) feature map -> (h, w, n) logits of each cell."""
        return features @ self.kernel + self.bias

    def logits(self, features: np.ndarray) -> np.ndarray:
        """(h, w, C) feature map -> (n,) image logits."""
        return pool(self.cell_logits(features), self.pooling, self.pooling_r)

    def activation_map(self, features: np.ndarray, output: int = 0) -> np.ndarray:
        """Class activation map of one output, scaled to [0, 1] (h, w).

        For global-average pooling and a linear head this equals Grad-CAM: the gradient of the
        logit with respect to every cell is kernel / (h * w), so Grad-CAM's channel weights are
        the kernel up to a constant, which the scaling removes.
        """
        cam = np.maximum(features @ self.kernel[:, output], 0.0)
        top = float(cam.max())
        return (cam / top if top > 0 else cam).astype(np.float32)


def pool(cell_logits: np.ndarray, pooling: str, r: float = 1.0) -> np.ndarray:
    """Pool (h, w, n) cell logits into (n,): "mean", or "lse" = (1/r) log mean exp(r x)."""
    cells = cell_logits.reshape(-1, cell_logits.shape[-1]).astype(np.float64)
    if pooling == "mean":
        return cells.mean(axis=0)
    if pooling == "lse":
        top = cells.max(axis=0)
        return top + np.log(np.mean(np.exp(r * (cells - top)), axis=0)) / r
    raise ValueError(f"unknown pooling {pooling!r}")


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis (a 1-D array, or one row per image)."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Logistic function, safe for large magnitudes."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(logits, dtype=np.float64)))
