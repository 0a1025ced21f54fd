"""Read any supported X-ray file into a grayscale array, and the one `preprocess` for the models.

Training and inference both go through `prepare` + `normalize` (together: `preprocess`), so the
model always sees the same pixels it was trained on.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from core import errors

MAX_PIXELS = 60_000_000  # ~7700 x 7700: larger than any radiograph, small enough to be safe
MIN_SIDE = 32  # pixels; anything smaller cannot be a diagnostic image
COLOUR_LIMIT = 0.12  # mean channel spread (0-1 scale) above which an image is a colour photo
IMAGENET_BGR_MEAN = np.array([103.939, 116.779, 123.68], dtype=np.float32)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm", ".dicom")

ImageFile.LOAD_TRUNCATED_IMAGES = False


def read_xray(path: str | Path) -> np.ndarray:
    """Read an image or DICOM file as a 2-D float32 array scaled to [0, 1] (white = dense bone).

    Raises a subclass of `errors.ImageReadError` with a clinician-readable message on failure.
    """
    path = Path(path)
    _check_file(path)
    if _is_dicom(path):
        from core.dicom import read_dicom  # pydicom is imported only when needed

        image = read_dicom(path)
    else:
        image = _read_raster(path)
    _check_shape(image, path)
    return _stretch_contrast(image)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise errors.FileMissingError(
            f"The file '{path.name}' was not found.", "Check that it has not been moved or deleted."
        )
    if not path.is_file():
        raise errors.NotAFileError(
            f"'{path.name}' is a folder, not an image file.", "Choose an image file inside it."
        )
    if path.stat().st_size == 0:
        raise errors.EmptyFileError(
            f"The file '{path.name}' is empty (0 bytes).",
            "It may not have copied fully; try again.",
        )


def _is_dicom(path: Path) -> bool:
    if path.suffix.lower() in (".dcm", ".dicom"):
        return True
    with path.open("rb") as handle:
        handle.seek(128)
        return handle.read(4) == b"DICM"


def _read_raster(path: Path) -> np.ndarray:
    """Decode PNG/JPEG/BMP/TIFF (8 or 16 bit, any mode), honouring EXIF orientation."""
    unsupported = errors.UnsupportedFormatError(
        f"'{path.name}' is not an image we can read.",
        "Use a PNG, JPEG, BMP, TIFF or DICOM X-ray.",
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                if opened.width * opened.height > MAX_PIXELS:
                    raise _too_large(path, opened.width, opened.height)
                opened.load()
                image = ImageOps.exif_transpose(opened)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _too_large(path) from exc
    except UnidentifiedImageError as exc:
        if _png_declares_no_pixels(path):
            raise errors.EmptyImageError(
                f"The image '{path.name}' has no pixels (its size is zero).",
                "Export the image again from the imaging system.",
            ) from exc
        raise unsupported from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise errors.CorruptImageError(
            f"The image '{path.name}' is damaged or incomplete.",
            "Export it again from the imaging system.",
        ) from exc
    return _to_gray(image, path)


def _png_declares_no_pixels(path: Path) -> bool:
    """True for a PNG whose header declares a width or height of zero."""
    with path.open("rb") as handle:
        head = handle.read(24)
    if not head.startswith(b"\x89PNG\r\n\x1a\n") or len(head) < 24:
        return False
    return int.from_bytes(head[16:20], "big") == 0 or int.from_bytes(head[20:24], "big") == 0


def _too_large(path: Path, width: int = 0, height: int = 0) -> errors.ImageTooLargeError:
    size = f" ({width} x {height} pixels)" if width else ""
    return errors.ImageTooLargeError(
        f"The image '{path.name}' is too large to open safely{size}.",
        "Export a smaller copy (under 7,000 pixels per side).",
    )


def _to_gray(image: Image.Image, path: Path) -> np.ndarray:
    """Convert any PIL mode to a float32 gray array in [0, 1]; reject colour photographs."""
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA"):
        image = image.convert("RGB" if image.mode == "RGBA" else "L")
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float32)
        top = 65535.0 if array.max(initial=0) > 255 else 255.0
        return np.clip(array / top, 0.0, 1.0)
    if image.mode == "1":
        image = image.convert("L")
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    array = np.asarray(image, dtype=np.float32) / 255.0
    if array.ndim == 3:
        if _colour_spread(array) > COLOUR_LIMIT:
            raise errors.NotAnXrayError(
                f"'{path.name}' looks like a colour photograph, not an X-ray.",
                "Open a radiograph of an elbow, hand or shoulder.",
            )
        array = array.mean(axis=2)
    return array


def _colour_spread(rgb: np.ndarray) -> float:
    """Mean absolute difference between colour channels (0 for a gray image)."""
    small = rgb[:: max(1, rgb.shape[0] // 256), :: max(1, rgb.shape[1] // 256)]
    return float(np.abs(small - small.mean(axis=2, keepdims=True)).mean() * 2)


def _check_shape(image: np.ndarray, path: Path) -> None:
    if image.ndim != 2 or image.size == 0 or min(image.shape) < MIN_SIDE:
        shape = "x".join(str(side) for side in image.shape) or "0"
        raise errors.EmptyImageError(
            f"The image '{path.name}' is too small ({shape} pixels) to be an X-ray.",
            "Open the full-size image.",
        )
    if not np.isfinite(image).all():
        raise errors.CorruptImageError(
            f"The image '{path.name}' contains invalid pixel values.",
            "Export it again from the imaging system.",
        )


def _stretch_contrast(image: np.ndarray) -> np.ndarray:
    """Map the 0.5th-99.5th intensity percentiles to [0, 1] so every source looks alike."""
    small = image[:: max(1, image.shape[0] // 512), :: max(1, image.shape[1] // 512)]
    low, high = np.percentile(small, [0.5, 99.5])
    if high - low < 1e-6:
        return np.zeros_like(image, dtype=np.float32)
    return np.clip((image - low) / (high - low), 0.0, 1.0).astype(np.float32)


def prepare(image: np.ndarray, size: int) -> np.ndarray:
    """Fit a [0, 1] gray image into a `size` x `size` square (aspect kept, black padding).

    Returns float32 in [0, 255] with shape (size, size, 3), ready for augmentation or `normalize`.
    """
    height, width = image.shape
    scale = size / max(height, width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    pil = Image.fromarray(np.asarray(image * 255.0, dtype=np.float32), mode="F")
    resized = np.asarray(pil.resize((new_w, new_h), Image.Resampling.BILINEAR), dtype=np.float32)
    canvas = np.zeros((size, size), dtype=np.float32)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    canvas[top : top + new_h, left : left + new_w] = np.clip(resized, 0.0, 255.0)
    return np.repeat(canvas[:, :, None], 3, axis=2)


def normalize(pixels):  # numpy array or tf.Tensor, values in [0, 255], channels last
    """ResNet50 'caffe' normalisation (as `keras.applications.resnet50.preprocess_input`).

    Works on numpy arrays and TensorFlow tensors alike; the channels are equal for X-rays, so the
    RGB-to-BGR swap is the identity and only the ImageNet mean is subtracted.
    """
    return pixels[..., ::-1] - IMAGENET_BGR_MEAN


def preprocess(image: np.ndarray, size: int) -> np.ndarray:
    """The one preprocessing used by training and inference: `normalize(prepare(image, size))`."""
    return normalize(prepare(image, size)).astype(np.float32)


def load_and_preprocess(path: str | Path, size: int) -> np.ndarray:
    """Read an X-ray file and return the model input of shape (size, size, 3)."""
    return preprocess(read_xray(path), size)
