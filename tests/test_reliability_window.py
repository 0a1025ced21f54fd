"""The window stays responsive while it opens any file, shows every failure in a dialog, and asks
once before replacing a saved result (issue 13).

Freeze measurement: a Tk `after` ticker re-arms itself every 5 ms and records the time between
consecutive ticks; opening a file runs while the ticker runs, so the longest gap is the longest
time the window could not redraw or respond. Runs under Xvfb like tests/test_app.py.
"""

from __future__ import annotations

import gc
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests import bad_inputs
from tests.factories import write_image
from tests.test_app import running_app, wait_idle

pytestmark = [pytest.mark.gui, pytest.mark.filterwarnings("ignore::UserWarning:pydicom")]
FREEZE_LIMIT = 0.100  # seconds


@pytest.fixture(scope="module")
def large_files(tmp_path_factory) -> dict[str, Path]:
    """Files at the size limits: what used to freeze the window while it decoded them."""
    folder = tmp_path_factory.mktemp("large")
    rng = np.random.default_rng(0)
    big = np.clip(rng.normal(90, 40, (7000, 7000)), 0, 255).astype(np.uint8)
    big[:, 2000:5000] += 60
    jpeg = folder / "large.jpg"
    Image.fromarray(big).save(jpeg, quality=85)
    png = folder / "large.png"
    Image.fromarray(big[:5000, :5000].astype(np.uint16) * 200).save(png, compress_level=1)
    dicom = bad_inputs.write(
        folder / "large.dcm", bad_inputs.dicom_bytes(big[:5000, :6000].astype(np.uint16) * 16)
    )
    bomb = bad_inputs.write(folder / "rle_12000.dcm", bad_inputs.rle_bomb(12_000))
    cut = bad_inputs.write(folder / "cut.jpg", jpeg.read_bytes()[:-6])
    return {
        "jpeg-7000": jpeg,
        "png16-5000": png,
        "dicom-6000x5000": dicom,
        "rle-dicom-12000": bomb,
        "jpeg-7000-cut": cut,
    }


@pytest.fixture()
def app_sized_heap():
    """The test process holds Keras (to build the test weights), which the app never imports;
    its ~350,000 objects are frozen out of the garbage collector so that one collection of them
    (about 0.3 s here) is not charged to the window."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


def longest_freeze(app, action, settle: float = 0.3) -> float:
    """Run `action` while a 5 ms `after` ticker runs; the longest gap between ticks, seconds."""
    ticks: list[float] = []
    running = True

    def tick():
        ticks.append(time.perf_counter())
        if running:
            app.after(5, tick)

    tick()
    end = time.perf_counter() + settle
    while time.perf_counter() < end:
        app.update()
        time.sleep(0.002)
    action()
    end = time.perf_counter() + settle
    while time.perf_counter() < end:
        app.update()
        time.sleep(0.002)
    running = False
    return float(np.diff(ticks).max())


@pytest.mark.parametrize(
    "name", ["jpeg-7000", "png16-5000", "dicom-6000x5000", "rle-dicom-12000", "jpeg-7000-cut"]
)
def test_opening_a_large_file_never_freezes_the_window(
    display, tiny_weights, monkeypatch, large_files, app_sized_heap, name
):
    path = large_files[name]
    with running_app(display, tiny_weights, monkeypatch, open_path=path) as (app, recorder):
        gaps = [longest_freeze(app, app.upload)]
        if gaps[0] >= FREEZE_LIMIT:  # once more: one slow tick can be another process's doing
            gaps.append(longest_freeze(app, app.upload))
        idle = longest_freeze(app, lambda: None)
        shown = ", ".join(f"{gap * 1000:.0f}" for gap in gaps)
        print(f"{name}: longest freeze {shown} ms (idle window: {idle * 1000:.0f} ms)")
        assert min(gaps) < FREEZE_LIMIT, f"the window froze for {shown} ms opening {name}"
        if name == "rle-dicom-12000":
            assert recorder.errors and "too large to open safely" in recorder.errors[-1][1]
            assert app.paths == []
        else:
            assert recorder.errors == [] and app.paths == [path]


# ----------------------------------------------------------------------------- failures in dialogs


def test_damaged_dicom_is_shown_in_a_dialog(display, tiny_weights, monkeypatch, tmp_path):
    """Issue 13 reproducer 1 in the window: NumberOfFrames 'ab' used to print a traceback only."""
    data = bad_inputs.with_string_value(
        bad_inputs.dicom_bytes(bad_inputs.xray_array(64, 64, top=4000), NumberOfFrames=1),
        0x0028,
        0x0008,
        b"ab",
    )
    path = bad_inputs.write(tmp_path / "frames.dcm", data)
    with running_app(display, tiny_weights, monkeypatch, open_path=path) as (app, recorder):
        app.upload()
        assert recorder.errors == [
            (
                "Cannot open this image",
                "The DICOM file 'frames.dcm' is damaged or not a valid DICOM image. "
                "Export it again from the imaging system.",
            )
        ]
        assert app.paths == []


def test_unexpected_failure_while_opening_is_shown_in_a_dialog(
    display,
    tiny_weights,
    monkeypatch,
    tmp_path,
):
    image = write_image(tmp_path / "hand.png")

    def broken(_path):
        raise RuntimeError("a bug in a decoder")

    monkeypatch.setattr("app.window.read_xray", broken)
    with running_app(display, tiny_weights, monkeypatch, open_path=image) as (app, recorder):
        app.upload()
        assert recorder.errors and recorder.errors[-1][0] == "Unexpected problem"
        assert "RuntimeError" in recorder.errors[-1][1]
        assert app.paths == [] and not app._opening


def test_blank_image_gets_no_verdict_in_the_window(display, tiny_weights, monkeypatch, tmp_path):
    """Issue 13 reproducer 2 in the window: an all-black PNG was shown as 'Normal' in green."""
    black = write_image(tmp_path / "black.png", np.zeros((300, 200), np.uint8))
    with running_app(display, tiny_weights, monkeypatch, open_path=black) as (app, recorder):
        app.upload()
        app.predict()
        wait_idle(app)
        assert recorder.errors and recorder.errors[0][0] == "Nothing to analyse"
        assert "is blank" in recorder.errors[0][1]
        assert app.result is None and app.result_label.cget("text") == ""


def test_predict_and_heatmap_wait_while_a_file_opens(display, tiny_weights, monkeypatch, tmp_path):
    """While a new file decodes, Enter or the heatmap switch must not act on the old image."""
    image = write_image(tmp_path / "hand.png")
    with running_app(display, tiny_weights, monkeypatch, open_path=image) as (app, recorder):
        app.upload()
        app.predict()
        wait_idle(app)
        assert app.result is not None
        app._opening = True
        app.predict()
        app.heatmap_switch.select()
        app.toggle_heatmap()
        assert not app.worker.busy and not app.heatmap_switch.get()
        assert recorder.messages == [] and recorder.errors == []
        app._opening = False


# ----------------------------------------------------------------------------- save asks once


def test_tk_save_dialog_does_not_ask_about_replacing(display, tiny_weights, monkeypatch):
    """The app asks once itself; Tk's own question (the first of the two) is turned off."""
    from tkinter import filedialog

    from app.window import FractureApp

    real_dialog = FractureApp.ask_save_file  # before running_app stubs it out
    seen = {}
    monkeypatch.setattr(filedialog, "asksaveasfilename", lambda **kw: seen.update(kw) or "")
    with running_app(display, tiny_weights, monkeypatch) as (app, _):
        assert real_dialog(app, "result.png") == ""
    assert seen["confirmoverwrite"] is False and seen["initialfile"] == "result.png"


@pytest.mark.parametrize("chosen", ["result.png", "result.jpg"], ids=["same-name", "suffix-added"])
def test_save_over_an_existing_file_asks_once(display, tiny_weights, monkeypatch, tmp_path, chosen):
    image = write_image(tmp_path / "hand.png")
    target = tmp_path / "result.png"
    target.write_bytes(b"old")
    asked = []
    with running_app(
        display, tiny_weights, monkeypatch, open_path=image, save_path=tmp_path / chosen
    ) as (app, recorder):
        monkeypatch.setattr(type(app), "ask_replace", lambda self, path: asked.append(path) or True)
        app.upload()
        app.predict()
        wait_idle(app)
        app.save_result()
        assert asked == [target]
        assert target.read_bytes().startswith(b"\x89PNG")
