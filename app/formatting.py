"""Turn prediction results into the words and colours the window shows (pure functions)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from predictions import (
    CHOSEN,
    FRACTURED,
    FROM_TAG,
    Prediction,
    StudyPrediction,
    other_region_likeliest,
)

RED = "#d32f2f"
GREEN = "#2e7d32"
AMBER = "#b26a00"
DISCLAIMER = "Decision support only, not a diagnosis. A radiologist must confirm every finding."


@dataclass(frozen=True)
class ResultText:
    """What the result panel shows for one prediction."""

    type_text: str
    result_text: str
    result_colour: str
    detail_text: str
    note_text: str = ""  # why the tags were not used, or notes about the file
    offer_bones: bool = False  # no verdict: offer "Analyse as Elbow / Hand / Shoulder"


def shown_boxes(result: Prediction | StudyPrediction) -> tuple:
    """The fracture boxes of the image the preview shows (a study's first view)."""
    return result.images[0].boxes if isinstance(result, StudyPrediction) else result.boxes


def boxes_text(result: Prediction | StudyPrediction) -> str:
    """How many likely fracture regions are boxed, or that none reached the threshold."""
    boxes = shown_boxes(result)
    if not boxes:
        return "No region above the box threshold: no box drawn."
    regions = "region" if len(boxes) == 1 else "regions"
    return f"Boxes: {len(boxes)} likely fracture {regions} (top {boxes[0].probability:.0%})."


def describe(result: Prediction | StudyPrediction, show_boxes: bool = False) -> ResultText:
    """Texts and colour for a result; the verdict is exactly the model's label. With
    `show_boxes`, the detail line also says what the fracture boxes show."""
    note = " ".join(item for item in (result.routing_note, *result.notes) if item)
    if not result.recognised:
        return ResultText(
            type_text=f"Type: not recognised\nModel's guess: {model_guess(result)}",
            result_text="Not recognised as an elbow, hand or shoulder X-ray",
            result_colour=AMBER,
            detail_text="No fracture verdict is given. If you know the bone:",
            note_text=note,
            offer_bones=True,
        )
    fractured = result.label == FRACTURED
    verdict = "Fractured" if fractured else "Normal"
    detail = (
        f"Fracture probability {result.fracture_probability:.2f} (threshold {result.threshold:.2f})"
    )
    if isinstance(result, StudyPrediction):  # views that disagree are named in the notes
        detail += f"; mean of {len(result.paths)} views"
    if show_boxes:
        detail += f"\n{boxes_text(result)}"
    return ResultText(
        type_text=type_text(result),
        result_text=f"Result: {verdict} ({result.label_confidence:.0%})",
        result_colour=RED if fractured else GREEN,
        detail_text=detail,
        note_text=note,
    )


def type_text(result: Prediction | StudyPrediction) -> str:
    """The bone type, who decided it, and (when not the model) the model's own best guess."""
    bone, guess_text = result.bone, model_guess(result)
    if result.bone_source == CHOSEN:
        return f"Type: {bone} (chosen by you)\nModel's guess: {guess_text}"
    if result.bone_source == FROM_TAG:
        agreement = "agrees" if result.model_agrees else "disagrees"
        return f"Type: {bone} (from DICOM tag)\nModel {agreement}: {guess_text}"
    return f"Type: {bone} ({result.bone_probabilities[bone]:.0%})"


def model_guess(result: Prediction | StudyPrediction) -> str:
    """The model's likeliest bone and its probability, and the other-region probability when
    that is higher: 'Elbow 0% (other region 100%)'."""
    guess = result.model_bone
    words = f"{guess} {result.bone_probabilities[guess]:.0%}"
    other = other_region_likeliest(result.bone_probabilities)
    return words if other is None else f"{words} (other region {other:.0%})"


def default_screenshot_name(
    result: Prediction | StudyPrediction, now: datetime | None = None
) -> str:
    """File name for a saved screenshot, e.g. 'Hand_fractured_20261124-153000.png' or, for a bone
    chosen by the user, 'Elbow-chosen_normal_20261124-153000.png'."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    if not result.recognised:
        return f"{result.model_bone}_not-recognised_{stamp}.png"
    source = {CHOSEN: "-chosen", FROM_TAG: "-DICOM"}.get(result.bone_source, "")
    return f"{result.bone}{source}_{result.label}_{stamp}.png"


def wrap_path(path: str, width: int = 48) -> str:
    """A long path broken into lines after its separators, never inside a name (a dialog or
    label would otherwise break it mid-word); a single name longer than `width` stays whole."""
    text = str(path)
    parts = [part for part in re.split(r"(?<=[/\\])", text) if part]
    lines, current = [], ""
    for part in parts:
        if current and len(current) + len(part) > width:
            lines.append(current)
            current = ""
        current += part
    lines.append(current)
    return "\n".join(lines)
