"""The models' class names and the small linear head files (float16 .npz) applied to feature maps.

Heads are plain numpy archives read with `allow_pickle=False`, so loading one never executes code.
The Keras networks themselves are built in `training/networks/models.py`; the app runs their
LiteRT export.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core import errors

BONES = ("Elbow", "Hand", "Shoulder")
BONE_TYPE_CLASSES = (*BONES, "Other")
FRACTURE_CLASSES = ("normal", "fractured")
# the orientation head: how many quarter turns (counter-clockwise) from the training orientation
ORIENTATION_CLASSES = ("as trained", "turned 90", "turned 180", "turned 270")
FLOAT16_LIMIT = 60000.0


def is_recognised(probabilities: dict[str, float], threshold: float) -> bool:
    """The app's rule: the most likely bone-type class is a bone and reaches `threshold`."""
    best = max(probabilities, key=probabilities.get)
    return best in BONES and probabilities[best] >= threshold


def compact(array: np.ndarray) -> np.ndarray:
    """Store as float16 unless values would overflow it."""
    array = np.asarray(array)
    if np.abs(array).max(initial=0.0) < FLOAT16_LIMIT:
        return array.astype(np.float16)
    return array.astype(np.float32)


def save_head(kernel: np.ndarray, bias: np.ndarray, path: Path) -> None:
    """Write a linear head: kernel of shape (channels, n), bias of shape (n,)."""
    save_npz({"kernel": compact(kernel), "bias": compact(bias)}, path)


def load_head(path: Path, channels: int, outputs: int) -> tuple[np.ndarray, np.ndarray]:
    """Read a linear head and check its shape and values; returns float32 (kernel, bias)."""
    arrays = load_arrays(path)
    kernel, bias = arrays.get("kernel"), arrays.get("bias")
    if kernel is None or bias is None or kernel.shape != (channels, outputs):
        raise invalid_model_file(path, f"it is not a head with {outputs} output(s)")
    if bias.shape != (outputs,):
        raise invalid_model_file(path, "its bias has the wrong shape")
    kernel, bias = kernel.astype(np.float32), bias.astype(np.float32)
    if not (np.isfinite(kernel).all() and np.isfinite(bias).all()):
        raise invalid_model_file(path, "it contains invalid numbers")
    return kernel, bias


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    """Read a numpy archive safely (no pickle); raise `InvalidModelFileError` if it is not one."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (ValueError, OSError, EOFError, KeyError) as exc:
        raise invalid_model_file(path, "it is not a model file") from exc


def save_npz(arrays: dict[str, np.ndarray], path: Path) -> None:
    """Write arrays as a numpy archive atomically (temporary file, then rename)."""
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
