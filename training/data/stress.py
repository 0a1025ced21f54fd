"""The stress-validation set: validation images framed and exposed as other hospitals take them.

Built deterministically (fixed seed, one seed per item) from the validation split: tight views of
the marked elbows and shoulders, and the whole images rotated, bordered, lettered and re-exposed
(`training.data.augment.acquisition`); with the fracture boxes, also one zoomed view of each image
that keeps every fracture box whole (other hospitals frame tighter than FracAtlas). It is reported
beside the plain validation, and the recognition threshold is chosen on both, so the threshold is
not fitted to FracAtlas' framing alone.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from core.imaging import read_xray
from core.models import BONE_TYPE_CLASSES, BONES, is_recognised
from training.data.augment import JointMark, acquisition, joint_crop, random_crop
from training.data.datasets import Record

WHOLE_VARIANTS_PER_BONE_IMAGE = 2
VARIANTS_PER_JOINT = 2
LOWER_LIMB_CROP = 0.5  # smallest side fraction when zooming into an image of region `other`
ZOOM_SIDE = (0.45, 0.75)  # a zoomed view's sides, as fractions of the image's
BONE_QUANTILE = 0.75  # a normal image's zoomed view holds a pixel brighter than this share (bone)


@dataclass(frozen=True)
class StressItem:
    """One stress image: which record, which transform, and its bone-type truth."""

    record: Record
    bone: str
    view: str  # "joint" (tight view of `mark`), "whole" or "zoomed" (holding every box)
    mark: JointMark | None
    seed: int
    boxes: tuple[tuple[float, float, float, float], ...] = ()  # fracture boxes, source pixels

    @property
    def name(self) -> str:
        """A stable file name for the rendered image."""
        stem = Path(self.record.study).stem
        return f"{stem}_{self.view}_{self.seed % 10**8:08d}.png"


def item_seed(seed: int, image_id: str, view: str, index: int) -> int:
    """A stable per-item seed (the same on every machine and Python version)."""
    digest = hashlib.sha256(f"{seed}:{image_id}:{view}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def build_stress_set(
    records: Sequence[Record],
    marks: dict[str, list[JointMark]],
    seed: int = 0,
    boxes: dict[str, list[tuple[float, float, float, float]]] | None = None,
) -> list[StressItem]:
    """The stress items for `records` (the validation split), in record order.

    Each marked joint gives `VARIANTS_PER_JOINT` tight joint views (truth = the joint's bone);
    each Elbow/Hand/Shoulder image gives `WHOLE_VARIANTS_PER_BONE_IMAGE` whole-image variants and
    every other image one (truth = its own class). With `boxes` (image id -> fracture boxes),
    each image also gives one zoomed view that keeps every fracture box whole.
    """
    items: list[StressItem] = []
    for record in records:
        image_id = Path(record.path).name
        for m_index, mark in enumerate(marks.get(image_id, [])):
            for v in range(VARIANTS_PER_JOINT):
                s = item_seed(seed, image_id, "joint", m_index * 100 + v)
                items.append(StressItem(record, mark.bone, "joint", mark, s))
        copies = WHOLE_VARIANTS_PER_BONE_IMAGE if record.bone in BONES else 1
        for v in range(copies):
            s = item_seed(seed, image_id, "whole", v)
            items.append(StressItem(record, record.bone, "whole", None, s))
        if boxes is not None:
            s = item_seed(seed, image_id, "zoomed", 0)
            kept = tuple(tuple(box) for box in boxes.get(image_id, []))
            items.append(StressItem(record, record.bone, "zoomed", None, s, kept))
    return items


def render(item: StressItem, image: np.ndarray | None = None) -> np.ndarray:
    """The stress image for `item`: a [0, 1] gray array (read from the record unless given)."""
    rng = np.random.default_rng(item.seed)
    image = read_xray(item.record.path) if image is None else image
    if item.view == "joint":
        image = joint_crop(image, item.mark, rng)
    elif item.view == "zoomed":
        image = zoom_keeping(image, item.boxes, rng)
    elif item.record.region == "other":
        image = random_crop(image, rng, LOWER_LIMB_CROP)
    return acquisition(image, rng, strength=1.0)


def zoom_keeping(
    image: np.ndarray, boxes: Sequence[Sequence[float]], rng: np.random.Generator
) -> np.ndarray:
    """A tight view (each side a `ZOOM_SIDE` fraction of the image's, or more where the boxes
    need it) that holds every fracture box whole. Without boxes it holds a random pixel brighter
    than three quarters of the image, so that a normal image's view shows bone, as a fractured
    one's does."""
    height, width = image.shape
    if boxes:
        x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
        x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    else:
        level = np.quantile(image, BONE_QUANTILE)
        brighter = image > level
        ys, xs = np.nonzero(brighter if brighter.any() else image >= level)
        pick = int(rng.integers(len(ys)))
        x0 = x1 = float(xs[pick])
        y0 = y1 = float(ys[pick])
    spans = []
    for side, low, high in ((height, y0, y1), (width, x0, x1)):
        low, high = int(np.clip(np.floor(low), 0, side - 1)), int(np.clip(np.ceil(high), 1, side))
        size = min(side, max(int(round(side * rng.uniform(*ZOOM_SIDE))), high - low))
        first = int(rng.integers(max(0, high - size), min(low, side - size) + 1))
        spans.append(slice(first, first + size))
    return image[spans[0], spans[1]].copy()


def keeps_fracture_label(item: StressItem) -> bool:
    """Whether the item still shows every fracture its source image showed, so the image's
    fracture label holds: whole views, except the zoomed-in views of lower-limb (`other`)
    images, and the zoomed views made to keep every fracture box. A tight joint view may cut the
    fracture out."""
    return item.view == "zoomed" or (item.view == "whole" and item.record.region != "other")


def write_stress_set(items: Sequence[StressItem], out_dir: Path) -> list[Record]:
    """Render every item as an 8-bit PNG into `out_dir` (plus `stress.csv`); returns Records that
    point at the PNGs with the stress truth as their bone, ready for `training.report.evaluate`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stressed, cache = [], {}
    for item in items:
        path = out_dir / item.name
        if not path.exists():
            key = item.record.path
            if key not in cache:
                cache.clear()  # items of one record are consecutive
                cache[key] = read_xray(key)
            pixels = np.round(render(item, cache[key]) * 255).astype(np.uint8)
            Image.fromarray(pixels, mode="L").save(path)
        stressed.append(replace(item.record, path=path, bone=item.bone))
    with (out_dir / "stress.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "source", "region", "view", "bone"])
        for item in items:
            writer.writerow(
                [item.name, item.record.path.name, item.record.region, item.view, item.bone]
            )
    return stressed


def bone_type_summary(
    truth: Sequence[str], probabilities: np.ndarray, threshold: float
) -> dict[str, float | int | None]:
    """Best-guess accuracy per bone, recognised-and-correct, and other regions flagged, with the
    app's rule (`core.models.is_recognised`). `probabilities` has one row per image (4 classes)."""
    rows = []
    for bone, row in zip(truth, np.asarray(probabilities), strict=True):
        named = dict(zip(BONE_TYPE_CLASSES, map(float, row), strict=True))
        guess = max(BONES, key=named.get)
        rows.append((bone, guess, is_recognised(named, threshold)))
    summary: dict[str, float | int | None] = {"threshold": threshold}
    for bone in BONES:
        own = [(g, r) for t, g, r in rows if t == bone]
        summary[f"{bone} images"] = len(own)
        summary[f"{bone} best guess right"] = _mean([g == bone for g, _ in own])
        summary[f"{bone} recognised and right"] = _mean([r and g == bone for g, r in own])
    bones = [(t, g, r) for t, g, r in rows if t in BONES]
    others = [r for t, _, r in rows if t not in BONES]
    summary["3 bones best guess right"] = _mean([g == t for t, g, _ in bones])
    summary["3 bones recognised and right"] = _mean([r and g == t for t, g, r in bones])
    summary["other images"] = len(others)
    summary["other flagged not recognised"] = _mean([not r for r in others])
    return summary


def _mean(values) -> float | None:
    return float(np.mean(values)) if len(values) else None
