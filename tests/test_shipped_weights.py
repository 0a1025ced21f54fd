"""The default weights in weights/ load through predictions.py and answer on the sample images.

These check the shape of the answers, not the medical correctness of single images.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import predictions
from core.manifest import read_manifest, sha256_file

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "test").glob("*/*/*.jpg"))


def test_manifest_is_complete_and_checksums_match():
    manifest = read_manifest(ROOT / "weights")
    for entry in (*manifest.networks.values(), manifest.bone_type, *manifest.fracture.values()):
        assert entry.sha256 == sha256_file(ROOT / "weights" / entry.file)
        assert entry.details["provenance"]["command"].startswith("python -m training.")
    assert manifest.card["attribution"].startswith("FracAtlas")
    assert manifest.card["metrics_summary"]
    size = sum(p.stat().st_size for p in (ROOT / "weights").iterdir()) / 2**20
    assert size <= 200, f"weights/ is {size:.0f} MB, over the 200 MB budget"


def test_samples_exist_for_every_bone_and_label():
    found = {(p.parent.parent.name, p.parent.name) for p in SAMPLES}
    assert found == {
        (b, label) for b in ("Elbow", "Hand", "Shoulder") for label in ("fractured", "normal")
    }


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: f"{p.parent.parent.name}-{p.parent.name}")
def test_sample_images_get_a_complete_answer(path):
    result = predictions.analyze(path)
    assert result.bone in ("Elbow", "Hand", "Shoulder")
    if result.recognised:
        fractured = result.model_fracture_probability >= result.threshold
        assert result.label == ("fractured" if fractured else "normal")
    else:  # no verdict, as in the window
        assert result.label == "not recognised" and result.boxes == ()
    assert 0.0 <= result.model_fracture_probability <= 1.0
    assert sum(result.bone_probabilities.values()) == pytest.approx(1.0, abs=1e-3)
    assert predictions.predict(path) == result.bone
    chosen = predictions.predict(path, result.bone)  # a chosen bone always gets a verdict
    assert chosen in ("fractured", "normal")
    assert chosen == result.label or not result.recognised


def test_the_knee_sample_is_not_recognised():
    """test/Other holds a knee: no verdict, the model's best guess and its confidence shown."""
    result = predictions.analyze(ROOT / "test" / "Other" / "IMG0000026.jpg")
    assert not result.recognised and result.label == "not recognised"
    assert result.boxes == () and result.bone_probabilities["Other"] > 0.5


def test_sample_study_and_heatmap():
    hand = sorted((ROOT / "test" / "Hand").glob("*/*.jpg"))
    study = predictions.analyze_study(hand)
    assert len(study.images) == len(hand)
    explanation = predictions.explain(hand[0])
    assert explanation.heat.ndim == 2 and explanation.overlay.mode == "RGB"
