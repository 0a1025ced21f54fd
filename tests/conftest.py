"""Shared fixtures: a tiny random-weight model folder and a sample image."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
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


@pytest.fixture(scope="session")
def weights(tmp_path_factory) -> dict[str, Path]:
    """Weight folders whose outputs are known, for the window tests: a hand read as fractured,
    a hand read as normal, and an image not recognised (the model says 'other')."""
    root = tmp_path_factory.mktemp("gui_weights")
    return {
        "fractured": make_random_weights(
            root / "f", favour_bone="Hand", fracture_logit=2.0, box_threshold=0.5
        ),
        "normal": make_random_weights(
            root / "n", favour_bone="Hand", fracture_logit=-2.0, box_threshold=0.5
        ),
        "other": make_random_weights(
            root / "o", favour_bone="Other", fracture_logit=2.0, box_threshold=0.5
        ),
    }


@pytest.fixture()
def weights_copy(tiny_weights, tmp_path) -> Path:
    """A private copy of `tiny_weights` to damage, with the engine cache cleared around it."""
    from core import engine

    engine.clear_cache()
    copy = tmp_path / "weights"
    shutil.copytree(tiny_weights, copy)
    yield copy
    engine.clear_cache()


@pytest.fixture(scope="session")
def display():
    """One private Xvfb screen for the whole session (a Tk connection to a screen that closes
    mid-session would end the process); skipped only where Xvfb is not installed at all."""
    if os.environ.get("DISPLAY") and not shutil.which("Xvfb"):
        yield os.environ["DISPLAY"]
        return
    if not shutil.which("Xvfb"):
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    number = 90 + os.getpid() % 100
    server = subprocess.Popen(
        ["Xvfb", f":{number}", "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    previous = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = f":{number}"
    for _ in range(100):
        if Path(f"/tmp/.X11-unix/X{number}").exists():
            break
        time.sleep(0.05)
    yield os.environ["DISPLAY"]
    server.terminate()
    server.wait(timeout=10)
    if previous is None:
        os.environ.pop("DISPLAY", None)
    else:
        os.environ["DISPLAY"] = previous


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
