"""Turn a Grad-CAM map into an overlay on the original X-ray."""

from __future__ import annotations

import numpy as np
from PIL import Image


def heat_to_image_grid(heat: np.ndarray, image_shape: tuple[int, int], size: int) -> np.ndarray:
    """Map a Grad-CAM grid computed on the letterboxed square back onto the image pixels."""
    height, width = image_shape
    scale = size / max(height, width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    top, left = (size - new_h) // 2, (size - new_w) // 2
    square = Image.fromarray(heat.astype(np.float32), mode="F").resize(
        (size, size), Image.Resampling.BILINEAR
    )
    cropped = square.crop((left, top, left + new_w, top + new_h))
    resized = cropped.resize((width, height), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def colour_map(values: np.ndarray) -> np.ndarray:
    """A 'jet'-like colour map: 0 blue, 0.5 green/yellow, 1 red. Returns uint8 RGB."""
    v = np.clip(values, 0.0, 1.0)
    red = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    green = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    blue = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return (np.stack([red, green, blue], axis=-1) * 255).astype(np.uint8)


def overlay(gray: np.ndarray, heat: np.ndarray, size: int, alpha: float = 0.4) -> Image.Image:
    """Blend the heat map over the [0, 1] gray X-ray; weak activations stay transparent."""
    heat_full = heat_to_image_grid(heat, gray.shape, size)
    base = np.repeat((np.clip(gray, 0, 1) * 255).astype(np.float32)[..., None], 3, axis=2)
    colours = colour_map(heat_full).astype(np.float32)
    weight = (alpha * np.clip(heat_full * 1.5 - 0.2, 0, 1))[..., None]
    blended = base * (1 - weight) + colours * weight
    return Image.fromarray(blended.astype(np.uint8), mode="RGB")
