"""FracAtlas at the fracture stage's scale: a uint8 cache of prepared images with fracture masks,
and augmented training crops with their per-cell fracture masks.

Every image goes through `core.imaging.prepare_framed(gray, size)` once (the inference geometry);
its fracture outlines (or boxes, where an image has no outline) are drawn into the same model pixels
through the returned `Frame`, so a crop's cell mask lines up with the network's feature map.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from core.framing import Frame
from core.imaging import prepare_framed, read_xray
from training.data import augment
from training.data.datasets import Record

CACHE_SIZE = 384
STRIDE = 16  # conv4_block6_out of ResNet50
BONE_PERCENTILE = 70  # pixels at least this bright (within the content) count as bone
FRAME_FIELDS = ("size", "top", "left", "height", "width", "scale", "pad_top", "pad_left")


# ----------------------------------------------------------------------------- annotations


def load_boxes(data: Path) -> dict[str, list[tuple[float, float, float, float]]]:
    """image_id -> fracture boxes (x0, y0, x1, y1) in the pixels of `data/images/` (boxes.csv)."""
    boxes: dict[str, list[tuple[float, float, float, float]]] = {}
    with (Path(data) / "boxes.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            box = tuple(float(row[key]) for key in ("x_min", "y_min", "x_max", "y_max"))
            boxes.setdefault(row["image_id"], []).append(box)
    return boxes


def load_outlines(data: Path) -> dict[str, list[np.ndarray]]:
    """image_id -> fracture outlines, (n, 2) arrays of image pixels (x, y) (COCO polygons)."""
    path = Path(data) / "fracture_outlines.coco.json"
    if not path.is_file():
        return {}
    coco = json.loads(path.read_text())
    names = {image["id"]: image["file_name"] for image in coco["images"]}
    outlines: dict[str, list[np.ndarray]] = {}
    for annotation in coco["annotations"]:
        for polygon in annotation.get("segmentation") or []:
            if len(polygon) >= 6:
                points = np.asarray(polygon, dtype=np.float32).reshape(-1, 2)
                outlines.setdefault(names[annotation["image_id"]], []).append(points)
    return outlines


def to_model(frame: Frame, points: np.ndarray) -> np.ndarray:
    """Image pixels (n, 2) of (x, y) -> model-input pixels (the inverse of `frame.to_image`)."""
    points = np.asarray(points, dtype=np.float64)
    x = (points[:, 0] - frame.left) * frame.scale + frame.pad_left
    y = (points[:, 1] - frame.top) * frame.scale + frame.pad_top
    return np.stack([x, y], axis=1)


def fracture_mask(
    frame: Frame,
    boxes: Sequence[tuple[float, float, float, float]],
    outlines: Sequence[np.ndarray] = (),
) -> np.ndarray:
    """(size, size) uint8 mask of the fractures in model pixels: outlines if any, else boxes."""
    canvas = Image.new("L", (frame.size, frame.size), 0)
    draw = ImageDraw.Draw(canvas)
    for outline in outlines:
        draw.polygon([tuple(p) for p in to_model(frame, outline)], fill=1, outline=1)
    if not outlines:
        for box in boxes:
            (x0, y0), (x1, y1) = to_model(frame, np.array([box[:2], box[2:]]))
            draw.rectangle([x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)], fill=1)
    return np.asarray(canvas, dtype=np.uint8)


def boxes_in_model(frame: Frame, boxes: Sequence[tuple[float, float, float, float]]) -> list:
    """Image-pixel boxes -> model-pixel boxes [x0, y0, x1, y1]."""
    out = []
    for box in boxes:
        (x0, y0), (x1, y1) = to_model(frame, np.array([box[:2], box[2:]]))
        out.append([float(x0), float(y0), float(x1), float(y1)])
    return out


def cell_mask(mask: np.ndarray, stride: int = STRIDE) -> np.ndarray:
    """Pixel mask (H, W) -> cell mask (H // stride, W // stride): 1 where a cell meets the mask."""
    height, width = mask.shape[0] // stride, mask.shape[1] // stride
    cropped = mask[: height * stride, : width * stride]
    return cropped.reshape(height, stride, width, stride).max(axis=(1, 3)).astype(np.float32)


# ----------------------------------------------------------------------------- cache


@dataclass
class Cache:
    """Prepared images (uint8, N x S x S), fracture masks of the fractured ones, and metadata."""

    images: np.ndarray
    masks: np.ndarray
    mask_row: np.ndarray  # (N,) row in `masks`, -1 for images without a fracture mask
    meta: list[dict]

    def frame(self, index: int) -> Frame:
        """The `Frame` of image `index`."""
        return Frame(**{key: self.meta[index]["frame"][key] for key in FRAME_FIELDS})

    def mask(self, index: int) -> np.ndarray:
        """Fracture mask of image `index` in model pixels (zeros when it has none)."""
        row = self.mask_row[index]
        if row < 0:
            return np.zeros(self.images.shape[1:], dtype=np.uint8)
        return np.asarray(self.masks[row])

    def indices(self, ids: Sequence[str]) -> list[int]:
        """Cache rows of the given image ids (ids missing from the cache are skipped)."""
        position = {item["image_id"]: i for i, item in enumerate(self.meta)}
        return [position[i] for i in ids if i in position]


def build_cache(records: Sequence[Record], data: Path, out: Path, size: int = CACHE_SIZE) -> Cache:
    """Prepare every record at `size` once and write images.npy, masks.npy and meta.json to `out`.

    An existing complete cache (same image ids and size) is reused as is.
    """
    out = Path(out)
    meta_path = out / "meta.json"
    ids = [record.path.name for record in records]
    if meta_path.is_file():
        cached = json.loads(meta_path.read_text())
        if cached["size"] == size and [m["image_id"] for m in cached["images"]] == ids:
            return open_cache(out)
    out.mkdir(parents=True, exist_ok=True)
    boxes, outlines = load_boxes(data), load_outlines(data)
    fractured = [record.path.name in boxes for record in records]
    images = np.lib.format.open_memmap(
        out / "images.npy", mode="w+", dtype=np.uint8, shape=(len(records), size, size)
    )
    masks = np.lib.format.open_memmap(
        out / "masks.npy", mode="w+", dtype=np.uint8, shape=(max(1, sum(fractured)), size, size)
    )
    meta, row = [], 0
    for index, record in enumerate(records):
        gray = read_xray(record.path)
        pixels, frame = prepare_framed(gray, size)
        images[index] = np.round(pixels[:, :, 0]).astype(np.uint8)
        image_id = record.path.name
        item = {
            "image_id": image_id,
            "label": record.label,
            "bone": record.bone,
            "region": record.region,
            "study": record.study,
            "image_shape": list(gray.shape),
            "frame": {key: getattr(frame, key) for key in FRAME_FIELDS},
            "boxes": [list(box) for box in boxes.get(image_id, [])],
            "model_boxes": boxes_in_model(frame, boxes.get(image_id, [])),
            "mask_row": -1,
        }
        if fractured[index]:
            masks[row] = fracture_mask(frame, boxes[image_id], outlines.get(image_id, []))
            item["mask_row"] = row
            row += 1
        meta.append(item)
    images.flush()
    masks.flush()
    meta_path.write_text(json.dumps({"size": size, "images": meta}))
    return open_cache(out)


def open_cache(out: Path) -> Cache:
    """Open a cache written by `build_cache` (arrays memory-mapped, read-only)."""
    out = Path(out)
    meta = json.loads((out / "meta.json").read_text())["images"]
    return Cache(
        images=np.load(out / "images.npy", mmap_mode="r"),
        masks=np.load(out / "masks.npy", mmap_mode="r"),
        mask_row=np.array([item["mask_row"] for item in meta], dtype=np.int64),
        meta=meta,
    )


# ----------------------------------------------------------------------------- crops


@dataclass(frozen=True)
class CropSettings:
    """How training crops are drawn and augmented."""

    crop: int = 224
    fracture_share: float = 0.5  # share of crops centred near a fracture box
    upper_limb_weight: float = 2.0  # sampling weight of non-'other' regions vs lower limb / hip
    max_angle: float = 15.0  # degrees
    scale_jitter: float = 0.1  # +-10% zoom
    flips: bool = True
    exposure: bool = True
    stride: int = STRIDE  # cell size of the network's feature map
    bone_share: float = 0.7  # share of the other crops centred on bright (bone) pixels
    hospital: float = 0.0  # strength of other hospitals' changes (`other_hospital`), 0 = none
    whole_angle: float = 0.0  # whole images turned by up to this many degrees (0 = upright)
    zoom_in: float = 1.0  # half the crops and whole images magnified by up to this (1 = never)


class CropSampler:
    """Draws augmented crops (uint8 image, cell mask) from cache rows `indices`."""

    def __init__(self, cache: Cache, indices: Sequence[int], settings: CropSettings, seed: int = 0):
        self.cache = cache
        self.settings = settings
        self.rng = np.random.default_rng(seed)
        self.indices = np.asarray(indices, dtype=np.int64)
        weights = np.array(
            [
                1.0 if cache.meta[i]["region"] == "other" else settings.upper_limb_weight
                for i in self.indices
            ]
        )
        self.weights = weights / weights.sum()
        fractured = np.array([bool(cache.meta[i]["model_boxes"]) for i in self.indices])
        self.fractured = self.indices[fractured]
        fw = weights[fractured]
        self.fractured_weights = fw / fw.sum() if fw.size else fw

    def sample(self) -> tuple[np.ndarray, np.ndarray, int]:
        """One crop: (crop, crop) float32 pixels in [0, 255], its cell mask, and its cache row."""
        s = self.settings
        use_fracture = self.fractured.size and self.rng.random() < s.fracture_share
        if use_fracture:
            index = int(self.rng.choice(self.fractured, p=self.fractured_weights))
            boxes = self.cache.meta[index]["model_boxes"]
            x0, y0, x1, y1 = boxes[self.rng.integers(len(boxes))]
            margin = max(0.0, s.crop / 2 - 1.5 * s.stride)
            cx = (x0 + x1) / 2 + self.rng.uniform(-margin, margin)
            cy = (y0 + y1) / 2 + self.rng.uniform(-margin, margin)
        else:
            index = int(self.rng.choice(self.indices, p=self.weights))
            cx, cy = self.elsewhere(index)
        angle = self.rng.uniform(-s.max_angle, s.max_angle)
        zoom = math.exp(self.rng.uniform(-s.scale_jitter, s.scale_jitter)) * self.magnification()
        image = warp(self.cache.images[index], cx, cy, angle, zoom, s.crop, Image.BILINEAR)
        mask = warp(self.cache.mask(index), cx, cy, angle, zoom, s.crop, Image.NEAREST)
        if s.flips and self.rng.random() < 0.5:
            image, mask = image[:, ::-1], mask[:, ::-1]
        if s.flips and self.rng.random() < 0.5:
            image, mask = image[::-1], mask[::-1]
        pixels = image.astype(np.float32)
        if s.exposure:
            pixels = exposure(pixels, self.rng)
        if s.hospital:
            pixels, mask = other_hospital(pixels, mask, self.rng, s.hospital)
        return pixels, cell_mask(np.ascontiguousarray(mask), s.stride), index

    def magnification(self) -> float:
        """1, or for half the views when `zoom_in` > 1 a log-uniform magnification up to it:
        other hospitals frame tighter than FracAtlas, so bones and fractures look larger."""
        if self.settings.zoom_in <= 1 or self.rng.random() < 0.5:
            return 1.0
        return math.exp(self.rng.uniform(0.0, math.log(self.settings.zoom_in)))

    def zoom_whole(self, index: int, image: np.ndarray, mask: np.ndarray) -> tuple:
        """A whole image and its mask magnified (`magnification`) about a centre that keeps every
        fracture cell of the mask in view (a bone pixel for a normal image), as a tighter-framed
        image would reach the network."""
        zoom = self.magnification()
        if zoom == 1.0:
            return image, mask
        size = image.shape[0]
        ys, xs = np.nonzero(mask)
        if ys.size:
            span = max(xs.max() - xs.min(), ys.max() - ys.min()) + 1
            zoom = min(zoom, size / span)
            half = size / zoom / 2
            cx = self.rng.uniform(xs.max() + 1 - half, xs.min() + half)
            cy = self.rng.uniform(ys.max() + 1 - half, ys.min() + half)
        else:
            cx, cy = self.elsewhere(index)
        return (
            warp(image, cx, cy, 0.0, zoom, size, Image.BILINEAR),
            warp(mask, cx, cy, 0.0, zoom, size, Image.NEAREST),
        )

    def elsewhere(self, index: int) -> tuple[float, float]:
        """A crop centre for a crop not chosen for its fracture: with probability `bone_share` on
        a bright (bone) pixel, so that normal crops look like fracture crops apart from the
        fracture; otherwise anywhere in the image's content."""
        frame = self.cache.frame(index)
        if self.rng.random() < self.settings.bone_share:
            step = self.settings.stride
            small = np.asarray(self.cache.images[index][step // 2 :: step, step // 2 :: step])
            content = small[small > 0]
            if content.size:
                ys, xs = np.nonzero(small >= np.percentile(content, BONE_PERCENTILE))
                pick = self.rng.integers(len(ys))
                jitter = self.rng.uniform(-step / 2, step / 2, size=2)
                return float((xs[pick] + 0.5) * step + jitter[0]), float(
                    (ys[pick] + 0.5) * step + jitter[1]
                )
        height, width = frame.resized_shape
        return (
            frame.pad_left + self.rng.uniform(0, width),
            frame.pad_top + self.rng.uniform(0, height),
        )

    def batch(self, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`size` crops: (size, crop, crop, 3) float32 [0, 255], (size, h, w) cell masks, rows."""
        crops, masks, rows = zip(*(self.sample() for _ in range(size)), strict=True)
        images = np.repeat(np.stack(crops)[..., None], 3, axis=3)
        return images, np.stack(masks), np.array(rows)

    def whole(self, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`size` whole prepared images (half of them fractured), flipped, turned by up to
        `whole_angle` degrees and exposure-jittered: (size, S, S, 3) float32 [0, 255],
        (size, S / stride, S / stride) cell masks, rows."""
        images, masks, rows = [], [], []
        for k in range(size):
            fractured = self.fractured.size and k % 2 == 0
            if fractured:
                index = int(self.rng.choice(self.fractured, p=self.fractured_weights))
            else:
                index = int(self.rng.choice(self.indices, p=self.weights))
            image, mask = np.asarray(self.cache.images[index]), self.cache.mask(index)
            image, mask = self.zoom_whole(index, image, mask)
            if self.settings.whole_angle:
                image, mask = turn_whole(image, mask, self.rng, self.settings.whole_angle)
            if self.settings.flips and self.rng.random() < 0.5:
                image, mask = image[:, ::-1], mask[:, ::-1]
            pixels = image.astype(np.float32)
            if self.settings.exposure:
                pixels = exposure(pixels, self.rng)
            if self.settings.hospital:
                pixels, mask = other_hospital(pixels, mask, self.rng, self.settings.hospital)
            images.append(pixels)
            masks.append(cell_mask(np.ascontiguousarray(mask), self.settings.stride))
            rows.append(index)
        stacked = np.repeat(np.stack(images)[..., None], 3, axis=3)
        return stacked, np.stack(masks), np.array(rows)


def turn_whole(
    image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, max_angle: float
) -> tuple[np.ndarray, np.ndarray]:
    """A whole prepared image and its mask turned together about the centre by a random angle
    in +-`max_angle` degrees (corners that leave the frame are lost, new ones are black)."""
    angle = float(rng.uniform(-max_angle, max_angle))
    size = image.shape[0]
    turned = warp(image, size / 2, size / 2, angle, 1.0, size, Image.BILINEAR)
    return turned, warp(mask, size / 2, size / 2, angle, 1.0, size, Image.NEAREST)


def warp(
    image: np.ndarray, cx: float, cy: float, angle: float, zoom: float, crop: int, resample
) -> np.ndarray:
    """A `crop` x `crop` window centred at (cx, cy), rotated by `angle` degrees and zoomed by
    `zoom` (> 1 magnifies); outside the image is black."""
    theta = math.radians(angle)
    cos, sin = math.cos(theta) / zoom, math.sin(theta) / zoom
    half = crop / 2
    # output (u, v) -> input (x, y) = centre + R * ((u, v) - half) / zoom
    a, b = cos, -sin
    d, e = sin, cos
    c = cx - a * half - b * half
    f = cy - d * half - e * half
    warped = Image.fromarray(np.asarray(image)).transform(
        (crop, crop), Image.AFFINE, (a, b, c, d, e, f), resample=resample, fillcolor=0
    )
    return np.asarray(warped)


def other_hospital(
    pixels: np.ndarray, mask: np.ndarray, rng: np.random.Generator, strength: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """How another hospital's image of the same bone differs, on a crop and its fracture mask:
    a quarter turn (of both), then on the pixels only a wider exposure and gamma, blur or noise,
    inverted polarity and a burned-in letter (`training.augment`). `strength` scales how often."""
    p = float(np.clip(strength, 0.0, 1.0))
    if rng.random() < 0.5 * p:
        turns = int(rng.integers(1, 4))
        pixels, mask = np.rot90(pixels, turns), np.rot90(mask, turns)
    image = np.ascontiguousarray(pixels, dtype=np.float32) / 255.0
    if rng.random() < 0.5 * p:
        image = augment.gamma(image, float(np.exp(rng.uniform(np.log(0.5), np.log(2.0)))))
    if rng.random() < 0.2 * p:
        image = augment.blur(image, float(rng.uniform(0.4, 1.2)))
    if rng.random() < 0.2 * p:
        image = augment.noise(image, rng, float(rng.uniform(0.005, 0.03)))
    if rng.random() < 0.1 * p:
        image = augment.invert(image)
    if rng.random() < 0.3 * p:
        image = augment.burn_letter(image, rng)
    return (image * 255.0).astype(np.float32), np.ascontiguousarray(mask)


def exposure(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random gamma and contrast on [0, 255] pixels (black stays black)."""
    gamma = math.exp(rng.uniform(-0.35, 0.35))
    gain = rng.uniform(0.85, 1.15)
    return np.clip(255.0 * (pixels / 255.0) ** gamma * gain, 0.0, 255.0).astype(np.float32)
