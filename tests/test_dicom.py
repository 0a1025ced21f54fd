"""DICOM input: rescale, window, MONOCHROME1, extension-less files, and the typed errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from core import errors
from core.imaging import read_xray


def write_dicom(
    path: Path,
    pixels: np.ndarray | None = None,
    photometric: str = "MONOCHROME2",
    frames: int = 1,
    **tags,
) -> Path:
    """A minimal valid DICOM file (16-bit unsigned) with optional extra tags."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.Modality = "DX"
    if pixels is not None:
        dataset.Rows, dataset.Columns = pixels.shape[-2:]
        dataset.SamplesPerPixel = 1
        dataset.PhotometricInterpretation = photometric
        dataset.BitsAllocated = dataset.BitsStored = 16
        dataset.HighBit = 15
        dataset.PixelRepresentation = 0
        if frames > 1:
            dataset.NumberOfFrames = frames
        dataset.PixelData = pixels.astype(np.uint16).tobytes()
    for key, value in tags.items():
        setattr(dataset, key, value)
    dataset.save_as(path, enforce_file_format=True)
    return path


def gradient() -> np.ndarray:
    """Columns rising from 0 to 4000: left dark, right bright."""
    return np.tile(np.linspace(0, 4000, 64), (64, 1)).astype(np.uint16)


def test_monochrome2_reads_bright_on_the_right(tmp_path):
    image = read_xray(write_dicom(tmp_path / "a.dcm", gradient()))
    assert image.shape == (64, 64)
    assert image[:, -5:].mean() > 0.9 and image[:, :5].mean() < 0.1


def test_monochrome1_is_inverted(tmp_path):
    image = read_xray(write_dicom(tmp_path / "a.dcm", gradient(), photometric="MONOCHROME1"))
    assert image[:, :5].mean() > 0.9 and image[:, -5:].mean() < 0.1


def test_window_is_applied(tmp_path):
    # a narrow window around the middle of the ramp saturates both ends
    path = write_dicom(
        tmp_path / "w.dcm",
        gradient(),
        RescaleSlope=1,
        RescaleIntercept=0,
        WindowCenter=2000,
        WindowWidth=400,
    )
    image = read_xray(path)
    column_means = image.mean(axis=0)
    assert (column_means < 0.05).sum() > 20 and (column_means > 0.95).sum() > 20


def test_rescale_slope_and_intercept_keep_the_order(tmp_path):
    path = write_dicom(tmp_path / "r.dcm", gradient(), RescaleSlope=-1, RescaleIntercept=4000)
    image = read_xray(path)
    assert image[:, :5].mean() > 0.9  # slope -1 flips the stored values


def test_dicom_without_extension_is_detected(tmp_path):
    path = write_dicom(tmp_path / "IM0001", gradient())
    assert read_xray(path).shape == (64, 64)


def test_multi_frame_dicom_is_refused(tmp_path):
    frames = np.stack([gradient(), gradient()])
    path = write_dicom(tmp_path / "cine.dcm", frames, frames=2)
    with pytest.raises(errors.MultiFrameDicomError, match="several frames"):
        read_xray(path)


def test_dicom_without_pixels_is_refused(tmp_path):
    path = write_dicom(tmp_path / "report.dcm", None)
    with pytest.raises(errors.DicomNoPixelDataError, match="contains no image"):
        read_xray(path)


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")  # pydicom notes the garbage
def test_corrupt_dicom_is_refused(tmp_path):
    path = tmp_path / "broken.dcm"
    path.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff" + b"garbage")
    with pytest.raises(errors.ImageReadError):
        read_xray(path)
