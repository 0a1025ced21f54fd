"""Turn a model-grid map (class activation map) into an overlay on the original X-ray."""

from __future__ import annotations

import numpy as np
from PIL import Image

from core.framing import Frame


def heat_to_image_grid(heat: np.ndarray, frame: Frame, image_shape: tuple[int, int]) -> np.ndarray:
    """Map a grid computed on the model's square input back onto the image's own pixels."""
    size = frame.size
    new_h, new_w = frame.resized_shape
    square = Image.fromarray(heat.astype(np.float32), mode="F").resize(
        (size, size), Image.Resampling.BILINEAR
    )
    content = square.crop(
        (frame.pad_left, frame.pad_top, frame.pad_left + new_w, frame.pad_top + new_h)
    )
    resized = content.resize((frame.width, frame.height), Image.Resampling.BILINEAR)
    full = np.zeros(image_shape, dtype=np.float32)
    full[frame.top : frame.top + frame.height, frame.left : frame.left + frame.width] = resized
    return np.clip(full, 0.0, 1.0)


def colour_map(values: np.ndarray) -> np.ndarray:
    """A 'jet'-like colour map: 0 blue, 0.5 green/yellow, 1 red. Returns uint8 RGB."""
    v = np.clip(values, 0.0, 1.0)
    red = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    green = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    blue = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return (np.stack([red, green, blue], axis=-1) * 255).astype(np.uint8)


def overlay(gray: np.ndarray, heat: np.ndarray, frame: Frame, alpha: float = 0.4) -> Image.Image:
    """Blend the heat map over the [0, 1] gray X-ray; weak activations stay transparent."""
    heat_full = heat_to_image_grid(heat, frame, gray.shape)
    base = np.repeat((np.clip(gray, 0, 1) * 255).astype(np.float32)[..., None], 3, axis=2)
    colours = colour_map(heat_full).astype(np.float32)
    weight = (alpha * np.clip(heat_full * 1.5 - 0.2, 0, 1))[..., None]
    blended = base * (1 - weight) + colours * weight
    return Image.fromarray(blended.astype(np.uint8), mode="RGB")


BOX_COLOUR = (255, 64, 64)


def draw_boxes(image: Image.Image, boxes, image_shape: tuple[int, int]) -> Image.Image:
    """Draw fracture boxes (in the pixels of an image of `image_shape`) with their probability
    onto a copy of `image`, which may be a scaled preview of that image."""
    from PIL import ImageDraw

    canvas = image.convert("RGB")
    scale = canvas.width / image_shape[1]
    draw = ImageDraw.Draw(canvas)
    line = max(2, round(canvas.width / 250))
    font = label_font(canvas.width)
    pad = max(2, font.size // 5)
    for rank, box in enumerate(boxes, start=1):
        corners = [round(value * scale) for value in (box.x0, box.y0, box.x1, box.y1)]
        draw.rectangle(corners, outline=BOX_COLOUR, width=line)
        label = f"{rank}: {box.probability:.0%}"
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        height = bottom - top + 2 * pad
        x = min(max(0, corners[0]), max(0, canvas.width - (right - left) - 2 * pad))
        y = corners[1] - height if corners[1] >= height else corners[1] + line  # above, or inside
        draw.rectangle((x, y, x + right - left + 2 * pad, y + height), fill=(0, 0, 0))
        draw.text((x + pad - left, y + pad - top), label, fill=(255, 255, 255), font=font)
    return canvas


def label_font(width: int):
    """A scalable font for box labels, about 1/30 of the image width and at least 14 px: the
    default bitmap font (10 px) cannot be read on a preview or a saved screenshot."""
    from PIL import ImageFont

    return ImageFont.load_default(size=max(14, round(width / 30)))
