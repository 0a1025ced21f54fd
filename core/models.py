"""The models' class names and the small linear head files (float16 .npz) applied to feature maps.

Heads are plain numpy archives read with `allow_pickle=False`, so loading one never executes code.
The Keras networks themselves are built in `training/networks/models.py`; the app runs their
LiteRT export.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from core import errors

BONES = ("Elbow", "Hand", "Shoulder")
BONE_TYPE_CLASSES = (*BONES, "Other")
FRACTURE_CLASSES = ("normal", "fractured")
# the orientation head: how many quarter turns (counter-clockwise) from the training orientation
ORIENTATION_CLASSES = ("as trained", "turned 90", "turned 180", "turned 270")
# the polarity head: whether the grey levels are reversed (bone dark, background light)
POLARITY_CLASSES = ("as trained", "inverted")
FLOAT16_LIMIT = 60000.0
MAX_NPY_HEADER = 10_000  # bytes of an .npy member's header (numpy's own default limit)
# what any failure to read a numpy archive can raise, from zipfile, zlib and numpy
_ARCHIVE_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    OSError,
    EOFError,
    ValueError,
    KeyError,
    TypeError,
    AttributeError,
    NotImplementedError,
    RuntimeError,
    OverflowError,
    MemoryError,
    RecursionError,
)


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
    """Read a linear head and check its shape and values; returns float32 (kernel, bias).

    Each member's shape and dtype are checked from its .npy header before its data is read, and
    no more than that many bytes are inflated: a member declaring a huge shape, or a small file
    inflating to gigabytes, is refused without allocating it."""
    arrays = read_checked(path, {"kernel": (channels, outputs), "bias": (outputs,)})
    kernel, bias = arrays["kernel"].astype(np.float32), arrays["bias"].astype(np.float32)
    if not (np.isfinite(kernel).all() and np.isfinite(bias).all()):
        raise invalid_model_file(path, "it contains invalid numbers")
    return kernel, bias


def read_checked(path: Path, expected: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """The named float arrays of a numpy archive, each of exactly its expected shape; anything
    else (not a zip, bad checksum, strings, structured or object dtype, other shape, trailing
    data) raises `InvalidModelFileError`."""
    try:
        with zipfile.ZipFile(path) as archive:
            return {name: _member(archive, name, shape, path) for name, shape in expected.items()}
    except errors.TriageError:
        raise
    except _ARCHIVE_ERRORS as exc:
        raise invalid_model_file(path, "it is not a model file") from exc


def _member(archive: zipfile.ZipFile, name: str, shape: tuple[int, ...], path: Path) -> np.ndarray:
    """One .npy member, its header checked before any of its data is inflated."""
    from numpy.lib import format as npy

    with archive.open(f"{name}.npy") as stream:
        version = npy.read_magic(stream)
        reader = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}.get(version)
        if reader is None:
            raise invalid_model_file(path, f"its {name} has an unknown format")
        found, fortran, dtype = reader(stream, max_header_size=MAX_NPY_HEADER)
        if tuple(found) != shape:
            raise invalid_model_file(
                path,
                f"it is not a head of this model ({name} of shape {tuple(found)}, not {shape})",
            )
        if dtype.kind != "f" or dtype.fields is not None or dtype.subdtype is not None:
            raise invalid_model_file(path, f"its {name} holds {dtype}, not numbers")
        size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        data = stream.read(size + 1)  # one byte more: the member must end here
    if len(data) != size:
        raise invalid_model_file(path, f"its {name} is not {size} bytes long")
    order = "F" if fortran else "C"
    return np.frombuffer(data, dtype=dtype).reshape(shape, order=order).copy()


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    """Read a numpy archive safely (no pickle); raise `InvalidModelFileError` if it is not one."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except _ARCHIVE_ERRORS as exc:
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
