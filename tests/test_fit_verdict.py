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
from training.data import datasets
from training.data.datasets import Record
from training.heads import fit_verdict, linear
from training.metrics import auroc


def records_for(x: np.ndarray, y: np.ndarray, bones=("Hand", "Other")) -> list[Record]:
    return [
        Record(f"{i}.png", bones[i % len(bones)], "hand", int(label), f"p{i // 3}", f"s{i}")
        for i, label in enumerate(y)
    ]


def test_fit_folds_the_standardisation_into_one_kernel_per_bone_and_network():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    a = rng.normal(0, 3, (300, 4)) + 10
    b = rng.normal(0, 1, (300, 3))
    b[:, 0] += 2.0 * y  # one feature of the second network carries the label
    records = records_for(a, y)
    result = fit_verdict.fit([a, b], records, fit_verdict.BONE_STRENGTHS)
    x = np.concatenate([a, b], 1)
    mean, spread = linear.standardise(x)
    bones = np.array([r.bone for r in records])
    heads = fit_verdict.fit_heads(
        (x - mean) / spread, y.astype(float), bones, result["strength"], result["bone_strength"]
    )
    for bone in ("Elbow", "Hand", "Shoulder"):
        assert [k.shape for k in result["kernels"][bone]] == [(4, 1), (3, 1)]
        w, bias = heads[bone]
        np.testing.assert_allclose(
            fit_verdict.verdict_logits([a, b], result, bone),
            (x - mean) / spread @ w + bias,
            atol=1e-4,
        )
        assert abs(result["kernels"][bone][1][0, 0]) > 5 * abs(result["kernels"][bone][0]).max()
    assert max(result["cross_validation"].values()) > 0.8  # out-of-fold AUROC on real signal
    assert set(result["cross_validation"]) == set(fit_verdict.STRENGTHS)
    assert len(result["bone_cross_validation"]) == len(fit_verdict.BONE_STRENGTHS)


def signs_differ_sample(seed: int, n: int = 900) -> tuple[np.ndarray, list[Record]]:
    """Other regions carry the label in feature 0, hands in feature 1."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    records = records_for(np.zeros(n), y, bones=("Hand", "Other", "Other"))
    hand = np.array([r.bone == "Hand" for r in records])
    x = rng.normal(0, 1, (n, 4))
    x[~hand, 0] += 1.5 * y[~hand]
    x[hand, 1] += 2.0 * y[hand]
    return x, records


def test_a_bone_whose_signs_differ_gets_its_own_offset():
    """Cross-validation chooses per-bone offsets, and on new images the hand's own head ranks
    hands better than the common head (which elbows, absent here, keep)."""
    x, records = signs_differ_sample(1)
    result = fit_verdict.fit([x], records, fit_verdict.BONE_STRENGTHS)
    assert result["bone_strength"] is not None
    best = result["bone_cross_validation"][str(result["bone_strength"]).lower()]
    assert best > result["bone_cross_validation"]["none"]

    new_x, new_records = signs_differ_sample(2)
    hands = [i for i, r in enumerate(new_records) if r.bone == "Hand"]
    labels = np.array([new_records[i].label for i in hands])
    own = fit_verdict.verdict_logits([new_x[hands]], result, "Hand")
    common = fit_verdict.verdict_logits([new_x[hands]], result, "Elbow")
    assert auroc(labels, own) > auroc(labels, common) + 0.03


def test_an_offset_fitted_on_top_of_fixed_logits_only_adds_what_they_lack():
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, (400, 2))
    y = (x[:, 0] + 0.3 * rng.normal(size=400) > 0).astype(float)
    w, b = linear.fit_logistic(x, y, 1e-6)
    extra, extra_bias = linear.fit_logistic(x, y, 1e-6, offset=x @ w + b)
    assert np.abs(extra).max() < 0.01 * np.abs(w).max() and abs(extra_bias) < 0.01
    shifted, shifted_bias = linear.fit_logistic(x, y, 1e-6, offset=1.0)
    np.testing.assert_allclose(shifted, w, atol=1e-3)
    assert shifted_bias == pytest.approx(b - 1.0, abs=1e-3)


def fit_command(weights, data, cache, *extra: str) -> int:
    return fit_verdict.main(
        [
            "--weights", str(weights), "--data", str(data),
            "--networks", "shared,fracture", "--cache", str(cache), *extra,
        ]
    )  # fmt: skip


def terms_of(manifest) -> set[str]:
    return {key for key in manifest.heads if key.startswith("fracture_term_")}


def test_fitted_verdict_is_what_the_app_computes(tmp_path, monkeypatch):
    data = make_fracatlas_tree(tmp_path / "data", n=120)
    weights = tmp_path / "weights"
    shutil.copytree(make_random_weights(tmp_path / "two", separate_fracture_size=48), weights)
    assert fit_command(weights, data, tmp_path / "cache") == 0
    manifest = read_manifest(weights)
    hand = manifest.fracture["Hand"]
    assert hand.network == "shared" and hand.plus_heads == ("fracture_term_fracture",)
    assert terms_of(manifest) == {"fracture_term_fracture"}  # one term: no per-bone offsets
    assert [h.network for h in manifest.verdict_of("Hand")] == ["shared", "fracture"]
    assert (tmp_path / "cache").is_dir() and any((tmp_path / "cache").iterdir())
    assert "the all-region model" in hand.details["answered_by"]

    monkeypatch.setattr(fit_verdict, "BONE_STRENGTHS", (0.3,))  # offsets whatever CV would say
    assert fit_command(weights, data, tmp_path / "cache", "--bone-offsets") == 0
    manifest = read_manifest(weights)
    per_bone = {f"fracture_term_fracture_{b}" for b in ("elbow", "hand", "shoulder")}
    assert terms_of(manifest) == per_bone  # the single term is gone, file and entry
    assert not (weights / "fracture_term_fracture_head.npz").exists()
    assert manifest.fracture["Hand"].plus_heads == ("fracture_term_fracture_hand",)
    assert manifest.fracture["Hand"].details["answered_by"].startswith("the hand model")

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


def test_hospital_copies_fit_on_changed_views_and_report_them(tmp_path):
    data = make_fracatlas_tree(tmp_path / "data", n=60)
    weights = tmp_path / "weights"
    shutil.copytree(make_random_weights(tmp_path / "two", separate_fracture_size=48), weights)
    cache = tmp_path / "cache"
    assert fit_command(weights, data, cache, "--hospital-copies", "2") == 0
    hand = read_manifest(weights).fracture["Hand"]
    assert "2 changed view(s)" in hand.details["head"]
    changed = hand.details["validation"]["changed_view"]
    assert set(changed) == {"auroc_all_regions", "auroc_three_bones"}

    records = datasets.load_splits("fracatlas", data)[0]["train"][:4]
    views = linear.changed_features(weights, "fracture", records, cache, copies=2)
    assert views.shape[0] == 8 and not np.allclose(views[0], views[1])  # two different views
    fresh = tmp_path / "fresh_cache"  # computed again, not read back
    reordered = linear.changed_features(weights, "fracture", records[::-1], fresh, copies=2)
    np.testing.assert_allclose(reordered[-2:], views[:2])  # seeded by file name, not position
    plain = linear.pooled_features(weights, "fracture", records, cache)
    assert not np.allclose(plain[0], views[0])
