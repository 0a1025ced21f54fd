"""View synthesis and acquisition changes on [0, 1] gray X-rays, applied before `prepare`.

Other hospitals frame an elbow or shoulder study tightly on the joint, rotate it by 90 degrees, add
black borders and burned-in letters, and expose it differently. These functions make such views
from the FracAtlas images: `joint_crop` zooms into a joint marked by eye (`data/joint_marks.csv`),
the rest change how the image was taken. Every function takes and returns a 2-D float32 array in
[0, 1] and draws its randomness from the `numpy.random.Generator` it is given.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from core.imaging import _stretch_contrast  # the contrast stretch `read_xray` applies to every file

DEFAULT_MARKS_CSV = Path(__file__).resolve().parent / "joint_marks.csv"
JOINT_TO_BONE = {"elbow": "Elbow", "shoulder": "Shoulder"}
LETTERS = ("L", "R", "LT", "RT", "AP", "LAT", "PA", "OBL")
JOINT_SIDE = (0.28, 0.5)  # side of a joint view, as a fraction of the image's long side
JOINT_SHIFT = 0.12  # the joint may sit this fraction of the view's side off centre


@dataclass(frozen=True)
class JointMark:
    """A joint's centre marked by eye, as fractions of the image's width (x) and height (y)."""

    joint: str
    x: float
    y: float

    @property
    def bone(self) -> str:
        """The bone-type class a tight view of this joint belongs to."""
        return JOINT_TO_BONE[self.joint]


def load_joint_marks(path: Path = DEFAULT_MARKS_CSV) -> dict[str, list[JointMark]]:
    """image_id -> its joint marks (an image with two views can have two)."""
    marks: dict[str, list[JointMark]] = {}
    with Path(path).open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["joint"] not in JOINT_TO_BONE:
                raise ValueError(f"Unknown joint {row['joint']!r} for {row['image_id']}")
            mark = JointMark(row["joint"], float(row["x"]), float(row["y"]))
            if not (0.0 <= mark.x <= 1.0 and 0.0 <= mark.y <= 1.0):
                raise ValueError(f"Joint mark outside the image for {row['image_id']}")
            marks.setdefault(row["image_id"], []).append(mark)
    return marks


# ----------------------------------------------------------------------------- view synthesis


def joint_box(
    shape: tuple[int, int], mark: JointMark, side_fraction: float, shift: tuple[float, float]
) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a square view around `mark`, kept inside the image.

    `side_fraction` is the view's side over the image's long side; `shift` moves the joint off
    centre by that fraction of the side (x, y). The joint always stays inside the view.
    """
    height, width = shape
    side = int(round(min(side_fraction * max(height, width), height, width)))
    side = max(side, 8)
    cx = mark.x * width - shift[0] * side
    cy = mark.y * height - shift[1] * side
    left = int(np.clip(round(cx - side / 2), 0, width - side))
    top = int(np.clip(round(cy - side / 2), 0, height - side))
    return top, left, side, side


def joint_crop(image: np.ndarray, mark: JointMark, rng: np.random.Generator) -> np.ndarray:
    """A tight view of the marked joint (random size and a small random offset)."""
    side_fraction = rng.uniform(*JOINT_SIDE)
    shift = tuple(rng.uniform(-JOINT_SHIFT, JOINT_SHIFT, 2))
    top, left, height, width = joint_box(image.shape, mark, side_fraction, shift)
    return image[top : top + height, left : left + width].copy()


def random_crop(image: np.ndarray, rng: np.random.Generator, smallest: float = 0.5) -> np.ndarray:
    """A random sub-rectangle with each side at least `smallest` of the image's side."""
    height, width = image.shape
    crop_h = int(round(height * rng.uniform(smallest, 1.0)))
    crop_w = int(round(width * rng.uniform(smallest, 1.0)))
    top = int(rng.integers(0, height - crop_h + 1))
    left = int(rng.integers(0, width - crop_w + 1))
    return image[top : top + crop_h, left : left + crop_w].copy()


# ----------------------------------------------------------------------------- geometry


def rotate90(image: np.ndarray, quarter_turns: int) -> np.ndarray:
    """Rotate by `quarter_turns` x 90 degrees counter-clockwise."""
    return np.ascontiguousarray(np.rot90(image, quarter_turns))


def rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate by a small angle about the centre; the corners that come in are black."""
    pil = Image.fromarray(np.asarray(image, np.float32), mode="F")
    rotated = pil.rotate(degrees, resample=Image.Resampling.BILINEAR, fillcolor=0.0)
    return np.clip(np.asarray(rotated, np.float32), 0.0, 1.0)


def flip(image: np.ndarray) -> np.ndarray:
    """Mirror left-right."""
    return np.ascontiguousarray(image[:, ::-1])


def add_borders(
    image: np.ndarray, rng: np.random.Generator, widest: float = 0.25, value: float = 0.0
) -> np.ndarray:
    """Frame the image with uniform borders (letterboxing) of random width on each side.

    Each side gets 0 to `widest` of the image's side; `value` is the border's gray level.
    """
    height, width = image.shape
    top, bottom = (int(v) for v in rng.integers(0, int(widest * height) + 1, 2))
    left, right = (int(v) for v in rng.integers(0, int(widest * width) + 1, 2))
    framed = np.full((height + top + bottom, width + left + right), value, np.float32)
    framed[top : top + height, left : left + width] = image
    return framed


def burn_letter(image: np.ndarray, rng: np.random.Generator, text: str | None = None) -> np.ndarray:
    """Burn a marker letter (L, R, AP, ...) into a random corner, white or black, in a box."""
    text = text or str(rng.choice(LETTERS))
    height, width = image.shape
    size = max(8, int(min(height, width) * rng.uniform(0.04, 0.1)))
    font = _font(size)
    pil = Image.fromarray(np.asarray(np.clip(image, 0, 1) * 255, np.uint8), mode="L")
    draw = ImageDraw.Draw(pil)
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
    margin = int(size * rng.uniform(0.3, 1.5))
    x = margin if rng.random() < 0.5 else max(0, width - (x1 - x0) - margin)
    y = margin if rng.random() < 0.5 else max(0, height - (y1 - y0) - margin)
    ink = 255 if rng.random() < 0.8 else 0
    if rng.random() < 0.4:  # a marker plate: a box around the letter
        pad = size // 4
        draw.rectangle(
            (x - pad, y - pad, x + x1 - x0 + pad, y + y1 - y0 + pad), outline=ink, width=2
        )
    draw.text((x - x0, y - y0), text, fill=ink, font=font)
    return np.asarray(pil, np.float32) / 255.0


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed-size bitmap font
        return ImageFont.load_default()


# ----------------------------------------------------------------------------- exposure


def gamma(image: np.ndarray, value: float) -> np.ndarray:
    """Gamma curve: values above 1 darken the mid-tones, below 1 brighten them."""
    return np.power(np.clip(image, 0.0, 1.0), value).astype(np.float32)


def contrast(image: np.ndarray, gain: float, offset: float) -> np.ndarray:
    """Linear exposure change `gain * (x - 0.5) + 0.5 + offset`, clipped to [0, 1]."""
    return np.clip(gain * (image - 0.5) + 0.5 + offset, 0.0, 1.0).astype(np.float32)


def blur(image: np.ndarray, radius: float) -> np.ndarray:
    """Gaussian blur with standard deviation `radius` pixels (edges extended)."""
    half = max(1, int(3 * radius))
    taps = np.exp(-0.5 * (np.arange(-half, half + 1) / max(radius, 1e-3)) ** 2)
    taps = (taps / taps.sum()).astype(np.float32)
    padded = np.pad(np.asarray(image, np.float32), half, mode="edge")
    rows = np.apply_along_axis(np.convolve, 1, padded, taps, mode="valid")
    return np.apply_along_axis(np.convolve, 0, rows, taps, mode="valid").astype(np.float32)


def noise(image: np.ndarray, rng: np.random.Generator, std: float) -> np.ndarray:
    """Add Gaussian noise of standard deviation `std`, clipped to [0, 1]."""
    noisy = image + rng.normal(0.0, std, image.shape).astype(np.float32)
    return np.clip(noisy, 0.0, 1.0)


def invert(image: np.ndarray) -> np.ndarray:
    """Inverted polarity (bone dark), as some systems export."""
    return (1.0 - image).astype(np.float32)


def restretch(image: np.ndarray) -> np.ndarray:
    """The contrast stretch `core.imaging.read_xray` applies to every file, so an augmented image
    looks the way the app would see it after saving and reading it back."""
    return _stretch_contrast(np.asarray(image, np.float32))


# ----------------------------------------------------------------------------- recipes


def flip_angle_and_exposure(image: np.ndarray, rng: np.random.Generator, p: float) -> np.ndarray:
    """The changes `acquisition` and `after_correction` share: a flip, a small rotation, gamma
    and contrast, blur or noise (each but the flip `p` times as often as at full strength)."""
    if rng.random() < 0.5:
        image = flip(image)
    if rng.random() < 0.6 * p:
        image = rotate(image, float(rng.uniform(-20, 20)))
    if rng.random() < 0.7 * p:
        image = gamma(image, float(np.exp(rng.uniform(np.log(0.5), np.log(2.0)))))
    if rng.random() < 0.5 * p:
        image = contrast(image, float(rng.uniform(0.6, 1.4)), float(rng.uniform(-0.15, 0.15)))
    if rng.random() < 0.3 * p:
        image = blur(image, float(rng.uniform(0.5, 2.0)) * max(image.shape) / 512)
    if rng.random() < 0.3 * p:
        image = noise(image, rng, float(rng.uniform(0.01, 0.05)))
    return image


def acquisition(image: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """A random mix of the ways another hospital's image differs: rotation by multiples of 90
    degrees plus a small angle, a flip, exposure and gamma, blur or noise, inverted polarity,
    borders and a burned-in letter. `strength` scales how often each change is applied."""
    p = float(np.clip(strength, 0.0, 1.0))
    if rng.random() < 0.75 * p:
        image = rotate90(image, int(rng.integers(1, 4)))
    image = flip_angle_and_exposure(image, rng, p)
    if rng.random() < 0.1 * p:
        image = invert(image)
    if rng.random() < 0.5 * p:
        image = burn_letter(image, rng)
    if rng.random() < 0.5 * p:
        value = 0.0 if rng.random() < 0.85 else 1.0
        image = add_borders(image, rng, widest=0.3, value=value)
    return restretch(image)


def after_correction(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Another hospital's image as the fracture networks see it once the app has turned it
    upright and set its grey levels right (the orientation and polarity heads): a small
    rotation, a flip, exposure and gamma, blur or noise, a burned-in letter and borders."""
    image = flip_angle_and_exposure(image, rng, 1.0)
    if rng.random() < 0.5:
        image = burn_letter(image, rng)
    if rng.random() < 0.5:
        image = add_borders(image, rng, widest=0.3, value=0.0)
    return restretch(image)


def synthesize(
    image: np.ndarray,
    bone: str,
    marks: list[JointMark],
    rng: np.random.Generator,
    joint_probability: float = 0.6,
    crop_others: bool = False,
) -> tuple[np.ndarray, str]:
    """One training view of an image and its bone-type class.

    With a joint mark, the view is (with `joint_probability`) a tight view of that joint, labelled
    by the joint; otherwise the whole image (lightly cropped), keeping `bone`. Images of other
    regions are zoomed into at random when `crop_others` (safe only where no joint is visible).
    """
    if marks and rng.random() < joint_probability:
        mark = marks[int(rng.integers(len(marks)))]
        return joint_crop(image, mark, rng), mark.bone
    smallest = 0.45 if (bone == "Other" and crop_others) else 0.85
    return random_crop(image, rng, smallest), bone
