"""predictions.py --csv, --report and --dicom-out with the shipped weights: every output written,
and an output that cannot be written costs none of the others."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

import predictions
from tests.factories import dicom_xray

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "test").rglob("*.jpg"))  # with the knee of test/Other


def read_csv(path: Path) -> list[dict]:
    with open(path, encoding="utf-8-sig", newline="") as file:
        return list(csv.DictReader(file))


def test_every_output_for_a_folder_a_dicom_file_and_a_missing_file(tmp_path, capsys):
    from pypdf import PdfReader

    dicom = dicom_xray(tmp_path / "in" / "hand.dcm")
    out = tmp_path / "out"
    code = predictions.main(
        [
            str(ROOT / "test"),
            str(dicom),
            str(tmp_path / "missing.png"),
            "--csv",
            str(out / "worklist.csv"),
            "--report",
            str(out / "report.pdf"),
            "--dicom-out",
            str(out / "pacs"),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 1  # the missing file
    lines = read_csv(out / "worklist.csv")
    assert len(lines) == len(SAMPLES) + 2
    assert lines[-1]["kind"] == "error" and "was not found" in lines[-1]["error"]
    assert lines[-2]["PatientID"] == "PID-0042"
    pages = PdfReader(out / "report.pdf").pages
    assert len(pages) == len(SAMPLES) + 2
    assert all("Verdict: " in page.extract_text() for page in pages)
    assert [p.name for p in (out / "pacs").iterdir()] == ["hand_triage_SC.dcm"]
    assert printed.count("is not a DICOM file, so no DICOM result was made") == len(SAMPLES)
    assert f"PDF report written to {out / 'report.pdf'}" in printed


def test_a_study_of_dicom_views_gets_one_series(tmp_path, capsys):
    import pydicom

    folder = tmp_path / "study"
    for number, sample in enumerate(SAMPLES[2:4]):
        dicom_xray(folder / f"view{number}.dcm", sample)
    code = predictions.main([str(folder), "--study", "--dicom-out", str(tmp_path / "pacs")])
    assert code == 0, capsys.readouterr()
    captures = [pydicom.dcmread(path) for path in sorted((tmp_path / "pacs").iterdir())]
    assert len(captures) == 2 and len({c.SeriesInstanceUID for c in captures}) == 1


def test_an_output_in_a_bad_place_fails_alone(tmp_path, capsys):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file")
    dicom = dicom_xray(tmp_path / "in" / "hand.dcm")
    code = predictions.main(
        [
            str(dicom),
            "--report",
            str(blocker / "report.pdf"),
            "--csv",
            str(tmp_path / "worklist.csv"),
            "--dicom-out",
            str(tmp_path / "pacs"),
        ]
    )
    captured = capsys.readouterr()
    assert code == 1
    (error,) = captured.err.strip().splitlines()
    assert error.startswith("ERROR: The PDF report could not be written")
    assert "is a file, not a folder" in error
    assert len(read_csv(tmp_path / "worklist.csv")) == 1
    assert len(list((tmp_path / "pacs").iterdir())) == 1
    assert "1 analysed, 0 failed" in captured.out


@pytest.mark.skipif(sys.platform != "linux", reason="file-size limit (RLIMIT_FSIZE) on Linux")
def test_a_full_disk_keeps_the_earlier_report_and_the_other_outputs(tmp_path):
    """The process may write no file larger than 32 KB (as on a full disk, the write fails
    with an OS error): the CSV is written, the PDF fails with one line and the earlier PDF of
    that name is left whole."""
    old_report = tmp_path / "report.pdf"
    old_report.write_bytes(b"%PDF- the earlier report")
    script = (
        "import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        "resource.setrlimit(resource.RLIMIT_FSIZE, (32768, 32768)); "
        "import predictions; sys.exit(predictions.main(sys.argv[1:]))"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            *map(str, SAMPLES),
            "--csv",
            str(tmp_path / "worklist.csv"),
            "--report",
            str(old_report),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=300,
    )
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
    assert errors == [
        f"ERROR: The PDF report could not be written to '{old_report}' (File too large). "
        "Nothing else was affected: choose another folder or free some disk space, then try again."
    ]
    assert "Traceback" not in done.stdout + done.stderr
    assert old_report.read_bytes() == b"%PDF- the earlier report"
    assert len(read_csv(tmp_path / "worklist.csv")) == len(SAMPLES)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no leftovers
