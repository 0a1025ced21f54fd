"""ResNet50 inference as plain TensorFlow ops, batch-norm folded into the convolutions.

Building Keras' ResNet50 costs about a second on 2 cores before the first prediction; this graph
is made from the same weight file (written by `core.models.save_backbone`) in milliseconds and
computes the same `conv5_block3_out` features (a test checks it against the Keras model).
Training keeps using the Keras model; only inference uses this.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.models import invalid_model_file

BN_EPSILON = 1.001e-5  # keras.applications.ResNet50's batch-norm epsilon
STAGES = (("conv2", 3, 64, 1), ("conv3", 4, 128, 2), ("conv4", 6, 256, 2), ("conv5", 3, 512, 2))


@dataclass(frozen=True)
class ConvSpec:
    """One convolution of ResNet50 (v1): its name, kernel size, channels and stride."""

    name: str
    size: int
    channels_in: int
    channels_out: int
    stride: int = 1


def block_specs(stage: str, block: int, filters: int, channels_in: int, stride: int):
    """The convolutions of one bottleneck block; the first block of a stage has a shortcut conv."""
    prefix = f"{stage}_block{block}"
    specs = [
        ConvSpec(f"{prefix}_1", 1, channels_in, filters, stride),
        ConvSpec(f"{prefix}_2", 3, filters, filters),
        ConvSpec(f"{prefix}_3", 1, filters, 4 * filters),
    ]
    if block == 1:
        specs.append(ConvSpec(f"{prefix}_0", 1, channels_in, 4 * filters, stride))
    return specs


def all_specs() -> list[ConvSpec]:
    """Every convolution of ResNet50 without its top, in order."""
    specs = [ConvSpec("conv1", 7, 3, 64, 2)]
    channels = 64
    for stage, blocks, filters, stride in STAGES:
        for block in range(1, blocks + 1):
            specs += block_specs(stage, block, filters, channels, stride if block == 1 else 1)
            channels = 4 * filters
    return specs


def fold_batch_norm(arrays: dict[str, np.ndarray], spec: ConvSpec) -> tuple[np.ndarray, np.ndarray]:
    """Kernel and bias of `spec`'s convolution with its batch normalisation folded in."""
    kernel = arrays[f"{spec.name}_conv/kernel"].astype(np.float32)
    bias = arrays.get(f"{spec.name}_conv/bias", np.zeros(spec.channels_out)).astype(np.float32)
    gamma, beta, mean, variance = (
        arrays[f"{spec.name}_bn/{key}"].astype(np.float32)
        for key in ("gamma", "beta", "moving_mean", "moving_variance")
    )
    scale = gamma / np.sqrt(variance + BN_EPSILON)
    return kernel * scale, (bias - mean) * scale + beta


def _check(arrays: dict[str, np.ndarray], spec: ConvSpec, path: Path) -> None:
    expected = {
        f"{spec.name}_conv/kernel": (spec.size, spec.size, spec.channels_in, spec.channels_out),
        **{
            f"{spec.name}_bn/{key}": (spec.channels_out,)
            for key in ("gamma", "beta", "moving_mean", "moving_variance")
        },
    }
    for key, shape in expected.items():
        if key not in arrays or tuple(arrays[key].shape) != shape:
            raise invalid_model_file(path, f"it has no matching weights for {key}")


def fold_backbone(arrays: dict[str, np.ndarray], path: Path) -> dict[str, tuple]:
    """Check a backbone file's arrays and fold each batch-norm into its convolution (numpy only)."""
    folded = {}
    for spec in all_specs():
        _check(arrays, spec, path)
        folded[spec.name] = fold_batch_norm(arrays, spec)
    return folded


class FoldedResNet50:
    """Callable: preprocessed images (n, h, w, 3) -> feature map `conv5_block3_out`."""

    def __init__(self, folded: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        import tensorflow as tf

        self.convs = {
            spec.name: (spec, tf.constant(folded[spec.name][0]), tf.constant(folded[spec.name][1]))
            for spec in all_specs()
        }

    def _conv(self, x, name: str, relu: bool = True):
        import tensorflow as tf

        spec, kernel, bias = self.convs[name]
        padding = "SAME" if spec.size == 3 else "VALID"
        y = tf.nn.conv2d(x, kernel, strides=spec.stride, padding=padding) + bias
        return tf.nn.relu(y) if relu else y

    def __call__(self, images, training: bool = False):
        """Forward pass; `training` is accepted for Keras-compatible calls and ignored."""
        import tensorflow as tf

        x = tf.pad(images, [[0, 0], [3, 3], [3, 3], [0, 0]])
        x = self._conv(x, "conv1")
        x = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
        x = tf.nn.max_pool2d(x, ksize=3, strides=2, padding="VALID")
        for stage, blocks, _, _ in STAGES:
            for block in range(1, blocks + 1):
                prefix = f"{stage}_block{block}"
                shortcut = self._conv(x, f"{prefix}_0", relu=False) if block == 1 else x
                y = self._conv(x, f"{prefix}_1")
                y = self._conv(y, f"{prefix}_2")
                y = self._conv(y, f"{prefix}_3", relu=False)
                x = tf.nn.relu(shortcut + y)
        return x
