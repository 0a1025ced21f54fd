"""Build test inputs: random-weight models with a real manifest, and generated X-ray-like images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from core import manifest as manifest_module
from core.models import (
    BONE_TYPE_CLASSES,
    BONES,
    FEATURE_DIM,
    FRACTURE_CLASSES,
    build_backbone,
    save_backbone,
    save_head,
)

TINY_SIZE = 32


def make_random_weights(
    folder: Path,
    input_size: int = TINY_SIZE,
    seed: int = 0,
    favour_bone: str | None = None,
    fracture_logit: float = 0.0,
) -> Path:
    """Write a random-weight backbone, heads and manifest through the same code path as training.

    With `favour_bone` the heads' kernels are near zero and their biases decide the outcome: the
    bone type is `favour_bone` (about 95%); every fracture probability is sigmoid(fracture_logit).
    """
    import keras

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    save_backbone(build_backbone(input_size), folder / "backbone_resnet50.npz")
    raw = manifest_module.load_raw(folder)
    raw.update(input_size=input_size, recognition_threshold=0.3)
    manifest_module.write_raw(folder, raw)
    manifest_module.register_model(
        folder, "backbone", folder / "backbone_resnet50.npz", (), version="test"
    )
    heads = {"bone_type": (len(BONE_TYPE_CLASSES), BONE_TYPE_CLASSES)}
    heads.update({f"fracture_{bone.lower()}": (1, FRACTURE_CLASSES) for bone in BONES})
    for key, (outputs, classes) in heads.items():
        path = folder / f"{key}_head.npz"
        kernel = rng.normal(0, 1e-5 if favour_bone else 0.05, (FEATURE_DIM, outputs))
        bias = np.zeros(outputs)
        if favour_bone and key == "bone_type":
            bias[BONE_TYPE_CLASSES.index(favour_bone)] = 4.0
        elif favour_bone:
            bias[:] = fracture_logit
        save_head(kernel, bias, path)
        extra = {"threshold": 0.5} if key.startswith("fracture") else {}
        manifest_module.register_model(folder, key, path, classes, version="test", **extra)
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
