"""One flat row per result (an image, a study, or a file that failed), shared by CSV and PDF.

A result without a verdict (not recognised as an elbow, hand or shoulder X-ray) shows
`NO_VERDICT` and no fracture probability, whatever probability the model computed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from predictions import (
    CHOSEN,
    FRACTURED,
    FROM_TAG,
    NORMAL,
    Prediction,
    StudyPrediction,
    other_region_likeliest,
)
from reports.header import study_fields

NO_VERDICT = "Not recognised — no verdict"
FAILED = "Not analysed (error)"
DISCLAIMER = (
    "Decision support only, not a diagnosis. A radiologist must confirm every finding; "
    "a 'Normal' result or a missing box never rules a fracture out."
)
FRACATLAS_NOTE = (
    "The models were trained on FracAtlas (demonstration models, not validated for clinical use)."
)
MURA_NOTE = (
    "Models trained on MURA: 'positive' means abnormal (fractures, but also hardware, arthritis "
    "and other findings)."
)
UNKNOWN_TRAINING = "The models' training data is not recorded in their manifest."
_TYPOGRAPHY = str.maketrans(
    {"—": "-", "–": "-", "’": "'", "‘": "'", "“": '"', "”": '"', "…": "..."}
)
_SET_BY = {CHOSEN: "chosen by the user", FROM_TAG: "from the DICOM header"}


@dataclass(frozen=True)
class Failure:
    """An input that could not be analysed, and the clinician-readable reason."""

    path: str
    message: str


Result = Prediction | StudyPrediction | Failure


@dataclass(frozen=True)
class ReportRow:
    """Everything a report says about one result, as plain values."""

    file: str
    paths: tuple[str, ...]
    kind: str  # "image", "study" or "error"
    verdict: str
    has_verdict: bool
    fracture_probability: float | None = None
    threshold: float | None = None
    verdict_confidence: float | None = None
    bone: str = ""
    bone_set_by: str = ""
    bone_probability: float | None = None
    model_guess: str = ""
    boxes: int = 0
    top_box_probability: float | None = None
    notes: str = ""
    error: str = ""
    model_versions: str = ""
    header: dict[str, str] = field(default_factory=dict)


def training_note(weights_dir: str | Path | None = None) -> str:
    """What the models were trained on, from the data source named in the weights' model card
    (its attribution: FracAtlas, MURA)."""
    from core.manifest import DEFAULT_WEIGHTS, load_raw

    try:
        card = load_raw(Path(weights_dir) if weights_dir else DEFAULT_WEIGHTS).get("model_card")
        text = str(card.get("attribution", ""))
    except (OSError, ValueError, AttributeError):  # no readable card: say so, do not guess
        text = ""
    notes = [
        note for key, note in (("FracAtlas", FRACATLAS_NOTE), ("MURA", MURA_NOTE)) if key in text
    ]
    return " ".join(notes) or UNKNOWN_TRAINING


def plain(text: str) -> str:
    """Text with typographic dashes, quotes and ellipses made plain ASCII (for the PDF's
    built-in font and DICOM text without a character set)."""
    return text.translate(_TYPOGRAPHY)


def has_verdict(result: Prediction | StudyPrediction) -> bool:
    """True when the result gives a fracture verdict (the image was recognised)."""
    return bool(getattr(result, "recognised", True)) and result.label in (FRACTURED, NORMAL)


def view_paths(result: Result) -> tuple[str, ...]:
    """The image files a result covers."""
    if isinstance(result, StudyPrediction):
        return tuple(result.paths)
    return (str(result.path),)


def make_rows(results: Iterable[Result]) -> list[ReportRow]:
    """One row per result, in the order given."""
    return [make_row(result) for result in results]


def make_row(result: Result) -> ReportRow:
    """The flat row of one result."""
    paths = view_paths(result)
    file = "; ".join(Path(path).name for path in paths)
    header = next((fields for fields in map(study_fields, paths) if fields), {})
    if isinstance(result, Failure):
        return ReportRow(file, paths, "error", FAILED, False, error=result.message, header=header)
    verdict_given = has_verdict(result)
    probability = getattr(result, "fracture_probability", None) if verdict_given else None
    boxes = _boxes(result) if verdict_given else ()
    return ReportRow(
        file=file,
        paths=paths,
        kind="study" if isinstance(result, StudyPrediction) else "image",
        verdict=result.label.capitalize() if verdict_given else NO_VERDICT,
        has_verdict=verdict_given,
        fracture_probability=probability,
        threshold=result.threshold if verdict_given else None,
        verdict_confidence=result.label_confidence if verdict_given else None,
        bone=result.bone if verdict_given else "",
        bone_set_by=_set_by(result) if verdict_given else "",
        bone_probability=result.bone_probabilities.get(result.bone) if verdict_given else None,
        model_guess=_model_guess(result),
        boxes=len(boxes),
        top_box_probability=max((box.probability for box in boxes), default=None),
        notes=" ".join(item for item in (result.routing_note, *result.notes) if item),
        model_versions=_versions(result),
        header=header,
    )


def bone_text(row: ReportRow) -> str:
    """The bone and who set it, e.g. 'Hand (bone-type model, 97%)'."""
    if row.kind == "error":
        return ""
    if not row.has_verdict:
        return f"not recognised as elbow, hand or shoulder (model's best guess: {row.model_guess})"
    if row.bone_set_by == "bone-type model":
        return f"{row.bone} (bone-type model, {row.bone_probability:.0%})"
    return f"{row.bone} ({row.bone_set_by}; model's best guess: {row.model_guess})"


def probability_text(row: ReportRow) -> str:
    """'0.83 (threshold 0.50)', or why there is no probability."""
    if row.fracture_probability is None:
        return "none (no verdict)" if row.kind != "error" else ""
    digits = 2
    while digits < 4 and f"{row.fracture_probability:.{digits}f}" == f"{row.threshold:.{digits}f}":
        digits += 1  # 0.496 against 0.500 must not read as 0.50 against 0.50
    return f"{row.fracture_probability:.{digits}f} (threshold {row.threshold:.{digits}f})"


def boxes_text(row: ReportRow) -> str:
    """How many likely fracture regions are boxed."""
    if not row.has_verdict:
        return "none drawn (no verdict)" if row.kind != "error" else ""
    if not row.boxes:
        return "no region above the box threshold"
    regions = "region" if row.boxes == 1 else "regions"
    return f"{row.boxes} likely fracture {regions} (top {row.top_box_probability:.0%})"


def _set_by(result: Prediction | StudyPrediction) -> str:
    return _SET_BY.get(result.bone_source, "bone-type model")


def _model_guess(result: Prediction | StudyPrediction) -> str:
    probabilities = result.bone_probabilities
    guess = result.model_bone or max(probabilities, key=probabilities.get)
    text = f"{guess} {probabilities.get(guess, 0.0):.0%}"
    other = other_region_likeliest(probabilities)
    return text if other is None else f"{text}, other region {other:.0%}"


def _boxes(result: Prediction | StudyPrediction) -> tuple:
    if isinstance(result, StudyPrediction):
        return tuple(box for image in result.images for box in image.boxes)
    return tuple(result.boxes)


def _versions(result: Prediction | StudyPrediction) -> str:
    image = result.images[0] if isinstance(result, StudyPrediction) else result
    versions = getattr(image, "model_versions", {}) or {}
    return "; ".join(f"{name} {version}" for name, version in sorted(versions.items()))
