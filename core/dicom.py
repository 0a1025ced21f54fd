"""Read a single-frame DICOM radiograph into a [0, 1] gray array (rescale, VOI LUT, MONOCHROME1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core import errors


def read_dicom(path: Path) -> np.ndarray:
    """Decode a DICOM file to float32 in [0, 1], white meaning dense (as on a light box)."""
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        dataset = pydicom.dcmread(path, force=True)
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError) as exc:
        raise _corrupt(path) from exc
    if "PixelData" not in dataset:
        raise errors.DicomNoPixelDataError(
            f"The DICOM file '{path.name}' contains no image (it may be a report or a key object).",
            "Open the image series instead.",
        )
    if int(dataset.get("NumberOfFrames", 1) or 1) > 1:
        raise errors.MultiFrameDicomError(
            f"The DICOM file '{path.name}' holds several frames; this tool reads single images.",
            "Export the view you want as a single image.",
        )
    try:
        pixels = dataset.pixel_array
        values = apply_modality_lut(pixels, dataset)
        values = apply_voi_lut(values, dataset) if _has_voi(dataset) else values
    except (NotImplementedError, RuntimeError) as exc:
        raise errors.UnsupportedFormatError(
            f"The DICOM file '{path.name}' uses a compression this tool cannot decode.",
            "Export it uncompressed or as PNG.",
        ) from exc
    except (ValueError, AttributeError, KeyError, TypeError, OSError) as exc:
        raise _corrupt(path) from exc
    values = np.asarray(values, dtype=np.float32)
    if values.ndim == 3 and values.shape[-1] in (3, 4):
        values = values[..., :3].mean(axis=2)
    if values.ndim != 2 or values.size == 0:
        raise _corrupt(path)
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    if str(dataset.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        scaled = 1.0 - scaled
    return scaled.astype(np.float32)


def _has_voi(dataset) -> bool:
    return "VOILUTSequence" in dataset or "WindowCenter" in dataset


def _corrupt(path: Path) -> errors.CorruptImageError:
    return errors.CorruptImageError(
        f"The DICOM file '{path.name}' is damaged or not a valid DICOM image.",
        "Export it again from the imaging system.",
    )
