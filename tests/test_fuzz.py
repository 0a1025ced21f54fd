"""Property-based: random bytes and random small images give a result or a typed error, never
anything else."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import predictions
from core.errors import TriageError
from core.imaging import read_xray

# Random bytes can look like a broken DICOM header; pydicom then warns before our typed error.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pydicom")

SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


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
