"""The text of the information window: use, training data, measured accuracy, limits."""

from __future__ import annotations

from pathlib import Path

from core.errors import ModelError
from core.manifest import read_manifest

USE = (
    "How to use\n"
    "1. Upload Image (Ctrl+O): choose an elbow, hand or shoulder X-ray (PNG, JPEG, BMP, TIFF or "
    "DICOM). Upload Study selects 1-3 views of one study.\n"
    "2. Bone: leave it on Auto and the tool takes the bone type from the DICOM tags when they "
    "name the elbow, hand or shoulder, otherwise from its bone-type model. Choose Elbow, Hand or "
    "Shoulder to set it yourself. A wrist, finger, forearm or other study named in the DICOM "
    "tags is not analysed unless you choose a bone.\n"
    "3. Predict (Enter): runs that bone's fracture model. The result says who set the bone type "
    "(you, the DICOM tag or the model) and shows the model's own guess beside yours or the tag's. "
    "When an image is not recognised, the result offers the three bones to analyse it as.\n"
    "4. Show heatmap: shows the fracture model's map of where it sees signs of a fracture; "
    "its verdict is pooled from this map.\n"
    "5. Save Result (Ctrl+S): saves a screenshot of this window as PNG, with who set the bone."
)
LIMITS = (
    "Limits\n"
    "This tool supports, and does not replace, a radiologist. Every result shows the model's "
    "confidence; a 'Normal' result does not rule out a fracture. Images that are not recognised "
    "as an elbow, hand or shoulder X-ray get no verdict unless you choose the bone; the fracture "
    "models know only those three bones, so choose one only for an X-ray of that bone. An "
    "X-ray stored a quarter or half turn from the usual way is turned back for the fracture "
    "models, and one with reversed grey levels (bone dark) is reversed back; the result says "
    "so. An unusually dark, noisy or blurred image gets a higher fracture probability than it "
    "would otherwise (more false alarms). In "
    "MURA-trained models 'positive' means abnormal, which includes fractures but also hardware, "
    "arthritis and other findings."
)


def info_text(weights_dir: str | Path | None = None) -> str:
    """Full text of the info window, with the model card read from the weights manifest."""
    return "\n\n".join([USE, models_text(weights_dir), LIMITS])


def models_text(weights_dir: str | Path | None = None) -> str:
    """What the models were trained on and how well they measured, from the manifest."""
    try:
        manifest = read_manifest(weights_dir) if weights_dir else read_manifest()
    except ModelError as error:
        return f"Models\nThe models are not available: {error}"
    card = manifest.card
    lines = ["Models"]
    if card.get("summary"):
        lines.append(card["summary"])
    if card.get("metrics_summary"):
        lines.append("Measured on held-out test images (95% intervals in brackets):")
    for line in card.get("metrics_summary", []):
        lines.append(f"  {line}")
    if card.get("attribution"):
        lines.append(f"Data: {card['attribution']}")
    lines.append("Model versions:")
    lines.extend(f"  {name}: {version}" for name, version in manifest.versions().items())
    return "\n".join(lines)
