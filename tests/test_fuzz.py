"""Fuzzing the reader: byte mutations of PNG, JPEG, TIFF, BMP and DICOM seeds, and random bytes or
small images, give a result or a typed error, never anything else.

Campaigns run in a child process under a 1.5 GB address-space limit (`tests/bounded.py`): a file
that makes the reader allocate past it, or take longer than SLOW_CASE_SECONDS, fails the test
instead of passing slowly. `pytest tests/test_fuzz.py --runslow -s` also runs the large campaign
and prints its counts.
"""

from __future__ import annotations

import io
import json
import resource
import struct
import subprocess
import sys
import tempfile
import time
import warnings
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    RLELossless,
)

import predictions
from core.errors import TriageError
from core.imaging import decode_xray, read_xray
from tests import bad_inputs
from tests.bounded import LIMIT, ROOT

# Random bytes can look like a broken DICOM header; pydicom then warns before our typed error.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pydicom")

SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
CI_MUTATIONS = 6_000
LARGE_MUTATIONS = 24_000
ANALYSED_MUTATIONS = 400
SLOW_CASE_SECONDS = 5.0  # one file taking longer than this counts as a hang (issue 23: 10 s)
INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 12_000)
GARBAGE_VALUES = (b"ab", b"-1", b"0", b"1e400", b"nan", b"99999999", b"\xff\xfe", b"", b"1\\2\\3")
DICOM_NUMBER_TAGS = (  # (group, element) of the header values that steer decoding
    (0x0028, 0x0002),  # SamplesPerPixel
    (0x0028, 0x0004),  # PhotometricInterpretation
    (0x0028, 0x0008),  # NumberOfFrames
    (0x0028, 0x1050),  # WindowCenter
    (0x0028, 0x1051),  # WindowWidth
    (0x0028, 0x1052),  # RescaleIntercept
    (0x0028, 0x1053),  # RescaleSlope
)


# ----------------------------------------------------------------------------- seeds


def seeds() -> list[tuple[str, bytes]]:
    """Small valid files of every kind the reader takes, as (file name, bytes)."""
    gray = bad_inputs.xray_array(72, 96).astype(np.uint8)
    wide = bad_inputs.xray_array(64, 48, seed=1, top=4000)
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    exif = Image.Exif()
    exif[0x0112] = 6
    dicom_tags = {
        "NumberOfFrames": 1,
        "RescaleSlope": 1,
        "RescaleIntercept": 0,
        "WindowCenter": 2000,
        "WindowWidth": 4000,
    }
    raster = [
        ("a.png", bad_inputs.raster_bytes(gray, "PNG")),
        ("a16.png", bad_inputs.raster_bytes(wide.astype(np.uint16) * 16, "PNG")),
        ("rgb.png", bad_inputs.raster_bytes(rgb, "PNG")),
        ("a.jpg", bad_inputs.raster_bytes(gray, "JPEG", quality=85)),
        ("p.jpg", bad_inputs.raster_bytes(rgb, "JPEG", progressive=True, exif=exif.tobytes())),
        ("a.tif", bad_inputs.raster_bytes(wide.astype(np.uint16), "TIFF")),
        ("a.bmp", bad_inputs.raster_bytes(gray, "BMP")),
    ]
    dicom = [
        ("e.dcm", bad_inputs.dicom_bytes(wide, ExplicitVRLittleEndian, **dicom_tags)),
        ("i.dcm", bad_inputs.dicom_bytes(wide, ImplicitVRLittleEndian, **dicom_tags)),
        ("d.dcm", bad_inputs.dicom_bytes(wide, DeflatedExplicitVRLittleEndian, **dicom_tags)),
        ("r.dcm", bad_inputs.dicom_bytes(wide, RLELossless, photometric="MONOCHROME1")),
        ("j.dcm", bad_inputs.dicom_bytes(gray[:64, :64], JPEGBaseline8Bit)),
        ("IM0001", bad_inputs.bare_dicom_bytes(wide)),
    ]
    return raster + dicom


# ----------------------------------------------------------------------------- mutations


def _position(data: bytes, rng: np.random.Generator) -> int:
    """Mostly in the header (first 600 bytes), where a mutation changes how the file is read."""
    if rng.random() < 0.7:
        return int(rng.integers(0, min(len(data), 600)))
    return int(rng.integers(0, len(data)))


def _flip_bits(data: bytearray, rng) -> bytearray:
    for _ in range(int(rng.integers(1, 9))):
        at = _position(data, rng)
        data[at] ^= 1 << int(rng.integers(0, 8))
    return data


def _set_bytes(data: bytearray, rng) -> bytearray:
    for _ in range(int(rng.integers(1, 5))):
        data[_position(data, rng)] = int(rng.choice([0, 1, 0x7F, 0x80, 0xFF, rng.integers(256)]))
    return data


def _set_number(data: bytearray, rng) -> bytearray:
    width = int(rng.choice([2, 4]))
    at = min(_position(data, rng), len(data) - width)
    value = int(rng.choice(INTERESTING)) & (2 ** (8 * width) - 1)
    order = "<" if rng.random() < 0.5 else ">"
    data[at : at + width] = struct.pack(order + ("H" if width == 2 else "I"), value)
    return data


def _truncate(data: bytearray, rng) -> bytearray:
    return data[: int(rng.integers(1, len(data)))]


def _insert(data: bytearray, rng) -> bytearray:
    at = _position(data, rng)
    junk = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
    return data[:at] + junk + data[at:]


def _delete(data: bytearray, rng) -> bytearray:
    at = _position(data, rng)
    return data[:at] + data[at + int(rng.integers(1, 64)) :]


def _duplicate(data: bytearray, rng) -> bytearray:
    at = _position(data, rng)
    size = int(rng.integers(1, 256))
    return data[: at + size] + data[at : at + size] + data[at + size :]


def _dicom_value(data: bytearray, rng) -> bytearray:
    """Explicit VR DICOM: a garbage value or value length for a header element that matters."""
    group, element = DICOM_NUMBER_TAGS[int(rng.integers(len(DICOM_NUMBER_TAGS)))]
    try:
        if rng.random() < 0.5:
            text = GARBAGE_VALUES[int(rng.integers(len(GARBAGE_VALUES)))]
            return bytearray(bad_inputs.with_string_value(bytes(data), group, element, text))
        length = int(rng.choice([0, 1, 3, 0xFF, 0xFFFF]))
        return bytearray(bad_inputs.with_value_length(bytes(data), group, element, length))
    except ValueError:  # the element is not in this seed (or is not explicit VR)
        return _set_number(data, rng)


MUTATORS = (
    _flip_bits,
    _set_bytes,
    _set_number,
    _truncate,
    _insert,
    _delete,
    _duplicate,
    _dicom_value,
)


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One to three random mutations of `data` (for half the PNGs, with the checksums repaired
    so the damage reaches the decoder instead of stopping at the checksum test)."""
    result = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        if len(result) < 2:
            break
        result = MUTATORS[int(rng.integers(len(MUTATORS)))](result, rng)
    if data.startswith(b"\x89PNG") and rng.random() < 0.5:
        return _with_png_checksums(bytes(result))
    return bytes(result)


def _with_png_checksums(data: bytes) -> bytes:
    """Recompute the CRC of every complete PNG chunk."""
    out, at = bytearray(data[:8]), 8
    while at + 12 <= len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        end = at + 8 + length
        if end + 4 > len(data):
            break
        out += data[at:end] + struct.pack(">I", zlib.crc32(data[at + 4 : end]))
        at = end + 4
    return bytes(out + data[at:])


# ----------------------------------------------------------------------------- campaign


def campaign(count: int, seed: int, out_dir: Path) -> tuple[Counter, list[str], float]:
    """Decode `count` mutated seeds; returns outcome counts, untyped failures, slowest seconds.

    A failure's bytes are written to `out_dir` so it can be reproduced with `decode_xray`.
    """
    rng = np.random.default_rng(seed)
    pool = seeds()
    outcomes: Counter = Counter()
    failures: list[str] = []
    slowest = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom and Pillow warn about the damage they see
        for index in range(count):
            name, original = pool[index % len(pool)]
            data = mutate(original, rng)
            start = time.perf_counter()
            try:
                image = decode_xray(data, name)
                assert image.pixels.ndim == 2 and np.isfinite(image.pixels).all()
                outcome = "image"
            except TriageError as error:
                outcome = type(error).__name__
                if _ran_out_of_memory(error):  # the limit stopped it, not a guard
                    outcome = f"MEMORY {outcome}"
                    (out_dir / f"memory_{index}_{name}").write_bytes(data)
                    failures.append(f"mutation {index} of {name} ran out of memory")
            except Exception as error:  # noqa: BLE001 - what this test exists to find
                outcome = f"UNTYPED {type(error).__name__}"
                reproducer = out_dir / f"untyped_{index}_{name}"
                reproducer.write_bytes(data)
                failures.append(f"{reproducer}: {type(error).__name__}: {error}")
            elapsed = time.perf_counter() - start
            slowest = max(slowest, elapsed)
            if elapsed > SLOW_CASE_SECONDS:
                (out_dir / f"slow_{index}_{name}").write_bytes(data)
                failures.append(f"mutation {index} of {name} took {elapsed:.1f} s")
            outcomes[(_kind(name), outcome)] += 1
    return outcomes, failures, slowest


def _ran_out_of_memory(error: BaseException) -> bool:
    cause = error.__cause__ or error.__context__
    while cause is not None:
        if isinstance(cause, MemoryError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def bounded_campaign(count: int, seed: int, out_dir: Path, limit: int = LIMIT) -> dict:
    """`campaign` in a child process whose address space may grow by at most `limit` bytes;
    returns its counts ('outcomes' as [kind, outcome, n]), failures, slowest case, peak memory."""
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
        f"from tests.test_fuzz import limited_campaign\n"
        f"limited_campaign({count}, {seed}, {str(out_dir)!r}, {limit})\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=7200
    )
    if done.returncode != 0:
        raise AssertionError(f"the campaign's process failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def limited_campaign(count: int, seed: int, out_dir: str, limit: int) -> None:
    """The child's side of `bounded_campaign`: set the limit, run, print the result as JSON."""
    size = next(
        int(line.split()[1]) * 1024
        for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith("VmSize:")
    )
    resource.setrlimit(resource.RLIMIT_AS, (size + limit, size + limit))
    outcomes, failures, slowest = campaign(count, seed, Path(out_dir))
    peak = next(  # this process's own peak (ru_maxrss keeps the parent's over exec)
        int(line.split()[1]) * 1024
        for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith("VmHWM:")
    )
    rows = [[kind, outcome, n] for (kind, outcome), n in outcomes.items()]
    print(json.dumps({"outcomes": rows, "failures": failures, "slowest": slowest, "peak": peak}))


def _counted(result: dict) -> Counter:
    return Counter({(kind, outcome): n for kind, outcome, n in result["outcomes"]})


def _kind(name: str) -> str:
    suffix = Path(name).suffix.lower()
    return {".png": "PNG", ".jpg": "JPEG", ".tif": "TIFF", ".bmp": "BMP"}.get(suffix, "DICOM")


def _report(outcomes: Counter, slowest: float) -> str:
    lines = [f"{sum(outcomes.values())} mutations, slowest file {slowest:.2f} s"]
    for kind in sorted({kind for kind, _ in outcomes}):
        parts = sorted(((n, o) for (k, o), n in outcomes.items() if k == kind), reverse=True)
        total = sum(n for n, _ in parts)
        lines.append(f"  {kind} ({total}): " + ", ".join(f"{o} {n}" for n, o in parts))
    return "\n".join(lines)


def test_every_seed_is_read(tmp_path):
    """The seeds themselves are valid, so mutations start from files the reader accepts."""
    for name, data in seeds():
        assert decode_xray(data, name).pixels.ndim == 2, name


def test_mutations_give_an_image_or_a_typed_error(tmp_path):
    result = bounded_campaign(CI_MUTATIONS, seed=13, out_dir=tmp_path)
    outcomes, failures = _counted(result), result["failures"]
    print(_report(outcomes, result["slowest"]), f"\npeak memory {result['peak'] / 2**20:.0f} MB")
    assert not failures, "\n".join(failures[:20])
    assert result["peak"] < LIMIT
    assert sum(outcomes.values()) == CI_MUTATIONS
    kinds = {kind for kind, _ in outcomes}
    assert kinds == {"PNG", "JPEG", "TIFF", "BMP", "DICOM"}
    assert len({outcome for _, outcome in outcomes}) >= 5  # the mutations reach many paths


@pytest.mark.runslow
def test_large_mutation_campaign(tmp_path):
    result = bounded_campaign(LARGE_MUTATIONS, seed=2026, out_dir=tmp_path)
    print(_report(_counted(result), result["slowest"]))
    print(f"peak memory {result['peak'] / 2**20:.0f} MB")
    assert not result["failures"], "\n".join(result["failures"][:20])
    assert result["peak"] < LIMIT


def test_mutated_files_through_the_whole_analysis(tiny_weights, tmp_path):
    """Mutations that still decode go on through framing, the models and the result: a result
    or a typed error there too (odd sizes, odd intensities)."""
    rng = np.random.default_rng(7)
    pool = seeds()
    outcomes: Counter = Counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for index in range(ANALYSED_MUTATIONS):
            name, original = pool[index % len(pool)]
            path = tmp_path / f"{index}_{name}"
            path.write_bytes(mutate(original, rng))
            try:
                result = predictions.analyze(path, tiny_weights)
                assert 0.0 <= result.fracture_probability <= 1.0
                outcomes["result"] += 1
            except TriageError as error:
                outcomes[type(error).__name__] += 1
            path.unlink()
    print(dict(outcomes))
    assert outcomes["result"] > ANALYSED_MUTATIONS // 10


# ----------------------------------------------------------------------------- random inputs


def _file(data: bytes, suffix: str) -> Path:
    with tempfile.NamedTemporaryFile(suffix=suffix, delete=False) as handle:
        handle.write(data)
    return Path(handle.name)


@SETTINGS
@given(data=st.binary(max_size=2048), suffix=st.sampled_from([".png", ".jpg", ".dcm", ""]))
def test_random_bytes_never_escape_as_untyped_errors(data, suffix):
    path = _file(data, suffix)
    try:
        image = read_xray(path)
        assert image.ndim == 2
    except TriageError:
        pass
    finally:
        path.unlink()


@st.composite
def small_images(draw):
    width = draw(st.integers(1, 80))
    height = draw(st.integers(1, 80))
    mode = draw(st.sampled_from(["L", "RGB", "RGBA", "P", "I;16", "1", "LA", "F"]))
    seed = draw(st.integers(0, 2**16))
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    image = Image.fromarray(pixels).convert("L" if mode in ("I;16", "F") else "RGB")
    image = image.convert(mode) if mode not in ("I;16",) else image.convert("I;16")
    fmt = draw(st.sampled_from(["PNG", "TIFF", "BMP"]))
    if fmt == "BMP" and mode in ("I;16", "LA", "F", "RGBA"):
        fmt = "PNG"
    if fmt == "PNG" and mode == "F":
        fmt = "TIFF"
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue(), "." + fmt.lower()


@SETTINGS
@given(sample=small_images())
def test_random_small_images_give_result_or_typed_error(tiny_weights, sample):
    data, suffix = sample
    path = _file(data, suffix)
    try:
        result = predictions.analyze(path, tiny_weights)
        assert 0.0 <= result.fracture_probability <= 1.0
    except TriageError:
        pass
    finally:
        path.unlink()
