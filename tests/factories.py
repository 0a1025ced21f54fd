"""Build test inputs: random-weight models with a real manifest, and generated X-ray-like images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from core import manifest as manifest_module
from core.imaging import preprocess
from core.models import BONE_TYPE_CLASSES

TINY_SIZE = 32
FEATURE_CHANNELS = 16


def tiny_network(input_size: int, seed: int = 0):
    """A small random convolutional feature network (stride 4) in place of ResNet50 for tests."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((input_size, input_size, 3), name="image")
    scaled = keras.layers.Rescaling(1 / 128.0)(inputs)
    hidden = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(scaled)
    features = keras.layers.Conv2D(
        FEATURE_CHANNELS, 3, strides=2, padding="same", activation="relu", name="features"
    )(hidden)
    return keras.Model(inputs, features)


def calibration(input_size: int, count: int = 8) -> np.ndarray:
    """Preprocessed X-ray-like images for int8 calibration in tests."""
    return np.stack([preprocess(xray_like(seed=i) / 255.0, input_size) for i in range(count)])


def make_random_weights(
    folder: Path,
    input_size: int = TINY_SIZE,
    seed: int = 0,
    favour_bone: str | None = None,
    fracture_logit: float = 0.0,
    separate_fracture_size: int | None = None,
    box_threshold: float | None = None,
) -> Path:
    """Export random networks and heads with a real manifest, through the training code path.

    With `favour_bone` the heads' kernels are near zero and their biases decide the outcome: the
    bone type is `favour_bone` (about 95%); every fracture probability is sigmoid(fracture_logit).
    With `separate_fracture_size` the fracture heads get their own network at that input size;
    with `box_threshold` they draw fracture boxes.
    """
    from training.export.litert import export_network, register_head

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    networks = {"shared": input_size}
    if separate_fracture_size:
        networks["fracture"] = separate_fracture_size
    for offset, (name, size) in enumerate(networks.items()):
        export_network(
            tiny_network(size, seed + offset), folder, name, calibration(size), version="test"
        )
    raw = manifest_module.load_raw(folder)
    raw["recognition_threshold"] = 0.3
    manifest_module.write_raw(folder, raw)
    fracture_network = "fracture" if separate_fracture_size else "shared"
    for key in manifest_module.REQUIRED_HEADS:
        outputs = len(BONE_TYPE_CLASSES) if key == "bone_type" else 1
        kernel = rng.normal(0, 1e-5 if favour_bone else 0.05, (FEATURE_CHANNELS, outputs))
        bias = np.zeros(outputs)
        if favour_bone and key == "bone_type":
            bias[BONE_TYPE_CLASSES.index(favour_bone)] = 4.0
        elif favour_bone:
            bias[:] = fracture_logit
        network = "shared" if key == "bone_type" else fracture_network
        extra = {} if key == "bone_type" else {"threshold": 0.5}
        if box_threshold is not None and key != "bone_type":
            extra["box_threshold"] = box_threshold
        register_head(folder, key, kernel, bias, network, version="test", **extra)
    return folder


def xray_like(width: int = 96, height: int = 128, seed: int = 0) -> np.ndarray:
    """A gray uint8 image with a bright 'bone' band on a dark background."""
    rng = np.random.default_rng(seed)
    image = rng.normal(30, 10, (height, width))
    image[:, width // 3 : 2 * width // 3] += 150
    return np.clip(image, 0, 255).astype(np.uint8)


def write_image(path: Path, array: np.ndarray | None = None, mode: str = "L") -> Path:
    """Save an array (default: `xray_like()`) as an image file in the format of `path`'s suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(xray_like() if array is None else array).convert(mode).save(path)
    return path


SAMPLE_HAND = (
    Path(__file__).resolve().parent.parent / "test" / "Hand" / "fractured" / "IMG0002413.jpg"
)
PATIENT = {
    "PatientName": "Doe^Jane",
    "PatientID": "PID-0042",
    "PatientBirthDate": "19800214",
    "PatientSex": "F",
    "StudyInstanceUID": "1.2.826.0.1.3680043.8.498.1001",
    "StudyID": "S77",
    "StudyDate": "20261201",
    "StudyTime": "101500",
    "AccessionNumber": "ACC123",
    "StudyDescription": "XR HAND 2 VIEWS",
    "ReferringPhysicianName": "Who^Doctor",
}


def dicom_xray(path: Path, source: Path = SAMPLE_HAND, **tags) -> Path:
    """A sample X-ray (a real image from test/) stored as a 16-bit DICOM file with patient and
    study identity (`PATIENT`, overridden by `tags`)."""
    from tests.bad_inputs import dicom_dataset

    gray = np.asarray(Image.open(source).convert("L"), dtype=np.uint16) * 16
    dataset = dicom_dataset(gray, **{**PATIENT, **tags})
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset.save_as(path, enforce_file_format=True)
    return path


def edit_manifest(folder: Path, change) -> None:
    """Apply `change(raw)` to a weights folder's manifest.json in place (tests of bad manifests)."""
    import json

    raw = json.loads((folder / "manifest.json").read_text())
    change(raw)
    (folder / "manifest.json").write_text(json.dumps(raw))
