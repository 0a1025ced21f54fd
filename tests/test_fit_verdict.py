"""A fracture verdict fitted over two networks: the app adds the heads' logits and gets the
probability of the logistic regression on the concatenated pooled features."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import predictions
from core import engine
from core.imaging import preprocess, read_xray
from core.manifest import read_manifest
from core.runtime import Network
from tests.factories import make_random_weights
from tests.mura_fixture import make_fracatlas_tree
from training import datasets, fit_verdict
from training.datasets import Record


def records_for(x: np.ndarray, y: np.ndarray) -> list[Record]:
    return [
        Record(f"{i}.png", ("Hand", "Other")[i % 2], "hand", int(label), f"p{i // 3}", f"s{i}")
        for i, label in enumerate(y)
    ]


def test_fit_folds_the_standardisation_into_one_kernel_per_network():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    a = rng.normal(0, 3, (300, 4)) + 10
    b = rng.normal(0, 1, (300, 3))
    b[:, 0] += 2.0 * y  # one feature of the second network carries the label
    result = fit_verdict.fit([a, b], records_for(a, y))
    assert [k.shape for k in result["kernels"]] == [(4, 1), (3, 1)]
    scores = a @ result["kernels"][0][:, 0] + b @ result["kernels"][1][:, 0] + result["bias"]
    x = np.concatenate([a, b], 1)
    mean, spread = fit_verdict.standardise(x)
    w, bias = fit_verdict.fit_logistic((x - mean) / spread, y.astype(float), result["strength"])
    np.testing.assert_allclose(scores, (x - mean) / spread @ w + bias, atol=1e-4)
    assert abs(result["kernels"][1][0, 0]) > 5 * abs(result["kernels"][0]).max()
    assert max(result["cross_validation"].values()) > 0.8  # out-of-fold AUROC on real signal
    assert set(result["cross_validation"]) == set(fit_verdict.STRENGTHS)


def test_fitted_verdict_is_what_the_app_computes(tmp_path):
    data = make_fracatlas_tree(tmp_path / "data", n=120)
    weights = tmp_path / "weights"
    shutil.copytree(make_random_weights(tmp_path / "two", separate_fracture_size=48), weights)
    code = fit_verdict.main(
        [
            "--weights", str(weights), "--data", str(data),
            "--networks", "shared,fracture", "--cache", str(tmp_path / "cache"),
        ]
    )  # fmt: skip
    assert code == 0
    manifest = read_manifest(weights)
    hand = manifest.fracture["Hand"]
    assert hand.network == "shared" and hand.plus_heads == ("fracture_term_fracture",)
    assert [h.network for h in manifest.verdict_of("Hand")] == ["shared", "fracture"]
    assert (tmp_path / "cache").is_dir() and any((tmp_path / "cache").iterdir())

    record = datasets.load_splits("fracatlas", data)[0]["val"][0]
    gray = read_xray(record.path)
    logits = 0.0
    for head in manifest.verdict_of("Hand"):
        entry = manifest.networks[head.network]
        features = Network(weights / entry.file, entry).features(preprocess(gray, entry.input_size))
        arrays = np.load(weights / head.file)
        logits += float(features.mean((0, 1)) @ arrays["kernel"][:, 0] + arrays["bias"][0])
    engine.clear_cache()
    result = predictions.analyze(record.path, weights, bone="Hand")
    assert result.fracture_probability == pytest.approx(1 / (1 + np.exp(-logits)), abs=1e-4)
