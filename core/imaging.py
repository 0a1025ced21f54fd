"""Read any supported X-ray file into a grayscale array, and the one `preprocess` for the models.

Training and inference both go through `prepare` + `normalize` (together: `preprocess`), so the
model always sees the same pixels it was trained on.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageFile, ImageOps, UnidentifiedImageError

from core import errors
from core.framing import Box, Frame, content_box, frame_for

MAX_PIXELS = 60_000_000  # ~7700 x 7700: larger than any radiograph, small enough to be safe
MAX_FILE_BYTES = 256 * 1024 * 1024  # no radiograph file is this large; refuse before reading it
BAND_BYTES = 4 << 20  # large images are copied out of Pillow in bands of this size
MIN_SIDE = 32  # pixels; anything smaller cannot be a diagnostic image
COLOUR_LIMIT = 0.12  # mean channel spread (0-1 scale) above which an image is a colour photo
BLANK_SPREAD = 1e-3  # 0.5th-99.5th percentile range (0-1 scale) below which an image is blank
MIN_STRUCTURE = 0.15  # range of coarse block means, as a share of the pixel range, for anatomy
IMAGENET_BGR_MEAN = np.array([103.939, 116.779, 123.68], dtype=np.float32)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm", ".dicom")
RASTER_FORMATS = ("PNG", "JPEG", "BMP", "DIB", "TIFF", "GIF", "WEBP", "JPEG2000")
LAST_BLOCK_ROW = 17  # JPEG rows in one row of blocks (up to 16), +1 for 2:1 chroma smoothing
CUT_SHORT = "The file was cut short; the image is complete."
CUT_SHORT_EDGE = "The file was cut short; a few pixel rows at the bottom edge may be incomplete."

ImageFile.LOAD_TRUNCATED_IMAGES = False

_RASTER_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"II*\x00", b"MM\x00*", b"GIF8")
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_JPEG_END = b"\xff\xd9"


@dataclass(frozen=True)
class XrayImage:
    """A decoded X-ray: gray pixels in [0, 1] and notes for the reader (e.g. a file cut short)."""

    pixels: np.ndarray
    notes: tuple[str, ...] = ()


def read_xray(path: str | Path) -> np.ndarray:
    """Read an image or DICOM file as a 2-D float32 array scaled to [0, 1] (white = dense bone).

    Raises a subclass of `errors.ImageReadError` with a clinician-readable message on failure.
    """
    return load_xray(path).pixels


def load_xray(path: str | Path) -> XrayImage:
    """`read_xray` with the notes a reader should see (e.g. that the file was cut short)."""
    return decode_xray(read_file_bytes(path), Path(path).name)


def read_file_bytes(path: str | Path) -> bytes:
    """The whole content of a regular file, or a typed error (missing, folder, device, pipe,
    no permission, name too long, empty, too large). Never blocks on a pipe or device."""
    path = Path(path)
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        descriptor = os.open(path, flags)
    except OSError as exc:
        raise _path_error(path, exc) from exc
    except ValueError as exc:  # a NUL character in the name
        raise errors.FileMissingError(
            f"'{_shown(path)}' is not a valid file name.", "Choose the file again in the dialog."
        ) from exc
    try:
        info = os.fstat(descriptor)
        if stat.S_ISDIR(info.st_mode):
            raise _folder(path)
        if not stat.S_ISREG(info.st_mode):
            raise _special(path)
        if info.st_size > MAX_FILE_BYTES:
            raise _file_too_large(path, info.st_size)
        with os.fdopen(descriptor, "rb", closefd=False) as handle:
            data = handle.read(info.st_size + 1)  # one byte more notices a file still growing
            if len(data) > info.st_size:
                data += handle.read(MAX_FILE_BYTES + 1 - len(data))
    except OSError as exc:
        raise _path_error(path, exc) from exc
    finally:
        os.close(descriptor)
    if not data:
        raise errors.EmptyFileError(
            f"The file '{_shown(path)}' is empty (0 bytes).",
            "It may not have copied fully; try again.",
        )
    if len(data) > MAX_FILE_BYTES:
        raise _file_too_large(path, len(data))
    return data


def decode_xray(data: bytes, name: str) -> XrayImage:
    """Decode the bytes of an image or DICOM file (the format is sniffed from the content).

    `name` is only used in messages. Raises a subclass of `errors.ImageReadError` on failure.
    """
    if is_dicom(data, name):
        from core.dicom import read_dicom  # pydicom is imported only when needed

        image, notes = read_dicom(data, name, MAX_PIXELS)
    else:
        image, notes = _read_raster(data, name)
    _check_shape(image, name)
    image = grey_levels(image)
    _check_content(image, name)
    return XrayImage(_stretch_contrast(image), notes)


def grey_levels(image: np.ndarray) -> np.ndarray:
    """A [0, 1] gray image rounded to 256 grey levels (k / 255), as float32.

    Everything after decoding (content checks, contrast, framing, the networks) is a function of
    these levels only: the same picture as PNG, JPEG or DICOM gives the same answer, and a change
    smaller than half a grey level (e.g. float rounding of 1e-7) changes nothing. The models
    learned from 8-bit images, and their int8 inputs hold no finer steps.
    """
    levels = np.empty(image.shape, np.float32)
    rows = max(1, BAND_BYTES // (8 * max(1, image.shape[1])))
    for top in range(0, image.shape[0], rows):
        band = np.asarray(image[top : top + rows], np.float64)
        levels[top : top + rows] = np.rint(np.clip(band, 0.0, 1.0) * 255.0) / 255.0
    return levels


def _shown(path: Path | str) -> str:
    """A file name short enough for a message."""
    name = Path(path).name or str(path)
    return name if len(name) <= 60 else f"{name[:40]}…{name[-15:]}"


def _folder(path: Path) -> errors.NotAFileError:
    return errors.NotAFileError(
        f"'{_shown(path)}' is a folder, not an image file.", "Choose an image file inside it."
    )


def _path_error(path: Path, exc: OSError) -> errors.ImageReadError:
    """The typed error for an operating-system failure to open or read `path`."""
    name = _shown(path)
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return errors.FileMissingError(
            f"The file '{name}' was not found.", "Check that it has not been moved or deleted."
        )
    if exc.errno == errno.ENAMETOOLONG:
        return errors.FileNameTooLongError(
            f"The file name '{name}' is too long for this computer to open "
            f"({len(str(path))} characters in its full path).",
            "Rename the file or its folders with shorter names and open it again.",
        )
    kind = _kind_of(path)
    if exc.errno == errno.EISDIR or kind == "folder":
        return _folder(path)
    if kind == "special":  # e.g. a socket, which cannot be opened at all
        return _special(path)
    if exc.errno in (errno.EACCES, errno.EPERM):
        return errors.FileUnreadableError(
            f"You do not have permission to read the file '{name}'.",
            "Ask for read access, or copy the file to a folder of your own.",
        )
    reason = exc.strerror or type(exc).__name__
    return errors.FileUnreadableError(
        f"The file '{name}' could not be read ({reason}).",
        "Check the drive or network share, then try again.",
    )


def _kind_of(path: Path) -> str:
    """'folder', 'file', 'special' (device, pipe, socket) or '' when it cannot be looked at."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return ""
    if stat.S_ISDIR(mode):
        return "folder"
    return "file" if stat.S_ISREG(mode) else "special"


def _special(path: Path) -> errors.NotAFileError:
    return errors.NotAFileError(
        f"'{_shown(path)}' is not an image file (it is a device, a pipe or a socket).",
        "Choose an X-ray image file.",
    )


def _file_too_large(path: Path, size: int) -> errors.ImageTooLargeError:
    return errors.ImageTooLargeError(
        f"The file '{_shown(path)}' is too large to open safely ({size / 2**20:,.0f} MB).",
        "Export a smaller copy (under 7,000 pixels per side).",
    )


def is_dicom(data: bytes, name: str) -> bool:
    """DICOM by content: the 'DICM' marker, or (for .dcm files and bare datasets) no image
    signature; a PNG named .dcm is a PNG."""
    if data[128:132] == b"DICM":
        return True
    if data.startswith(_RASTER_MAGIC) or data[8:12] == b"WEBP":
        return False
    bare_dataset = data[:2] in (b"\x02\x00", b"\x08\x00") and data[3:4] == b"\x00"
    return bare_dataset or Path(name).suffix.lower() in (".dcm", ".dicom")


def _read_raster(data: bytes, name: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Decode PNG/JPEG/BMP/TIFF (8 or 16 bit, any mode), honouring EXIF orientation."""
    if _jpeg_cut_short(data) and _JPEG_END not in data:  # plainly cut: no failing first decode
        return _read_cut_jpeg(data, name)
    try:
        image = _open_raster(data, name)
    except errors.CorruptImageError:
        if not _jpeg_cut_short(data):
            raise
        return _read_cut_jpeg(data, name)  # e.g. cut after an embedded thumbnail's end marker
    notes = (CUT_SHORT,) if data.startswith(b"\x89PNG") and not data.endswith(_PNG_END) else ()
    return _to_gray(image, name), notes


def _read_cut_jpeg(data: bytes, name: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """A JPEG cut short: its pixels when at most the last row of blocks is missing."""
    image = _open_raster(data + _JPEG_END, name)
    rows = _jpeg_rows_after_cut(data, image)
    if rows > LAST_BLOCK_ROW:
        raise _damaged(name)
    return _to_gray(image, name), (CUT_SHORT_EDGE if rows else CUT_SHORT,)


def _open_raster(data: bytes, name: str) -> Image.Image:
    """Open and fully decode with Pillow; every Pillow failure becomes a typed error."""
    try:
        with Image.open(io.BytesIO(data), formats=RASTER_FORMATS) as opened:
            if opened.width * opened.height > MAX_PIXELS:
                raise _too_large(name, opened.width, opened.height)
            _check_codestream(data, name)
            _check_tiles(opened, name)
            opened.load()
            return ImageOps.exif_transpose(opened)
    except errors.TriageError:
        raise
    except Image.DecompressionBombError as exc:
        raise _too_large(name) from exc
    except UnidentifiedImageError as exc:
        if _png_declares_no_pixels(data):
            raise errors.EmptyImageError(
                f"The image '{name}' has no pixels (its size is zero).",
                "Export the image again from the imaging system.",
            ) from exc
        raise errors.UnsupportedFormatError(
            f"'{name}' is not an image we can read.",
            "Use a PNG, JPEG, BMP, TIFF or DICOM X-ray.",
        ) from exc
    except MemoryError as exc:
        raise _too_large(name) from exc
    except Exception as exc:  # noqa: BLE001 - any decoder failure means a damaged file
        raise _damaged(name) from exc


def _check_codestream(data: bytes, name: str) -> None:
    """Before decoding: a JPEG 2000 codestream (bare or in JP2 boxes) within the pixel budget
    whatever its file header says, and a JPEG with no more scans than a real X-ray has."""
    from core.dicom import MAX_JPEG_SCANS, _too_many_scans, codestream_size, jpeg_scans

    if jpeg_scans(data) > MAX_JPEG_SCANS:
        raise _too_many_scans(name)
    if data[:2] == b"\xff\xd8":
        return
    try:
        size = codestream_size(data)
    except (ValueError, IndexError):
        return  # Pillow's decoder gives the damaged-file error
    if size is not None and size[0] * size[1] > MAX_PIXELS:
        raise _too_large(name, size[1], size[0])


def _check_tiles(opened: Image.Image, name: str) -> None:
    """A TIFF whose strips or tiles cover only part of the size it declares (a 64 x 524,336
    image from 3 KB of pixels) is damaged: refused before Pillow allocates the whole size."""
    if opened.format != "TIFF":
        return
    covered = sum(
        max(0, right - left) * max(0, bottom - top)
        for _codec, (left, top, right, bottom), *_rest in opened.tile
    )
    if covered < opened.width * opened.height:
        raise _damaged(name)


def _damaged(name: str) -> errors.CorruptImageError:
    return errors.CorruptImageError(
        f"The image '{name}' is damaged or incomplete.", "Export it again from the imaging system."
    )


def _jpeg_cut_short(data: bytes) -> bool:
    return data.startswith(b"\xff\xd8\xff") and not data.rstrip(b"\x00").endswith(_JPEG_END)


def _jpeg_rows_after_cut(data: bytes, image: Image.Image) -> int:
    """How many pixel rows at the bottom lie after the point where a cut JPEG's data ends.

    The file is decoded a second time with filler bytes before the end marker: rows whose data
    is in the file decode the same both times; rows after the cut differ. (So a cut JPEG is
    decoded twice, an intact one once; a scan bomb is refused before either.)
    """
    try:
        other = _open_raster(data + b"\x55" * 256 + _JPEG_END, "")
    except errors.ImageReadError:
        return image.height
    try:
        changed = ImageChops.difference(image, other).getbbox()  # (left, top, right, bottom)
    except Exception:  # noqa: BLE001 - decodes that cannot be compared: treat rows as missing
        return image.height
    return image.height - changed[1] if changed else 0


def _png_declares_no_pixels(data: bytes) -> bool:
    """True for a PNG whose header declares a width or height of zero."""
    head = data[:24]
    if not head.startswith(b"\x89PNG\r\n\x1a\n") or len(head) < 24:
        return False
    return int.from_bytes(head[16:20], "big") == 0 or int.from_bytes(head[20:24], "big") == 0


def _too_large(name: str, width: int = 0, height: int = 0) -> errors.ImageTooLargeError:
    size = f" ({width} x {height} pixels)" if width else ""
    return errors.ImageTooLargeError(
        f"The image '{name}' is too large to open safely{size}.",
        "Export a smaller copy (under 7,000 pixels per side).",
    )


def _to_gray(image: Image.Image, name: str) -> np.ndarray:
    """Convert any PIL mode to a float32 gray array in [0, 1]; reject colour photographs."""
    try:
        if image.mode == "P":
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        if image.mode in ("RGBA", "LA", "PA"):
            image = image.convert("RGB" if image.mode == "RGBA" else "L")
        if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
            array = _as_array(image).astype(np.float32)
            if not np.isfinite(array).all():
                raise _invalid_values(name)
            top = 65535.0 if array.max(initial=0) > 255 else 255.0
            return np.clip(array / top, 0.0, 1.0)
        if image.mode == "1":
            image = image.convert("L")
        if image.mode not in ("L", "RGB"):
            image = image.convert("RGB")
        array = _as_array(image)
    except errors.TriageError:
        raise
    except MemoryError as exc:
        raise _too_large(name, image.width, image.height) from exc
    except Exception as exc:  # noqa: BLE001 - a mode Pillow cannot convert is a damaged file
        raise _damaged(name) from exc
    if array.ndim == 3:
        if _colour_spread(array) > COLOUR_LIMIT:
            raise errors.NotAnXrayError(
                f"'{name}' looks like a colour photograph, not an X-ray.",
                "Open a radiograph of an elbow, hand or shoulder.",
            )
        total = array.sum(axis=2, dtype=np.uint16)  # the channel mean, without a float RGB copy
        return total.astype(np.float32) / np.float32(3 * 255)
    return array.astype(np.float32) / np.float32(255)


def _as_array(image: Image.Image) -> np.ndarray:
    """`np.asarray(image)`, copied in bands of rows: no single copy of a large image holds up
    other threads (the window) for long."""
    rows = max(1, BAND_BYTES // max(1, image.width * len(image.getbands())))
    if image.height <= rows:
        return np.asarray(image)
    bands = [(top, min(image.height, top + rows)) for top in range(0, image.height, rows)]
    first = np.asarray(image.crop((0, 0, image.width, bands[0][1])))
    array = np.empty((image.height, *first.shape[1:]), first.dtype)
    array[: bands[0][1]] = first
    for top, bottom in bands[1:]:
        array[top:bottom] = np.asarray(image.crop((0, top, image.width, bottom)))
    return array


def _colour_spread(rgb: np.ndarray) -> float:
    """Mean absolute difference between colour channels, 0-1 scale (0 for a gray image)."""
    small = rgb[:: max(1, rgb.shape[0] // 256), :: max(1, rgb.shape[1] // 256)]
    small = small.astype(np.float32) / 255.0
    return float(np.abs(small - small.mean(axis=2, keepdims=True)).mean() * 2)


def _check_shape(image: np.ndarray, name: str) -> None:
    if image.ndim != 2 or image.size == 0 or min(image.shape) < MIN_SIDE:
        shape = "x".join(str(side) for side in image.shape) or "0"
        raise errors.EmptyImageError(
            f"The image '{name}' is too small ({shape} pixels) to be an X-ray.",
            "Open the full-size image.",
        )
    if not np.isfinite(image).all():
        raise _invalid_values(name)


def _invalid_values(name: str) -> errors.CorruptImageError:
    return errors.CorruptImageError(
        f"The image '{name}' contains invalid pixel values.",
        "Export it again from the imaging system.",
    )


def _sample(image: np.ndarray) -> np.ndarray:
    """Every n-th pixel, about 512 x 512 of them: enough for intensity statistics."""
    return image[:: max(1, image.shape[0] // 512), :: max(1, image.shape[1] // 512)]


def _check_content(image: np.ndarray, name: str) -> None:
    """Refuse an image with no anatomy: (nearly) one value, or only noise and specks."""
    small = _sample(image)
    low, high = np.percentile(small, [0.5, 99.5])
    if high - low < BLANK_SPREAD:
        raise errors.BlankImageError(
            f"The image '{name}' is blank: almost every pixel has the same value "
            "(it holds no anatomy to assess).",
            "Check that the right image was exported; a blank exposure cannot be assessed.",
        )
    rows, cols = (side // 16 * 16 for side in small.shape)
    blocks = small[:rows, :cols].reshape(16, rows // 16, 16, cols // 16).mean(axis=(1, 3))
    coarse_low, coarse_high = np.percentile(blocks, [1, 99])
    if (coarse_high - coarse_low) / (high - low) < MIN_STRUCTURE:
        raise errors.BlankImageError(
            f"The image '{name}' shows no structure (only noise or specks, no anatomy).",
            "Check that the right image was exported; this image cannot be assessed.",
        )


def _stretch_contrast(image: np.ndarray) -> np.ndarray:
    """Map the 0.5th-99.5th intensity percentiles to [0, 1] so every source looks alike."""
    low, high = np.percentile(_sample(image), [0.5, 99.5])
    if high - low < 1e-6:
        return np.zeros_like(image, dtype=np.float32)
    stretched = np.empty(image.shape, np.float32)
    rows = max(1, BAND_BYTES // (8 * image.shape[1]))  # in bands: small temporary arrays
    for top in range(0, image.shape[0], rows):
        band = image[top : top + rows]
        stretched[top : top + rows] = np.clip((band - low) / (high - low), 0.0, 1.0)
    return stretched


def prepare(image: np.ndarray, size: int) -> np.ndarray:
    """Crop a [0, 1] gray image to its content and fit it into a `size` square (black padding).

    Returns float32 in [0, 255] with shape (size, size, 3), ready for augmentation or `normalize`.
    """
    return prepare_framed(image, size)[0]


def prepare_framed(
    image: np.ndarray, size: int, box: Box | None = None
) -> tuple[np.ndarray, Frame]:
    """`prepare`, and the `Frame` that maps model pixels back to the image's own pixels
    (`box`: the image's `content_box`, to skip finding it again for a second size)."""
    canvas, frame = _framed_canvas(image, size, box)
    return np.repeat(canvas[:, :, None], 3, axis=2), frame


def model_inputs(
    image: np.ndarray, sizes: Sequence[int], box: Box | None = None
) -> list[tuple[np.ndarray, Frame]]:
    """`normalize(prepare_framed(image, size, box))` at each of `sizes` in one step (an X-ray's
    three channels are equal), with each `Frame`: what the engine feeds its networks. The content
    box is found once and the image's content handed to Pillow once for all sizes."""
    if box is None:
        box = content_box(image)
    content = _content_image(image, box)
    inputs = []
    for size in sizes:
        frame = frame_for(image, size, box=box)
        canvas = _canvas(content, frame)
        pixels = np.empty((size, size, 3), dtype=np.float32)
        for channel, mean in enumerate(IMAGENET_BGR_MEAN):  # 8x faster than broadcasting over 3
            np.subtract(canvas, mean, out=pixels[:, :, channel])
        inputs.append((pixels, frame))
    return inputs


def _framed_canvas(image: np.ndarray, size: int, box: Box | None) -> tuple[np.ndarray, Frame]:
    """The cropped, resized and padded (size, size) gray square in [0, 255], and its `Frame`."""
    frame = frame_for(image, size, box=box)
    box = (frame.top, frame.left, frame.height, frame.width)
    return _canvas(_content_image(image, box), frame), frame


def _content_image(image: np.ndarray, box: Box) -> Image.Image:
    """The content box of a [0, 1] gray image as a Pillow float image."""
    top, left, height, width = box
    content = image[top : top + height, left : left + width]
    return Image.fromarray(np.ascontiguousarray(content, dtype=np.float32), mode="F")


def _canvas(content: Image.Image, frame: Frame) -> np.ndarray:
    """`content` resized by `frame` and placed on its black (size, size) square, in [0, 255]."""
    new_h, new_w = frame.resized_shape
    resized = np.asarray(content.resize((new_w, new_h), Image.Resampling.BILINEAR), np.float32)
    canvas = np.zeros((frame.size, frame.size), dtype=np.float32)
    top, left = frame.pad_top, frame.pad_left
    canvas[top : top + new_h, left : left + new_w] = np.clip(resized * 255.0, 0.0, 255.0)
    return canvas


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
