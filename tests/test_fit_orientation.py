"""The orientation head: learned from the four quarter turns of each training image, its least
confidence chosen on validation, loaded and used by the app."""

from __future__ import annotations

import shutil

import numpy as np

import predictions
from core import engine
from core.manifest import read_manifest
from tests.factories import make_random_weights
from tests.mura_fixture import make_fracatlas_tree
from training.heads import fit_orientation, linear


def test_softmax_regression_learns_separable_turns():
    rng = np.random.default_rng(0)
    turns = np.tile(np.arange(4), 100)
    x = rng.normal(0, 1, (400, 6)) + 5
    x[np.arange(400), turns] += 3.0  # feature k marks turn k
    kernel, bias = linear.fit_softmax(x, turns, 1e-3, 4)
    assert kernel.shape == (6, 4) and bias.shape == (4,)
    guess = (x @ kernel + bias).argmax(axis=1)
    assert np.mean(guess == turns) > 0.9


def test_the_gate_turns_only_when_turning_helps():
    truth = np.array([0, 0, 0, 0, 1, 2, 3, 1])
    probabilities = np.full((8, 4), 0.05)
    sure = [0, 0, 0, 1, 1, 2, 3, 1]  # one upright view taken for "turned 90"...
    confidence = [0.85, 0.85, 0.85, 0.55, 0.9, 0.9, 0.9, 0.6]  # ...with little confidence
    for row, (k, p) in enumerate(zip(sure, confidence, strict=True)):
        probabilities[row] = (1 - p) / 3
        probabilities[row, k] = p
    chosen = linear.choose_gate(probabilities, truth)
    assert chosen["gate"] == 0.6  # above 0.55 (the wrong turn), not above 0.6 (a right one)
    assert chosen["by_gate"][0.6]["as_stored_left_alone"] == 1.0
    assert chosen["by_gate"][0.6]["turned_seen_upright"] == 1.0
    assert chosen["by_gate"][0.9]["turned_seen_upright"] < 1.0


def test_of_gates_that_tie_the_surest_is_chosen_and_the_manifest_takes_it():
    probabilities = np.tile([0.7, 0.1, 0.1, 0.1], (4, 1))  # every gate leaves these alone...
    probabilities[3] = [0.02, 0.96, 0.01, 0.01]  # ... and turns this one back
    chosen = linear.choose_gate(probabilities, np.array([0, 0, 0, 1]))
    assert 0 < chosen["gate"] < 1 and chosen["gate"] == max(linear.GATES)


def test_fit_orientation_writes_a_head_the_app_uses(tmp_path, sample_png):
    data = make_fracatlas_tree(tmp_path / "data", n=60)
    weights = tmp_path / "weights"
    shutil.copytree(make_random_weights(tmp_path / "made"), weights)
    code = fit_orientation.main(
        ["--weights", str(weights), "--data", str(data), "--network", "shared",
         "--cache", str(tmp_path / "cache")]
    )  # fmt: skip
    assert code == 0
    manifest = read_manifest(weights)
    head = manifest.orientation
    assert head.network == "shared" and head.threshold in linear.GATES
    assert head.details["validation"]["views"] == 4 * head.details["validation"]["images"]
    engine.clear_cache()
    result = predictions.analyze(sample_png, weights)
    assert 0.0 <= result.fracture_probability <= 1.0
