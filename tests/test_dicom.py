"""DICOM input: rescale, window, MONOCHROME1, extension-less files, and the typed errors (every
pydicom failure, sizes checked from the header before decoding)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import (
    BasicTextSRStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)

from core import errors
from core.imaging import MAX_PIXELS, decode_xray, load_xray, read_xray
from tests import bad_inputs
from tests.bad_inputs import dicom_bytes, with_string_value, with_value_length, write

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pydicom")


def write_dicom(
    path: Path,
    pixels: np.ndarray | None = None,
    photometric: str = "MONOCHROME2",
    frames: int = 1,
    **tags,
) -> Path:
    """A minimal valid DICOM file (16-bit unsigned) with optional extra tags."""
    if frames > 1:
        tags.setdefault("NumberOfFrames", frames)
    dataset = bad_inputs.dicom_dataset(pixels, photometric=photometric, **tags)
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
    path = write_dicom(tmp_path / "report.dcm", None, SOPClassUID=BasicTextSRStorage)
    with pytest.raises(errors.DicomNoPixelDataError, match="contains no image"):
        read_xray(path)


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")  # pydicom notes the garbage
def test_corrupt_dicom_is_refused(tmp_path):
    path = tmp_path / "broken.dcm"
    path.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff" + b"garbage")
    with pytest.raises(errors.ImageReadError):
        read_xray(path)


# ----------------------------------------------------------------------------- transfer syntaxes


@pytest.mark.parametrize(
    "syntax",
    [ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, RLELossless, JPEGBaseline8Bit],
    ids=["explicit", "deflated", "rle", "jpeg-baseline"],
)
def test_supported_transfer_syntaxes_read_alike(tmp_path, syntax):
    pixels = np.tile(np.linspace(0, 250, 64), (64, 1)).astype(np.uint16)
    image = read_xray(write(tmp_path / "a.dcm", dicom_bytes(pixels, syntax)))
    assert image.shape == (64, 64)
    assert image[:, -5:].mean() > 0.8 and image[:, :5].mean() < 0.2


def test_dataset_without_preamble_or_file_header_is_read(tmp_path):
    path = write(tmp_path / "IM0002", bad_inputs.bare_dicom_bytes(gradient()))
    assert read_xray(path).shape == (64, 64)


# ----------------------------------------------------------------------------- issue 13 reproducers

GOOD = {"NumberOfFrames": 1, "RescaleSlope": 1, "RescaleIntercept": 0}


def _good() -> bytes:
    return dicom_bytes(gradient(), **GOOD)


def test_issue13_corrupt_value_length_is_typed(tmp_path):
    """Reproducer 1a: one element's value length corrupted (pydicom: BytesLengthException)."""
    path = write(tmp_path / "a.dcm", with_value_length(_good(), 0x0028, 0x0010, 0xFFFF))
    with pytest.raises(errors.CorruptImageError, match="damaged or not a valid DICOM"):
        read_xray(path)


def test_issue13_number_of_frames_ab_is_typed(tmp_path):
    """Reproducer 1b: NumberOfFrames = 'ab' (pydicom: ValueError)."""
    path = write(tmp_path / "a.dcm", with_string_value(_good(), 0x0028, 0x0008, b"ab"))
    with pytest.raises(errors.CorruptImageError, match="damaged or not a valid DICOM"):
        read_xray(path)


def test_issue13_deflated_garbage_is_typed(tmp_path):
    """Reproducer 1c: Deflated transfer syntax with a garbage body (pydicom: zlib.error)."""
    path = write(tmp_path / "a.dcm", bad_inputs.deflated_garbage())
    with pytest.raises(errors.CorruptImageError, match="damaged or not a valid DICOM"):
        read_xray(path)


def test_issue13_rescale_slope_zero_is_blank(tmp_path):
    """Reproducer 2: RescaleSlope 0 makes every pixel the intercept: no verdict on it."""
    path = write_dicom(tmp_path / "a.dcm", gradient(), RescaleSlope=0, RescaleIntercept=100)
    with pytest.raises(errors.BlankImageError, match="is blank"):
        read_xray(path)


def test_issue13_rle_dicom_of_12000_pixels_is_refused_from_its_header(tmp_path, monkeypatch):
    """Reproducer 4: a 2.3 MB RLE file that would decode to 12,000 x 12,000 pixels."""
    data = bad_inputs.rle_bomb(12_000)
    assert len(data) < 2_500_000
    from pydicom.dataset import Dataset

    def no_decoding(*_args, **_kwargs):
        raise AssertionError("pixel data decoded")

    monkeypatch.setattr(Dataset, "pixel_array", property(no_decoding))
    with pytest.raises(errors.ImageTooLargeError, match="12000 x 12000 pixels"):
        read_xray(write(tmp_path / "bomb.dcm", data))


def test_deflated_dicom_that_inflates_too_far_is_refused_before_inflating(monkeypatch):
    """pydicom inflates a Deflated file whole; the size is counted first, in bounded steps
    (the limit is lowered here so the test stays fast)."""
    from core import dicom

    monkeypatch.setattr(dicom, "MAX_INFLATED_BYTES", 8 * 1024 * 1024)
    data = bad_inputs.deflate_bomb(16 * 1024 * 1024)
    assert len(data) < 40_000

    def no_inflating(*_args, **_kwargs):
        raise AssertionError("pydicom was asked to read it")

    monkeypatch.setattr("pydicom.dcmread", no_inflating)
    with pytest.raises(errors.ImageTooLargeError, match="too large to open safely"):
        decode_xray(data, "bomb.dcm")


def test_issue13_uncompressed_8000_square_dicom_is_refused(tmp_path):
    """Reproducer 4: 8,000 x 8,000 uncompressed passed the raster limit before."""
    assert MAX_PIXELS < 8000 * 8000
    data = dicom_bytes(np.zeros((8000, 8000), np.uint8), bits=8)
    with pytest.raises(errors.ImageTooLargeError, match="8000 x 8000 pixels"):
        decode_xray(data, "big.dcm")


# ----------------------------------------------------------------------------- more bad DICOM


def _replace(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) >= 1
    return data.replace(old, new, 1)


def _syntax(uid: str) -> bytes:
    """A DICOM file whose file header names transfer syntax `uid` (pixels uncompressed)."""
    data = _good()
    old = ExplicitVRLittleEndian.encode() + b"\0"
    new = uid.encode() + (b"\0" if len(uid) % 2 else b"")
    fixed = _replace(
        data,
        b"UI" + len(old).to_bytes(2, "little") + old,
        b"UI" + len(new).to_bytes(2, "little") + new,
    )
    meta_length = int.from_bytes(fixed[140:144], "little") + len(new) - len(old)
    return fixed[:140] + meta_length.to_bytes(4, "little") + fixed[144:]


def _jpeg_frame_size(rows: int, columns: int) -> bytes:
    """A JPEG Baseline DICOM (64 x 64) whose embedded JPEG's own header claims another size."""
    data = dicom_bytes(gradient().astype(np.uint8), JPEGBaseline8Bit)
    at = data.index(b"\xff\xc0")
    return data[: at + 5] + struct.pack(">HH", rows, columns) + data[at + 9 :]


BAD_DICOM = {
    "frames-times-size-over-budget": (
        lambda: dicom_bytes(np.zeros((20, 2000, 2000), np.uint8), bits=8),
        errors.ImageTooLargeError,
        "x 20 frames",
    ),
    "jpeg-ls-not-decodable-here": (
        lambda: _syntax(JPEGLSLossless),
        errors.UnsupportedFormatError,
        "compression this tool cannot decode",
    ),
    "unknown-transfer-syntax": (
        lambda: _syntax("1.2.3.4"),
        errors.UnsupportedFormatError,
        "compression this tool cannot decode",
    ),
    "pixel-data-too-short": (
        lambda: dicom_bytes(gradient()[:10]).replace(
            b"\x28\x00\x10\x00US\x02\x00\x0a\x00", b"\x28\x00\x10\x00US\x02\x00\x40\x00"
        ),
        errors.CorruptImageError,
        "damaged",
    ),
    "pixels-lost-after-header": (
        lambda: with_value_length(_good(), 0x0008, 0x0060, 0x7FFF),
        errors.CorruptImageError,
        "damaged",
    ),
    "bits-allocated-12": (
        lambda: dicom_bytes(gradient(), BitsAllocated=12),
        errors.CorruptImageError,
        "damaged",
    ),
    "two-samples-per-pixel": (
        lambda: dicom_bytes(gradient(), SamplesPerPixel=2),
        errors.CorruptImageError,
        "damaged",
    ),
    "negative-number-of-frames": (
        lambda: with_string_value(dicom_bytes(gradient(), NumberOfFrames=1), 0x28, 0x08, b"-1"),
        errors.CorruptImageError,
        "damaged",
    ),
    "rescale-slope-nan": (
        lambda: with_string_value(_good(), 0x0028, 0x1053, b"nan"),
        errors.CorruptImageError,
        "damaged",
    ),
    "rescale-slope-1e400": (
        lambda: with_string_value(_good(), 0x0028, 0x1053, b"1e400"),
        errors.CorruptImageError,
        "damaged",
    ),
    "jpeg-fragment-garbage": (
        lambda: _replace(
            dicom_bytes(gradient().astype(np.uint8), JPEGBaseline8Bit), b"\xff\xda", b"\x00\x00"
        ),
        errors.CorruptImageError,
        "damaged",
    ),
    "rle-segment-offsets-garbage": (
        lambda: _replace(
            dicom_bytes(gradient(), RLELossless),
            b"\x02\x00\x00\x00\x40\x00\x00\x00",
            b"\x02\x00\x00\x00\xff\xff\xff\x7f",
        ),
        errors.CorruptImageError,
        "damaged",
    ),
    "embedded-jpeg-claims-12000-px": (
        lambda: _jpeg_frame_size(12_000, 12_000),
        errors.ImageTooLargeError,
        "12000 x 12000 pixels",
    ),
    "embedded-jpeg-size-contradicts-header": (
        lambda: _jpeg_frame_size(80, 80),
        errors.CorruptImageError,
        "damaged",
    ),
    "random-bytes-named-dcm": (
        lambda: np.random.default_rng(5).integers(0, 256, 3000, dtype=np.uint8).tobytes(),
        errors.CorruptImageError,
        "damaged",
    ),
    "dicm-marker-then-nothing": (
        lambda: b"\0" * 128 + b"DICM",
        errors.CorruptImageError,
        "damaged",
    ),
}


@pytest.mark.parametrize("case", list(BAD_DICOM), ids=list(BAD_DICOM))
def test_bad_dicom_raises_typed_errors(tmp_path, case):
    make, error, words = BAD_DICOM[case]
    with pytest.raises(error, match=words) as raised:
        read_xray(write(tmp_path / "bad.dcm", make()))
    assert raised.value.advice


def test_invalid_window_falls_back_to_the_full_range_and_says_so(tmp_path):
    path = write_dicom(tmp_path / "w.dcm", gradient(), WindowCenter=100, WindowWidth=0)
    image = load_xray(path)
    assert image.notes and "window" in image.notes[0]
    assert image.pixels[:, -5:].mean() > 0.9 and image.pixels[:, :5].mean() < 0.1
