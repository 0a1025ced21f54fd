"""The annotated RGB image of a result: the X-ray as analysed, with its fracture boxes."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from core.heatmap import draw_boxes
from core.imaging import read_xray
from predictions import Prediction, StudyPrediction
from reports.rows import has_verdict

BAND_COLOUR = (0, 0, 0)
TEXT_COLOUR = (255, 255, 255)


def view_result(result: Prediction | StudyPrediction, index: int = 0) -> Prediction:
    """The per-image result of view `index` (a single image is its own view 0)."""
    return result.images[index] if isinstance(result, StudyPrediction) else result


def annotated_view(
    result: Prediction | StudyPrediction, index: int = 0, max_side: int | None = None
) -> Image.Image:
    """View `index` of a result as RGB, at most `max_side` pixels on its longer side, with the
    fracture boxes drawn when the result gives a verdict (no verdict, no fracture marks)."""
    view = view_result(result, index)
    gray = read_xray(view.path)
    image = Image.fromarray((np.clip(gray, 0, 1) * 255).astype(np.uint8)).convert("RGB")
    if max_side and max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    if has_verdict(result) and view.boxes:
        image = draw_boxes(image, view.boxes, gray.shape)
    return image


def with_caption(image: Image.Image, lines: list[str]) -> Image.Image:
    """The image with a black band on top holding `lines` of white text (burned in), the text
    as large as fits the image's width."""
    longest = max(_font(100).getlength(line) for line in lines) or 1.0
    size = max(8, min(round(image.width / 40), int(100 * (image.width * 0.95) / longest)))
    font, step = _font(size), size + size // 3
    band = Image.new("RGB", (image.width, step * len(lines) + size), BAND_COLOUR)
    draw = ImageDraw.Draw(band)
    for number, line in enumerate(lines):
        draw.text((image.width * 0.02, size // 2 + number * step), line, TEXT_COLOUR, font)
    combined = Image.new("RGB", (image.width, band.height + image.height))
    combined.paste(band, (0, 0))
    combined.paste(image.convert("RGB"), (0, band.height))
    return combined


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)  # scalable with FreeType (Pillow >= 10.1)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()
