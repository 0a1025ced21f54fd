"""Shared fixtures: a tiny random-weight model folder and a sample image."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tests.factories import make_random_weights, write_image  # noqa: E402


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """A weights folder with random-weight models (32 px input) and a valid manifest."""
    return make_random_weights(tmp_path_factory.mktemp("weights"))


@pytest.fixture()
def sample_png(tmp_path) -> Path:
    """A generated X-ray-like grayscale PNG."""
    return write_image(tmp_path / "xray.png")


def pytest_addoption(parser) -> None:
    """`--runslow` also runs the tests marked `runslow` (large fuzzing campaign, long soak)."""
    parser.addoption(
        "--runslow", action="store_true", default=False, help="run the long reliability tests"
    )


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "runslow: long reliability run, only with --runslow")


def pytest_collection_modifyitems(config, items) -> None:
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="long reliability run: use --runslow")
    for item in items:
        if "runslow" in item.keywords:
            item.add_marker(skip)
