"""Turn prediction results into the words and colours the window shows (pure functions)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from predictions import FRACTURED, Prediction, StudyPrediction

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


def describe(result: Prediction | StudyPrediction) -> ResultText:
    """Texts and colour for a result; the verdict is exactly the model's label."""
    bone_p = result.bone_probabilities[result.bone]
    if not result.recognised:
        return ResultText(
            type_text=f"Type: not recognised (best guess {result.bone}, {bone_p:.0%})",
            result_text="Not recognised as an elbow, hand or shoulder X-ray",
            result_colour=AMBER,
            detail_text="No fracture verdict is given for images the models do not recognise.",
        )
    fractured = result.label == FRACTURED
    verdict = "Fractured" if fractured else "Normal"
    detail = (
        f"Fracture probability {result.fracture_probability:.2f} (threshold {result.threshold:.2f})"
    )
    if isinstance(result, StudyPrediction):
        detail += f"; mean of {len(result.paths)} views"
        if not result.views_agree:
            detail += f"; views disagree on bone type: {', '.join(result.view_bones)}"
    return ResultText(
        type_text=f"Type: {result.bone} ({bone_p:.0%})",
        result_text=f"Result: {verdict} ({result.label_confidence:.0%})",
        result_colour=RED if fractured else GREEN,
        detail_text=detail,
    )


def default_screenshot_name(
    result: Prediction | StudyPrediction, now: datetime | None = None
) -> str:
    """File name for a saved screenshot, e.g. 'Hand_fractured_20261124-1530.png'."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    label = result.label if result.recognised else "not-recognised"
    return f"{result.bone}_{label}_{stamp}.png"
