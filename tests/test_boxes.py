"""Fracture boxes from hand-made cell-probability maps."""

from __future__ import annotations

import numpy as np
import pytest

from core.boxes import Box, boxes_from_map, regions
from core.framing import Frame

# a 400 x 200 (h x w) image fitted into a 40-px square: scale 0.1, 10 px of padding left and right
TALL = Frame(size=40, top=0, left=0, height=400, width=200, scale=0.1, pad_top=0, pad_left=10)
IDENTITY = Frame(size=40, top=0, left=0, height=40, width=40, scale=1.0, pad_top=0, pad_left=0)


def test_one_cell_maps_to_its_square_in_image_pixels():
    cells = np.zeros((4, 4))
    cells[1, 2] = 0.9  # model pixels x 20-30, y 10-20
    (box,) = boxes_from_map(cells, TALL, (400, 200), threshold=0.5)
    # x: (20 - 10) / 0.1 = 100 .. (30 - 10) / 0.1 = 200; y: 100 .. 200
    assert box == Box(100, 100, 200, 200, 0.9)


def test_regions_are_connected_diagonally_and_ranked_by_their_highest_cell():
    cells = np.zeros((4, 4))
    cells[0, 0], cells[1, 1] = 0.6, 0.7  # one diagonal region
    cells[3, 3] = 0.95  # a separate, more likely one
    boxes = boxes_from_map(cells, IDENTITY, (40, 40), threshold=0.5)
    assert boxes == (Box(30, 30, 40, 40, 0.95), Box(0, 0, 20, 20, 0.7))


def test_nothing_above_threshold_gives_no_box():
    assert boxes_from_map(np.full((3, 3), 0.49), IDENTITY, (40, 40), threshold=0.5) == ()


def test_at_most_max_boxes_most_likely_first():
    cells = np.zeros((5, 5))
    for k, p in enumerate((0.6, 0.9, 0.7, 0.8)):
        cells[0 if k < 2 else 4, 0 if k % 2 == 0 else 4] = p
    boxes = boxes_from_map(cells, IDENTITY, (40, 40), threshold=0.5, max_boxes=2)
    assert [b.probability for b in boxes] == [0.9, 0.8]


def test_a_region_entirely_in_the_padding_is_dropped_and_boxes_are_clipped():
    # content of a 400 x 200 image at scale 0.08: 32 x 16 model pixels placed at (x 12, y 4)
    frame = Frame(size=40, top=0, left=0, height=400, width=200, scale=0.08, pad_top=4, pad_left=12)
    cells = np.zeros((4, 4))
    cells[2, 0] = 0.9  # model x 0-10: padding only
    cells[0, 1] = 0.8  # model x 10-20, y 0-10: partly padding
    (box,) = boxes_from_map(cells, frame, (400, 200), threshold=0.5)
    # x: (10 - 12) / 0.08 = -25 -> 0 .. (20 - 12) / 0.08 = 100; y: -50 -> 0 .. (10 - 4) / 0.08 = 75
    assert box == Box(0, 0, 100, 75, 0.8)


def test_threshold_is_inclusive_and_the_map_must_be_2d():
    assert len(boxes_from_map(np.full((2, 2), 0.5), IDENTITY, (40, 40), threshold=0.5)) == 1
    with pytest.raises(ValueError):
        boxes_from_map(np.zeros((2, 2, 1)), IDENTITY, (40, 40), threshold=0.5)


def test_a_long_region_gives_a_box_around_its_peak_and_the_whole_region_on_request():
    cells = np.zeros((4, 8))
    cells[1, 1:7] = [0.6, 0.6, 0.6, 0.7, 0.9, 0.6]  # one region along a row, peak in column 5
    cells[2, 1] = 0.6  # part of the region, far from the peak
    (box,) = boxes_from_map(cells, IDENTITY, (40, 40), threshold=0.5)
    assert box == Box(20, 10, 35, 20, 0.9)  # columns 4-6 of row 1 (cells 5 px wide, 10 high)
    (whole,) = boxes_from_map(cells, IDENTITY, (40, 40), threshold=0.5, reach=None)
    assert whole == Box(5, 10, 35, 30, 0.9)


def test_region_labelling_separates_distant_cells():
    grid = np.array([[1, 1, 0, 1], [0, 0, 0, 1], [1, 0, 0, 0]], dtype=bool)
    found = sorted(sorted(cells) for cells in regions(grid))
    assert found == [[(0, 0), (0, 1)], [(0, 3), (1, 3)], [(2, 0)]]
