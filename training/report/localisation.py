"""How well fracture boxes point at FracAtlas' fracture boxes: top-box hit rate, false boxes per
normal image, the FROC curve and its plot, and the box threshold chosen on validation images."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from core.boxes import Box

TruthBox = Sequence[float]  # (x0, y0, x1, y1) in image pixels
MIN_IOU = 0.1


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes (0 when either is empty)."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def as_tuple(box: Box | Sequence[float]) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of a `Box` or of a plain sequence."""
    if isinstance(box, Box):
        return (box.x0, box.y0, box.x1, box.y1)
    return tuple(float(v) for v in box[:4])


def hits(box: Box | Sequence[float], truth: TruthBox, min_iou: float = MIN_IOU) -> bool:
    """True if `box` overlaps `truth` with IoU >= `min_iou` or has its centre inside `truth`."""
    x0, y0, x1, y1 = as_tuple(box)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    inside = truth[0] <= cx <= truth[2] and truth[1] <= cy <= truth[3]
    return inside or iou((x0, y0, x1, y1), truth) >= min_iou


def hits_any(box: Box | Sequence[float], truths: Sequence[TruthBox]) -> bool:
    """True if `box` hits at least one true box."""
    return any(hits(box, truth) for truth in truths)


def summary(boxes: Sequence[Sequence[Box]], truths: Sequence[Sequence[TruthBox]]) -> dict:
    """Localisation figures over images (an image with true boxes is a fractured image):

    top_box_hit_rate: share of fractured images whose most likely box hits a true box (an image
    without any box counts as a miss); false_boxes_per_normal_image: boxes on normal images per
    normal image; false_boxes_per_image: boxes hitting no true box, per image (all images);
    fracture_sensitivity: share of true boxes hit by at least one box.
    """
    fractured = [i for i, truth in enumerate(truths) if len(truth)]
    normal = [i for i, truth in enumerate(truths) if not len(truth)]
    top_hits = [bool(boxes[i]) and hits_any(boxes[i][0], truths[i]) for i in fractured]
    false_boxes = sum(not hits_any(box, truths[i]) for i in range(len(truths)) for box in boxes[i])
    found = [any(hits(box, truth) for box in boxes[i]) for i in fractured for truth in truths[i]]
    return {
        "fractured_images": len(fractured),
        "normal_images": len(normal),
        "top_box_hit_rate": float(np.mean(top_hits)) if fractured else float("nan"),
        "false_boxes_per_normal_image": (
            float(sum(len(boxes[i]) for i in normal) / len(normal)) if normal else float("nan")
        ),
        "false_boxes_per_image": float(false_boxes / len(truths)) if truths else float("nan"),
        "fracture_sensitivity": float(np.mean(found)) if found else float("nan"),
    }


def froc(
    boxes: Sequence[Sequence[Box]],
    truths: Sequence[Sequence[TruthBox]],
    thresholds: Sequence[float] | None = None,
) -> list[dict]:
    """FROC points: for each threshold, keep the boxes with probability >= threshold and give
    false boxes per image and the share of true boxes found (fracture_sensitivity)."""
    if thresholds is None:
        scores = sorted({box.probability for image in boxes for box in image}, reverse=True)
        thresholds = scores or [1.0]
    points = []
    for threshold in thresholds:
        kept = [[box for box in image if box.probability >= threshold] for image in boxes]
        figures = summary(kept, truths)
        points.append(
            {
                "threshold": float(threshold),
                "false_boxes_per_image": figures["false_boxes_per_image"],
                "fracture_sensitivity": figures["fracture_sensitivity"],
            }
        )
    return points


def choose_box_threshold(
    boxes_at: Callable[[float], Sequence[Sequence[Box]]],
    truths: Sequence[Sequence[TruthBox]],
    thresholds: Sequence[float],
    max_false_per_normal: float = 0.5,
) -> tuple[float, dict]:
    """The threshold with the highest top-box hit rate among those giving at most
    `max_false_per_normal` boxes per normal image (the highest threshold if none does).
    `boxes_at(t)` gives the boxes of every image at threshold t. Use validation images only."""
    best: tuple[float, dict] | None = None
    for threshold in sorted(thresholds):
        figures = summary(boxes_at(threshold), truths)
        if figures["false_boxes_per_normal_image"] > max_false_per_normal:
            continue
        if best is None or figures["top_box_hit_rate"] > best[1]["top_box_hit_rate"]:
            best = (float(threshold), figures)
    if best is None:
        threshold = float(max(thresholds))
        best = (threshold, summary(boxes_at(threshold), truths))
    return best


def plot_froc(curves: dict[str, list[dict]], path: Path) -> Path:
    """One FROC curve per name (points in threshold order): share of true fracture boxes found
    vs false boxes per image."""
    from training.report.plots import _pyplot

    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5, 5))
    for name, points in curves.items():  # joined in threshold order
        axis.plot(
            [p["false_boxes_per_image"] for p in points],
            [p["fracture_sensitivity"] for p in points],
            marker=".",
            label=name,
        )
    axis.set(
        xlabel="false boxes per image",
        ylabel="share of fractures found",
        title="FROC, FracAtlas fracture boxes",
        ylim=(0, 1),
    )
    axis.set_xlim(left=0)
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def truth_boxes(records) -> list[list[tuple[float, ...]]] | None:
    """FracAtlas' fracture boxes of each record (from `boxes.csv` next to its `images/` folder),
    or None if any record's dataset has no boxes.csv (e.g. MURA)."""
    from training.data.fracture_data import load_boxes

    loaded: dict[Path, dict] = {}
    truths = []
    for record in records:
        folder = Path(record.path).parent.parent
        if folder not in loaded:
            if not (folder / "boxes.csv").is_file():
                return None
            loaded[folder] = load_boxes(folder)
        truths.append(loaded[folder].get(Path(record.path).name, []))
    return truths


def report_from_predictions(rows) -> dict:
    """Localisation of the app's boxes (`Prediction.boxes`) for (record, prediction) rows, for
    the three bones and all regions; empty when the data has no fracture boxes. The FROC covers
    only boxes above the app's box threshold."""
    truths = truth_boxes([record for record, _ in rows])
    if truths is None:
        return {}
    report = {}
    for name, keep in (
        ("three bones", [record.bone in ("Elbow", "Hand", "Shoulder") for record, _ in rows]),
        ("all regions", [True] * len(rows)),
    ):
        boxes = [tuple(p.boxes) for (_, p), k in zip(rows, keep, strict=True) if k]
        real = [t for t, k in zip(truths, keep, strict=True) if k]
        report[name] = {**summary(boxes, real), "froc": froc(boxes, real)}
    return report
