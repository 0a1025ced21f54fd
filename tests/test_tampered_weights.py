"""Tampered weights folders (issue 23): every manifest and head failure is a typed `ModelError`,
nothing outside the weights folder is read, and a correct checksum is accepted in either case."""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import predictions
from core import errors
from core.manifest import read_manifest, sha256_file
from tests.factories import edit_manifest

HEAD = "fracture_hand_head.npz"


@pytest.fixture()
def folder(weights_copy):
    return weights_copy


def _set_checksum(folder: Path, name: str, digest: str) -> None:
    def update(raw):
        for entry in [*raw["networks"].values(), *raw["heads"].values()]:
            if entry["file"] == name:
                entry["sha256"] = digest

    edit_manifest(folder, update)


def _replace(folder: Path, name: str, data: bytes) -> None:
    """A model file with new content, and its new checksum in the manifest."""
    (folder / name).write_bytes(data)
    _set_checksum(folder, name, sha256_file(folder / name))


def _npy(shape: tuple[int, ...], descr: str = "<f4", body: bytes = b"") -> bytes:
    """An .npy member whose header declares `shape` and `descr`, followed by `body`."""
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + body


def _zip(**members: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(f"{name}.npy", data)
    return buffer.getvalue()


def _head_npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _good_head(folder: Path) -> dict[str, np.ndarray]:
    with np.load(folder / HEAD) as archive:
        return {name: archive[name] for name in archive.files}


def _expect_model_error(folder: Path, sample: Path, match: str = "") -> errors.ModelError:
    """Loading the folder gives a typed ModelError, and nothing outside it is opened."""
    outside: list[str] = []
    root = str(folder.resolve())

    def audit(event: str, args) -> None:
        if event == "open" and watching and isinstance(args[0], (str, Path)):
            opened = str(Path(args[0]).resolve())
            if opened.endswith((".npz", ".json", ".tflite")) and not opened.startswith(root):
                outside.append(opened)

    watching = True
    sys.addaudithook(audit)  # hooks cannot be removed: it stops watching when `watching` is off
    try:
        with pytest.raises(errors.ModelError, match=match) as caught:
            predictions.analyze(sample, folder)
    finally:
        watching = False
    assert not outside, outside
    return caught.value


def test_threshold_too_large_for_a_float(folder, sample_png):
    text = (folder / "manifest.json").read_text()
    raw = json.loads(text)
    raw["heads"]["fracture_hand"]["threshold"] = "PLACEHOLDER"
    (folder / "manifest.json").write_text(json.dumps(raw).replace('"PLACEHOLDER"', "1" + "0" * 400))
    _expect_model_error(folder, sample_png, "out of range")


def test_manifest_nested_100000_deep(folder, sample_png):
    raw = json.loads((folder / "manifest.json").read_text())
    text = json.dumps(raw)[:-1] + ', "deep": ' + "[" * 100_000 + "]" * 100_000 + "}"
    (folder / "manifest.json").write_text(text)
    _expect_model_error(folder, sample_png, "nested too deeply")


def test_unreadable_manifest(folder, sample_png, monkeypatch):
    """The tests run as root, who reads any file: the refusal is simulated at the open call."""
    real_open = Path.open

    def refusing(self, *args, **kwargs):
        if self.name == "manifest.json":
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refusing)
    _expect_model_error(folder, sample_png, "cannot be read")


def test_truncated_head(folder, sample_png):
    _replace(folder, HEAD, (folder / HEAD).read_bytes()[:-40])
    _expect_model_error(folder, sample_png, "not a model file")


def test_head_with_a_bad_crc(folder, sample_png):
    damaged = bytearray(_head_npz(**_good_head(folder)))
    second = damaged.index(b"PK\x03\x04", 4)
    damaged[second - 1] ^= 0x01  # the first member's last data byte: its CRC-32 no longer fits
    _replace(folder, HEAD, bytes(damaged))
    _expect_model_error(folder, sample_png, "not a model file")


def test_plain_npy_in_place_of_the_npz(folder, sample_png):
    buffer = io.BytesIO()
    np.save(buffer, _good_head(folder)["kernel"])
    _replace(folder, HEAD, buffer.getvalue())
    _expect_model_error(folder, sample_png, "not a model file")


@pytest.mark.parametrize(
    "kernel",
    [
        np.array([["a"]] * 16),
        np.zeros((16, 1), dtype=[("x", "<f4")]),
        np.zeros((16, 1), dtype=np.int32),
    ],
    ids=["strings", "structured", "integers"],
)
def test_head_that_holds_no_numbers(folder, sample_png, kernel):
    _replace(folder, HEAD, _head_npz(kernel=kernel, bias=np.zeros(1, np.float16)))
    _expect_model_error(folder, sample_png, "not numbers|not a head")


def test_member_declaring_a_huge_shape_is_not_allocated(folder, sample_png):
    """22 GiB declared, 64 bytes stored: refused from the header, before any allocation."""
    huge = _npy((100_000, 60_000), body=b"\0" * 64)
    _replace(folder, HEAD, _zip(kernel=huge, bias=_npy((1,), body=b"\0" * 4)))
    _expect_model_error(folder, sample_png, "not a head")


def test_deflated_junk_member_is_not_inflated(folder, sample_png):
    """The right header, then 512 MB of deflated zeros (0.5 MB on disk): only the declared
    64 bytes and one more are inflated, so it is refused at once and in little memory."""
    import tracemalloc

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("kernel.npy", "w", force_zip64=True) as member:
            member.write(_npy((16, 1), descr="<f4"))
            chunk = b"\0" * (1 << 20)
            for _ in range(512):
                member.write(chunk)
        archive.writestr("bias.npy", _npy((1,), body=b"\0" * 4))
    _replace(folder, HEAD, buffer.getvalue())
    tracemalloc.start()
    try:
        error = _expect_model_error(folder, sample_png, "not 64 bytes long")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, f"{peak / 2**20:.0f} MB traced while refusing it"
    assert isinstance(error, errors.InvalidModelFileError)


def test_model_file_linked_outside_the_folder(folder, sample_png, tmp_path):
    outside = tmp_path / "elsewhere.npz"
    outside.write_bytes((folder / HEAD).read_bytes())
    (folder / HEAD).unlink()
    (folder / HEAD).symlink_to(outside)
    _expect_model_error(folder, sample_png, "outside the weights folder")


def test_manifest_linked_outside_the_folder(folder, sample_png, tmp_path):
    outside = tmp_path / "elsewhere.json"
    outside.write_bytes((folder / "manifest.json").read_bytes())
    (folder / "manifest.json").unlink()
    (folder / "manifest.json").symlink_to(outside)
    _expect_model_error(folder, sample_png, "outside the weights folder")


def test_link_inside_the_folder_is_accepted(folder, sample_png):
    (folder / "kept.npz").write_bytes((folder / HEAD).read_bytes())
    (folder / HEAD).unlink()
    (folder / HEAD).symlink_to("kept.npz")
    assert predictions.analyze(sample_png, folder).label


def test_upper_case_checksum_is_accepted(folder, sample_png):
    _set_checksum(folder, HEAD, sha256_file(folder / HEAD).upper())
    assert read_manifest(folder).heads["fracture_hand"].sha256 == sha256_file(folder / HEAD)
    assert predictions.analyze(sample_png, folder).label


def test_checksum_that_is_not_hex_is_refused(folder, sample_png):
    _set_checksum(folder, HEAD, "z" * 64)
    _expect_model_error(folder, sample_png, "no valid sha256")
