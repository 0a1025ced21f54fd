"""Fracture-stage data: annotations into model pixels, the prepared-image cache, training crops."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image

from core.framing import Frame
from core.imaging import prepare, read_xray
from training.data import fracture_data as fd
from training.data.datasets import FRACATLAS_ID_BLOCK, load_fracatlas, split_of

FRAME = Frame(size=40, top=10, left=0, height=200, width=100, scale=0.2, pad_top=0, pad_left=10)


def write_fracatlas(root: Path, per_split: int = 3, size: tuple[int, int] = (96, 128)) -> Path:
    """A tiny FracAtlas-like folder: images whose ids fall in every split, half of them fractured
    with one box (and outline) on a bright square drawn where the box is."""
    (root / "images").mkdir(parents=True)
    counts, ids = {"train": 0, "val": 0, "test": 0}, []
    block = 0
    while min(counts.values()) < per_split:
        name = f"IMG{block * FRACATLAS_ID_BLOCK:07d}.jpg"
        split = split_of(f"block{block:05d}", 0, 0.15, 0.15)
        if counts[split] < per_split:
            counts[split] += 1
            ids.append(name)
        block += 1
    width, height = size
    rows, boxes, images, annotations = [], [], [], []
    rng = np.random.default_rng(0)
    for k, name in enumerate(ids):
        pixels = (rng.random((height, width)) * 40 + 60).astype(np.uint8)
        pixels[:, width // 3 : 2 * width // 3] += 100  # a 'bone'
        fractured = k % 2
        if fractured:
            x0, y0 = 30 + k % 5, 50 + k % 7
            pixels[y0 : y0 + 16, x0 : x0 + 16] = 250
            boxes.append([name, x0, y0, x0 + 16, y0 + 16])
            images.append({"id": k, "width": width, "height": height, "file_name": name})
            outline = [x0, y0, x0 + 16, y0, x0 + 16, y0 + 16, x0, y0 + 16]
            annotations.append({"id": k, "image_id": k, "segmentation": [outline]})
        Image.fromarray(pixels).save(root / "images" / name, quality=95)
        region = ("hand", "other", "elbow", "shoulder")[k % 4]
        rows.append({"image_id": name, "region": region, "fractured": fractured})
    with (root / "labels.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["image_id", "region", "fractured"])
        writer.writeheader()
        writer.writerows(rows)
    with (root / "boxes.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "x_min", "y_min", "x_max", "y_max"])
        writer.writerows(boxes)
    coco = {"images": images, "annotations": annotations, "categories": []}
    (root / "fracture_outlines.coco.json").write_text(json.dumps(coco))
    return root


def test_model_pixels_invert_frame_to_image():
    points = np.array([[12.5, 3.0], [30.0, 39.0]])
    back = np.array([FRAME.to_image(x, y) for x, y in fd.to_model(FRAME, points)])
    np.testing.assert_allclose(back, points)
    # by hand: image (50, 110) -> ((50 - 0) * 0.2 + 10, (110 - 10) * 0.2 + 0) = (20, 20)
    np.testing.assert_allclose(fd.to_model(FRAME, np.array([[50, 110]])), [[20, 20]])


def test_mask_uses_outlines_when_present_and_boxes_otherwise():
    box = (50, 110, 100, 160)  # model x 20-30, y 20-30
    from_box = fd.fracture_mask(FRAME, [box])
    assert from_box[20:30, 20:30].all() and from_box.sum() == 100
    triangle = np.array([[50, 110], [100, 110], [50, 160]], dtype=np.float32)
    from_outline = fd.fracture_mask(FRAME, [box], [triangle])
    assert 40 < from_outline.sum() < 80  # about half the box
    assert from_outline[21, 21] == 1 and from_outline[29, 29] == 0


def test_cell_mask_marks_every_cell_the_mask_touches():
    mask = np.zeros((32, 32), dtype=np.uint8)
    mask[15:17, 4] = 1  # crosses the boundary between cell rows 0 and 1, in cell column 0
    cells = fd.cell_mask(mask)
    assert cells.shape == (2, 2)
    np.testing.assert_array_equal(cells, [[1, 0], [1, 0]])


def test_cache_holds_prepared_images_and_masks_in_model_pixels(tmp_path):
    data = write_fracatlas(tmp_path / "atlas")
    records, _ = load_fracatlas(data, regions_csv=None)
    cache = fd.build_cache(records, data, tmp_path / "cache", size=64)
    assert cache.images.shape == (len(records), 64, 64)
    first = records[0]
    np.testing.assert_allclose(
        cache.images[0], prepare(read_xray(first.path), 64)[:, :, 0], atol=0.51
    )
    fractured = [i for i, item in enumerate(cache.meta) if item["label"]]
    assert fractured and all(cache.mask_row[i] >= 0 for i in fractured)
    for i in fractured:
        x0, y0, x1, y1 = cache.meta[i]["model_boxes"][0]
        mask = cache.mask(i)
        ys, xs = np.nonzero(mask)
        assert xs.min() >= np.floor(x0) - 1 and xs.max() <= np.ceil(x1)
        assert ys.min() >= np.floor(y0) - 1 and ys.max() <= np.ceil(y1)
        # the bright square is where the mask is
        assert cache.images[i][mask > 0].mean() > cache.images[i][mask == 0].mean() + 40
    normal = next(i for i, item in enumerate(cache.meta) if not item["label"])
    assert cache.mask(normal).sum() == 0
    written = (tmp_path / "cache" / "images.npy").stat().st_mtime_ns
    again = fd.build_cache(records, data, tmp_path / "cache", size=64)  # reused, not rebuilt
    assert (tmp_path / "cache" / "images.npy").stat().st_mtime_ns == written
    assert again.meta == cache.meta


def test_warp_without_rotation_or_zoom_is_a_plain_crop():
    image = np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) % 251
    image = image.astype(np.uint8)
    crop = fd.warp(image, cx=30, cy=20, angle=0.0, zoom=1.0, crop=16, resample=Image.NEAREST)
    np.testing.assert_array_equal(crop, image[12:28, 22:38])


def test_fracture_crops_contain_the_fracture_and_random_crops_cover_normal_images(tmp_path):
    data = write_fracatlas(tmp_path / "atlas")
    records, _ = load_fracatlas(data, regions_csv=None)
    cache = fd.build_cache(records, data, tmp_path / "cache", size=64)
    rows = list(range(len(records)))
    always = fd.CropSettings(crop=32, fracture_share=1.0, max_angle=0, scale_jitter=0)
    sampler = fd.CropSampler(cache, rows, always, seed=1)
    images, masks, picked = sampler.batch(6)
    assert images.shape == (6, 32, 32, 3) and masks.shape == (6, 2, 2)
    assert all(cache.meta[i]["label"] == 1 for i in picked)
    assert masks.reshape(6, -1).max(axis=1).min() == 1  # every fracture crop holds its fracture
    never = fd.CropSettings(crop=32, fracture_share=0.0)
    normal_rows = [i for i in rows if not cache.meta[i]["label"]]
    _, masks, picked = fd.CropSampler(cache, normal_rows, never, seed=2).batch(6)
    assert set(picked) <= set(normal_rows) and masks.sum() == 0


def test_crops_elsewhere_are_centred_on_bone_when_asked(tmp_path):
    data = write_fracatlas(tmp_path / "atlas")
    records, _ = load_fracatlas(data, regions_csv=None)
    cache = fd.build_cache(records, data, tmp_path / "cache", size=64)
    rows = [i for i, item in enumerate(cache.meta) if not item["label"]]

    def share_on_bone(share: float) -> float:
        settings = fd.CropSettings(crop=16, fracture_share=0.0, bone_share=share, stride=8)
        sampler = fd.CropSampler(cache, rows, settings, seed=0)
        xs = np.array([sampler.elsewhere(rows[k % len(rows)])[0] for k in range(300)])
        return float(np.mean((xs >= 18) & (xs <= 46)))

    # 96 x 128 images fill model x 8-56; their 'bone' (middle third) is model x 24-40
    assert share_on_bone(1.0) > 0.95
    assert share_on_bone(0.0) < 0.75  # uniform over the content: about 28 / 48


def test_whole_images_alternate_fractured_and_keep_their_masks(tmp_path):
    data = write_fracatlas(tmp_path / "atlas")
    records, _ = load_fracatlas(data, regions_csv=None)
    cache = fd.build_cache(records, data, tmp_path / "cache", size=64)
    settings = fd.CropSettings(crop=32, flips=False, exposure=False)
    images, masks, rows = fd.CropSampler(cache, range(len(records)), settings, seed=0).whole(4)
    assert images.shape == (4, 64, 64, 3) and masks.shape == (4, 4, 4)
    assert cache.meta[rows[0]]["label"] == 1 and cache.meta[rows[2]]["label"] == 1
    np.testing.assert_array_equal(images[0, :, :, 0], cache.images[rows[0]])
    np.testing.assert_array_equal(masks[0], fd.cell_mask(cache.mask(rows[0])))


def test_turned_whole_images_keep_the_mask_on_the_fracture():
    image = np.zeros((64, 64), np.uint8)
    image[8:24, 40:56] = 200  # a bright 'fracture' off the centre
    mask = (image > 0).astype(np.uint8)
    turned, turned_mask = fd.turn_whole(image, mask, np.random.default_rng(3), 30.0)
    assert turned.shape == image.shape and turned_mask.shape == mask.shape
    assert not np.array_equal(turned, image)  # a real turn, not the image as it was
    inside = turned[turned_mask > 0]
    assert inside.size > 0.8 * mask.sum() and np.median(inside) > 150
    assert np.median(turned[turned_mask == 0]) == 0
    assert fd.turn_whole(image, mask, np.random.default_rng(3), 0.0)[0].tolist() == image.tolist()


def test_whole_angle_turns_the_sampled_whole_images(tmp_path):
    data = write_fracatlas(tmp_path / "atlas")
    records, _ = load_fracatlas(data, regions_csv=None)
    cache = fd.build_cache(records, data, tmp_path / "cache", size=64)
    settings = fd.CropSettings(crop=32, flips=False, exposure=False, whole_angle=20.0)
    images, masks, rows = fd.CropSampler(cache, range(len(records)), settings, seed=0).whole(2)
    assert not np.array_equal(images[0, :, :, 0], cache.images[rows[0]])
    assert masks[0].any()  # the fracture's cells survive the turn


def test_zoomed_whole_images_are_magnified_and_keep_the_whole_fracture(tmp_path):
    data = write_fracatlas(tmp_path / "atlas")
    records, _ = load_fracatlas(data, regions_csv=None)
    cache = fd.build_cache(records, data, tmp_path / "cache", size=64)
    rows = list(range(len(records)))
    fractured = next(i for i in rows if cache.meta[i]["label"])
    image, mask = np.asarray(cache.images[fractured]), cache.mask(fractured)
    settings = fd.CropSettings(crop=32, flips=False, exposure=False, zoom_in=2.0)
    sampler = fd.CropSampler(cache, rows, settings, seed=0)
    magnified = 0
    for _ in range(40):
        zoomed, zoomed_mask = sampler.zoom_whole(fractured, image, mask)
        assert zoomed.shape == image.shape
        ratio = (zoomed_mask > 0).sum() / (mask > 0).sum()
        assert ratio >= 0.9  # never cut: the fracture's area only grows, by the zoom squared
        magnified += ratio > 1.2
    assert 8 < magnified < 32  # about half the views are magnified
    unzoomed = fd.CropSampler(cache, rows, fd.CropSettings(crop=32), seed=0)
    assert all(unzoomed.magnification() == 1.0 for _ in range(20))
    magnifications = [sampler.magnification() for _ in range(400)]
    assert min(magnifications) == 1.0 and 1.5 < max(magnifications) <= 2.0
