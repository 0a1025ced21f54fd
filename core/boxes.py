"""Fracture boxes from a map of cell probabilities: connected regions above a threshold, each
turned into a box around the region's highest cell, in the image's own pixels, with that cell's
probability."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.framing import Frame

PEAK_REACH = 1  # a box spans its region's cells within this many cells of the region's peak
# (3 x 3 cells at most): on FracAtlas validation the box's centre then lands on the fracture more
# often than with the whole region's box, whose centre drifts off it when the region is long
NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


@dataclass(frozen=True)
class Box:
    """A likely fracture region in image pixels (x1, y1 exclusive) and its probability."""

    x0: int
    y0: int
    x1: int
    y1: int
    probability: float


def regions(above: np.ndarray) -> list[list[tuple[int, int]]]:
    """Connected regions (8-neighbourhood) of the True cells of a 2-D grid, as lists of cells."""
    height, width = above.shape
    seen = np.zeros_like(above, dtype=bool)
    found = []
    for row, column in zip(*np.nonzero(above), strict=True):
        if seen[row, column]:
            continue
        seen[row, column] = True
        stack, cells = [(int(row), int(column))], []
        while stack:
            r, c = stack.pop()
            cells.append((r, c))
            for dr, dc in NEIGHBOURS:
                nr, nc = r + dr, c + dc
                if 0 <= nr < height and 0 <= nc < width and above[nr, nc] and not seen[nr, nc]:
                    seen[nr, nc] = True
                    stack.append((nr, nc))
        found.append(cells)
    return found


def boxes_from_map(
    cell_probabilities: np.ndarray,
    frame: Frame,
    image_shape: tuple[int, int],
    threshold: float,
    max_boxes: int = 3,
    reach: int | None = PEAK_REACH,
) -> tuple[Box, ...]:
    """Up to `max_boxes` boxes, one per region of cells with probability >= `threshold`, most
    likely first, in the pixels of the image of shape `image_shape` (height, width). A box spans
    the region's cells within `reach` cells of its highest cell (None: the whole region).

    The map covers the whole `frame.size` square model input; boxes that fall entirely in its
    padding are dropped. An empty tuple means no region reached the threshold.
    """
    probabilities = np.asarray(cell_probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.size == 0:
        raise ValueError(
            f"cell_probabilities must be a non-empty 2-D map, not {probabilities.shape}"
        )
    rows, columns = probabilities.shape
    step_y, step_x = frame.size / rows, frame.size / columns
    boxes = []
    for cells in regions(probabilities >= threshold):
        r, c = np.array(cells).T
        if reach is not None:
            peak = int(np.argmax(probabilities[r, c]))
            near = (np.abs(r - r[peak]) <= reach) & (np.abs(c - c[peak]) <= reach)
            r, c = r[near], c[near]
        model_box = (
            c.min() * step_x,
            r.min() * step_y,
            (c.max() + 1) * step_x,
            (r.max() + 1) * step_y,
        )
        x0, y0, x1, y1 = frame.box_to_image(model_box, image_shape)
        if x1 > x0 and y1 > y0:
            boxes.append(Box(x0, y0, x1, y1, float(probabilities[r, c].max())))
    boxes.sort(key=lambda box: -box.probability)
    return tuple(boxes[:max_boxes])
