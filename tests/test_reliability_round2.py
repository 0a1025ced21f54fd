"""Issue 23, the second probe's reproducers: each gives a result or a typed error within 10 s and
1.5 GB (a scan bomb or a 300 MB file within 2 s), measured in a child process under that memory
limit; and the same pixels give the same answer."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless, RLELossless

import predictions
from core import errors
from core.dicom import codestream_size, jpeg_scans
from core.imaging import decode_xray, grey_levels
from tests import bad_inputs
from tests.bounded import LIMIT, run_bounded

ROOT = Path(__file__).resolve().parent.parent
SECONDS = 10.0
QUICK_SECONDS = 2.0


def _sparse(path: Path, size: int) -> Path:
    """A file of `size` zero bytes that takes no disk space."""
    with path.open("wb") as handle:
        handle.truncate(size)
    return path


def _rle_rgb_32bit(side: int = 7745) -> bytes:
    """An RLE DICOM declaring `side` x `side` RGB at 32 bits (720 MB decoded), holding a stub
    frame: the decoded-bytes budget must refuse it from the header."""
    dataset = bad_inputs.dicom_dataset(None, RLELossless)
    dataset.Rows = dataset.Columns = side
    dataset.SamplesPerPixel = 3
    dataset.PlanarConfiguration = 1
    dataset.PhotometricInterpretation = "RGB"
    dataset.BitsAllocated = dataset.BitsStored = 32
    dataset.HighBit = 31
    dataset.PixelRepresentation = 0
    dataset.PixelData = encapsulate([b"\x01\x00\x00\x00" + b"\0" * 60])
    dataset["PixelData"].VR = "OB"
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _jp2_in_dicom(rows: int = 8000) -> bytes:
    """A JPEG 2000 DICOM with Rows = Columns = 128 whose JP2-boxed codestream is `rows` square."""
    dataset = bad_inputs.dicom_dataset(None, JPEG2000Lossless)
    dataset.Rows = dataset.Columns = 128
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 8, 8, 7
    dataset.PixelRepresentation = 0
    frame = bad_inputs.jp2_boxed(rows, rows)
    dataset.PixelData = encapsulate([frame + b"\0" * (len(frame) % 2)])
    dataset["PixelData"].VR = "OB"
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


REPRODUCERS = {
    # name: (build(tmp folder) -> path, expected typed error of `open`, seconds allowed)
    "deflated 2 GB, routed": (
        lambda d: bad_inputs.write(d / "bomb.dcm", bad_inputs.deflated_bomb(2 << 30)),
        "ImageTooLargeError",
        SECONDS,
    ),
    "deflated 2 GB, no group length": (
        lambda d: bad_inputs.write(d / "bomb.dcm", bad_inputs.deflated_bomb(2 << 30, False)),
        "ImageTooLargeError",
        SECONDS,
    ),
    "RLE RGB 32-bit 7745 square": (
        lambda d: bad_inputs.write(d / "rle.dcm", _rle_rgb_32bit()),
        "ImageTooLargeError",
        SECONDS,
    ),
    "JP2-boxed 8000 square under Rows 128": (
        lambda d: bad_inputs.write(d / "jp2.dcm", _jp2_in_dicom()),
        "ImageTooLargeError",
        SECONDS,
    ),
    "JP2 file 8000 square, header says 128": (
        lambda d: bad_inputs.write(d / "big.jp2", bad_inputs.jp2_boxed(8000, 8000)),
        "ImageTooLargeError",
        SECONDS,
    ),
    "progressive JPEG, 5000 scans": (
        lambda d: bad_inputs.write(d / "scans.jpg", bad_inputs.progressive_scan_bomb()),
        "ImageTooLargeError",
        QUICK_SECONDS,
    ),
    "progressive JPEG, 5000 scans, cut short": (
        lambda d: bad_inputs.write(d / "cut.jpg", bad_inputs.progressive_scan_bomb()[:-5000]),
        "ImageTooLargeError",
        QUICK_SECONDS,
    ),
    "30 MB of zeros .dcm": (
        lambda d: _sparse(d / "zeros30.dcm", 30 << 20),
        "CorruptImageError",
        SECONDS,
    ),
    "200 MB of zeros .dcm": (
        lambda d: _sparse(d / "zeros200.dcm", 200 << 20),
        "CorruptImageError",
        SECONDS,
    ),
    "300 MB of zeros .dcm (over the size limit)": (
        lambda d: _sparse(d / "zeros300.dcm", 300 << 20),
        "ImageTooLargeError",
        QUICK_SECONDS,
    ),
}


@pytest.mark.parametrize("name", list(REPRODUCERS))
def test_reproducer_is_bounded(name, tmp_path):
    """Routing alone and the analysis' read (route + decode) each give their answer in time,
    and the child's peak memory stays within 1.5 GB with no allocation failing."""
    build, expected, seconds = REPRODUCERS[name]
    measured = run_bounded(build(tmp_path))
    route, opened = measured["calls"]
    peak = measured["peak_bytes"]
    print(
        f"{name}: route {route['seconds']:.2f} s ({route['outcome']}), open "
        f"{opened['seconds']:.2f} s ({opened['outcome']}), peak {peak / 2**20:.0f} MB"
    )
    assert route["outcome"] == "result"  # routing never raises: no tags, TagRouting()
    assert opened["outcome"] == expected
    assert route["seconds"] + opened["seconds"] < seconds
    assert peak < LIMIT


def test_scan_count_and_codestream_size_are_read_without_decoding():
    bomb = bad_inputs.progressive_scan_bomb(scans=300, side=64)
    assert jpeg_scans(bomb) == 300
    assert codestream_size(bad_inputs.jp2_boxed(8000, 6000)) == (8000, 6000, 1, 1)
    ordinary = bad_inputs.raster_bytes(bad_inputs.xray_array(64, 64).astype(np.uint8), "JPEG")
    assert jpeg_scans(ordinary) == 1
    progressive = bad_inputs.raster_bytes(
        bad_inputs.xray_array(64, 64).astype(np.uint8), "JPEG", progressive=True
    )
    assert 1 < jpeg_scans(progressive) < 20
    assert decode_xray(progressive, "p.jpg").pixels.shape == (64, 64)


def test_pixel_budget_counts_samples_and_bits():
    """7745 x 7745 is within the 60-megapixel budget but not as RGB at 32 bits (720 MB)."""
    with pytest.raises(errors.ImageTooLargeError):
        decode_xray(_rle_rgb_32bit(), "rle.dcm")


# ----------------------------------------------------------------------------- same answer

SAMPLES = sorted((ROOT / "test").glob("*/*/*.jpg"))


def _probabilities(engine, pixels: np.ndarray) -> np.ndarray:
    """The three bones' fracture probabilities for decoded [0, 1] pixels, as analysis computes
    them (through `decode_xray`'s grey levels and contrast stretch)."""
    from core.imaging import _stretch_contrast

    raw = engine.run(_stretch_contrast(grey_levels(pixels)))
    return np.array([raw.fracture_probabilities[bone] for bone in ("Elbow", "Hand", "Shoulder")])


@pytest.fixture(scope="module")
def shipped_engine():
    from core.engine import get_engine

    return get_engine()


def test_png_and_dicom_of_the_same_pixels_give_the_same_answer(tmp_path):
    """A 16-bit X-ray saved as PNG and as DICOM decodes to pixels equal up to float rounding;
    both are analysed with the shipped weights and give the same probabilities."""
    from pydicom.uid import ExplicitVRLittleEndian

    gray = np.asarray(Image.open(SAMPLES[2]).convert("L"), np.uint16) * 257  # 8 to 16 bits
    gray[0, 0], gray[-1, -1] = 0, 65535  # the full range: DICOM's min-max scaling is the identity
    png = bad_inputs.write(tmp_path / "x.png", bad_inputs.raster_bytes(gray, "PNG"))
    dicom = bad_inputs.write(
        tmp_path / "x.dcm", bad_inputs.dicom_bytes(gray, ExplicitVRLittleEndian)
    )
    first, second = predictions.analyze(png), predictions.analyze(dicom)
    difference = abs(first.model_fracture_probability - second.model_fracture_probability)
    print(
        f"PNG {first.model_fracture_probability:.4f} DICOM {second.model_fracture_probability:.4f}"
    )
    assert difference <= 0.01
    assert difference == 0.0  # the same grey levels: the same answer, not merely a close one
    assert first.bone_probabilities == second.bone_probabilities


@pytest.mark.parametrize("path", SAMPLES[::2], ids=lambda p: p.parent.parent.name)
def test_change_under_one_grey_level_moves_the_probability_little(shipped_engine, path):
    """Noise of 1e-6 (a quarter-thousandth of a grey level) changes nothing; noise of up to
    0.45 grey levels moves each fracture probability by at most 0.01."""
    pixels = np.asarray(Image.open(path).convert("L"), np.float32) / 255.0
    base = _probabilities(shipped_engine, pixels)
    rng = np.random.default_rng(0)
    for amplitude in (1e-6, 0.45 / 255):
        noise = rng.uniform(-amplitude, amplitude, pixels.shape).astype(np.float32)
        moved = _probabilities(shipped_engine, np.clip(pixels + noise, 0, 1))
        assert np.abs(moved - base).max() <= 0.01, (amplitude, moved, base)
    assert np.array_equal(
        _probabilities(shipped_engine, pixels + np.float32(1e-7)), base
    )  # identical grey levels, identical answer


def test_grey_levels_are_a_function_of_the_rounded_pixels():
    pixels = np.linspace(0, 1, 4096, dtype=np.float32).reshape(64, 64)
    nudged = pixels + np.float32(1e-6)
    assert np.array_equal(grey_levels(pixels), grey_levels(np.clip(nudged, 0, 1)))
    assert set(np.unique(np.rint(grey_levels(pixels) * 255))) <= set(range(256))
