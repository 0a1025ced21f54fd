"""End to end on a generated MURA tree: train, save, update the manifest, reload, evaluate."""

from __future__ import annotations

import json

import numpy as np
import pytest

import predictions
from core import engine
from core.imaging import preprocess, read_xray
from core.manifest import read_manifest, sha256_file
from tests.mura_fixture import make_mura_tree
from training import datasets, evaluate, train
from training.pipeline import image_dataset, images_only

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
    assert manifest.input_size == 32
    details = manifest.bone_type.details
    assert details["provenance"]["data"] == "mura"
    assert details["provenance"]["command"].startswith("python -m training.train backbone")
    assert details["provenance"]["splits"]["test"]["images"] > 0
    for entry in (manifest.backbone, manifest.bone_type, *manifest.fracture.values()):
        assert entry.sha256 == sha256_file(out / entry.file)
    assert (run / "full.weights.h5").is_file()  # checkpoint for --resume

    before = manifest.fracture["Elbow"].sha256
    assert train.main(["elbow", *common]) == 0
    after = read_manifest(out)
    assert after.fracture["Elbow"].sha256 != before
    assert after.fracture["Hand"].sha256 == manifest.fracture["Hand"].sha256

    engine.clear_cache()
    records, _ = datasets.load_mura(mura, "valid")
    result = predictions.analyze(records[0].path, out)
    assert result.bone in ("Elbow", "Hand", "Shoulder")

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
    ]
    assert train.main(args) == 0
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
