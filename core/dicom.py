"""Decode a single-frame DICOM radiograph into a [0, 1] gray array (rescale, VOI LUT, MONOCHROME1).

Every call into pydicom goes through this module, and every pydicom failure leaves it as one of
the typed errors in core/errors.py. The size is checked from the header before any decoding.
"""

from __future__ import annotations

import io
import logging
import zlib

import numpy as np

from core import errors

MAX_DECODED_BYTES = 128 * 1024 * 1024  # pixel budget in decoded bytes: rows x columns x frames
# x samples x bytes per sample (a 7,700-pixel square at 16 bits fits)
MAX_INFLATED_BYTES = MAX_DECODED_BYTES + (16 << 20)  # a Deflated dataset inflates no further
MAX_READS = 40_000  # pydicom reads per parse: ~15,000 elements, far above any X-ray header
DEFLATED_UID = b"1.2.840.10008.1.2.1.99"
EXPLICIT_LITTLE_UID = b"1.2.840.10008.1.2.1\x00"
WINDOW_IGNORED = "The display window stored in the DICOM file is invalid; the full range is shown."
_SAMPLE_COUNTS = (1, 3)
_BIT_DEPTHS = (1, 8, 16, 32, 64)


def read_dicom(data: bytes, name: str, max_pixels: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """Decode DICOM bytes to float32 in [0, 1], white meaning dense (as on a light box).

    Refuses, before decoding, an image of more than `max_pixels` pixels over all its frames, or
    of more than MAX_DECODED_BYTES decoded bytes. Returns the pixels and notes for the reader.
    """
    data = inflated(data, name)
    header = _parse(data, name, stop_before_pixels=True)
    if _has(header, "Rows") or _has(header, "Columns"):
        _check_header(header, name, max_pixels)
    dataset = _parse(data, name, stop_before_pixels=False)
    if not _has(dataset, "PixelData"):
        if not _is_document(dataset):  # an image whose pixels were lost, or no DICOM at all
            raise _corrupt(name)
        raise errors.DicomNoPixelDataError(
            f"The DICOM file '{name}' contains no image (it may be a report or a key object).",
            "Open the image series instead.",
        )
    _check_header(dataset, name, max_pixels)
    pixels = _decode(dataset, name, max_pixels)
    values, notes = _apply_luts(pixels, dataset, name)
    return _scaled(values, dataset, name), notes


def read_header(data: bytes, name: str):
    """The DICOM header only (never the pixel data), through the decoder's guards: a Deflated
    file inflated with a cap, and a bounded number of reads. Raises the decoder's typed errors."""
    return _parse(inflated(data, name), name, stop_before_pixels=True)


def inflated(data: bytes, name: str) -> bytes:
    """A Deflated file as the same file in Explicit VR Little Endian, inflated in 1 MB steps up
    to MAX_INFLATED_BYTES (pydicom would inflate it whole, without a limit); others as given."""
    meta_start, meta_end, syntax_at = _file_meta(data)
    if syntax_at is None or DEFLATED_UID not in data[syntax_at : syntax_at + 32]:
        return data
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    parts, total, body = [], 0, memoryview(data)[meta_end:]
    try:
        for start in range(0, len(body), 1 << 16):  # 64 KB in: at most ~66 MB out
            pending = body[start : start + (1 << 16)]
            while pending and not inflater.eof:
                part = inflater.decompress(pending, 1 << 23)
                total += len(part)
                if total > MAX_INFLATED_BYTES:
                    raise _too_large(name)
                parts.append(part)
                pending = inflater.unconsumed_tail
            if inflater.eof:
                break
    except zlib.error as exc:
        raise _corrupt(name) from exc
    meta = _rewritten_meta(data[meta_start:meta_end])
    return data[:meta_start] + meta + b"".join(parts)


def _file_meta(data: bytes) -> tuple[int, int, int | None]:
    """(start, end, offset of the transfer syntax value) of the group-2 file meta elements
    (Explicit VR Little Endian), walked element by element: no group length needed."""
    start = 132 if data[128:132] == b"DICM" else 0
    at, syntax_at = start, None
    while at + 8 <= len(data) and data[at : at + 2] == b"\x02\x00":
        element = int.from_bytes(data[at + 2 : at + 4], "little")
        if data[at + 4 : at + 6] in _LONG_VRS:
            length, value_at = int.from_bytes(data[at + 8 : at + 12], "little"), at + 12
        else:
            length, value_at = int.from_bytes(data[at + 6 : at + 8], "little"), at + 8
        if element == 0x0010:
            syntax_at = value_at
        at = value_at + length
    return start, min(at, len(data)), syntax_at


_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR"}
_LONG_VRS |= {b"UT", b"UV"}


def _rewritten_meta(meta: bytes) -> bytes:
    """The file meta with the transfer syntax set to Explicit VR Little Endian and without its
    group length (which would no longer be right)."""
    out, at = bytearray(), 0
    while at + 8 <= len(meta):
        element = int.from_bytes(meta[at + 2 : at + 4], "little")
        long_vr = meta[at + 4 : at + 6] in _LONG_VRS
        field = meta[at + 8 : at + 12] if long_vr else meta[at + 6 : at + 8]
        length = int.from_bytes(field, "little")
        end = at + (12 if long_vr else 8) + length
        if element == 0x0010:
            out += meta[at : at + 6] + len(EXPLICIT_LITTLE_UID).to_bytes(2, "little")
            out += EXPLICIT_LITTLE_UID
        elif element != 0x0000:
            out += meta[at:end]
        at = end
    return bytes(out)


def quiet_pydicom():
    """pydicom, told not to warn or log about the damage it reads: this module turns every
    problem into a typed error, so the warnings would only be noise on the console."""
    import pydicom

    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    logger = logging.getLogger("pydicom")
    if not any(isinstance(handler, logging.NullHandler) for handler in logger.handlers):
        logger.addHandler(logging.NullHandler())  # no console output unless the app logs
    return pydicom


def _parse(data: bytes, name: str, stop_before_pixels: bool):
    pydicom = quiet_pydicom()
    try:
        source = _Source(data)
        dataset = pydicom.dcmread(source, force=True, stop_before_pixels=stop_before_pixels)
        _set_transfer_syntax(dataset)
    except MemoryError as exc:
        raise _too_large(name) from exc
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds on a damaged file
        raise _corrupt(name) from exc
    return dataset


class _TooManyReads(Exception):
    """pydicom read more elements than any X-ray header has (e.g. a file of zeros)."""


class _ChunkedReader(io.RawIOBase):
    """Bytes served as a file, copied 1 MB at a time: reading large pixel data lets other
    threads (the window) run between copies instead of waiting for one long copy."""

    CHUNK = 1 << 20

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._view = memoryview(data)
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: len(self._view)}
        self._position = max(0, base[whence] + offset)
        return self._position

    def readinto(self, buffer) -> int:
        target = memoryview(buffer).cast("B")
        start = min(self._position, len(self._view))
        count = min(len(target), len(self._view) - start)
        for offset in range(0, count, self.CHUNK):
            end = min(count, offset + self.CHUNK)
            target[offset:end] = self._view[start + offset : start + end]
        self._position = start + count
        return count


class _Source:
    """The file-like object pydicom reads (read, seek, tell) over `_ChunkedReader`."""

    def __init__(self, data: bytes) -> None:
        reader = io.BufferedReader(_ChunkedReader(data))
        self.seek, self.tell = reader.seek, reader.tell
        self._read, self._reads, self._size = reader.read, 0, len(data)

    def read(self, size: int = -1) -> bytes:
        """At most what is left: a length field of 4 GB in a small file allocates nothing."""
        self._reads += 1
        if self._reads > MAX_READS:
            raise _TooManyReads()
        left = max(0, self._size - self.tell())
        return self._read(left if size is None or size < 0 or size > left else size)


def _set_transfer_syntax(dataset) -> None:
    """A dataset saved without a file header: record the encoding it was read with."""
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    if "TransferSyntaxUID" in dataset.file_meta:
        return
    implicit, little = dataset.original_encoding
    if implicit:
        dataset.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    else:
        dataset.file_meta.TransferSyntaxUID = (
            ExplicitVRLittleEndian if little else ExplicitVRBigEndian
        )


def _has(dataset, keyword: str) -> bool:
    try:
        return keyword in dataset and dataset[keyword].value is not None
    except Exception:  # noqa: BLE001 - an element that cannot be read is not there
        return False


def _is_document(dataset) -> bool:
    """True for a readable non-image object (a report, a key object, a PDF): its SOP class is
    one pydicom knows and is not an image storage class, and it has no image sizes."""
    if _has(dataset, "Rows") or _has(dataset, "Columns"):
        return False
    for holder, keyword in (
        (dataset, "SOPClassUID"),
        (dataset.file_meta, "MediaStorageSOPClassUID"),
    ):
        try:
            uid = holder.get(keyword, None)
            if uid is not None and uid.name != str(uid):  # a SOP class pydicom has a name for
                return "Image" not in uid.name
        except Exception:  # noqa: BLE001 - an unreadable class says nothing
            continue
    return False


def _number(dataset, keyword: str, name: str, default: int | None = None) -> int:
    """An integer header value; a missing one is `default`, an unreadable one is damage."""
    try:
        value = dataset.get(keyword, None)
        if value is None or value == "":
            if default is None:
                raise ValueError(f"{keyword} is missing")
            return default
        return int(value)
    except Exception as exc:  # noqa: BLE001 - garbage such as NumberOfFrames "ab"
        raise _corrupt(name) from exc


def _check_header(dataset, name: str, max_pixels: int) -> None:
    """Sizes from the header: sane, one frame, and within the pixel budget (before decoding)."""
    rows = _number(dataset, "Rows", name)
    columns = _number(dataset, "Columns", name)
    frames = _number(dataset, "NumberOfFrames", name, default=1) or 1
    samples = _number(dataset, "SamplesPerPixel", name, default=1)
    bits = _number(dataset, "BitsAllocated", name, default=16)
    if min(rows, columns, frames) < 0 or samples not in _SAMPLE_COUNTS or bits not in _BIT_DEPTHS:
        raise _corrupt(name)
    if rows * columns * frames > max_pixels:
        raise _too_large(name, columns, rows, frames)
    if rows * columns * frames * samples * max(1, bits // 8) > MAX_DECODED_BYTES:
        raise _too_large(name, columns, rows, frames)
    if frames > 1:
        raise errors.MultiFrameDicomError(
            f"The DICOM file '{name}' holds several frames; this tool reads single images.",
            "Export the view you want as a single image.",
        )


def _decode(dataset, name: str, max_pixels: int) -> np.ndarray:
    from pydicom.pixels import get_decoder

    syntax = dataset.file_meta.TransferSyntaxUID
    try:
        available = get_decoder(syntax).is_available
    except Exception:  # noqa: BLE001 - a transfer syntax pydicom has no decoder for
        available = False
    if not available:
        raise errors.UnsupportedFormatError(
            f"The DICOM file '{name}' uses a compression this tool cannot decode "
            f"({_syntax(syntax)}).",
            "Export it uncompressed or as PNG.",
        )
    _check_embedded_size(dataset, name, max_pixels)
    try:
        return dataset.pixel_array
    except MemoryError as exc:
        raise _too_large(name) from exc
    except Exception as exc:  # noqa: BLE001 - a decoder failure means damaged pixel data
        raise _corrupt(name) from exc


def _check_embedded_size(dataset, name: str, max_pixels: int) -> None:
    """A JPEG or JPEG 2000 frame inside the file is decoded at the size its own header gives,
    whatever Rows and Columns say: it must say the same, stay within the budgets and (JPEG) have
    no more scans than a real image (all checked before decoding)."""
    try:
        if not dataset.file_meta.TransferSyntaxUID.is_encapsulated:
            return
        fragment = _first_fragment(dataset["PixelData"].value)
        size = codestream_size(fragment)
        expected = (_number(dataset, "Rows", name), _number(dataset, "Columns", name))
    except errors.TriageError:
        raise
    except Exception as exc:  # noqa: BLE001 - an unreadable encapsulation is damage
        raise _corrupt(name) from exc
    if jpeg_scans(fragment) > MAX_JPEG_SCANS:
        raise _too_many_scans(name)
    if size is None:
        return
    rows, columns, samples, bits = size  # bits: bytes per sample
    if rows * columns > max_pixels or rows * columns * samples * bits > MAX_DECODED_BYTES:
        raise _too_large(name, columns, rows)
    if (rows, columns) != expected and rows != 0:  # 0 rows: the height comes later
        raise _corrupt(name)  # the file contradicts itself


MAX_JPEG_SCANS = 100  # a progressive X-ray has about 10 scans; thousands only waste time


def jpeg_scans(data) -> int:
    """How many JPEG scans (start-of-scan markers) `data` holds: in entropy-coded data a 0xFF
    byte is always followed by 0x00 or a restart marker, so this count is exact and cheap."""
    return bytes(data).count(b"\xff\xda") if bytes(data[:2]) == b"\xff\xd8" else 0


def _first_fragment(pixel_data: bytes) -> memoryview:
    """The first fragment of encapsulated pixel data (after the basic offset table item)."""
    view = memoryview(pixel_data)
    offset_table = int.from_bytes(view[4:8], "little")
    start = 8 + offset_table
    if bytes(view[start : start + 4]) != b"\xfe\xff\x00\xe0":
        raise ValueError("no fragment item")
    length = int.from_bytes(view[start + 4 : start + 8], "little")
    return view[start + 8 : start + 8 + length]


_SOF_MARKERS = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC} | {0xF7}  # incl. JPEG-LS
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"


def codestream_size(data) -> tuple[int, int, int, int] | None:
    """(rows, columns, samples, bytes per sample) from a JPEG frame header or a JPEG 2000 SIZ
    segment, the latter bare or inside a JP2 file's boxes; None if neither is found."""
    data = memoryview(data)
    if bytes(data[:12]) == _JP2_SIGNATURE:
        data = _jp2_codestream(data)
    if bytes(data[:4]) == b"\xff\x4f\xff\x51":  # JPEG 2000 codestream: SOC, then SIZ
        x_size, y_size, x_offset, y_offset = (
            int.from_bytes(data[8 + 4 * i : 12 + 4 * i], "big") for i in range(4)
        )
        samples = int.from_bytes(data[40:42], "big")
        bits = max((data[42 + 3 * i] & 0x7F) + 1 for i in range(max(1, samples)))
        return y_size - y_offset, x_size - x_offset, samples, (bits + 7) // 8
    if bytes(data[:2]) != b"\xff\xd8":
        return None
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF or marker == 0x01 or 0xD0 <= marker <= 0xD8:
            at += 1 if marker == 0xFF else 2
            continue
        if marker in _SOF_MARKERS:
            bits, rows = data[at + 4], int.from_bytes(data[at + 5 : at + 7], "big")
            columns, samples = int.from_bytes(data[at + 7 : at + 9], "big"), data[at + 9]
            return rows, columns, samples, (bits + 7) // 8
        if marker == 0xDA:  # scan data before any frame header
            return None
        at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
    return None


def _jp2_codestream(data: memoryview) -> memoryview:
    """The contiguous codestream box ('jp2c') of a JP2 file, found by walking its boxes."""
    at = 0
    while at + 8 <= len(data):
        length = int.from_bytes(data[at : at + 4], "big")
        kind, header = bytes(data[at + 4 : at + 8]), 8
        if length == 1:
            length, header = int.from_bytes(data[at + 8 : at + 16], "big"), 16
        elif length == 0:
            length = len(data) - at
        if kind == b"jp2c":
            return data[at + header : at + length]
        if length < header:
            break
        at += length
    raise ValueError("a JP2 file without a codestream")


def _too_many_scans(name: str) -> errors.ImageTooLargeError:
    return errors.ImageTooLargeError(
        f"The image '{name}' is stored in more than {MAX_JPEG_SCANS} passes (JPEG scans), far "
        "more than any X-ray; decoding it would take minutes.",
        "Export it again as PNG or as an ordinary JPEG.",
    )


def _syntax(syntax) -> str:
    try:
        return str(syntax.name)
    except Exception:  # noqa: BLE001
        return "unknown transfer syntax"


def _apply_luts(pixels: np.ndarray, dataset, name: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Modality LUT (rescale) always; the VOI LUT (window) when present and valid."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        with np.errstate(all="ignore"):
            values = apply_modality_lut(pixels, dataset)
    except MemoryError as exc:
        raise _too_large(name) from exc
    except Exception as exc:  # noqa: BLE001 - a damaged rescale or LUT sequence
        raise _corrupt(name) from exc
    if not np.isfinite(values).all():  # e.g. a rescale slope of NaN or 1e400
        raise _corrupt(name)
    if not ("VOILUTSequence" in dataset or "WindowCenter" in dataset):
        return values, ()
    try:
        with np.errstate(all="ignore"):
            windowed = apply_voi_lut(values, dataset)
        if np.isfinite(windowed).all() and np.ptp(windowed) > 0:
            return windowed, ()
    except MemoryError as exc:
        raise _too_large(name) from exc
    except Exception:  # noqa: BLE001 - an unusable window: show the full range instead
        pass
    return values, (WINDOW_IGNORED,)


def _scaled(values: np.ndarray, dataset, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float32)
    if values.ndim == 3 and values.shape[-1] in (3, 4):
        values = values[..., :3].mean(axis=2)
    if values.ndim != 2 or values.size == 0:
        raise _corrupt(name)
    with np.errstate(all="ignore"):
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    try:
        photometric = str(dataset.get("PhotometricInterpretation", "")).strip().upper()
    except Exception:  # noqa: BLE001 - unreadable: treat as the usual MONOCHROME2
        photometric = ""
    if photometric == "MONOCHROME1":
        scaled = 1.0 - scaled
    return scaled.astype(np.float32)


def _too_large(name: str, columns: int = 0, rows: int = 0, frames: int = 1):
    size = f" ({columns} x {rows} pixels" if columns else ""
    size += f" x {frames} frames)" if columns and frames > 1 else (")" if columns else "")
    return errors.ImageTooLargeError(
        f"The DICOM image '{name}' is too large to open safely{size}.",
        "Export a smaller copy (under 7,000 pixels per side).",
    )


def _corrupt(name: str) -> errors.CorruptImageError:
    return errors.CorruptImageError(
        f"The DICOM file '{name}' is damaged or not a valid DICOM image.",
        "Export it again from the imaging system.",
    )
