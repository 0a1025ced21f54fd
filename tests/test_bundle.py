"""The double-clickable app: main.py's command-line mode, bundle paths, and (--runslow) the real
PyInstaller bundle built, measured, started under Xvfb and run on the sample X-rays.

    .venv/bin/python -m pytest tests/test_bundle.py --runslow -s   # -s shows the figures
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, RLELossless

import main
import predictions
from benchmarks import bundle
from core import paths
from tests import bad_inputs
from tests.factories import write_image

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
MAX_MEGABYTES = 300


def json_lines(text: str) -> list[dict]:
    """The JSON lines a `--json` run printed, without the timing field that differs per run."""
    rows = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    for row in rows:
        row.pop("seconds", None)
    return rows


def test_cli_flag_runs_the_predictions_command_line(tiny_weights, tmp_path, capsys):
    images = [str(write_image(tmp_path / "a.png")), str(tmp_path / "missing.png")]
    options = ["--json", "--weights", str(tiny_weights)]
    expected_code = predictions.main([*images, *options])
    expected = json_lines(capsys.readouterr().out)
    code = main.main(["--cli", *images, *options])
    assert code == expected_code == 1  # the missing file fails, after the good one is reported
    assert json_lines(capsys.readouterr().out) == expected
    assert [row.get("error") for row in expected] == [None, "FileMissingError"]


def test_app_files_come_from_the_bundle_when_frozen(monkeypatch, tmp_path):
    assert paths.app_root() == ROOT and paths.WEIGHTS == ROOT / "weights"
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert paths.app_root() == tmp_path


# ---------------------------------------------------------------------------- the real bundle


@pytest.fixture(scope="session")
def built_bundle() -> Path:
    """Build dist/BoneFractureDetection once per test run (clean), printing the time it took."""
    seconds = bundle.build(clean=True)
    print(f"\nbundle build: {seconds:.1f} s")
    return bundle.BUNDLE


@pytest.mark.runslow
def test_bundle_fits_on_disk_without_tensorflow(built_bundle):
    megabytes = bundle.folder_megabytes(built_bundle)
    print(f"\nbundle size on disk: {megabytes:.1f} MB")
    assert bundle.executable(built_bundle).is_file()
    assert megabytes <= MAX_MEGABYTES
    assert not list(built_bundle.rglob("tensorflow*")), "TensorFlow was bundled"
    for folder in ("weights", "images", "test"):
        assert any((built_bundle / "_internal" / folder).iterdir()), f"{folder}/ is missing"


@pytest.mark.runslow
def test_bundle_window_shows(built_bundle, display):
    if not shutil.which("xdotool"):
        pytest.skip("xdotool is not installed (apt-get install xdotool)")
    from PIL import ImageGrab

    seconds, process, window = bundle.time_to_window(bundle.executable(built_bundle))
    try:
        print(f"\nbundle launch to visible window: {seconds:.2f} s")
        time.sleep(1.0)  # let it paint
        geometry = subprocess.run(
            ["xdotool", "getwindowgeometry", "--shell", window],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        box = dict(line.split("=") for line in geometry.split())
        left, top, width, height = (int(box[key]) for key in ("X", "Y", "WIDTH", "HEIGHT"))
        shot = ImageGrab.grab(bbox=(left, top, left + width, top + height), xdisplay=display)
        ARTIFACTS.mkdir(exist_ok=True)
        shot.save(ARTIFACTS / "bundle_window.png")
        assert process.poll() is None, "the app stopped after showing its window"
        assert width >= 700 and height >= 480  # the window's minimum size
        low, high = shot.convert("L").getextrema()
        assert high - low > 100, "the window is blank"
    finally:
        bundle.stop(process)


def extra_inputs(folder: Path) -> list[str]:
    """A sample hand X-ray as DICOM (plain, RLE, JPEG; the body part tag sets the bone), so the
    bundle's pydicom and its decoders run, and a file that is no image."""
    pixels = np.asarray(Image.open(next((ROOT / "test" / "Hand").rglob("*.jpg"))).convert("L"))
    folder.mkdir()
    made = []
    for name, syntax in (("plain", ExplicitVRLittleEndian), ("rle", RLELossless)):
        data = bad_inputs.dicom_bytes(pixels, syntax, BodyPartExamined="HAND")
        made.append(bad_inputs.write(folder / f"hand_{name}.dcm", data))
    data = bad_inputs.dicom_bytes(pixels, JPEGBaseline8Bit, BodyPartExamined="HAND")
    made.append(bad_inputs.write(folder / "hand_jpeg.dcm", data))
    made.append(bad_inputs.write(folder / "notes.png", b"not an image"))
    return [str(path) for path in made]


@pytest.mark.runslow
def test_bundle_command_line_equals_predictions(built_bundle, tmp_path):
    # run from elsewhere, on absolute paths: the bundle must find its own weights
    inputs = [str(ROOT / "test"), *extra_inputs(tmp_path / "more")]
    frozen = subprocess.run(
        [str(bundle.executable(built_bundle)), "--cli", *inputs, "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    source = subprocess.run(
        [sys.executable, str(ROOT / "predictions.py"), *inputs, "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert frozen.returncode == source.returncode == 1, frozen.stdout + frozen.stderr  # notes.png
    expected = json_lines(source.stdout)
    assert len(expected) == len(predictions.find_images(inputs[:1])) + 4 >= 10
    assert [row["bone_source"] for row in expected[-4:-1]] == ["DICOM tag"] * 3
    assert expected[-1]["error"] == "UnsupportedFormatError"
    assert json_lines(frozen.stdout) == expected
