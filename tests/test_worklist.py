"""The worklist: sorting, grouping by DICOM study, bad files, and the real window driving it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.worklist import (
    FAILED_RANK,
    Group,
    Row,
    WorklistRun,
    analyse_row,
    arrange,
    group_of,
    sort_rows,
)
from core.bone_routing import study_of
from predictions import CHOSEN, FRACTURED, NORMAL, Prediction
from tests.bad_inputs import dicom_dataset
from tests.factories import write_image, xray_like

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def prediction(path: str, probability: float, recognised: bool = True, bone: str = "Hand"):
    """A result as `predictions.analyze` makes it (label from a 0.5 threshold)."""
    return Prediction(
        path=path,
        bone=bone,
        bone_probabilities={"Elbow": 0.1, "Hand": 0.8, "Shoulder": 0.05, "Other": 0.05},
        recognised=recognised,
        recognition_threshold=0.75,
        model_fracture_probability=probability,
        label=FRACTURED if probability >= 0.5 else NORMAL,
        threshold=0.5,
        model_versions={},
        seconds=0.01,
        model_bone=bone,
    )


def row(name: str, probability: float | None, recognised: bool = True, group: str = "folder:a"):
    result = None if probability is None else prediction(name, probability, recognised)
    error = "" if result else "not an image"
    return Row(
        Path(name), group, group, result=result, error_title="Bad" if error else "", error=error
    )


def write_dicom(path: Path, study_uid: str, description: str = "XR HAND", pixels=None) -> Path:
    """A DICOM X-ray of `study_uid` (pixels: an X-ray-like 16-bit image)."""
    pixels = xray_like().astype(np.uint16) * 16 if pixels is None else pixels
    dataset = dicom_dataset(
        pixels,
        StudyInstanceUID=study_uid,
        SeriesInstanceUID=f"{study_uid}.1",
        StudyDescription=description,
        BodyPartExamined="HAND",
        PatientName="Test^Worklist",
        PatientID="WL-0001",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset.save_as(path, enforce_file_format=True)
    return path


# ----------------------------------------------------------------------------- no window


def test_most_suspicious_first_and_every_column_sorts():
    rows = [
        row("normal_low.png", 0.10),
        row("fractured_mid.png", 0.70),
        row("unread.png", None),
        row("guess_high.png", 0.90, recognised=False),
        row("fractured_high.png", 0.95),
        row("normal_high.png", 0.40),
        row("guess_low.png", 0.20, recognised=False),
    ]
    names = [r.path.name for r in sort_rows(rows)]
    assert names == [
        "fractured_high.png",
        "fractured_mid.png",
        "guess_high.png",  # no verdict: after the fractures, by the model's own probability
        "guess_low.png",
        "normal_high.png",
        "normal_low.png",
        "unread.png",
    ]
    by_probability = [r.path.name for r in sort_rows(rows, "probability", descending=True)]
    assert by_probability[:2] == ["fractured_high.png", "guess_high.png"]
    assert by_probability[-1] == "unread.png"  # nothing to sort on: last either way
    assert [r.path.name for r in sort_rows(rows, "probability")][-1] == "unread.png"
    assert [r.path.name for r in sort_rows(rows, "file")][:2] == [
        "fractured_high.png",
        "fractured_mid.png",
    ]
    assert sort_rows(rows, "error")[0].path.name == "unread.png"
    cells = rows[3].cells()
    assert (cells["verdict"], cells["probability"]) == ("Not recognised", "(0.90)")
    assert cells["bone"] == "? (best guess Hand)"
    assert rows[2].rank == FAILED_RANK and rows[2].cells()["error"] == "Bad: not an image"


def test_a_study_is_ordered_by_its_most_suspicious_view():
    rows = [
        row("a1.png", 0.2, group="study:A"),
        row("a2.png", 0.8, group="study:A"),
        row("b1.png", 0.6, group="study:B"),
        row("alone.png", 0.9, group="folder:c"),
    ]
    shown = arrange(rows)
    assert [type(entry).__name__ for entry in shown] == ["Row", "Group", "Row"]
    assert shown[0].path.name == "alone.png" and shown[2].path.name == "b1.png"
    study = shown[1]
    assert isinstance(study, Group) and [r.path.name for r in study.rows] == ["a2.png", "a1.png"]
    assert study.cells()["verdict"] == "1 fractured" and study.cells()["probability"] == "max 0.80"


def test_dicom_groups_by_study_uid_from_the_header_only(tmp_path):
    first = write_dicom(tmp_path / "in" / "one.dcm", "1.2.3.4", "XR HAND 2 VIEWS")
    second = write_dicom(tmp_path / "elsewhere" / "two.dcm", "1.2.3.4", "XR HAND 2 VIEWS")
    other = write_dicom(tmp_path / "in" / "three.dcm", "1.2.3.5")
    plain = write_image(tmp_path / "in" / "photo.png")
    damaged = tmp_path / "in" / "damaged.dcm"  # header intact, pixel data cut short
    damaged.write_bytes(other.read_bytes()[:-500])
    assert group_of(first) == group_of(second) == ("study:1.2.3.4", "Study XR HAND 2 VIEWS")
    assert group_of(other)[0] == "study:1.2.3.5"
    assert study_of(damaged) == ("1.2.3.5", "XR HAND")  # the pixels are never read
    assert group_of(plain) == (f"folder:{plain.parent}", "Folder in")


def test_run_gives_every_file_a_row_and_bad_files_their_message(tiny_weights, tmp_path):
    folder = tmp_path / "ward"
    write_image(folder / "a.png")
    write_image(folder / "b.png")
    (folder / "notes.png").write_text("not an image")
    (folder / "empty.jpg").write_bytes(b"")
    run = WorklistRun([folder], tiny_weights).start()
    run.join(timeout=120)
    events = run.drain()
    kinds = [kind for kind, _value in events]
    assert kinds[0] == "total" and events[0][1] == 4 and kinds[-1] == "finished"
    assert events[-1][1] is False  # not cancelled: every file was analysed
    rows = {value.path.name: value for kind, value in events if kind == "row"}
    assert rows["a.png"].result is not None and rows["b.png"].result is not None
    assert (
        rows["notes.png"].result is None
        and "is not an image we can read" in rows["notes.png"].error
    )
    assert rows["empty.jpg"].result is None and rows["empty.jpg"].error_title


def test_unexpected_failure_is_a_row_not_a_crash(tmp_path):
    def broken(_path):
        raise RuntimeError("boom")

    failed = analyse_row(write_image(tmp_path / "x.png"), broken)
    assert failed.result is None and failed.error_title == "Unexpected problem"
    assert "RuntimeError" in failed.error


# ----------------------------------------------------------------------------- the window


def open_app(weights_dir, monkeypatch, errors: list):
    from app.window import FractureApp

    monkeypatch.setattr(FractureApp, "show_error", lambda self, t, m: errors.append((t, m)))
    monkeypatch.setattr(FractureApp, "show_message", lambda self, t, m: errors.append((t, m)))
    app = FractureApp(weights_dir)
    app.update()
    pump(app, lambda: not app.worker.busy and app.worker._results.empty())
    return app


def pump(app, done, timeout: float = 120.0) -> None:
    """Run the window's events until `done()`."""
    deadline = time.time() + timeout
    while not done():
        if time.time() > deadline:
            raise TimeoutError("the window did not get there")
        app.update()
        time.sleep(0.01)
    app.update()


def run_folder(app, folder: Path, monkeypatch) -> None:
    """Open Folder through the (patched) dialog and wait for the worklist to finish."""
    monkeypatch.setattr(type(app), "ask_folder", lambda self: str(folder))
    app.folder_button.invoke()
    pump(app, lambda: app.worklist.finished and not app._opening)
    pump(app, lambda: app.worklist._pending is None)


def click_heading(tree, column: str) -> None:
    tree.tk.call(tree.heading(column, option="command"))


@pytest.mark.gui
def test_open_folder_lists_studies_folders_and_failures(display, weights, monkeypatch, tmp_path):
    folder = tmp_path / "ward"
    write_dicom(folder / "study" / "view1.dcm", "1.2.840.1", "XR HAND 2 VIEWS")
    write_dicom(folder / "study" / "view2.dcm", "1.2.840.1", "XR HAND 2 VIEWS")
    write_dicom(folder / "single.dcm", "1.2.840.2")
    write_image(folder / "clinic" / "a.png")
    write_image(folder / "clinic" / "b.png")
    (folder / "notes.png").write_text("this is a text file, not an image")
    errors: list = []
    app = open_app(weights["fractured"], monkeypatch, errors)
    try:
        run_folder(app, folder, monkeypatch)
        panel, tree = app.worklist, app.worklist.tree
        assert len(panel.rows) == 6 and not panel.cancelled
        assert panel.count_label.cget("text").startswith("6 of 6 analysed, 1 could not be read")
        top = [tree.item(item, "text") for item in tree.get_children()]
        assert "Study XR HAND 2 VIEWS (2 views)" in top and "Folder clinic (2 images)" in top
        study = tree.get_children()[top.index("Study XR HAND 2 VIEWS (2 views)")]
        assert [tree.item(i, "text") for i in tree.get_children(study)] == [
            "view1.dcm",
            "view2.dcm",
        ]
        assert tree.item(tree.get_children(study)[0], "values")[0] == "Hand (DICOM tag)"
        failed = next(i for i in panel.rows if panel.rows[i].path.name == "notes.png")
        assert tree.parent(failed) == "" and tree.get_children()[-1] == failed  # failures last
        assert tree.item(failed, "tags") == ("failed",)
        assert "is not an image we can read" in tree.item(failed, "values")[-1]
        click_heading(tree, "#0")  # File, A to Z: the folder of a.png / b.png first
        assert tree.item(tree.get_children()[0], "text") == "Folder clinic (2 images)"
        click_heading(tree, "#0")  # again: Z to A
        assert tree.item(tree.get_children()[0], "text").startswith("Study XR HAND 2 VIEWS")
        assert tree.heading("#0", option="text") == "File ▼"
        click_heading(tree, "verdict")  # back to the first order: most suspicious first
        assert tree.heading("verdict", option="text") == "Verdict ▲"
        assert tree.get_children()[-1] == failed
        tree.selection_set(failed)
        app.update()
        assert app.result_label.cget("text") == "Cannot open this image" and app.paths == []
        assert errors == []  # a failed row is shown in the panel, never as a dialog
    finally:
        app.destroy()


@pytest.mark.gui
def test_up_and_down_show_each_row_as_an_upload_does(display, weights, monkeypatch, tmp_path):
    import predictions
    from app.formatting import describe

    folder = tmp_path / "ward"
    for name in ("a.png", "b.png", "c.png"):
        write_image(folder / name, xray_like(seed=ord(name[0])))
    errors: list = []
    app = open_app(weights["fractured"], monkeypatch, errors)
    try:
        run_folder(app, folder, monkeypatch)
        panel = app.worklist
        group = panel.tree.get_children()[0]  # one folder: one group, its files beneath
        files = list(panel.tree.get_children(group))
        assert panel.tree.selection() == (group,)  # the run ends on the most suspicious
        seen = []
        app.focus_force()
        for _ in files:
            app.event_generate("<Down>")  # focus is not in the table: the window moves it
            pump(app, lambda: not app._opening and panel._pending is None)
            item = panel.tree.selection()[0]
            row = panel.rows[item]
            seen.append(item)
            assert app.paths == [row.path] and app.result is row.result
            assert app.file_label.cget("text") == row.path.name
            expected = describe(predictions.analyze(row.path, weights["fractured"]))
            assert app.result_label.cget("text") == expected.result_text
            assert app.detail_label.cget("text").startswith(expected.detail_text)
        assert seen == files
        panel.tree.focus_set()
        panel.tree.event_generate("<Up>")  # in the table, Tk's own binding moves
        pump(app, lambda: not app._opening and panel._pending is None)
        assert panel.tree.selection() == (files[-2],) and app.paths == [panel.rows[files[-2]].path]
        app.heatmap_switch.select()
        app.toggle_heatmap()  # the shown row's heatmap, as for an upload
        pump(app, lambda: not app.worker.busy and app.worker._results.empty())
        assert app.overlay_image is not None
        views = tuple(str(panel.rows[item].path) for item in files[:2])
        monkeypatch.setattr(type(app), "ask_open_files", lambda self: views)
        before = {item: panel.rows[item].result for item in files}
        app.upload_study()  # a study beside the worklist: shown, and no row changes
        app.predict()
        pump(app, lambda: not app.worker.busy and app.worker._results.empty())
        assert "mean of 2 views" in app.detail_label.cget("text")
        assert {item: panel.rows[item].result for item in files} == before
        assert errors == []
    finally:
        app.destroy()


@pytest.mark.gui
def test_not_recognised_row_stands_out_and_its_bone_can_be_set(
    display, weights, monkeypatch, tmp_path
):
    import predictions

    folder = tmp_path / "ward"
    image = write_image(folder / "leg.png")
    write_image(folder / "arm.png", xray_like(seed=3))
    errors: list = []
    app = open_app(weights["other"], monkeypatch, errors)
    try:
        run_folder(app, folder, monkeypatch)
        panel, tree = app.worklist, app.worklist.tree
        item = next(i for i in panel.rows if panel.rows[i].path == image)
        assert tree.item(item, "tags") == ("not_recognised",)
        assert tree.tag_configure("not_recognised", "background") not in ("", None)
        assert tree.item(item, "values")[1] == "Not recognised"
        panel.open_menu(item)
        panel.menu.invoke("Analyse as Hand")
        pump(app, lambda: not app.worker.busy and app.worker._results.empty() and not app._opening)
        row = panel.rows[item]
        expected = predictions.analyze(image, weights["other"], bone="Hand")
        assert (row.result.bone, row.result.bone_source) == ("Hand", CHOSEN)
        assert row.result.fracture_probability == pytest.approx(expected.fracture_probability)
        assert tree.item(item, "values")[:2] == ("Hand (chosen by you)", "Fractured")
        assert tree.item(item, "tags") == ("fractured",)
        assert tree.index(item) == 0  # now the most suspicious: first in its folder
        assert app.result_label.cget("text").startswith("Result: Fractured")
        assert app.bone_selector.get() == "Hand"
        failed = tmp_path / "bad" / "x.png"
        failed.parent.mkdir()
        failed.write_text("no")
        run_folder(app, failed.parent, monkeypatch)
        panel.open_menu(panel.tree.get_children()[0])
        assert panel.menu.entrycget(0, "state") == "disabled"  # nothing to analyse again
        assert errors == []
    finally:
        app.destroy()


@pytest.mark.gui
def test_worklist_screenshot_with_shipped_weights(display, monkeypatch, tmp_path):
    """The README's worklist picture: the samples, a two-view DICOM study, an unreadable file."""
    from app.capture import grab_window

    folder = tmp_path / "Today"
    for sample in sorted((ROOT / "test").rglob("*.jpg")):
        bone = sample.relative_to(ROOT / "test").parts[0]
        if bone == "Hand":
            pixels = np.array(Image.open(sample).convert("L")).astype(np.uint16) * 16
            uid = "1.2.826.0.1.3680043.8.498.1"
            write_dicom(folder / "PACS" / f"{sample.stem}.dcm", uid, "XR HAND 2 VIEWS", pixels)
        else:
            target = folder / bone / f"{sample.parent.name}_{sample.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(sample, target)
    (folder / "scan_notes.png").write_text("this is a text file, not an image")
    errors: list = []
    app = open_app(None, monkeypatch, errors)
    try:
        run_folder(app, folder, monkeypatch)
        assert len(app.worklist.rows) == 8 and errors == []
        assert (app.winfo_width(), app.winfo_height()) == (1280, 800)
        app.update()
        DOCS.mkdir(exist_ok=True)
        grab_window(app).save(DOCS / "window_worklist.png")
    finally:
        app.destroy()


@pytest.mark.gui
def test_200_images_throughput_event_loop_memory_and_cancel(display):
    """Issue 24's targets, measured by benchmarks/worklist.py in a fresh process (so the peak
    memory is the window's and its analysis process's own): the event loop's longest block and
    Cancel are asserted, as the issue asks; throughput and memory are printed."""
    env = {**os.environ, "DISPLAY": display}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.worklist", "--count", "200", "--bad", "4", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"\nworklist: {figures['images_per_second']} images/s, longest block "
        f"{figures['longest_block_ms']} ms, peak memory {figures['peak_memory_mb']} MB (window "
        f"{figures['peak_window_mb']} + analysis {figures['peak_analysis_mb']}), "
        f"Cancel {figures['cancel_stopped_s']} s (shown {figures['cancel_shown_s']} s)"
    )
    assert figures["images"] == 200 and figures["failed"] == 4
    assert figures["cancel_reported"] and figures["cancelled_after"] < 200
    assert figures["cancel_stopped_s"] <= 0.5
    assert figures["longest_block_ms"] <= 100


@pytest.mark.gui
def test_exports_write_the_worklist_and_a_dicom_result(display, weights, monkeypatch, tmp_path):
    import hashlib

    import pydicom
    from pypdf import PdfReader

    folder = tmp_path / "ward"
    source = write_dicom(folder / "study" / "view1.dcm", "1.2.840.7", "XR HAND")
    write_image(folder / "clinic" / "photo.png")
    (folder / "notes.png").write_text("this is a text file, not an image")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    out = tmp_path / "out"
    out.mkdir()
    messages: list = []
    app = open_app(weights["fractured"], monkeypatch, messages)
    try:
        monkeypatch.setattr(type(app), "ask_report_file", lambda self, kind: str(out / f"w.{kind}"))
        monkeypatch.setattr(type(app), "ask_output_folder", lambda self: str(out))
        assert app.worklist is None  # made by the first Open Folder
        run_folder(app, folder, monkeypatch)
        panel = app.worklist
        order = [Path(r.path).name for r in panel.results()]
        assert order[-1] == "notes.png" and sorted(order) == ["notes.png", "photo.png", "view1.dcm"]
        for kind in ("csv", "pdf"):
            panel.export_buttons[kind].invoke()
            pump(app, lambda: not app.worker.busy and app.worker._results.empty())
        lines = (out / "w.csv").read_text(encoding="utf-8-sig").splitlines()
        assert len(lines) == 4  # a header and one line per file, in the table's order
        assert [next(n for n in order if n in line) for line in lines[1:]] == order
        assert "is not an image we can read" in lines[-1]
        pages = PdfReader(out / "w.pdf").pages
        assert len(pages) == 3 and "Fractured" in pages[0].extract_text()
        png = next(item for item in panel.rows if panel.rows[item].path.name == "photo.png")
        panel.tree.selection_set(png)
        pump(app, lambda: panel._pending is None and not app._opening)
        assert panel.dicom_button.cget("state") == "disabled"  # not a DICOM file
        dicom = next(item for item in panel.rows if panel.rows[item].path == source)
        panel.tree.selection_set(dicom)
        pump(app, lambda: panel._pending is None and not app._opening)
        assert panel.dicom_button.cget("state") == "normal"
        panel.dicom_button.invoke()
        pump(app, lambda: not app.worker.busy and app.worker._results.empty())
        written = [path for path in out.iterdir() if path.suffix == ".dcm"]
        assert len(written) == 1
        capture, original = pydicom.dcmread(written[0]), pydicom.dcmread(source)
        assert capture.StudyInstanceUID == original.StudyInstanceUID
        assert capture.SeriesInstanceUID != original.SeriesInstanceUID
        assert hashlib.sha256(source.read_bytes()).hexdigest() == digest
        titles = [title for title, _message in messages]
        assert titles == ["CSV file saved", "PDF report saved", "DICOM result saved"]
    finally:
        app.destroy()


@pytest.mark.gui
def test_closing_the_window_ends_the_analysis(display, weights, monkeypatch, tmp_path):
    folder = tmp_path / "ward"
    for index in range(80):
        write_image(folder / f"{index:02d}.png", xray_like(seed=index))
    errors: list = []
    app = open_app(weights["fractured"], monkeypatch, errors)
    monkeypatch.setattr(type(app), "ask_folder", lambda self: str(folder))
    app.folder_button.invoke()
    run = app.worklist.run
    pump(app, lambda: not run.events.empty() or not run.alive)
    assert run.alive
    app.destroy()
    run.join(timeout=5)
    assert not run.alive and errors == []
