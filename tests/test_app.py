"""Drive the real window under Xvfb: upload, predict, read the labels, save, and the error paths."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.factories import write_image

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
pytestmark = pytest.mark.gui


class Recorder:
    """Stands in for the modal dialogs so tests never block."""

    def __init__(self) -> None:
        self.errors: list[tuple[str, str]] = []
        self.messages: list[tuple[str, str]] = []


def make_app(display, weights_dir, monkeypatch, open_path=None, save_path=None, wait=True):
    from app.window import FractureApp

    recorder = Recorder()
    monkeypatch.setattr(
        FractureApp, "show_error", lambda self, t, m: recorder.errors.append((t, m))
    )
    monkeypatch.setattr(
        FractureApp, "show_message", lambda self, t, m: recorder.messages.append((t, m))
    )
    monkeypatch.setattr(FractureApp, "ask_open_file", lambda self: str(open_path or ""))
    monkeypatch.setattr(FractureApp, "ask_save_file", lambda self, name: str(save_path or ""))
    monkeypatch.setattr(FractureApp, "ask_replace", lambda self, path: False)
    app = FractureApp(weights_dir)
    app.update()
    if wait:
        wait_idle(app)
    return app, recorder


@contextlib.contextmanager
def running_app(*args, **kwargs):
    """`make_app`, destroying the window afterwards."""
    app, recorder = make_app(*args, **kwargs)
    try:
        yield app, recorder
    finally:
        app.destroy()


def upload_and_predict(app) -> None:
    """Upload through the (patched) dialog, predict, and wait for the worker."""
    app.upload()
    app.predict()
    wait_idle(app)


def wait_idle(app, timeout: float = 120.0) -> None:
    """Pump Tk events until the worker has finished and delivered its result."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        app.update()
        if not app.worker.busy and app.worker._results.empty():
            app.update()
            return
        time.sleep(0.02)
    raise TimeoutError("the worker did not finish")


def screenshot(app, name: str) -> Path:
    from app.capture import grab_window

    ARTIFACTS.mkdir(exist_ok=True)
    app.update()
    path = ARTIFACTS / name
    grab_window(app).save(path)
    return path


@pytest.mark.parametrize("case", ["fractured", "normal"])
def test_prediction_labels_match_predictions_module(display, weights, monkeypatch, tmp_path, case):
    import predictions
    from app.formatting import GREEN, RED

    image = write_image(tmp_path / "hand.png")
    with running_app(display, weights[case], monkeypatch, open_path=image) as (app, recorder):
        screenshot(app, f"window_before_{case}.png")
        app.upload()
        assert app.file_label.cget("text") == "hand.png"
        app.predict()
        assert app.predict_button.cget("state") == "disabled"  # busy while the worker runs
        wait_idle(app)
        expected = predictions.analyze(image, weights[case])
        assert expected.label == case
        verdict = "Fractured" if case == "fractured" else "Normal"
        assert app.result_label.cget("text") == (
            f"Result: {verdict} ({expected.label_confidence:.0%})"
        )
        assert app.result_label.cget("text_color") == (RED if case == "fractured" else GREEN)
        assert app.type_label.cget("text") == f"Type: Hand ({expected.bone_confidence:.0%})"
        assert app.save_button.winfo_ismapped()
        screenshot(app, f"window_after_{case}.png")
        assert recorder.errors == []


def test_not_recognised_gives_no_verdict(display, weights, monkeypatch, tmp_path):
    image = write_image(tmp_path / "leg.png")
    with running_app(display, weights["other"], monkeypatch, open_path=image) as (app, _):
        upload_and_predict(app)
        text = app.result_label.cget("text")
        assert text == "Not recognised as an elbow, hand or shoulder X-ray"
        assert "Fractured" not in text and "Normal" not in text


def test_save_writes_window_sized_png_and_never_overwrites(display, weights, monkeypatch, tmp_path):
    image = write_image(tmp_path / "hand.png")
    target = tmp_path / "result.png"
    with running_app(
        display, weights["fractured"], monkeypatch, open_path=image, save_path=target
    ) as (app, recorder):
        upload_and_predict(app)
        app.save_result()
        assert target.is_file()
        with Image.open(target) as saved:
            assert saved.size == (app.winfo_width(), app.winfo_height())
        message = recorder.messages[-1][1]  # the folder is broken only after a separator
        assert target.name in message and str(target.parent) in message.replace("\n", "")
        before = target.stat().st_mtime_ns
        app.save_result()  # exists, and the (patched) replace question answers "no"
        assert target.stat().st_mtime_ns == before
        screenshot(app, "window_saved.png")


def test_failed_save_shows_error_and_keeps_result(display, weights, monkeypatch, tmp_path):
    image = write_image(tmp_path / "hand.png")
    unwritable = tmp_path / "no_such_folder" / "result.png"
    with running_app(
        display, weights["fractured"], monkeypatch, open_path=image, save_path=unwritable
    ) as (app, recorder):
        upload_and_predict(app)
        app.save_result()
        assert recorder.errors and recorder.errors[-1][0] == "Could not save the result"
        assert "Nothing was lost" in recorder.errors[-1][1]
        assert app.result is not None and app.result_label.cget("text").startswith("Result:")


def test_corrupt_file_shows_clinician_message(display, weights, monkeypatch, tmp_path):
    fake = tmp_path / "scan.png"
    fake.write_text("this is a text file, not an image")
    with running_app(display, weights["fractured"], monkeypatch, open_path=fake) as (app, recorder):
        app.upload()
        assert recorder.errors, "an error dialog should have been shown"
        title, message = recorder.errors[-1]
        assert title == "Cannot open this image"
        assert "'scan.png' is not an image we can read" in message
        assert app.paths == []


def test_missing_weights_window_opens_with_banner(display, monkeypatch, tmp_path):
    image = write_image(tmp_path / "hand.png")
    with running_app(display, tmp_path / "no_weights", monkeypatch, open_path=image) as (
        app,
        recorder,
    ):
        assert app.banner.winfo_ismapped()
        assert "models are missing" in app.banner.cget("text")
        upload_and_predict(app)
        assert recorder.errors and "model folder" in recorder.errors[-1][1]
        screenshot(app, "window_missing_weights.png")


def test_heatmap_toggle_shows_overlay(display, weights, monkeypatch, tmp_path):
    image = write_image(tmp_path / "hand.png")
    with running_app(display, weights["fractured"], monkeypatch, open_path=image) as (
        app,
        recorder,
    ):
        upload_and_predict(app)
        app.heatmap_switch.select()
        app.toggle_heatmap()
        wait_idle(app)
        assert app.overlay_image is not None and app.overlay_image.mode == "RGB"
        assert recorder.errors == []


def test_fracture_boxes_are_drawn_and_switch_off(display, weights, monkeypatch, tmp_path):
    image = write_image(tmp_path / "hand.png")
    with running_app(display, weights["fractured"], monkeypatch, open_path=image) as (app, _):
        upload_and_predict(app)
        assert len(app.result.boxes) == 1
        assert "Boxes: 1 likely fracture region" in app.detail_label.cget("text")
        boxed = app._preview.cget("light_image")
        app.boxes_switch.deselect()
        app.refresh_preview()
        plain = app._preview.cget("light_image")
        assert plain is app.preview_image and boxed is not plain
        red = np.asarray(boxed.convert("RGB"), dtype=int)
        assert ((red[..., 0] > 200) & (red[..., 1] < 100)).any()  # the red box is on the X-ray
    with running_app(display, weights["normal"], monkeypatch, open_path=image) as (app, _):
        upload_and_predict(app)
        assert app.result.boxes == ()
        assert "No region above the box threshold" in app.detail_label.cget("text")
        assert app._preview.cget("light_image") is app.preview_image


def test_study_mode_reports_mean_of_views(display, weights, monkeypatch, tmp_path):
    import predictions

    views = [write_image(tmp_path / f"image{i}.png") for i in (1, 2)]
    monkeypatch.setattr(
        "app.window.FractureApp.ask_open_files", lambda self: tuple(map(str, views))
    )
    with running_app(display, weights["fractured"], monkeypatch) as (app, recorder):
        app.upload_study()
        assert app.file_label.cget("text") == "Study: image1.png, image2.png"
        app.predict()
        wait_idle(app)
        expected = predictions.analyze_study(views, weights["fractured"])
        assert "mean of 2 views" in app.detail_label.cget("text")
        assert (
            app.result_label.cget("text") == f"Result: Fractured ({expected.label_confidence:.0%})"
        )
        assert recorder.errors == []


def test_keyboard_shortcuts_upload_and_predict(display, weights, monkeypatch, tmp_path):
    image = write_image(tmp_path / "hand.png")
    with running_app(display, weights["normal"], monkeypatch, open_path=image) as (app, _):
        app.focus_force()
        app.update()
        app.event_generate("<Control-o>")
        app.update()
        assert app.paths == [image]
        app.event_generate("<Return>")
        app.update()
        wait_idle(app)
        assert app.result_label.cget("text").startswith("Result: Normal")


def test_about_window_states_training_data_and_limits(display, weights, monkeypatch):
    with running_app(display, weights["normal"], monkeypatch) as (app, _):
        app.show_about()
        app.update()
        text = app.about_window.winfo_children()[0].get("1.0", "end")
        assert "supports, and does not replace, a radiologist" in text
        assert "'positive' means abnormal" in text
        assert "Model versions:" in text
        app.about_window.destroy()


def test_upload_works_while_models_load(display, weights, monkeypatch, tmp_path):
    import threading

    from core import engine

    engine.clear_cache()
    loaded, real_get_engine = threading.Event(), engine.get_engine

    def slow_get_engine(weights_dir=None):  # loading holds until the upload has been done
        loaded.wait(timeout=30)
        return real_get_engine(weights_dir)

    monkeypatch.setattr(engine, "get_engine", slow_get_engine)
    image = write_image(tmp_path / "hand.png")
    with running_app(display, weights["normal"], monkeypatch, open_path=image, wait=False) as (
        app,
        recorder,
    ):
        assert app.worker.busy and app.status_label.cget("text") == "Loading the models…"
        assert app.predict_button.cget("state") == "disabled"
        app.upload()
        assert app.paths == [image]
        loaded.set()
        wait_idle(app)
        assert app.models_ready and app.predict_button.cget("state") == "normal"
        assert recorder.errors == []


@pytest.mark.parametrize("sample", ["Hand/normal", "Hand/fractured", "Other"])
def test_shipped_weights_in_the_window(display, monkeypatch, sample):
    """The default weights on sample X-rays, as a clinician sees them (README screenshots)."""
    import predictions
    from app.window import DEFAULT_WEIGHTS

    root = Path(__file__).resolve().parent.parent
    image = sorted((root / "test" / sample).glob("*.jpg"))[0]
    with running_app(display, DEFAULT_WEIGHTS, monkeypatch, open_path=image) as (app, recorder):
        upload_and_predict(app)
        expected = predictions.analyze(image)
        confidence = f"{expected.bone_confidence:.0%}"
        if expected.recognised:
            assert app.type_label.cget("text") == f"Type: {expected.bone} ({confidence})"
            assert app.result_label.cget("text") == (
                f"Result: {expected.label.capitalize()} ({expected.label_confidence:.0%})"
            )
        else:
            assert app.type_label.cget("text").startswith(
                f"Type: not recognised\nModel's guess: {expected.bone} {confidence}"
            )
            assert app.result_label.cget("text").startswith("Not recognised")
        name = sample.replace("/", "_").lower()
        screenshot(app, f"window_shipped_{name}.png")
        app.heatmap_switch.select()
        app.toggle_heatmap()
        wait_idle(app)
        if expected.recognised:
            assert app.overlay_image is not None
            screenshot(app, f"window_shipped_{name}_heatmap.png")
        else:  # no verdict, so no heatmap: the window says why
            assert app.overlay_image is None and app.offer_frame.winfo_ismapped()
            assert recorder.messages[-1][0] == "No fracture verdict"
        assert recorder.errors == []


def test_long_result_texts_stay_inside_the_side_panel(display, monkeypatch):
    """The shipped hand model's long note wraps inside the panel, also in a narrower window."""
    from app.window import DEFAULT_WEIGHTS

    root = Path(__file__).resolve().parent.parent
    image = sorted((root / "test" / "Hand" / "fractured").glob("*.jpg"))[0]
    with running_app(display, DEFAULT_WEIGHTS, monkeypatch, open_path=image) as (app, recorder):
        upload_and_predict(app)
        assert "the hand model" in app.note_label.cget("text")
        for size in ("860x560", "700x560", "1200x700"):
            app.geometry(size)
            for _ in range(5):
                app.update()
            side = app.note_label.master
            for label in (app.type_label, app.result_label, app.detail_label, app.note_label):
                if label.winfo_ismapped():
                    left = label.winfo_x()
                    assert left >= 0 and left + label.winfo_width() <= side.winfo_width(), size
                    assert label.winfo_reqwidth() <= label.winfo_width(), size
        assert recorder.errors == []


def click_segment(selector, value: str) -> None:
    """Click one value of a CTkSegmentedButton the way a mouse click does (its button's command)."""
    import customtkinter as ctk

    buttons = [child for child in selector.winfo_children() if isinstance(child, ctk.CTkButton)]
    next(button for button in buttons if button.cget("text") == value).invoke()


def test_bone_chosen_in_the_selector_runs_its_model(display, weights, monkeypatch, tmp_path):
    import predictions

    image = write_image(tmp_path / "hand.png")
    other = write_image(tmp_path / "next.png")
    target = tmp_path / "chosen.png"
    names: list[str] = []
    with running_app(
        display, weights["fractured"], monkeypatch, open_path=image, save_path=target
    ) as (app, recorder):
        monkeypatch.setattr(
            type(app), "ask_save_file", lambda self, name: names.append(name) or str(target)
        )
        app.upload()
        click_segment(app.bone_selector, "Elbow")
        assert app.result is None and not app.worker.busy  # choosing alone does not run
        app.predict()
        wait_idle(app)
        expected = predictions.analyze(image, weights["fractured"], bone="Elbow")
        guess = f"{expected.model_bone} {expected.bone_probabilities[expected.model_bone]:.0%}"
        assert (expected.bone, expected.bone_source, expected.model_bone) == (
            "Elbow",
            "chosen",
            "Hand",
        )
        assert app.type_label.cget("text") == f"Type: Elbow (chosen by you)\nModel's guess: {guess}"
        assert (
            app.result_label.cget("text") == f"Result: Fractured ({expected.label_confidence:.0%})"
        )
        click_segment(app.bone_selector, "Shoulder")  # a new choice re-runs the analysis
        wait_idle(app)
        assert app.result.bone == "Shoulder"
        assert app.type_label.cget("text").startswith("Type: Shoulder (chosen by you)\n")
        screenshot(app, "window_bone_chosen.png")
        app.save_result()
        assert target.is_file() and names[-1].startswith("Shoulder-chosen_fractured_")
        monkeypatch.setattr(type(app), "ask_open_file", lambda self: str(other))
        app.upload()  # a new image starts again from Auto
        assert app.bone_selector.get() == "Auto" and app.type_label.cget("text") == ""
        assert recorder.errors == []


def test_not_recognised_offers_the_bones_and_a_choice_gives_a_verdict(
    display, weights, monkeypatch, tmp_path
):
    import predictions

    image = write_image(tmp_path / "elbow.png")
    with running_app(display, weights["other"], monkeypatch, open_path=image) as (app, recorder):
        upload_and_predict(app)
        assert app.result_label.cget("text").startswith("Not recognised")
        assert app.offer_frame.winfo_ismapped()
        assert [b.cget("text") for b in app.offer_buttons.values()] == ["Elbow", "Hand", "Shoulder"]
        # No verdict, no fracture marks: the result carries no boxes (with a chosen bone the
        # model's map has some), and the heatmap switch explains why instead of showing one.
        assert predictions.analyze(image, weights["other"]).boxes == ()
        assert predictions.analyze(image, weights["other"], bone="Elbow").boxes
        drawn: list = []

        def recording_draw(image, boxes, shape):
            drawn.append(len(boxes))
            return image

        monkeypatch.setattr("app.window.draw_boxes", recording_draw)
        app.refresh_preview()
        assert drawn == []
        app.heatmap_switch.select()
        app.toggle_heatmap()
        assert not app.heatmap_switch.get() and app.overlay_image is None
        assert recorder.messages[-1][0] == "No fracture verdict"
        screenshot(app, "window_not_recognised_offer.png")
        app.offer_buttons["Elbow"].invoke()
        wait_idle(app)
        assert drawn  # with a bone chosen, the verdict's boxes are drawn
        expected = predictions.analyze(image, weights["other"], bone="Elbow")
        assert app.bone_selector.get() == "Elbow"
        assert app.type_label.cget("text").startswith(
            "Type: Elbow (chosen by you)\nModel's guess: "
        )
        assert expected.model_bone in app.type_label.cget("text")
        assert (
            app.result_label.cget("text") == f"Result: Fractured ({expected.label_confidence:.0%})"
        )
        assert not app.offer_frame.winfo_ismapped()
        screenshot(app, "window_not_recognised_chosen.png")
        assert recorder.errors == []


def test_study_not_recognised_analysed_as_chosen_bone(display, weights, monkeypatch, tmp_path):
    views = [write_image(tmp_path / f"view{i}.png") for i in (1, 2)]
    monkeypatch.setattr(
        "app.window.FractureApp.ask_open_files", lambda self: tuple(map(str, views))
    )
    with running_app(display, weights["other"], monkeypatch) as (app, recorder):
        app.upload_study()
        app.predict()
        wait_idle(app)
        assert app.offer_frame.winfo_ismapped()
        app.offer_buttons["Shoulder"].invoke()
        wait_idle(app)
        assert app.result.bone == "Shoulder" and len(app.result.paths) == 2
        assert app.type_label.cget("text").startswith("Type: Shoulder (chosen by you)\n")
        assert "mean of 2 views" in app.detail_label.cget("text")
        assert recorder.errors == []


def write_dicom_xray(path: Path, **tags) -> Path:
    from tests.factories import xray_like
    from tests.test_dicom import write_dicom

    return write_dicom(path, xray_like().astype("uint16") * 16, **tags)


def test_dicom_tag_routes_the_bone(display, weights, monkeypatch, tmp_path):
    import predictions

    image = write_dicom_xray(tmp_path / "elbow.dcm", BodyPartExamined="ELBOW")
    with running_app(display, weights["other"], monkeypatch, open_path=image) as (app, recorder):
        upload_and_predict(app)
        expected = predictions.analyze(image, weights["other"])
        assert (expected.bone, expected.bone_source, expected.model_agrees) == (
            "Elbow",
            "DICOM tag",
            expected.model_bone == "Elbow",
        )
        agreement = "agrees" if expected.model_agrees else "disagrees"
        guess = f"{expected.model_bone} {expected.bone_probabilities[expected.model_bone]:.0%}"
        other = f" (other region {expected.bone_probabilities['Other']:.0%})"  # "Other" wins here
        assert app.type_label.cget("text") == (
            f"Type: Elbow (from DICOM tag)\nModel {agreement}: {guess}{other}"
        )
        assert app.result_label.cget("text").startswith("Result: Fractured")
        screenshot(app, "window_dicom_tag.png")
        assert recorder.errors == []


def test_dicom_wrist_study_is_not_guessed(display, weights, monkeypatch, tmp_path):
    image = write_dicom_xray(tmp_path / "wrist.dcm", BodyPartExamined="WRIST")
    with running_app(display, weights["fractured"], monkeypatch, open_path=image) as (app, _):
        upload_and_predict(app)  # the model would say Hand; the tag says wrist
        assert app.result_label.cget("text").startswith("Not recognised")
        assert "wrist" in app.note_label.cget("text") and app.note_label.winfo_ismapped()
        assert app.offer_frame.winfo_ismapped()
        screenshot(app, "window_dicom_wrist.png")


def test_single_dicom_upload_saves_a_dicom_result(display, weights, monkeypatch, tmp_path):
    """The window saves a DICOM upload's result as a Secondary Capture beside the original (new
    series, same study; the source unchanged); a PNG upload offers no such button."""
    import hashlib

    import pydicom

    from app.window import FractureApp
    from tests.factories import dicom_xray

    image = dicom_xray(
        tmp_path / "hand.dcm", BodyPartExamined="HAND", SeriesInstanceUID="1.2.826.0.1.7"
    )
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(FractureApp, "ask_output_folder", lambda self: str(out))
    with running_app(display, weights["fractured"], monkeypatch, open_path=image) as (app, rec):
        upload_and_predict(app)
        assert app.dicom_button.winfo_ismapped()
        screenshot(app, "window_dicom_result.png")
        app.dicom_button.invoke()
        wait_idle(app)
        written = list(out.glob("*.dcm"))
        assert len(written) == 1 and rec.messages[-1][0] == "DICOM result saved"
        capture, source = pydicom.dcmread(written[0]), pydicom.dcmread(image)
        assert capture.StudyInstanceUID == source.StudyInstanceUID
        assert capture.SeriesInstanceUID != source.SeriesInstanceUID
        assert list(capture.ImageType)[:2] == ["DERIVED", "SECONDARY"]
        assert hashlib.sha256(image.read_bytes()).hexdigest() == digest
    png = write_image(tmp_path / "hand.png")
    with running_app(display, weights["fractured"], monkeypatch, open_path=png) as (app, _rec):
        upload_and_predict(app)
        assert not app.dicom_button.winfo_ismapped()
