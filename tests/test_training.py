"""End to end on a generated MURA tree: train, save, update the manifest, reload, evaluate."""

from __future__ import annotations

import json

import numpy as np
import pytest

import predictions
from core import engine
from core.imaging import preprocess, read_xray
from core.manifest import load_raw as read_raw_manifest
from core.manifest import read_manifest, sha256_file
from tests.mura_fixture import make_mura_tree
from training.data import datasets
from training.data.pipeline import image_dataset, images_only
from training.networks import train
from training.report import evaluate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mura(tmp_path_factory):
    return make_mura_tree(tmp_path_factory.mktemp("mura"), patients_per_type=4, image_size=48)


def cli_args(data, out, batch_size: int, seed: int = 0) -> list[str]:
    """Options shared by the training runs of these tests (tiny input, quiet)."""
    return [
        "--data",
        str(data),
        "--out",
        str(out),
        "--input-size",
        "32",
        "--batch-size",
        str(batch_size),
        "--seed",
        str(seed),
        "--verbose",
        "0",
    ]


def test_pipeline_without_augmentation_equals_inference_input(mura):
    records, _ = datasets.load_mura(mura, "valid")
    batch = next(iter(images_only(records[:4], 32, 4))).numpy()
    for record, image in zip(records[:4], batch, strict=True):
        np.testing.assert_allclose(image, preprocess(read_xray(record.path), 32), atol=1e-4)
        np.testing.assert_allclose(image, predictions.model_input(record.path, 32), atol=1e-4)


def test_training_batches_are_augmented_and_weighted(mura):
    records, _ = datasets.load_mura(mura, "train")
    images, targets, weights = next(iter(image_dataset(records, 32, 8, training=True)))
    assert images.shape == (8, 32, 32, 3)
    assert set(targets) == {"bone_type", "fracture"} and set(weights) == {"bone_type", "fracture"}
    plain = np.stack([preprocess(read_xray(r.path), 32) for r in records])
    assert not any(np.allclose(image, p, atol=1e-3) for image in images.numpy() for p in plain)


def test_train_reload_and_evaluate(mura, tmp_path, capsys):
    out, run = tmp_path / "weights", tmp_path / "run"
    common = cli_args(mura, out, batch_size=8, seed=1)
    code = train.main(
        ["backbone", *common, "--epochs", "1", "--init", "none", "--run-dir", str(run)]
    )
    assert code == 0
    manifest = read_manifest(out)
    assert manifest.networks["shared"].input_size == 32
    assert (out / "shared.float32.tflite").is_file() and (out / "shared.int8.tflite").is_file()
    parity = manifest.networks["shared"].details["parity"]["features_vs_keras_float"]
    assert parity["float32"]["pooled_cosine_min"] > 0.999
    details = manifest.bone_type.details
    assert details["provenance"]["data"] == "mura"
    assert details["provenance"]["command"].startswith("python -m training.networks.train backbone")
    assert details["provenance"]["splits"]["test"]["images"] > 0
    for entry in (*manifest.networks.values(), manifest.bone_type, *manifest.fracture.values()):
        assert entry.sha256 == sha256_file(out / entry.file)
    assert (run / "full.weights.h5").is_file()  # checkpoint for --resume

    before = manifest.fracture["Elbow"].sha256
    assert train.main(["elbow", *common]) == 0
    after = read_manifest(out)
    assert after.fracture["Elbow"].sha256 != before
    assert after.fracture["Hand"].sha256 == manifest.fracture["Hand"].sha256

    assert 0.5 <= manifest.recognition_threshold <= 0.95
    assert "chosen on validation" in read_raw_manifest(out)["recognition_threshold_note"]
    assert train.main(["parts", *common, "--recognition-threshold", "0.9"]) == 0
    assert read_manifest(out).recognition_threshold == 0.9
    assert read_manifest(out).bone_type.sha256 != manifest.bone_type.sha256

    # The seed's shape: a whole network fine-tuned for one bone drops into the manifest.
    elbow_run = [
        "--epochs",
        "1",
        "--init",
        "none",
        "--limit",
        "8",
        "--run-dir",
        str(tmp_path / "e"),
        "--quantized",  # float32 only: the quantized files were checked above
    ]
    assert train.main(["backbone", *common, "--bone", "elbow", *elbow_run]) == 0
    routed = read_manifest(out)
    assert routed.fracture["Elbow"].network == "elbow_network"
    assert routed.networks["elbow_network"].quantization == "float32"
    assert routed.fracture["Hand"].network == routed.bone_type.network == "shared"
    assert routed.fracture["Hand"].sha256 == after.fracture["Hand"].sha256

    engine.clear_cache()
    records, _ = datasets.load_mura(mura, "valid")
    result = predictions.analyze(records[0].path, out)
    assert result.bone in ("Elbow", "Hand", "Shoulder")
    assert predictions.analyze(records[0].path, out, bone="elbow").bone_source == "chosen"

    report_dir = tmp_path / "report"
    assert (
        evaluate.main(["--data", str(mura), "--weights", str(out), "--out", str(report_dir)]) == 0
    )
    report = json.loads((report_dir / "report.json").read_text())
    assert report["images"] == len(records)
    assert report["bone_type"]["images_of_other_regions"] > 0
    assert (report_dir / "roc.png").is_file() and (report_dir / "training_curves.png").is_file()
    assert "Bone type:" in capsys.readouterr().out


def test_resume_skips_a_finished_phase(mura, tmp_path, capsys):
    out, run = tmp_path / "weights", tmp_path / "run"
    args = [
        "backbone",
        *cli_args(mura, out, batch_size=16),
        "--epochs",
        "1",
        "--init",
        "none",
        "--run-dir",
        str(run),
        "--limit",
        "16",
        "--quantized",  # float32 only (the quantized exports are checked in the test above)
    ]
    assert train.main(args) == 0
    shared = read_manifest(out).networks["shared"]
    assert shared.quantization == "float32" and shared.file == "shared.float32.tflite"
    assert not (out / "shared.int8.tflite").exists()
    capsys.readouterr()
    assert train.main([*args, "--resume"]) == 0
    assert "already finished" in capsys.readouterr().out


def test_imagenet_init_falls_back_when_offline(monkeypatch, capsys):
    def offline(size, init="none"):
        if init == "imagenet":
            raise OSError("no network")
        return ("backbone", init)

    monkeypatch.setattr(train, "build_backbone", offline)
    assert train.resolve_init("auto", 32) == (("backbone", "none"), "none")
    assert "could not be downloaded" in capsys.readouterr().err
    with pytest.raises(OSError):
        train.resolve_init("imagenet", 32)


def test_recognition_threshold_balances_bones_and_other_regions():
    truth = ["Hand", "Hand", "Elbow", "Other", "Other"]
    probabilities = np.array(
        [
            [0.0, 0.90, 0.0, 0.10],  # hand, confident
            [0.0, 0.62, 0.0, 0.38],  # hand, unsure
            [0.58, 0.0, 0.0, 0.42],  # elbow, unsure
            [0.0, 0.72, 0.0, 0.28],  # other region that looks like a hand
            [0.0, 0.0, 0.30, 0.70],  # other region, flagged at any threshold
        ]
    )
    # at 0.50 and 0.55: bones 3/3 recognised, others 1/2 flagged -> 0.75
    assert train.recognition_score(truth, probabilities, 0.5) == pytest.approx(0.75)
    # at 0.75 (up to 0.90): bones 1/3, others 2/2 -> 0.667; at 0.60: 2/3 and 1/2 -> 0.583
    assert train.recognition_score(truth, probabilities, 0.75) == pytest.approx(2 / 3)
    assert train.recognition_score(truth, probabilities, 0.60) == pytest.approx(7 / 12)
    assert train.choose_recognition_threshold(truth, probabilities) == 0.5
    probabilities[0, 1], probabilities[1, 1] = 0.95, 0.93  # now 0.75 keeps every hand
    assert train.choose_recognition_threshold(truth, probabilities) == 0.75
