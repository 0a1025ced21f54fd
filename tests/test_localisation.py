"""Localisation figures against hand-computed values."""

from __future__ import annotations

import pytest

from core.boxes import Box
from training.report import localisation as loc


def test_iou_by_hand():
    # two 10 x 10 squares overlapping in a 5 x 10 strip: 50 / (100 + 100 - 50)
    assert loc.iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    assert loc.iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0


def test_hit_by_iou_or_by_centre():
    truth = (0, 0, 100, 100)
    assert loc.hits(Box(40, 40, 60, 60, 0.9), truth)  # centre inside, IoU 0.04
    # centres outside the truth: (110, 50) with IoU 1000 / 13000 = 0.077, then (105, 50) with
    # IoU 2000 / 15000 = 0.133
    assert not loc.hits(Box(90, 0, 130, 100, 0.9), truth)
    assert loc.hits(Box(80, 0, 130, 100, 0.9), truth)
    assert not loc.hits(Box(200, 200, 220, 220, 0.9), truth)


TRUTHS = [
    [(0, 0, 10, 10)],  # fractured, top box hits
    [(0, 0, 10, 10), (50, 50, 60, 60)],  # fractured, top box misses, second finds one fracture
    [(0, 0, 10, 10)],  # fractured, no box
    [],  # normal, two boxes
    [],  # normal, no box
]
BOXES = [
    [Box(2, 2, 8, 8, 0.9)],
    [Box(80, 80, 90, 90, 0.8), Box(51, 51, 59, 59, 0.6)],
    [],
    [Box(0, 0, 5, 5, 0.7), Box(20, 20, 30, 30, 0.4)],
    [],
]


def test_summary_by_hand():
    figures = loc.summary(BOXES, TRUTHS)
    assert figures["fractured_images"] == 3 and figures["normal_images"] == 2
    assert figures["top_box_hit_rate"] == pytest.approx(1 / 3)
    assert figures["false_boxes_per_normal_image"] == pytest.approx(2 / 2)
    # false boxes: (80,80,90,90) and both boxes of the normal image = 3 over 5 images
    assert figures["false_boxes_per_image"] == pytest.approx(3 / 5)
    # true boxes found: image 0 (1 of 1), image 1 (1 of 2), image 2 (0 of 1) = 2 of 4
    assert figures["fracture_sensitivity"] == pytest.approx(2 / 4)


def test_froc_points_by_hand():
    # at 0.65 the false boxes are (80, 80, 90, 90) p 0.8 and (0, 0, 5, 5) p 0.7 on the normal image
    points = loc.froc(BOXES, TRUTHS, thresholds=[0.85, 0.65, 0.0])
    assert [p["false_boxes_per_image"] for p in points] == pytest.approx([0, 2 / 5, 3 / 5])
    assert [p["fracture_sensitivity"] for p in points] == pytest.approx([1 / 4, 1 / 4, 2 / 4])
    default = loc.froc(BOXES, TRUTHS)  # one point per distinct box probability
    assert [p["threshold"] for p in default] == [0.9, 0.8, 0.7, 0.6, 0.4]


def test_box_threshold_respects_the_false_box_limit():
    def boxes_at(threshold):
        return [[box for box in image if box.probability >= threshold] for image in BOXES]

    # at 0.0 / 0.5 the normal image keeps 2 / 1 boxes (1.0 / 0.5 per normal image)
    threshold, figures = loc.choose_box_threshold(
        boxes_at, TRUTHS, [0.0, 0.5, 0.75], max_false_per_normal=0.5
    )
    assert threshold == 0.5
    assert figures["false_boxes_per_normal_image"] == pytest.approx(0.5)
    assert figures["top_box_hit_rate"] == pytest.approx(1 / 3)


def test_froc_plot_is_written(tmp_path):
    path = loc.plot_froc({"model": loc.froc(BOXES, TRUTHS)}, tmp_path / "froc.png")
    assert path.stat().st_size > 1000


def test_report_from_app_predictions_reads_the_dataset_boxes(tmp_path):
    from types import SimpleNamespace

    (tmp_path / "images").mkdir()
    (tmp_path / "boxes.csv").write_text(
        "image_id,x_min,y_min,x_max,y_max\nA.jpg,0,0,10,10\nB.jpg,0,0,10,10\n"
    )
    rows = [
        (SimpleNamespace(path=tmp_path / "images" / name, bone=bone), SimpleNamespace(boxes=boxes))
        for name, bone, boxes in (
            ("A.jpg", "Hand", (Box(1, 1, 9, 9, 0.9),)),  # hit
            ("B.jpg", "Other", (Box(50, 50, 60, 60, 0.8),)),  # miss
            ("C.jpg", "Hand", (Box(0, 0, 5, 5, 0.7),)),  # a box on a normal image
            ("D.jpg", "Hand", ()),
        )
    ]
    report = loc.report_from_predictions(rows)
    assert report["three bones"]["top_box_hit_rate"] == 1.0
    assert report["three bones"]["false_boxes_per_normal_image"] == pytest.approx(0.5)
    assert report["all regions"]["top_box_hit_rate"] == pytest.approx(0.5)
    assert len(report["all regions"]["froc"]) == 3
    elsewhere = [(SimpleNamespace(path=tmp_path / "mura" / "x" / "y.png", bone="Hand"), rows[0][1])]
    assert loc.report_from_predictions(elsewhere) == {}  # no boxes.csv: nothing to report
