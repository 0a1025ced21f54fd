"""The bone-type head refitted on augmented training views: a new head and recognition threshold,
chosen on plain + stress validation, that the app loads; the network and its history are kept."""

from __future__ import annotations

import shutil

import numpy as np

import predictions
from core import engine
from core.manifest import load_raw, read_manifest
from tests.factories import make_random_weights
from tests.mura_fixture import make_fracatlas_tree
from training.heads import fit_bone_type_head
from training.heads.linear import fit_softmax
from training.report.model_card import bone_type_head_lines


def test_softmax_regression_learns_separable_classes_of_any_count():
    rng = np.random.default_rng(0)
    classes = np.tile(np.arange(3), 100)
    x = rng.normal(0, 1, (300, 5)) - 2
    x[np.arange(300), classes] += 3.0  # feature k marks class k
    kernel, bias = fit_softmax(x, classes, 1e-3, count=3)
    assert kernel.shape == (5, 3) and bias.shape == (3,)
    assert np.mean((x @ kernel + bias).argmax(axis=1) == classes) > 0.9


def test_fit_bone_type_head_writes_a_head_and_threshold_the_app_uses(tmp_path, sample_png):
    data = make_fracatlas_tree(tmp_path / "data", n=60)
    weights = tmp_path / "weights"
    shutil.copytree(make_random_weights(tmp_path / "made"), weights)
    before = load_raw(weights)
    code = fit_bone_type_head.main(
        ["--weights", str(weights), "--data", str(data), "--views-per-class", "12",
         "--stress-dir", str(tmp_path / "stress")]
    )  # fmt: skip
    assert code == 0
    after = load_raw(weights)
    head = after["heads"]["bone_type"]
    assert head["sha256"] != before["heads"]["bone_type"]["sha256"]
    assert head["network"] == before["heads"]["bone_type"]["network"]
    assert after["networks"] == before["networks"]  # only the head changes
    refit = head["provenance"]["head_refit"]
    assert refit["views"] == 4 * 12
    assert set(refit["validation"]) >= {"plain validation", "stress validation"}
    assert after["recognition_threshold"] == refit["validation"]["recognition_threshold"]
    assert 0.5 <= after["recognition_threshold"] <= 0.95
    for key, value in before["heads"]["bone_type"].get("provenance", {}).items():
        assert head["provenance"][key] == value  # the network's training history is kept
    assert bone_type_head_lines(before["heads"]) == []
    (card_line,) = bone_type_head_lines(after["heads"])
    assert "refitted on the network's features of 48 augmented training views" in card_line
    manifest = read_manifest(weights)
    assert manifest.recognition_threshold == after["recognition_threshold"]
    engine.clear_cache()
    result = predictions.analyze(sample_png, weights)
    assert abs(sum(result.bone_probabilities.values()) - 1.0) < 1e-4
