"""Result-panel texts: who set the bone type (model, DICOM tag, user) and the model's own guess."""

from __future__ import annotations

from datetime import datetime

from app.formatting import AMBER, GREEN, RED, boxes_text, default_screenshot_name, describe
from core.boxes import Box
from predictions import CHOSEN, FROM_MODEL, FROM_TAG, Prediction, StudyPrediction

PROBABILITIES = {"Elbow": 0.12, "Hand": 0.29, "Shoulder": 0.09, "Other": 0.50}


def prediction(**changes) -> Prediction:
    """A not-recognised image (best guess Hand 29%) unless `changes` say otherwise."""
    values = dict(
        path="x.png",
        bone="Hand",
        bone_probabilities=PROBABILITIES,
        recognised=False,
        recognition_threshold=0.65,
        model_fracture_probability=0.8,
        label="fractured",
        threshold=0.5,
        model_versions={},
        seconds=0.1,
        bone_source=FROM_MODEL,
        model_bone="Hand",
        model_agrees=True,
    )
    values.update(changes)
    return Prediction(**values)


def chosen_elbow(**changes) -> Prediction:
    values = dict(bone="Elbow", recognised=True, bone_source=CHOSEN, model_agrees=False)
    return prediction(**{**values, **changes})


def test_model_source_shows_bone_and_confidence_only():
    text = describe(
        prediction(bone_probabilities={**PROBABILITIES, "Hand": 0.9, "Other": 0.0}, recognised=True)
    )
    assert text.type_text == "Type: Hand (90%)"
    assert text.result_text == "Result: Fractured (80%)" and text.result_colour == RED
    assert not text.offer_bones and text.note_text == ""


def test_chosen_bone_says_chosen_and_shows_the_models_guess():
    text = describe(chosen_elbow(label="normal", model_fracture_probability=0.3))
    assert text.type_text == (
        "Type: Elbow (chosen by you)\nModel's guess: Hand 29% (other region 50%)"
    )
    assert text.result_text == "Result: Normal (70%)" and text.result_colour == GREEN
    assert not text.offer_bones


def test_chosen_bone_the_model_agrees_with():
    text = describe(chosen_elbow(model_bone="Elbow", model_agrees=True))
    assert text.type_text == (
        "Type: Elbow (chosen by you)\nModel's guess: Elbow 12% (other region 50%)"
    )


def test_dicom_tag_with_agreeing_model():
    probabilities = {"Elbow": 0.85, "Hand": 0.05, "Shoulder": 0.05, "Other": 0.05}
    result = prediction(
        bone="Elbow",
        model_bone="Elbow",
        bone_probabilities=probabilities,
        recognised=True,
        bone_source=FROM_TAG,
    )
    assert describe(result).type_text == "Type: Elbow (from DICOM tag)\nModel agrees: Elbow 85%"


def test_dicom_tag_with_disagreeing_model():
    result = prediction(bone="Shoulder", recognised=True, bone_source=FROM_TAG, model_agrees=False)
    assert describe(result).type_text == (
        "Type: Shoulder (from DICOM tag)\nModel disagrees: Hand 29% (other region 50%)"
    )


def test_not_recognised_offers_the_three_bones():
    text = describe(prediction())
    assert text.type_text == "Type: not recognised\nModel's guess: Hand 29% (other region 50%)"
    assert text.result_text == "Not recognised as an elbow, hand or shoulder X-ray"
    assert text.result_colour == AMBER and text.offer_bones
    assert "Fractured" not in text.result_text and "If you know the bone" in text.detail_text


def test_wrist_study_shows_the_routing_note_and_no_verdict():
    note = (
        "DICOM says wrist (BodyPartExamined=WRIST), which is not an elbow, hand or shoulder X-ray."
    )
    text = describe(prediction(bone_source=FROM_TAG, routing_note=note))
    assert text.note_text == note
    assert text.offer_bones and text.result_text.startswith("Not recognised")
    assert "from DICOM tag" not in text.type_text


def test_file_notes_are_shown_after_the_routing_note():
    text = describe(
        chosen_elbow(routing_note="Tags disagree.", notes=("The file was cut short.", ""))
    )
    assert text.note_text == "Tags disagree. The file was cut short."


def study(**changes) -> StudyPrediction:
    image = chosen_elbow()
    values = dict(
        paths=("a.png", "b.png"),
        images=(image, image),
        bone="Elbow",
        bone_probabilities=PROBABILITIES,
        views_agree=False,
        recognised=True,
        model_fracture_probability=0.8,
        label="fractured",
        threshold=0.5,
        seconds=0.2,
        view_bones=("Hand", "Shoulder"),
        bone_source=CHOSEN,
        model_bone="Hand",
        model_agrees=False,
    )
    values.update(changes)
    return StudyPrediction(**values)


def test_study_with_chosen_bone():
    text = describe(study())
    assert text.type_text == (
        "Type: Elbow (chosen by you)\nModel's guess: Hand 29% (other region 50%)"
    )
    assert "mean of 2 views" in text.detail_text


def test_study_shows_its_disagreeing_views_once_in_the_notes():
    """analyze_study puts the disagreement in the study's notes (issue 23); the window shows
    the notes, recognised or not, and the detail line does not repeat it."""
    note = "The views disagree on the bone type (a.png Hand, b.png Shoulder)."
    for result in (
        study(bone="Hand", bone_source=FROM_MODEL, model_agrees=True, notes=(note,)),
        study(recognised=False, label="not recognised", notes=(note,)),
    ):
        text = describe(result)
        assert note in text.note_text and "disagree" not in text.detail_text


def test_screenshot_name_says_who_set_the_bone():
    now = datetime(2026, 11, 24, 15, 30, 0)
    assert (
        default_screenshot_name(chosen_elbow(), now) == "Elbow-chosen_fractured_20261124-153000.png"
    )
    tagged = chosen_elbow(bone_source=FROM_TAG)
    assert default_screenshot_name(tagged, now) == "Elbow-DICOM_fractured_20261124-153000.png"
    model = prediction(recognised=True)
    assert default_screenshot_name(model, now) == "Hand_fractured_20261124-153000.png"
    assert default_screenshot_name(prediction(), now) == "Hand_not-recognised_20261124-153000.png"


def test_boxes_sentence_counts_regions_or_says_none():
    boxed = chosen_elbow(boxes=(Box(1, 2, 30, 40, 0.83), Box(50, 60, 70, 80, 0.61)))
    assert boxes_text(boxed) == "Boxes: 2 likely fracture regions (top 83%)."
    assert boxes_text(chosen_elbow()) == "No region above the box threshold: no box drawn."
    assert "Boxes: 2" in describe(boxed, show_boxes=True).detail_text
    assert "Boxes" not in describe(boxed).detail_text
