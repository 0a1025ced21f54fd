"""View synthesis and acquisition augmentations: each transform does what it says."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from core.imaging import prepare
from training.data import augment
from training.data.augment import JointMark


def textured(height: int = 120, width: int = 90, seed: int = 0) -> np.ndarray:
    """A [0, 1] image with structure everywhere (no uniform rows or columns)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    image = (
        0.5 + 0.3 * np.sin(xx / 5.0) * np.cos(yy / 7.0) + rng.uniform(-0.1, 0.1, (height, width))
    )
    return np.clip(image, 0, 1).astype(np.float32)


def test_committed_joint_marks_are_valid_and_refer_to_labelled_images():
    marks = augment.load_joint_marks()
    total = sum(len(m) for m in marks.values())
    assert total >= 250
    joints = {mark.joint for image_marks in marks.values() for mark in image_marks}
    assert joints == {"elbow", "shoulder"}
    regions_csv = augment.DEFAULT_MARKS_CSV.parent / "fracatlas_regions.csv"
    with regions_csv.open(newline="") as handle:
        labelled = {row["image_id"] for row in csv.DictReader(handle)}
    assert set(marks) <= labelled


def test_load_joint_marks_rejects_unknown_joint_and_out_of_range(tmp_path):
    path = tmp_path / "marks.csv"
    path.write_text("image_id,joint,x,y\nA.jpg,knee,0.5,0.5\n")
    with pytest.raises(ValueError, match="Unknown joint"):
        augment.load_joint_marks(path)
    path.write_text("image_id,joint,x,y\nA.jpg,elbow,1.5,0.5\n")
    with pytest.raises(ValueError, match="outside"):
        augment.load_joint_marks(path)


@pytest.mark.parametrize("seed", range(20))
def test_joint_crop_contains_the_marked_joint(seed):
    rng = np.random.default_rng(seed)
    image = np.zeros((300, 200), np.float32)
    mark = JointMark("elbow", float(rng.uniform(0, 1)), float(rng.uniform(0, 1)))
    row, col = min(299, int(mark.y * 300)), min(199, int(mark.x * 200))
    image[row, col] = 1.0  # the joint
    crop = augment.joint_crop(image, mark, rng)
    assert crop.shape[0] == crop.shape[1]  # a square view
    side_range = np.array(augment.JOINT_SIDE) * 300
    assert side_range[0] - 1 <= crop.shape[0] <= min(side_range[1], 200) + 1
    assert crop.max() == 1.0  # the joint is inside the view


def test_joint_box_stays_inside_the_image_at_the_edges():
    for x, y in [(0.0, 0.0), (1.0, 1.0), (0.0, 1.0)]:
        top, left, height, width = augment.joint_box(
            (100, 400), JointMark("shoulder", x, y), 0.5, (0.1, -0.1)
        )
        assert top >= 0 and top + height <= 100 and left >= 0 and left + width <= 400


def test_joint_mark_bone():
    assert JointMark("elbow", 0.5, 0.5).bone == "Elbow"
    assert JointMark("shoulder", 0.5, 0.5).bone == "Shoulder"


def test_random_crop_size_and_content():
    image = textured()
    crop = augment.random_crop(image, np.random.default_rng(0), smallest=0.5)
    assert 60 <= crop.shape[0] <= 120 and 45 <= crop.shape[1] <= 90
    # the crop is a real sub-array of the image
    found = any(
        np.array_equal(image[t : t + crop.shape[0], left : left + crop.shape[1]], crop)
        for t in range(121 - crop.shape[0])
        for left in range(91 - crop.shape[1])
    )
    assert found


def test_rotate90_turns_the_image():
    image = textured(40, 30)
    turned = augment.rotate90(image, 1)
    assert turned.shape == (30, 40)
    assert turned[0, 0] == image[0, -1]  # counter-clockwise
    assert np.array_equal(augment.rotate90(turned, 3), image)


def test_small_rotation_keeps_shape_and_brings_in_black_corners():
    image = np.ones((100, 100), np.float32)
    rotated = augment.rotate(image, 15)
    assert rotated.shape == image.shape
    assert rotated[0, 0] == 0.0 and rotated[50, 50] == pytest.approx(1.0)
    assert rotated.min() >= 0 and rotated.max() <= 1


def test_flip_mirrors():
    image = textured(20, 30)
    assert np.array_equal(augment.flip(image)[:, 0], image[:, -1])
    assert np.array_equal(augment.flip(augment.flip(image)), image)


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_borders_are_added_and_removed_again_by_prepare(value):
    image = textured(160, 120)
    framed = augment.add_borders(image, np.random.default_rng(3), widest=0.3, value=value)
    assert framed.shape[0] > 160 or framed.shape[1] > 120
    assert np.sum(framed == value) >= framed.size - image.size
    with_borders, without = prepare(framed, 64), prepare(image, 64)
    assert np.abs(with_borders - without).mean() < 6.0  # of 255: the same picture


def test_burned_letter_marks_a_corner_only():
    image = np.full((200, 200), 0.3, np.float32)
    lettered = augment.burn_letter(image, np.random.default_rng(1), text="L")
    changed = np.argwhere(np.abs(lettered - image) > 0.1)
    assert len(changed) > 10
    rows, cols = changed[:, 0], changed[:, 1]
    assert rows.max() < 80 or rows.min() > 120  # near the top or the bottom edge
    assert cols.max() < 80 or cols.min() > 120  # near the left or the right edge
    assert lettered.min() >= 0 and lettered.max() <= 1


def test_exposure_changes():
    image = textured()
    assert augment.gamma(image, 2.0).mean() < image.mean() < augment.gamma(image, 0.5).mean()
    flat = augment.contrast(image, 0.5, 0.0)
    assert flat.std() == pytest.approx(image.std() * 0.5, rel=0.05)
    assert augment.contrast(image, 1.0, 0.2).mean() > image.mean() + 0.15
    assert np.allclose(augment.invert(augment.invert(image)), image)
    assert augment.invert(image).mean() == pytest.approx(1 - image.mean(), abs=1e-5)


def test_blur_smooths_and_keeps_the_mean():
    image = textured()
    blurred = augment.blur(image, 2.0)
    assert blurred.shape == image.shape
    assert np.abs(np.diff(blurred, axis=1)).mean() < 0.5 * np.abs(np.diff(image, axis=1)).mean()
    assert blurred.mean() == pytest.approx(image.mean(), abs=0.01)


def test_noise_has_the_asked_spread():
    image = np.full((200, 200), 0.5, np.float32)
    noisy = augment.noise(image, np.random.default_rng(0), 0.05)
    assert (noisy - image).std() == pytest.approx(0.05, rel=0.1)
    assert noisy.min() >= 0 and noisy.max() <= 1


def test_acquisition_is_deterministic_per_seed_and_in_range():
    image = textured()
    first = augment.acquisition(image, np.random.default_rng(7))
    again = augment.acquisition(image, np.random.default_rng(7))
    other = [augment.acquisition(image, np.random.default_rng(s)) for s in range(8)]
    assert np.array_equal(first, again)
    assert any(o.shape != first.shape or not np.array_equal(o, first) for o in other)
    for result in [first, *other]:
        assert result.ndim == 2 and result.dtype == np.float32
        assert result.min() >= 0 and result.max() <= 1


def test_acquisition_at_zero_strength_keeps_the_picture():
    image = textured()
    result = augment.acquisition(image, np.random.default_rng(0), strength=0.0)
    candidates = [image, augment.flip(image)]  # only the flip does not scale with strength
    assert any(np.abs(augment.restretch(c) - result).max() < 1e-5 for c in candidates)


def test_synthesize_labels_joint_views_by_the_joint():
    image = textured(300, 200)
    marks = [JointMark("shoulder", 0.3, 0.2)]
    view, bone = augment.synthesize(image, "Other", marks, np.random.default_rng(0), 1.0)
    assert bone == "Shoulder" and view.shape[0] == view.shape[1] < 200
    whole, bone = augment.synthesize(image, "Other", marks, np.random.default_rng(0), 0.0)
    assert bone == "Other" and whole.shape[0] >= 0.85 * 300 - 1
