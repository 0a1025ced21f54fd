"""Reading X-ray files: every format and mode, and a typed, readable error for each bad input."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import errors
from core.imaging import normalize, prepare, preprocess, read_xray
from tests.factories import write_image, xray_like


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims `width` x `height` pixels but holds almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
    path.write_bytes(data + chunk(b"IEND", b""))
    return path


FORMATS_AND_MODES = [
    (suffix, mode)
    for suffix in (".png", ".jpg", ".bmp", ".tif")
    for mode in ("L", "RGB", "RGBA", "P")
    if not (suffix == ".jpg" and mode in ("RGBA", "P"))  # JPEG has no alpha or palette
]


@pytest.mark.parametrize(("suffix", "mode"), FORMATS_AND_MODES)
def test_reads_common_formats_and_modes(tmp_path, suffix, mode):
    image = read_xray(write_image(tmp_path / f"x{suffix}", mode=mode))
    assert image.shape == (128, 96) and image.dtype == np.float32
    assert image.min() >= 0.0 and image.max() <= 1.0
    assert image[:, 40:56].mean() > image[:, :20].mean() + 0.3  # the bright band survives


def test_reads_16_bit_png_with_full_range(tmp_path):
    array = (xray_like().astype(np.uint16) * 257).astype(np.uint16)
    path = tmp_path / "x16.png"
    Image.fromarray(array).save(path)
    image = read_xray(path)
    assert image.shape == array.shape
    assert image[:, 40:56].mean() > 0.7 and image[:, :20].mean() < 0.3


def test_exif_orientation_is_honoured(tmp_path):
    wide = np.zeros((40, 80), np.uint8)
    wide[:, :10] = 255
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    Image.fromarray(wide).save(path, exif=exif)
    image = read_xray(path)
    assert image.shape == (80, 40)
    assert image[:10].mean() > 0.8  # the bright left edge is now at the top


def test_prepare_letterboxes_and_normalize_matches_keras(tmp_path):
    image = read_xray(write_image(tmp_path / "x.png"))
    square = prepare(image, 64)
    assert square.shape == (64, 64, 3) and square.max() <= 255.0
    assert square[:, :5].max() == 0.0  # black padding on the sides of a tall image
    from keras.applications.resnet50 import preprocess_input

    np.testing.assert_allclose(normalize(square), preprocess_input(square.copy()), atol=1e-4)
    np.testing.assert_allclose(preprocess(image, 64), normalize(square))


@pytest.mark.parametrize(
    ("make", "error", "words"),
    [
        (lambda p: p / "missing.png", errors.FileMissingError, "was not found"),
        (lambda p: p, errors.NotAFileError, "is a folder"),
        (lambda p: _write(p / "empty.png", b""), errors.EmptyFileError, "is empty"),
        (
            lambda p: _write(p / "notes.png", b"hello doctor\n" * 20),
            errors.UnsupportedFormatError,
            "not an image we can read",
        ),
        (
            lambda p: _write(p / "report.png", b"%PDF-1.4\n%\xe2\xe3\n1 0 obj\n" * 10),
            errors.UnsupportedFormatError,
            "not an image we can read",
        ),
        (lambda p: _truncated(p / "cut.png"), errors.CorruptImageError, "damaged or incomplete"),
        (lambda p: png_header_only(p / "zero.png", 0, 0), errors.EmptyImageError, "has no pixels"),
        (
            lambda p: png_header_only(p / "bomb.png", 100_000, 100_000),
            errors.ImageTooLargeError,
            "too large to open safely",
        ),
        (
            lambda p: write_image(p / "tiny.png", np.zeros((8, 8), np.uint8)),
            errors.EmptyImageError,
            "too small",
        ),
        (lambda p: _photo(p / "photo.png"), errors.NotAnXrayError, "colour photograph"),
    ],
    ids=[
        "missing",
        "directory",
        "empty",
        "text",
        "pdf",
        "truncated",
        "zero-size",
        "bomb",
        "tiny",
        "photo",
    ],
)
def test_bad_inputs_raise_typed_readable_errors(tmp_path, make, error, words):
    path = make(tmp_path)
    with pytest.raises(error) as raised:
        read_xray(path)
    message = str(raised.value)
    assert words in message
    assert "Traceback" not in message and raised.value.advice


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _truncated(path: Path) -> Path:
    write_image(path, np.random.default_rng(0).integers(0, 255, (200, 200), dtype=np.uint8))
    data = path.read_bytes()
    return _write(path, data[: len(data) // 2])


def _photo(path: Path) -> Path:
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[..., 0] = 220
    rgb[32:, :, 1] = 180
    Image.fromarray(rgb).save(path)
    return path
