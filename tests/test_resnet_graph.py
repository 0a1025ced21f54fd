"""The inference graph (batch-norm folded, plain TensorFlow) computes what Keras' ResNet50 does."""

from __future__ import annotations

import numpy as np
import pytest

from core import errors
from core.models import build_backbone, load_arrays, save_backbone
from core.resnet_graph import FoldedResNet50, all_specs, fold_backbone


def _keras_backbone_with_trained_statistics(size: int, seed: int):
    """A random ResNet50 whose batch-norm layers have non-trivial statistics, as after training."""
    import keras

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    backbone = build_backbone(size)
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 1.5, channels))
            layer.beta.assign(rng.normal(0, 0.1, channels))
            layer.moving_mean.assign(rng.normal(0, 0.1, channels))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, channels))
    return backbone


@pytest.mark.parametrize("size", [32, 75])
def test_folded_graph_matches_keras(tmp_path, size):
    backbone = _keras_backbone_with_trained_statistics(size, seed=size)
    path = tmp_path / "backbone.npz"
    save_backbone(backbone, path)
    stored = load_arrays(path)
    for variable in backbone.weights:  # compare against the float16-rounded weights the app loads
        variable.assign(stored[variable.path].astype(np.float32))
    images = np.random.default_rng(1).uniform(-120, 150, (2, size, size, 3)).astype(np.float32)

    expected = backbone(images, training=False).numpy()
    folded = FoldedResNet50(fold_backbone(stored, path))(images).numpy()

    assert folded.shape == expected.shape
    np.testing.assert_allclose(folded, expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())


def test_specs_cover_every_convolution_of_keras_resnet50():
    keras_convs = {
        layer.name.removesuffix("_conv")
        for layer in build_backbone(32).layers
        if layer.name.endswith("_conv")
    }
    assert {spec.name for spec in all_specs()} == keras_convs


def test_missing_or_misshapen_weights_are_refused(tmp_path):
    path = tmp_path / "backbone.npz"
    save_backbone(build_backbone(32), path)
    arrays = load_arrays(path)
    missing = {k: v for k, v in arrays.items() if k != "conv4_block2_2_bn/gamma"}
    with pytest.raises(errors.InvalidModelFileError, match="conv4_block2_2_bn/gamma"):
        fold_backbone(missing, path)
    misshapen = {**arrays, "conv1_conv/kernel": np.zeros((3, 3, 3, 64), np.float16)}
    with pytest.raises(errors.InvalidModelFileError, match="conv1_conv/kernel"):
        fold_backbone(misshapen, path)
