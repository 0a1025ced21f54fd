"""The inference API: seed calls, typed results, studies, Grad-CAM, model loading and its errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

import predictions
from core import engine, errors
from core.imaging import preprocess, read_xray
from core.manifest import read_manifest, sha256_file
from tests.factories import make_random_weights, write_image, xray_like


@pytest.fixture(scope="module")
def hand_fractured(tmp_path_factory):
    return make_random_weights(
        tmp_path_factory.mktemp("hf"), favour_bone="Hand", fracture_logit=2.0
    )


def test_seed_calls_return_bone_and_label(hand_fractured, sample_png):
    assert predictions.predict(sample_png, weights_dir=hand_fractured) == "Hand"
    assert predictions.predict(sample_png, "Hand", hand_fractured) == "fractured"
    assert predictions.predict(sample_png, "elbow", hand_fractured) == "fractured"
    with pytest.raises(ValueError):
        predictions.predict(sample_png, "knee", hand_fractured)


def test_analyze_returns_full_typed_result(hand_fractured, sample_png):
    result = predictions.analyze(sample_png, hand_fractured)
    assert result.bone == "Hand" and result.recognised
    assert set(result.bone_probabilities) == {"Elbow", "Hand", "Shoulder", "Other"}
    assert sum(result.bone_probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    assert result.fracture_probability == pytest.approx(1 / (1 + np.exp(-2.0)), abs=0.01)
    assert result.label == "fractured" and result.threshold == 0.5
    assert result.label_confidence == pytest.approx(result.fracture_probability)
    assert result.bone_source == "model" and result.model_bone == "Hand" and result.model_agrees
    assert set(result.model_versions) == {
        "shared",
        "bone_type",
        "fracture_elbow",
        "fracture_hand",
        "fracture_shoulder",
    }
    assert result.seconds > 0


def test_low_confidence_or_other_is_not_recognised(tmp_path, sample_png):
    other = make_random_weights(tmp_path / "o", favour_bone="Other", fracture_logit=-2.0)
    result = predictions.analyze(sample_png, other)
    assert not result.recognised
    assert result.bone in ("Elbow", "Hand", "Shoulder")  # best guess still reported
    raw = json.loads((other / "manifest.json").read_text())
    raw["recognition_threshold"] = 0.01
    (other / "manifest.json").write_text(json.dumps(raw))
    engine.clear_cache()
    assert not predictions.analyze(sample_png, other).recognised  # "Other" wins regardless


def test_threshold_from_manifest_decides_label(tmp_path, sample_png):
    folder = make_random_weights(tmp_path / "t", favour_bone="Hand", fracture_logit=2.0)
    raw = json.loads((folder / "manifest.json").read_text())
    raw["heads"]["fracture_hand"]["threshold"] = 0.95
    (folder / "manifest.json").write_text(json.dumps(raw))
    engine.clear_cache()
    result = predictions.analyze(sample_png, folder)
    assert result.label == "normal" and result.threshold == 0.95
    assert result.label_confidence == pytest.approx(1 - result.fracture_probability)


def test_a_verdict_names_the_model_that_gave_it(tmp_path, sample_png):
    folder = make_random_weights(tmp_path / "m", favour_bone="Hand", fracture_logit=2.0)
    assert not any(
        n.startswith("Fracture model") for n in predictions.analyze(sample_png, folder).notes
    )
    raw = json.loads((folder / "manifest.json").read_text())
    raw["heads"]["fracture_hand"]["answered_by"] = "the all-region model"
    (folder / "manifest.json").write_text(json.dumps(raw))
    engine.clear_cache()
    assert "Fracture model: the all-region model." in predictions.analyze(sample_png, folder).notes
    study = predictions.analyze_study([sample_png, sample_png], folder)
    assert study.notes.count("Fracture model: the all-region model.") == 1  # once, not per view
    assert not any(note.endswith(": Fracture model: the all-region model.") for note in study.notes)
    other = make_random_weights(tmp_path / "o", favour_bone="Other", fracture_logit=2.0)
    raw = json.loads((other / "manifest.json").read_text())
    raw["heads"]["fracture_hand"]["answered_by"] = "the all-region model"
    (other / "manifest.json").write_text(json.dumps(raw))
    engine.clear_cache()
    assert not predictions.analyze(sample_png, other).notes  # no verdict, no word on its model


def test_study_probability_is_mean_of_images(tiny_weights, tmp_path):
    first = write_image(tmp_path / "a.png")
    second = write_image(tmp_path / "b.png", xray_like(120, 90, seed=3))
    study = predictions.analyze_study([first, second], tiny_weights)
    singles = [predictions.analyze(p, tiny_weights) for p in (first, second)]
    raw = [engine.get_engine(tiny_weights).run(read_xray(p)) for p in (first, second)]
    expected = np.mean([r.fracture_probabilities[study.bone] for r in raw])
    assert study.fracture_probability == pytest.approx(expected, abs=1e-5)
    assert study.view_bones == tuple(s.model_bone for s in singles)
    assert study.views_agree == (singles[0].model_bone == singles[1].model_bone)
    with pytest.raises(errors.TriageError):
        predictions.analyze_study([], tiny_weights)


def test_heatmap_is_available_as_array_and_overlay(tiny_weights, sample_png):
    explanation = predictions.explain(sample_png, "Hand", tiny_weights)
    assert explanation.heat.ndim == 2 and explanation.heat.dtype == np.float32
    assert explanation.heat.min() >= 0.0 and explanation.heat.max() <= 1.0
    assert explanation.overlay.size == (96, 128) and explanation.overlay.mode == "RGB"


def test_inference_uses_the_shared_preprocess(tiny_weights, sample_png):
    np.testing.assert_array_equal(
        predictions.model_input(sample_png, 32), preprocess(read_xray(sample_png), 32)
    )


def test_models_load_once(tiny_weights, sample_png, monkeypatch):
    predictions.analyze(sample_png, tiny_weights)
    built = []
    monkeypatch.setattr(engine, "Engine", lambda manifest: built.append(manifest))
    predictions.analyze(sample_png, tiny_weights)
    predictions.analyze(sample_png, tiny_weights)
    assert built == []


def test_manifest_lists_checksums_classes_and_sizes(tiny_weights):
    manifest = read_manifest(tiny_weights)
    assert manifest.networks["shared"].input_size == 32
    assert manifest.networks["shared"].quantization == "int8"
    assert manifest.bone_type.classes == ("Elbow", "Hand", "Shoulder", "Other")
    for entry in (*manifest.networks.values(), manifest.bone_type, *manifest.fracture.values()):
        assert entry.sha256 == sha256_file(tiny_weights / entry.file)


def test_a_file_cut_short_is_analysed_and_says_so(tiny_weights, tmp_path):
    whole = write_image(tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(whole[:-2])  # only the end-of-image marker is missing
    result = predictions.analyze(tmp_path / "cut.jpg", tiny_weights)
    assert any("cut short" in note for note in result.notes)
    assert predictions.analyze(tmp_path / "whole.jpg", tiny_weights).notes == ()
    study = predictions.analyze_study([tmp_path / "cut.jpg", tmp_path / "whole.jpg"], tiny_weights)
    assert len(study.notes) == 1 and study.notes[0].startswith("cut.jpg: ")


def test_fracture_boxes_in_image_pixels_and_none_below_threshold(tmp_path, capsys):
    image = write_image(tmp_path / "hand.png")  # 96 x 128 pixels
    likely = make_random_weights(
        tmp_path / "f", favour_bone="Hand", fracture_logit=2.0, box_threshold=0.5
    )
    result = predictions.analyze(image, likely)
    assert len(result.boxes) == 1  # every cell is at sigmoid(2): one region, one box
    box = result.boxes[0]
    assert box.probability == pytest.approx(1 / (1 + np.exp(-2.0)), abs=0.01)
    assert 0 <= box.x0 < box.x1 <= 96 and 0 <= box.y0 < box.y1 <= 128
    # one region covers the whole image; its box spans only the cells around the region's peak
    assert 0 < (box.x1 - box.x0) * (box.y1 - box.y0) < 0.5 * 96 * 128
    unlikely = make_random_weights(
        tmp_path / "n", favour_bone="Hand", fracture_logit=-2.0, box_threshold=0.5
    )
    assert predictions.analyze(image, unlikely).boxes == ()
    assert predictions.main([str(image), "--json", "--weights", str(likely)]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["boxes"] == [
        {"x0": box.x0, "y0": box.y0, "x1": box.x1, "y1": box.y1, "probability": box.probability}
    ]
