"""Issue 13 through the API and the command line: no verdict on blank images, no stale answers,
every input reported, the same answers from 8 threads as from 1, flat memory, and the
12,000 x 12,000 RLE DICOM refused without any extra memory.

`pytest tests/test_reliability.py --runslow -s` also runs the long soak and prints its figures.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import predictions
from core import errors
from core.image_cache import ImageCache
from core.imaging import XrayImage
from tests import bad_inputs
from tests.factories import write_image, xray_like

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pydicom")


def _images(folder: Path, count: int) -> list[Path]:
    """`count` different X-ray-like PNGs and JPEGs of different sizes."""
    paths = []
    for index in range(count):
        suffix = ".png" if index % 2 else ".jpg"
        array = xray_like(width=64 + 8 * (index % 5), height=96 + 4 * index, seed=index)
        paths.append(write_image(folder / f"view{index:02d}{suffix}", array))
    return paths


def _answer(result) -> tuple:
    return (result.bone, result.label, result.fracture_probability, result.bone_probabilities)


# ----------------------------------------------------------------------------- no verdict on blanks


@pytest.mark.parametrize(
    "make",
    [
        lambda p: write_image(p / "black.png", np.zeros((300, 200), np.uint8)),
        lambda p: write_image(p / "white.png", np.full((300, 200), 255, np.uint8)),
        lambda p: bad_inputs.write(
            p / "slope0.dcm",
            bad_inputs.dicom_bytes(xray_like() * 16, RescaleSlope=0, RescaleIntercept=100),
        ),
    ],
    ids=["all-black-png", "all-white-png", "dicom-rescale-slope-0"],
)
def test_issue13_blank_images_get_no_verdict(tiny_weights, tmp_path, make):
    """Reproducer 2: these were shown as 'Type: Hand (79%) / Result: Normal (75%)'."""
    path = make(tmp_path)
    with pytest.raises(errors.BlankImageError):
        predictions.analyze(path, tiny_weights)
    with pytest.raises(errors.BlankImageError):
        predictions.analyze_study([path, write_image(tmp_path / "ok.png")], tiny_weights)


def test_explain_with_an_unknown_bone_is_a_typed_error(tiny_weights, sample_png):
    """Issue 13, paths: explain(path, 'Knee') raised 'tuple.index(x): x not in tuple'."""
    with pytest.raises(errors.TriageError, match="Knee"):
        predictions.explain(sample_png, "Knee", tiny_weights)


# ----------------------------------------------------------------------------- no stale answers


def test_issue13_replaced_file_with_the_same_time_gets_its_own_answer(tiny_weights, tmp_path):
    """Reproducer 3: `cp -p` of another image over a file (same name, same modification time)
    returned the old image's answer."""
    first, second = _images(tmp_path / "sources", 2)[0], tmp_path / "sources" / "other.jpg"
    write_image(second, np.ascontiguousarray(xray_like(seed=7).T))
    path = tmp_path / "xray.jpg"
    shutil.copy2(first, path)
    before = predictions.analyze(path, tiny_weights)
    stamp = path.stat().st_mtime_ns
    shutil.copyfile(second, path)
    os.utime(path, ns=(stamp, stamp))  # what cp -p, unzip and rsync -t leave behind
    after = predictions.analyze(path, tiny_weights)
    expected = predictions.analyze(second, tiny_weights)
    assert _answer(after) == _answer(expected)
    assert _answer(after) != _answer(before)


def test_cache_key_is_the_content_not_the_name(tmp_path):
    cache = ImageCache()
    one = write_image(tmp_path / "a.png")
    copy = tmp_path / "copy.png"
    shutil.copyfile(one, copy)
    assert cache.load(one) is cache.load(copy)  # same bytes: decoded once
    write_image(one, np.ascontiguousarray(xray_like(seed=3).T))
    assert cache.load(one) is not cache.load(copy)
    assert cache.load(one).pixels.shape == (96, 128)


def test_cache_memory_is_bounded(tmp_path):
    paths = _images(tmp_path, 6)
    smallest = min(ImageCache().load(path).pixels.nbytes for path in paths)
    cache = ImageCache(max_items=4, max_bytes=int(2.5 * smallest))  # room for 2 images
    for path in paths:
        assert isinstance(cache.load(path), XrayImage)
        assert len(cache) <= 2 and cache.held_bytes() <= cache.max_bytes
    assert len(cache) >= 1  # the byte budget, not the count of 4, is what limits here
    tiny = ImageCache(max_bytes=10)
    tiny.load(paths[0])
    assert len(tiny) == 0  # an image larger than the whole budget is not kept


def test_failures_are_not_cached(tmp_path):
    cache = ImageCache()
    path = bad_inputs.write(tmp_path / "x.png", b"not yet an image")
    with pytest.raises(errors.UnsupportedFormatError):
        cache.load(path)
    write_image(path)
    assert cache.load(path).pixels.shape == (128, 96)


# ----------------------------------------------------------------------------- command line


def _cli(capsys, *args: str) -> tuple[int, list[str]]:
    code = predictions.main([*args])
    return code, capsys.readouterr().out.splitlines()


def test_issue13_empty_folder_named_like_an_image_fails(tiny_weights, tmp_path, capsys):
    """Reproducer 8: an empty folder named x.png exited 0 with '0 analysed'."""
    folder = tmp_path / "x.png"
    folder.mkdir()
    code, lines = _cli(capsys, str(folder), "--weights", str(tiny_weights))
    assert code == 1
    assert "holds no X-ray images" in lines[0]
    assert "0 analysed, 1 failed" in lines[-1]


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: (os.mkfifo(p / "pipe.png"), p / "pipe.png")[1], "device, a pipe or a socket"),
        (lambda p: Path("/dev/zero"), "device, a pipe or a socket"),
        (lambda p: p / ("y" * 296 + ".png"), "too long for this computer"),
        (lambda p: p / "missing.dcm", "was not found"),
    ],
    ids=["fifo", "dev-zero", "name-300-chars", "missing"],
)
def test_issue13_path_problems_on_the_command_line(tiny_weights, tmp_path, capsys, make, words):
    """Reproducer 8: FIFO and /dev/zero were called 'a folder'; a 300-character name raised
    OSError before anything was printed."""
    good = write_image(tmp_path / "good.png")
    code, lines = _cli(capsys, str(make(tmp_path)), str(good), "--weights", str(tiny_weights))
    assert code == 1
    assert words in lines[0] and "ERROR" in lines[0] and "is a folder" not in lines[0]
    assert lines[1].startswith(str(good)) and "ERROR" not in lines[1]
    assert "1 analysed, 1 failed" in lines[-1]


def test_issue13_batch_with_damaged_dicoms_reports_every_file(tiny_weights, tmp_path, capsys):
    """Reproducer 1: a --json batch of 85 files stopped after 75 lines at a damaged DICOM."""
    folder = tmp_path / "batch"
    _images(folder, 80)
    good_dicom = bad_inputs.dicom_bytes(xray_like() * 16, NumberOfFrames=1)
    damaged = {
        "frames_ab.dcm": bad_inputs.with_string_value(good_dicom, 0x28, 0x08, b"ab"),
        "length.dcm": bad_inputs.with_value_length(good_dicom, 0x28, 0x10, 0xFFFF),
        "deflated.dcm": bad_inputs.deflated_garbage(),
        "png_named.dcm": (folder / "view01.png").read_bytes(),
        "slope0.dcm": bad_inputs.dicom_bytes(xray_like() * 16, RescaleSlope=0, RescaleIntercept=0),
    }
    for name, data in damaged.items():
        bad_inputs.write(folder / name, data)
    code, lines = _cli(capsys, str(folder), "--json", "--weights", str(tiny_weights))
    rows = [json.loads(line) for line in lines]
    assert code == 1 and len(rows) == 85
    by_name = {Path(row["path"]).name: row for row in rows}
    assert by_name["frames_ab.dcm"]["error"] == "CorruptImageError"
    assert by_name["length.dcm"]["error"] == "CorruptImageError"
    assert by_name["deflated.dcm"]["error"] == "CorruptImageError"
    assert by_name["slope0.dcm"]["error"] == "BlankImageError"
    assert "label" in by_name["png_named.dcm"]  # a PNG named .dcm is read as the PNG it is
    assert sum("error" in row for row in rows) == 4


def test_issue13_cut_jpeg_is_analysed_and_the_line_says_so(tiny_weights, tmp_path, capsys):
    """Reproducer 9: JPEGs lacking only their last bytes were called damaged."""
    whole = write_image(tmp_path / "whole.jpg", xray_like(300, 400))
    cut = bad_inputs.write(tmp_path / "cut.jpg", whole.read_bytes()[:-2])
    code, lines = _cli(capsys, str(cut), "--weights", str(tiny_weights))
    assert code == 0 and "ERROR" not in lines[0]
    assert "[The file was cut short; the image is complete.]" in lines[0]
    code, lines = _cli(capsys, str(cut), "--json", "--weights", str(tiny_weights))
    assert json.loads(lines[0])["notes"] == ["The file was cut short; the image is complete."]
    assert predictions.analyze(whole, tiny_weights).notes == ()


def test_unexpected_failure_is_reported_and_the_batch_goes_on(
    tiny_weights, tmp_path, capsys, monkeypatch
):
    paths = _images(tmp_path, 3)
    real = predictions.analyze

    def flaky(path, *args, **kwargs):
        if Path(path) == paths[1]:
            raise RuntimeError("simulated bug")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(predictions, "analyze", flaky)
    code, lines = _cli(capsys, *map(str, paths), "--weights", str(tiny_weights))
    assert code == 1
    assert "unexpected problem (RuntimeError: simulated bug)" in lines[1]
    assert "ERROR" not in lines[0] and "ERROR" not in lines[2]
    assert "2 analysed, 1 failed" in lines[-1]


# ----------------------------------------------------------------------------- threads and soak


def test_eight_threads_give_the_same_answers_as_one(tiny_weights, tmp_path):
    paths = _images(tmp_path, 24)
    predictions._IMAGES.clear()
    single = [_answer(predictions.analyze(path, tiny_weights)) for path in paths]
    predictions._IMAGES.clear()  # decode concurrently too, not only from the cache
    work = paths * 3
    with ThreadPoolExecutor(max_workers=8) as pool:
        threaded = list(pool.map(lambda p: _answer(predictions.analyze(p, tiny_weights)), work))
    assert threaded == single * 3  # bit-identical, in order


@pytest.mark.runslow
def test_eight_threads_on_200_images(tiny_weights, tmp_path):
    """The issue's own stress run: 8 threads on 200 images, bit-identical to one thread."""
    paths = _images(tmp_path, 200)
    predictions._IMAGES.clear()
    single = [_answer(predictions.analyze(path, tiny_weights)) for path in paths]
    predictions._IMAGES.clear()
    with ThreadPoolExecutor(max_workers=8) as pool:
        threaded = list(pool.map(lambda p: _answer(predictions.analyze(p, tiny_weights)), paths))
    print(f"8 threads on {len(paths)} images: {sum(map(tuple.__eq__, threaded, single))} equal")
    assert threaded == single


def _rss_mb() -> float:
    """Resident memory of this process now (Linux), in MB."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def soak(tiny_weights, folder: Path, calls: int) -> tuple[float, float]:
    """`calls` analyses over 40 files (more than the cache holds); RSS after warm-up and at end."""
    paths = _images(folder, 40)
    for path in paths:
        predictions.analyze(path, tiny_weights)
    start = _rss_mb()
    for index in range(calls):
        predictions.analyze(paths[index % len(paths)], tiny_weights)
    return start, _rss_mb()


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc")
def test_memory_is_flat_over_a_soak(tiny_weights, tmp_path):
    start, end = soak(tiny_weights, tmp_path, 400)
    print(f"soak 400 calls: RSS {start:.0f} -> {end:.0f} MB")
    assert end - start < 15


@pytest.mark.runslow
@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc")
def test_memory_is_flat_over_a_long_soak(tiny_weights, tmp_path):
    start, end = soak(tiny_weights, tmp_path, 2000)
    print(f"soak 2000 calls: RSS {start:.0f} -> {end:.0f} MB")
    assert end - start < 15


# ----------------------------------------------------------------------------- peak memory

PEAK_SCRIPT = """
import json, resource, sys
import predictions
from core import errors
normal, bomb, weights = sys.argv[1:4]
predictions.analyze(normal, weights)
predictions.explain(normal, None, weights)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
outcomes = []
for call in (predictions.analyze, lambda path, w: predictions.explain(path, None, w)):
    try:
        call(bomb, weights)
        outcomes.append("analysed")
    except errors.TriageError as error:
        outcomes.append(type(error).__name__)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"before_kb": before, "after_kb": after, "outcomes": outcomes}))
"""


def test_issue13_rle_dicom_bomb_adds_nothing_to_peak_memory(tiny_weights, tmp_path):
    """Reproducer 4: the 2.3 MB RLE DICOM of 12,000 x 12,000 pushed peak memory from 1.1 to
    9.1 GB. Now the app's peak after a normal analysis is unchanged by it."""
    normal = bad_inputs.write(
        tmp_path / "normal.dcm", bad_inputs.dicom_bytes(bad_inputs.xray_array(2000, 2500, top=4000))
    )
    bomb = bad_inputs.write(tmp_path / "bomb.dcm", bad_inputs.rle_bomb(12_000))
    done = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, str(normal), str(bomb), str(tiny_weights)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"peak RSS: normal analysis {figures['before_kb'] / 1024:.0f} MB, "
        f"after the RLE DICOM {figures['after_kb'] / 1024:.0f} MB"
    )
    assert figures["outcomes"] == ["ImageTooLargeError", "ImageTooLargeError"]
    assert figures["after_kb"] - figures["before_kb"] < 4 * 1024  # the 2.3 MB file, no more
