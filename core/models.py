"""Build the shared ResNet50 backbone and its heads; save and load them compactly (float16 .npz).

One backbone computes the image features once; small linear heads on its pooled features give the
bone type and each bone's fracture probability. Files are plain numpy archives read with
`allow_pickle=False`, so loading a model never executes code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core import errors

BONES = ("Elbow", "Hand", "Shoulder")
BONE_TYPE_CLASSES = (*BONES, "Other")
FRACTURE_CLASSES = ("normal", "fractured")
FEATURE_LAYER = "conv5_block3_out"
FEATURE_DIM = 2048
FLOAT16_LIMIT = 60000.0


def is_recognised(probabilities: dict[str, float], threshold: float) -> bool:
    """The app's rule: the most likely bone-type class is a bone and reaches `threshold`."""
    best = max(probabilities, key=probabilities.get)
    return best in BONES and probabilities[best] >= threshold


def build_backbone(input_size: int, init: str = "none"):
    """ResNet50 without its top, output = last convolutional block (`conv5_block3_out`).

    `init` is "none" (random), "imagenet" (downloads Keras' weights; needs internet) or the path
    of a backbone `.npz` written by `save_backbone`.
    """
    import keras

    weights = "imagenet" if init == "imagenet" else None
    backbone = keras.applications.ResNet50(
        include_top=False, weights=weights, input_shape=(input_size, input_size, 3)
    )
    if init not in ("none", "imagenet"):
        load_backbone_weights(backbone, Path(init))
    return backbone


def build_training_model(backbone, dropout: float = 0.3):
    """Backbone + pooled features + two heads: `bone_type` (softmax) and `fracture` (sigmoid)."""
    import keras

    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(backbone.output)
    dropped = keras.layers.Dropout(dropout, name="head_dropout")(pooled)
    bone_type = keras.layers.Dense(
        len(BONE_TYPE_CLASSES), activation="softmax", name="bone_type", dtype="float32"
    )(dropped)
    fracture = keras.layers.Dense(1, activation="sigmoid", name="fracture", dtype="float32")(
        dropped
    )
    return keras.Model(backbone.input, {"bone_type": bone_type, "fracture": fracture})


def compact(array: np.ndarray) -> np.ndarray:
    """Store as float16 unless values would overflow it."""
    array = np.asarray(array)
    if np.abs(array).max(initial=0.0) < FLOAT16_LIMIT:
        return array.astype(np.float16)
    return array.astype(np.float32)


def save_backbone(backbone, path: Path) -> None:
    """Write every backbone variable (weights and batch-norm statistics) as float16."""
    arrays = {variable.path: compact(variable.numpy()) for variable in backbone.weights}
    _save_npz(arrays, path)


def load_backbone_weights(backbone, path: Path) -> None:
    """Assign weights saved by `save_backbone`; raise `InvalidModelFileError` on any mismatch."""
    arrays = load_arrays(path)
    for variable in backbone.weights:
        array = arrays.get(variable.path)
        if array is None or tuple(array.shape) != tuple(variable.shape):
            raise invalid_model_file(path, f"it has no matching weights for {variable.path}")
        variable.assign(array.astype(np.float32))


def save_head(kernel: np.ndarray, bias: np.ndarray, path: Path) -> None:
    """Write a linear head (kernel of shape (2048, n), bias of shape (n,))."""
    _save_npz({"kernel": compact(kernel), "bias": compact(bias)}, path)


def load_head(path: Path, outputs: int) -> tuple[np.ndarray, np.ndarray]:
    """Read a linear head and check its shape; returns float32 (kernel, bias)."""
    arrays = load_arrays(path)
    kernel, bias = arrays.get("kernel"), arrays.get("bias")
    if kernel is None or bias is None or kernel.shape != (FEATURE_DIM, outputs):
        raise invalid_model_file(path, f"it is not a head with {outputs} output(s)")
    if bias.shape != (outputs,):
        raise invalid_model_file(path, "its bias has the wrong shape")
    return kernel.astype(np.float32), bias.astype(np.float32)


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    """Read a numpy archive safely (no pickle); raise `InvalidModelFileError` if it is not one."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (ValueError, OSError, EOFError, KeyError) as exc:
        raise invalid_model_file(path, "it is not a model file") from exc


def _save_npz(arrays: dict[str, np.ndarray], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp.npz")
    np.savez(temporary, **arrays)
    temporary.replace(path)


def invalid_model_file(path: Path, why: str) -> errors.InvalidModelFileError:
    """The clinician-readable error for a weight file that is not the expected model."""
    return errors.InvalidModelFileError(
        f"The model file '{path.name}' cannot be used: {why}.",
        "Reinstall the weights folder from the project, or retrain (see README).",
    )
