"""Print how long a PDF report of many X-rays takes: the command line end to end, and in one
process the analysis and the PDF apart.

    python -m benchmarks.report [--images 50] [--runs 3] [--threads N]

The images are the samples in test/, half saved again as JPEG and half stored as DICOM with patient
fields (each DICOM file distinct, so nothing is answered from the decoding cache). Target
(issue 24, 2-core CPU): a PDF of 50 images in <= 15 s. Prints figures only; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_inputs(folder: Path, count: int) -> list[Path]:
    """`count` X-ray files: the samples in turn, every other one as a distinct DICOM file."""
    from PIL import Image

    from tests.factories import dicom_xray

    folder.mkdir(parents=True, exist_ok=True)
    samples = sorted((ROOT / "test").glob("*/*/*.jpg"))
    paths = []
    for number in range(count):
        sample = samples[number % len(samples)]
        if number % 2:
            path = dicom_xray(folder / f"{number:03d}.dcm", sample, PatientID=f"BENCH{number}")
        else:
            path = folder / f"{number:03d}.jpg"
            Image.open(sample).save(path, quality=95, comment=f"copy {number}")  # distinct bytes
        paths.append(path)
    return paths


def in_process(paths: list[Path], out: Path) -> list[tuple[float, float]]:
    """[(wall, CPU) seconds of the analysis, of the PDF] in this process, models loaded."""
    import predictions
    from reports.pdf_report import write_pdf

    predictions.analyze(paths[0])  # load the models
    start = (time.perf_counter(), time.process_time())
    results = [predictions.analyze(path) for path in paths]
    analysed = (time.perf_counter(), time.process_time())
    write_pdf(results, out)
    done = (time.perf_counter(), time.process_time())
    return [_spent(start, analysed), _spent(analysed, done)]


def _spent(start: tuple[float, float], end: tuple[float, float]) -> tuple[float, float]:
    return end[0] - start[0], end[1] - start[1]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def command_line(paths: list[Path], out: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of `predictions.py FILES --report OUT` in a fresh process (the
    models loaded too)."""
    start, cpu = time.perf_counter(), _children_cpu()
    subprocess.run(
        [sys.executable, str(ROOT / "predictions.py"), *map(str, paths), "--report", str(out)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    return time.perf_counter() - start, _children_cpu() - cpu


def main(argv: list[str] | None = None) -> None:
    """Build the inputs, time each way --runs times, print the medians and ranges."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        paths = make_inputs(folder / "in", args.images)
        cli = [command_line(paths, folder / "cli.pdf") for _ in range(args.runs)]
        split = [in_process(paths, folder / "report.pdf") for _ in range(args.runs)]
        from pypdf import PdfReader

        pages = len(PdfReader(folder / "report.pdf").pages)
        size = (folder / "report.pdf").stat().st_size / 2**20
    analysis, pdf = zip(*split, strict=True)
    print(
        f"{args.images} images ({pages} pages, {size:.1f} MB), {os.cpu_count()} CPUs, load "
        f"average {os.getloadavg()[0]:.1f}; median of {args.runs} runs [min-max], wall and CPU:"
    )
    for name, values in (
        ("command line, end to end (fresh process)", cli),
        ("analysis only (models loaded)", analysis),
        ("PDF only (annotate, embed, write)", pdf),
    ):
        wall, cpu = zip(*values, strict=True)
        print(
            f"  {name:<42} {statistics.median(wall):6.2f} s [{min(wall):.2f}-{max(wall):.2f}]"
            f"   CPU {statistics.median(cpu):6.2f} s"
        )
    print("Target: a PDF of 50 images in <= 15 s (wall, 2 cores).")


if __name__ == "__main__":
    main()
