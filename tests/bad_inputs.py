"""Build the files the reliability tests feed the reader: DICOM variants, seeds, damaged images."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom import dcmwrite
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    RLELossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)

SYNTAXES = (  # the transfer syntaxes the seeds use (all decodable without extra packages)
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    RLELossless,
    JPEGBaseline8Bit,
)


def xray_array(width: int = 96, height: int = 128, seed: int = 0, top: int = 255) -> np.ndarray:
    """A gray image with a bright 'bone' band on a dark, noisy background (values 0..top)."""
    rng = np.random.default_rng(seed)
    image = rng.normal(0.12, 0.04, (height, width))
    image[:, width // 3 : 2 * width // 3] += 0.6
    image[height // 2 : height // 2 + 4, width // 3 : 2 * width // 3] -= 0.4  # a "fracture line"
    return np.clip(image * top, 0, top)


def raster_bytes(array: np.ndarray, fmt: str, **options) -> bytes:
    """Encode an array with Pillow (`fmt` as Pillow names it: PNG, JPEG, TIFF, BMP)."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def dicom_dataset(
    pixels: np.ndarray | None,
    syntax=ExplicitVRLittleEndian,
    photometric: str = "MONOCHROME2",
    bits: int = 16,
    **tags,
) -> FileDataset:
    """A minimal DX dataset; `pixels` (H, W) or (frames, H, W) are stored with `bits` bits."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    dataset = FileDataset("x.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.Modality = "DX"
    if pixels is not None:
        frames = pixels.shape[0] if pixels.ndim == 3 else 1
        dataset.Rows, dataset.Columns = pixels.shape[-2:]
        dataset.SamplesPerPixel = 1
        dataset.PhotometricInterpretation = photometric
        dataset.BitsAllocated = dataset.BitsStored = bits
        dataset.HighBit = bits - 1
        dataset.PixelRepresentation = 0
        if frames > 1 or "NumberOfFrames" in tags:
            dataset.NumberOfFrames = frames
        dtype = np.uint8 if bits == 8 else np.uint16
        raw = pixels.astype(dtype).tobytes()
        if syntax == RLELossless:
            dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            dataset.PixelData = raw
            dataset.compress(RLELossless, encoding_plugin="pydicom")
        elif syntax == JPEGBaseline8Bit:
            frame = raster_bytes(pixels.astype(np.uint8), "JPEG", quality=90)
            dataset.PixelData = encapsulate([frame])
            dataset["PixelData"].VR = "OB"
            dataset.BitsAllocated = dataset.BitsStored = 8
            dataset.HighBit = 7
        else:
            dataset.PixelData = raw
    for key, value in tags.items():
        setattr(dataset, key, value)
    return dataset


def dicom_bytes(pixels: np.ndarray | None, syntax=ExplicitVRLittleEndian, **kwargs) -> bytes:
    """`dicom_dataset` written as a DICOM file (preamble, file meta, dataset)."""
    dataset = dicom_dataset(pixels, syntax, **kwargs)
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def bare_dicom_bytes(pixels: np.ndarray) -> bytes:
    """A dataset written without preamble or file meta (old systems), implicit VR."""
    dataset = dicom_dataset(pixels, ImplicitVRLittleEndian)
    dataset.file_meta = FileMetaDataset()
    dataset.preamble = None
    buffer = io.BytesIO()
    dcmwrite(buffer, dataset, implicit_vr=True, little_endian=True)
    return buffer.getvalue()


def write(path: Path, data: bytes) -> Path:
    """Write bytes, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def rle_bomb(side: int = 12_000) -> bytes:
    """A small RLE Lossless DICOM (8-bit) whose single frame decodes to `side` x `side` pixels.

    Each row is one RLE segment run list: 128-byte replicate runs (2 bytes each), so a
    12,000 x 12,000 image takes about 2.3 MB on disk.
    """
    full, rest = divmod(side, 128)
    row = b"\x81\x00" * full + (bytes([257 - rest, 0]) if rest > 1 else b"\x00\x00" * rest)
    segment = row * side
    header = struct.pack("<16I", 1, 64, *([0] * 14))
    frame = header + segment + (b"\x00" if len(segment) % 2 else b"")
    dataset = dicom_dataset(None, RLELossless)
    dataset.Rows = dataset.Columns = side
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated = dataset.BitsStored = 8
    dataset.HighBit = 7
    dataset.PixelRepresentation = 0
    dataset.PixelData = encapsulate([frame])
    dataset["PixelData"].VR = "OB"
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def element_offset(data: bytes, group: int, element: int) -> int:
    """Byte offset of the first explicit-VR little-endian element header (group, element)."""
    return data.index(struct.pack("<HH", group, element), 132)


def with_value_length(data: bytes, group: int, element: int, length: int) -> bytes:
    """Explicit VR LE: overwrite the 2-byte value length of a short-VR element."""
    at = element_offset(data, group, element) + 6
    return data[:at] + struct.pack("<H", length) + data[at + 2 :]


def with_string_value(data: bytes, group: int, element: int, text: bytes) -> bytes:
    """Explicit VR LE: replace a short string value (keeping the file otherwise intact)."""
    at = element_offset(data, group, element)
    (length,) = struct.unpack("<H", data[at + 6 : at + 8])
    value = text + b" " * (len(text) % 2)
    return data[: at + 6] + struct.pack("<H", len(value)) + value + data[at + 8 + length :]


def deflated_garbage(seed: int = 0) -> bytes:
    """A Deflated Explicit VR Little Endian file whose deflated body is random bytes."""
    good = dicom_bytes(xray_array(64, 64), DeflatedExplicitVRLittleEndian)
    meta_end = _meta_end(good)
    body = np.random.default_rng(seed).integers(0, 256, 400, dtype=np.uint8).tobytes()
    return good[:meta_end] + body


def _meta_end(data: bytes) -> int:
    """Offset just past the file meta group (its length is in (0002,0000))."""
    (group_length,) = struct.unpack("<I", data[132 + 8 : 132 + 12])
    return 132 + 12 + group_length


def jpeg_cut(data: bytes, missing: int) -> bytes:
    """A JPEG file missing its last `missing` bytes."""
    return data[:-missing]


def deflate_bomb(inflated_bytes: int = 300 * 1024 * 1024) -> bytes:
    """A Deflated Explicit VR Little Endian file whose small body inflates to `inflated_bytes`."""
    good = dicom_bytes(xray_array(64, 64), DeflatedExplicitVRLittleEndian)
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    chunk = b"\0" * (1 << 20)
    body = b"".join(packer.compress(chunk) for _ in range(inflated_bytes >> 20))
    return good[: _meta_end(good)] + body + packer.flush()


def zeros_deflate_body(inflated_bytes: int) -> bytes:
    """Raw deflate data inflating to `inflated_bytes` zeros, built in milliseconds: one
    fully-flushed 1 MB block (self-contained, byte-aligned) repeated, then the final block."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = packer.compress(b"\0" * (1 << 20)) + packer.flush(zlib.Z_FULL_FLUSH)
    return block * (inflated_bytes >> 20) + packer.flush()


def deflated_bomb(inflated_bytes: int, group_length: bool = True) -> bytes:
    """A Deflated DICOM whose ~1 MB-per-GB body inflates to `inflated_bytes`; without its file
    meta group length element when `group_length` is False (the decoder must still find the
    body)."""
    good = dicom_bytes(xray_array(64, 64), DeflatedExplicitVRLittleEndian)
    meta_end = _meta_end(good)
    meta = good[:meta_end] if group_length else good[:132] + good[132 + 12 : meta_end]
    return meta + zeros_deflate_body(inflated_bytes)


def progressive_scan_bomb(scans: int = 5000, side: int = 1024) -> bytes:
    """A progressive JPEG whose shortest scan is repeated until it has `scans` scans (each
    repeat is a valid scan the decoder runs over the whole image)."""
    gray = xray_array(side, side).astype(np.uint8)
    data = raster_bytes(gray, "JPEG", progressive=True, quality=90)
    end = data.rindex(b"\xff\xd9")
    starts = [at for at in range(len(data) - 1) if data[at : at + 2] == b"\xff\xda"]
    pieces = [data[a:b] for a, b in zip(starts, [*starts[1:], end], strict=True)]
    scan = min(pieces, key=len)
    at = starts[pieces.index(scan)] + len(scan)
    return data[:at] + scan * max(0, scans - len(pieces)) + data[at:]


def jp2_boxed(rows: int, columns: int, declared: int = 128) -> bytes:
    """A JP2 file (signature, file type and header boxes declaring `declared` pixels a side)
    whose codestream's SIZ marker says `rows` x `columns`."""

    def box(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", 8 + len(payload)) + kind + payload

    ihdr = box(b"ihdr", struct.pack(">IIHBBBB", declared, declared, 1, 7, 7, 0, 0))
    siz = (
        b"\xff\x51"
        + struct.pack(">HH", 41, 0)
        + struct.pack(">8I", columns, rows, 0, 0, columns, rows, 0, 0)
    )
    siz += struct.pack(">H", 1) + bytes([7, 1, 1])
    codestream = b"\xff\x4f" + siz + b"\xff\x90" + b"\0" * 64 + b"\xff\xd9"
    return (
        b"\x00\x00\x00\x0cjP  \r\n\x87\n"
        + box(b"ftyp", b"jp2 \x00\x00\x00\x00jp2 ")
        + box(b"jp2h", ihdr)
        + box(b"jp2c", codestream)
    )
