"""Reading X-ray files: every format and mode, and a typed, readable error for each bad input."""

from __future__ import annotations

import dataclasses
import errno
import io
import os
import shutil
import socket
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import errors
from core.imaging import (
    CUT_SHORT,
    CUT_SHORT_EDGE,
    MAX_FILE_BYTES,
    XrayImage,
    load_xray,
    model_inputs,
    normalize,
    prepare,
    preprocess,
    read_xray,
)
from tests.factories import write_image, xray_like

ROOT = Path(__file__).resolve().parent.parent


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


def test_the_engines_model_input_is_exactly_the_training_preprocessing(tmp_path):
    from core.framing import content_box

    image = np.pad(read_xray(write_image(tmp_path / "x.png")), 20)  # a black frame to crop
    for size in (32, 57, 96):
        [(pixels, frame)] = model_inputs(image, (size,), content_box(image))
        np.testing.assert_array_equal(pixels, preprocess(image, size))
        assert frame.top == 20 and frame.left == 20 and pixels.dtype == np.float32
    sizes = (32, 57, 96)
    for size, (pixels, frame) in zip(sizes, model_inputs(image, sizes), strict=True):
        np.testing.assert_array_equal(pixels, preprocess(image, size))
        assert frame.size == size and frame.top == 20 and frame.left == 20


def test_border_lines_are_judged_exactly_as_by_numpy_percentile():
    from core.framing import BORDER_SPREAD, _uniform_lines

    rng = np.random.default_rng(0)
    for _ in range(200):
        rows, cols = rng.integers(1, 120, size=2)
        lines = (rng.random((rows, cols)) * rng.choice([0.06, 0.1, 1.0])).astype(np.float32)
        lines[: rows // 3] = rng.random()  # some uniform lines, as a black or white frame
        low, high = np.percentile(lines, [5, 95], axis=1)
        np.testing.assert_array_equal(_uniform_lines(lines), (high - low) < BORDER_SPREAD)


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


# ----------------------------------------------------------------------------- paths and files


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _socket(path: Path) -> Path:
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()
    return path


def _long_name(folder: Path) -> Path:
    return folder / ("x" * 296 + ".png")  # 300 characters: longer than any file system allows


def _symlink(path: Path, target: Path) -> Path:
    path.symlink_to(target)
    return path


def _sparse(path: Path, size: int) -> Path:
    with path.open("wb") as handle:
        handle.truncate(size)
    return path


@pytest.mark.parametrize(
    ("make", "error", "words"),
    [
        (lambda p: _fifo(p / "pipe.png"), errors.NotAFileError, "device, a pipe or a socket"),
        (lambda p: Path("/dev/zero"), errors.NotAFileError, "device, a pipe or a socket"),
        (lambda p: _socket(p / "s.png"), errors.NotAFileError, "device, a pipe or a socket"),
        (lambda p: _long_name(p), errors.FileNameTooLongError, "too long for this computer"),
        (lambda p: p / "bad\0name.png", errors.FileMissingError, "not a valid file name"),
        (
            lambda p: _symlink(p / "dangling.png", p / "gone.png"),
            errors.FileMissingError,
            "was not found",
        ),
        (
            lambda p: _symlink(p / "loop.png", p / "loop.png"),
            errors.FileUnreadableError,
            "could not be read",
        ),
        (
            lambda p: write_image(p / "a.png") / "b.png",
            errors.FileMissingError,
            "was not found",
        ),
        (
            lambda p: _sparse(p / "huge.dcm", MAX_FILE_BYTES + 1),
            errors.ImageTooLargeError,
            "too large to open safely",
        ),
    ],
    ids=[
        "fifo",
        "dev-zero",
        "socket",
        "name-300-chars",
        "nul-in-name",
        "dangling-link",
        "link-loop",
        "file-as-folder",
        "file-over-256-mb",
    ],
)
def test_path_problems_raise_typed_errors(tmp_path, make, error, words):
    path = make(tmp_path)
    with pytest.raises(error) as raised:
        read_xray(path)
    assert words in str(raised.value) and raised.value.advice
    assert "a folder" not in str(raised.value)


@pytest.mark.parametrize("suffix", [".png", ".dcm"])
def test_permission_denied_is_typed_and_not_called_damaged(tmp_path, monkeypatch, suffix):
    path = write_image(tmp_path / "x.png").rename(tmp_path / f"locked{suffix}")

    def refuse(*_args, **_kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr("core.imaging.os.open", refuse)
    with pytest.raises(errors.FileUnreadableError, match="do not have permission") as raised:
        read_xray(path)
    assert "damaged" not in str(raised.value)


@pytest.mark.parametrize("suffix", [".png", ".dcm"])
def test_unreadable_file_for_a_real_user(tmp_path, suffix):
    """chmod 000 as a user without the right to override it (root drops that right first)."""
    path = _write(tmp_path / f"locked{suffix}", _png_bytes())
    path.chmod(0)
    code = (
        "import sys; from core.imaging import read_xray; from core import errors\n"
        "try:\n    read_xray(sys.argv[1])\nexcept errors.TriageError as e:\n"
        "    print(type(e).__name__, '|', e)\n"
    )
    command = [sys.executable, "-c", code, str(path)]
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: cannot drop the override right")
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.stdout.startswith("FileUnreadableError |"), done.stdout + done.stderr
    assert "do not have permission" in done.stdout and "damaged" not in done.stdout


def _png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(xray_like()).save(buffer, format="PNG")
    return buffer.getvalue()


# ----------------------------------------------------------------------------- content


def _noise(path: Path) -> Path:
    rng = np.random.default_rng(1)
    return write_image(path, np.clip(rng.normal(128, 20, (512, 512)), 0, 255).astype(np.uint8))


def _marker_only(path: Path) -> Path:
    array = np.zeros((400, 400), np.uint8)
    array[10:30, 10:25] = 255  # an "R" side marker on an empty film
    return write_image(path, array)


def _float_tiff(path: Path, value: float) -> Path:
    """A float X-ray-like TIFF with a few pixels set to `value`."""
    array = xray_like().astype(np.float32)
    array[5:8, 5:8] = value
    Image.fromarray(array, mode="F").save(path)
    return path


def _float_tiff_negative(path: Path) -> Path:
    array = -np.abs(np.random.default_rng(0).normal(100, 30, (64, 64))).astype(np.float32)
    Image.fromarray(array, mode="F").save(path)
    return path


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: write_image(p / "black.png", np.zeros((200, 150), np.uint8)), "is blank"),
        (lambda p: write_image(p / "white.png", np.full((200, 150), 255, np.uint8)), "is blank"),
        (lambda p: write_image(p / "grey.jpg", np.full((200, 150), 90, np.uint8)), "is blank"),
        (lambda p: _float_tiff_negative(p / "negative.tif"), "is blank"),
        (lambda p: _noise(p / "noise.png"), "shows no structure"),
        (lambda p: _marker_only(p / "marker.png"), "is blank"),
    ],
    ids=[
        "all-black",
        "all-white",
        "flat-grey-jpeg",
        "float-tiff-clipped-to-zero",
        "noise-only",
        "marker-only",
    ],
)
def test_images_without_anatomy_are_refused(tmp_path, make, words):
    with pytest.raises(errors.BlankImageError, match=words) as raised:
        read_xray(make(tmp_path))
    assert isinstance(raised.value, errors.NotAnXrayError) and raised.value.advice


def test_faint_ten_bit_image_in_a_16_bit_png_is_not_blank(tmp_path):
    array = (xray_like().astype(np.uint16) * 4).astype(np.uint16)  # values up to 1020 of 65535
    path = tmp_path / "faint.png"
    Image.fromarray(array).save(path)
    image = read_xray(path)
    assert image[:, 40:56].mean() > image[:, :20].mean() + 0.3


def test_no_real_radiograph_is_blank():
    """The sample X-rays shipped with the app all pass the blank-image check."""
    samples = sorted((ROOT / "test").rglob("*.jpg"))
    assert samples
    for sample in samples:
        assert read_xray(sample).std() > 0.1, sample


@pytest.mark.parametrize(
    ("make", "error", "words"),
    [
        (lambda p: _float_tiff(p / "nan.tif", np.nan), errors.CorruptImageError, "invalid pixel"),
        (lambda p: _float_tiff(p / "inf.tif", np.inf), errors.CorruptImageError, "invalid pixel"),
        (
            lambda p: _write(p / "page.jpg", b"<!doctype html><html>" * 40),
            errors.UnsupportedFormatError,
            "not an image we can read",
        ),
        (lambda p: _zip(p / "archive.png"), errors.UnsupportedFormatError, "not an image we can"),
        (
            lambda p: _pillow_only(p / "scan.png", "PPM"),
            errors.UnsupportedFormatError,
            "not an image we can read",
        ),
        (
            lambda p: _pillow_only(p / "icon.png", "ICO"),
            errors.UnsupportedFormatError,
            "not an image we can read",
        ),
        (lambda p: _cut(p / "cut.tif", "TIFF", 0.5), errors.CorruptImageError, "damaged"),
        (lambda p: _cut(p / "half.jpg", "JPEG", 0.5), errors.CorruptImageError, "damaged"),
        (lambda p: _jpeg_header_only(p / "header.jpg"), errors.CorruptImageError, "damaged"),
        (lambda p: _jpeg_huge(p / "huge.jpg"), errors.ImageTooLargeError, "too large"),
        (lambda p: _bmp_huge(p / "huge.bmp"), errors.ImageTooLargeError, "too large"),
    ],
    ids=[
        "nan-float-tiff",
        "infinite-float-tiff",
        "html-named-jpg",
        "zip-named-png",
        "ppm-named-png",
        "icon-named-png",
        "truncated-tiff",
        "jpeg-cut-in-half",
        "jpeg-header-only",
        "jpeg-claims-65000-px",
        "bmp-claims-60000-px",
    ],
)
def test_more_bad_raster_inputs(tmp_path, make, error, words):
    with pytest.raises(error, match=words):
        read_xray(make(tmp_path))


def _zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.txt", "hello " * 100)
    return path


def _pillow_only(path: Path, fmt: str) -> Path:
    """A format Pillow reads but an X-ray never comes in."""
    Image.fromarray(xray_like()).save(path, format=fmt)
    return path


def _cut(path: Path, fmt: str, keep: float) -> Path:
    buffer = io.BytesIO()
    Image.fromarray(xray_like(200, 200)).save(buffer, format=fmt)
    data = buffer.getvalue()
    return _write(path, data[: int(len(data) * keep)])


def _jpeg_header_only(path: Path) -> Path:
    buffer = io.BytesIO()
    Image.fromarray(xray_like(200, 200)).save(buffer, format="JPEG")
    data = buffer.getvalue()
    start_of_scan = data.index(b"\xff\xda")
    return _write(path, data[: start_of_scan + 14])


def _jpeg_huge(path: Path) -> Path:
    """A JPEG whose frame header claims 65,000 x 65,000 pixels."""
    buffer = io.BytesIO()
    Image.fromarray(xray_like(64, 64)).save(buffer, format="JPEG")
    data = bytearray(buffer.getvalue())
    frame = data.index(b"\xff\xc0")
    data[frame + 5 : frame + 9] = struct.pack(">HH", 65000, 65000)
    return _write(path, bytes(data))


def _bmp_huge(path: Path) -> Path:
    """A BMP whose header claims 60,000 x 60,000 pixels."""
    buffer = io.BytesIO()
    Image.fromarray(xray_like(64, 64)).save(buffer, format="BMP")
    data = bytearray(buffer.getvalue())
    data[18:26] = struct.pack("<ii", 60000, 60000)
    return _write(path, bytes(data))


# ----------------------------------------------------------------------------- sniffing, cut files


def test_png_named_dcm_is_read_as_png(tmp_path):
    path = _write(tmp_path / "xray.dcm", _png_bytes())
    assert read_xray(path).shape == (128, 96)


def test_dicom_named_png_is_read_as_dicom(tmp_path):
    from tests.bad_inputs import dicom_bytes, xray_array

    path = _write(tmp_path / "xray.png", dicom_bytes(xray_array(64, 80, top=4000)))
    assert read_xray(path).shape == (80, 64)


def _jpeg_bytes(width: int = 300, height: int = 400) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(xray_like(width, height)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def test_jpeg_missing_only_its_end_marker_opens_with_a_note(tmp_path):
    data = _jpeg_bytes()
    image = load_xray(_write(tmp_path / "cut.jpg", data[:-2]))
    assert image.notes == (CUT_SHORT,)
    np.testing.assert_array_equal(image.pixels, read_xray(_write(tmp_path / "ok.jpg", data)))


@pytest.mark.parametrize("missing", [6, 24])
def test_jpeg_missing_its_last_bytes_opens_and_says_so(tmp_path, missing):
    """Like the FracAtlas files that lack their last 6-24 bytes: every row is there."""
    data = _jpeg_bytes()
    image = load_xray(_write(tmp_path / "cut.jpg", data[:-missing]))
    assert image.notes == (CUT_SHORT_EDGE,)
    complete = read_xray(_write(tmp_path / "ok.jpg", data))
    assert np.abs(image.pixels[:-16] - complete[:-16]).max() < 0.02


def test_jpeg_missing_rows_is_refused(tmp_path):
    data = _jpeg_bytes()
    with pytest.raises(errors.CorruptImageError, match="damaged or incomplete"):
        read_xray(_write(tmp_path / "cut.jpg", data[: len(data) * 3 // 4]))


def test_png_missing_its_end_chunk_opens_with_a_note(tmp_path):
    image = load_xray(_write(tmp_path / "cut.png", _png_bytes()[:-12]))
    assert image.notes == (CUT_SHORT,) and image.pixels.shape == (128, 96)


def test_complete_files_have_no_notes(tmp_path):
    assert load_xray(_write(tmp_path / "a.jpg", _jpeg_bytes())).notes == ()
    assert load_xray(_write(tmp_path / "a.png", _png_bytes())).notes == ()


def test_read_xray_is_load_xray_pixels(tmp_path):
    path = write_image(tmp_path / "x.png")
    loaded = load_xray(path)
    assert isinstance(loaded, XrayImage)
    np.testing.assert_array_equal(read_xray(path), loaded.pixels)
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.notes = ("changed",)
