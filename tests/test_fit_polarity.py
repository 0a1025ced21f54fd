"""The polarity head: learned from each training image as it is and inverted, its least confidence
chosen on validation, loaded and used by the app."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import predictions
from core import engine
from core.heads import sigmoid
from core.manifest import read_manifest
from tests.factories import make_random_weights
from tests.mura_fixture import make_fracatlas_tree
from training.heads import fit_polarity, linear


def test_the_regression_separates_the_views_on_raw_features():
    rng = np.random.default_rng(0)
    inverted = np.tile([0, 1], 100)
    x = rng.normal(0, 1, (200, 5)) * [1, 10, 1, 1, 1] + [0, 50, 0, 0, 0]
    x[:, 0] += 3 * inverted  # one feature tells, on its own scale
    kernel, bias = fit_polarity.fit_polarity(x, inverted, strength=1e-3)
    p = sigmoid(x @ kernel + bias)  # the folded head reads raw features, as the app does
    assert np.mean((p >= 0.5) == inverted) > 0.9
    assert abs(kernel[0]) > 5 * abs(kernel[1])


def test_pooled_features_give_each_record_as_it_is_then_inverted(tmp_path):
    data = make_fracatlas_tree(tmp_path / "data", n=8)
    weights = make_random_weights(tmp_path / "made")
    from training.data import datasets

    records = datasets.load_splits("fracatlas", data)[0]["train"][:3]
    both = linear.pooled_features(weights, "shared", records, tmp_path / "cache", inverted=True)
    plain = linear.pooled_features(weights, "shared", records, tmp_path / "cache")
    assert both.shape == (6, plain.shape[1])
    np.testing.assert_allclose(both[::2], plain, rtol=1e-5, atol=1e-6)
    assert not np.allclose(both[1::2], plain)
    with pytest.raises(ValueError):
        linear.pooled_features(weights, "shared", records, tmp_path / "cache", 4, inverted=True)


def test_fit_polarity_writes_a_head_the_app_uses(tmp_path, sample_png):
    data = make_fracatlas_tree(tmp_path / "data", n=60)
    weights = tmp_path / "weights"
    shutil.copytree(make_random_weights(tmp_path / "made"), weights)
    code = fit_polarity.main(
        ["--weights", str(weights), "--data", str(data), "--network", "shared",
         "--cache", str(tmp_path / "cache")]
    )  # fmt: skip
    assert code == 0
    head = read_manifest(weights).polarity
    assert head.network == "shared" and 0.5 <= head.threshold < 1
    assert head.details["validation"]["views"] == 2 * head.details["validation"]["images"]
    engine.clear_cache()
    result = predictions.analyze(sample_png, weights)
    assert 0.0 <= result.fracture_probability <= 1.0
