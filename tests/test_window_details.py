"""Window details of issue 23: versions in the About box, readable box labels, saved paths broken
between folders, and a status line that survives the heatmap."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.formatting import wrap_path
from app.info import models_text
from core.boxes import boxes_from_map
from core.framing import frame_for
from core.heatmap import draw_boxes
from tests.factories import write_image

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"


def test_about_box_names_a_version_for_every_model(tiny_weights, tmp_path):
    folder = tmp_path / "w"
    shutil.copytree(tiny_weights, folder)
    raw = json.loads((folder / "manifest.json").read_text())
    raw["networks"]["shared"].pop("version", None)  # one entry without a version
    (folder / "manifest.json").write_text(json.dumps(raw))
    text = models_text(folder)
    lines = text.split("Model versions:\n")[1].splitlines()
    assert len(lines) == len(raw["networks"]) + len(raw["heads"])
    for line in lines:
        name, version = line.strip().split(": ")
        assert name and version.strip(), line
    sha = raw["networks"]["shared"]["sha256"][:12]
    assert f"  shared: sha256 {sha}" in lines
    shipped = models_text(ROOT / "weights").split("Model versions:\n")[1]
    assert " ," not in shipped and all(": " in line for line in shipped.splitlines())


def test_box_labels_are_large_and_white_on_black():
    """A label on a 600-pixel-wide preview is at least 14 px tall (the bitmap font was 10 px,
    red on black) and white on black; it is saved for a person to look at."""
    gray = np.full((800, 600), 0.4, np.float32)
    frame = frame_for(gray, 32, crop=False)
    cells = np.full((8, 8), 0.05)
    cells[3:5, 3:5] = 0.9
    boxes = boxes_from_map(cells, frame, gray.shape, 0.5)
    assert boxes
    preview = Image.fromarray((gray * 255).astype(np.uint8)).convert("RGB")
    drawn = draw_boxes(preview, boxes, gray.shape)
    ARTIFACTS.mkdir(exist_ok=True)
    drawn.save(ARTIFACTS / "box_label.png")
    pixels = np.asarray(drawn, dtype=int)
    white = (pixels > 240).all(axis=2)
    rows = np.flatnonzero(white.any(axis=1))
    assert rows.size and rows[-1] - rows[0] + 1 >= 10  # digit height of a >= 20 px font
    text_box = pixels[rows[0] : rows[-1] + 1][:, np.flatnonzero(white.any(axis=0))]
    assert (text_box.max(axis=2) == text_box.min(axis=2)).all()  # white on black, no red
    assert text_box.min() < 15 and text_box.max() > 240


@pytest.mark.parametrize(
    "path",
    [
        "/home/radiologist/Documents/Fracture results/2026/December/Hand_fractured_20261206.png",
        "C:\\Users\\radiologist\\Documents\\Fracture results\\Elbow-chosen_normal_20261206.png",
        "short.png",
    ],
)
def test_saved_path_breaks_only_after_a_separator(path):
    wrapped = wrap_path(path, 40)
    assert wrapped.replace("\n", "") == path
    for line in wrapped.splitlines():
        assert len(line) <= 40 or "/" not in line[:-1] and "\\" not in line[:-1]
    for end in (line for line in wrapped.splitlines()[:-1]):
        assert end.endswith(("/", "\\"))


@pytest.mark.gui
def test_status_line_stays_after_the_heatmap_and_save_message_wraps(
    display, tiny_weights, monkeypatch, tmp_path
):
    from tests.test_app import running_app, upload_and_predict, wait_idle

    folder = tmp_path / "w"
    shutil.copytree(tiny_weights, folder)
    raw = json.loads((folder / "manifest.json").read_text())
    raw["recognition_threshold"] = 0.01  # random heads: always recognised, so a heatmap exists
    (folder / "manifest.json").write_text(json.dumps(raw))
    image = write_image(tmp_path / "hand.png")
    deep = tmp_path / "a folder with a long name" / "and another one inside it" / "result.png"
    deep.parent.mkdir(parents=True)
    with running_app(display, folder, monkeypatch, open_path=image, save_path=deep) as (
        app,
        recorder,
    ):
        upload_and_predict(app)
        done = app.status_label.cget("text")
        assert done.startswith("Done in")
        app.heatmap_switch.select()
        app.toggle_heatmap()
        wait_idle(app)
        assert app.overlay_image is not None
        assert app.status_label.cget("text").startswith(done)
        assert "Heatmap" in app.status_label.cget("text")
        app.save_result()
        title, message = recorder.messages[-1]
        assert title == "Result saved" and "result.png" in message
        for line in message.splitlines()[1:]:
            assert len(line) <= 48 or line.count("/") <= 1
        assert deep.is_file()
