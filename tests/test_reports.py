"""Reports with the shipped weights on the sample X-rays: rows, CSV, PDF (read back with pypdf,
one page per result with its verdict) and DICOM Secondary Captures (read back with pydicom)."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import predictions
from core.errors import NotDicomSourceError
from reports.csv_report import write_csv
from reports.pdf_report import write_pdf
from reports.rows import (
    FRACATLAS_NOTE,
    MURA_NOTE,
    NO_VERDICT,
    UNKNOWN_TRAINING,
    Failure,
    make_row,
    plain,
    probability_text,
    training_note,
)
from reports.secondary_capture import SECONDARY_CAPTURE, write_result_captures
from tests.factories import PATIENT, dicom_xray

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "test").glob("*/*/*.jpg"))
ARTIFACTS = ROOT / "artifacts"  # screenshots; the README's copy is docs/report_page.png
IDENTITY = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyID",
    "StudyDate",
    "AccessionNumber",
)


@pytest.fixture(scope="module")
def dicom_elbow(tmp_path_factory) -> Path:
    """A sample elbow X-ray with a fracture, stored as DICOM with patient and study identity."""
    source = ROOT / "test" / "Elbow" / "fractured" / "IMG0002450.jpg"
    folder = tmp_path_factory.mktemp("dicom")
    return dicom_xray(
        folder / "elbow.dcm",
        source,
        BodyPartExamined="ELBOW",
        Laterality="L",
        StudyDescription="XR ELBOW 2 VIEWS",
    )


@pytest.fixture(scope="module")
def results(dicom_elbow) -> list:
    """Every sample, a two-view study, a DICOM image and a failed file, in that order."""
    found = [predictions.analyze(path) for path in SAMPLES]
    hand = sorted((ROOT / "test" / "Hand").glob("*/*.jpg"))
    found.append(predictions.analyze_study(hand))
    found.append(predictions.analyze(dicom_elbow))
    found.append(Failure("/scans/bad.png", "The file 'bad.png' is damaged. Export it again."))
    return found


def test_a_result_without_verdict_shows_no_probability(results):
    recognised = next(r for r in results[: len(SAMPLES)] if r.recognised and r.boxes)
    for unrecognised in (
        dataclasses.replace(recognised, recognised=False),  # today's shape
        dataclasses.replace(recognised, recognised=False, label="not recognised"),  # the new one
    ):
        row = make_row(unrecognised)
        assert row.verdict == NO_VERDICT and not row.has_verdict
        assert row.fracture_probability is None and row.threshold is None and row.boxes == 0
        assert row.bone == "" and row.model_guess.startswith(recognised.model_bone)
    row = make_row(recognised)
    assert row.verdict == recognised.label.capitalize()
    assert row.fracture_probability == recognised.fracture_probability
    assert row.boxes == len(recognised.boxes)


def test_csv_has_one_line_per_result(results, dicom_elbow, tmp_path):
    path = write_csv(results, tmp_path / "out" / "worklist.csv")
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as any file the user saves
    with open(path, encoding="utf-8-sig", newline="") as file:
        lines = list(csv.DictReader(file))
    assert len(lines) == len(results)
    for line, result in zip(lines, results, strict=True):
        if isinstance(result, Failure):
            assert line["kind"] == "error" and line["error"] == result.message
            assert line["fracture_probability"] == ""
        elif result.recognised:
            assert line["verdict"] == result.label.capitalize()
            assert float(line["fracture_probability"]) == pytest.approx(
                result.fracture_probability, abs=1e-4
            )
            assert float(line["threshold"]) == pytest.approx(result.threshold, abs=1e-4)
        else:
            assert line["verdict"] == NO_VERDICT and line["fracture_probability"] == ""
    study, dicom = lines[len(SAMPLES)], lines[len(SAMPLES) + 1]
    assert study["kind"] == "study" and study["file"].count(";") == 1
    assert dicom["PatientID"] == PATIENT["PatientID"] and dicom["PatientName"] == "Doe, Jane"
    assert dicom["StudyDate"] == "2026-12-01" and dicom["bone_set_by"] == "from the DICOM header"
    assert dicom["path"] == str(dicom_elbow)


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted(tmp_path):
    image = tmp_path / "=HYPERLINK(1).jpg"
    shutil.copy(SAMPLES[0], image)
    with open(
        write_csv([predictions.analyze(image)], tmp_path / "w.csv"), encoding="utf-8-sig"
    ) as f:
        line = next(csv.DictReader(f))
    assert line["file"] == "'=HYPERLINK(1).jpg"


def test_pdf_has_a_page_per_result_with_its_verdict(results, tmp_path):
    from pypdf import PdfReader

    path = write_pdf(results, tmp_path / "report.pdf")
    reader = PdfReader(path)
    assert len(reader.pages) == len(results)
    for page, result in zip(reader.pages, results, strict=True):
        text = " ".join(page.extract_text().split())
        row = make_row(result)
        assert f"Verdict: {plain(row.verdict)}" in text
        assert "Decision support only, not a diagnosis" in text and "FracAtlas" in text
        if isinstance(result, Failure):
            assert result.message in text and not page.images
            continue
        assert len(page.images) == len(row.paths)  # each view, annotated
        if row.has_verdict:
            assert probability_text(row) in text
        else:
            assert "none (no verdict)" in text
    dicom_page = " ".join(reader.pages[len(SAMPLES) + 1].extract_text().split())
    for value in ("Doe, Jane", "PID-0042", "1980-02-14", "ACC123", "XR ELBOW 2 VIEWS"):
        assert value in dicom_page
    assert "Elbow (from the DICOM header" in dicom_page


def test_report_page_screenshot_for_the_readme(results, tmp_path):
    """Page 1 of a report on the DICOM sample, rendered to artifacts/report_page.png (copied to
    docs/ for the README, like the window's screenshots)."""
    pdfium = pytest.importorskip("pypdfium2", reason="pypdfium2 renders the README screenshot")
    dicom_result = results[len(SAMPLES) + 1]
    assert dicom_result.recognised and dicom_result.boxes  # the page shows a boxed region
    path = write_pdf([dicom_result], tmp_path / "one.pdf")
    document = pdfium.PdfDocument(str(path))
    image = document[0].render(scale=1.2).to_pil().convert("RGB")
    document.close()
    assert len(set(image.resize((64, 64)).getdata())) > 50  # a drawn page, not a blank one
    ARTIFACTS.mkdir(exist_ok=True)
    image.save(ARTIFACTS / "report_page.png", optimize=True)


def test_secondary_capture_copies_identity_with_new_uids(dicom_elbow, results, tmp_path):
    import pydicom

    before = hashlib.sha256(dicom_elbow.read_bytes()).hexdigest()
    result = results[len(SAMPLES) + 1]
    (written,) = write_result_captures(result, tmp_path / "pacs")
    assert hashlib.sha256(dicom_elbow.read_bytes()).hexdigest() == before
    source, capture = pydicom.dcmread(dicom_elbow), pydicom.dcmread(written)
    assert capture.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert capture.SOPClassUID == capture.file_meta.MediaStorageSOPClassUID == SECONDARY_CAPTURE
    for keyword in IDENTITY:
        assert capture[keyword].value == source[keyword].value, keyword
    for keyword in ("SeriesInstanceUID", "SOPInstanceUID"):
        assert capture[keyword].value != source.get(keyword), keyword
        assert pydicom.uid.UID(capture[keyword].value).is_valid
    assert capture.SOPInstanceUID == capture.file_meta.MediaStorageSOPInstanceUID
    assert list(capture.ImageType) == ["DERIVED", "SECONDARY"]
    assert (capture.BurnedInAnnotation, capture.ConversionType) == ("YES", "WSD")
    assert "decision support" in capture.SeriesDescription
    assert capture.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    pixels = capture.pixel_array
    assert (
        pixels.dtype == np.uint8
        and pixels.shape[2] == 3
        and capture.PhotometricInterpretation == "RGB"
    )
    band = pixels.shape[0] - source.Rows
    assert band > 0 and pixels.shape[1] == source.Columns
    assert (pixels[:band] > 200).any()  # the burned-in verdict text
    box = result.boxes[0]
    edge = pixels[band + box.y0 + 1, box.x0 + 1 : box.x1 - 1]
    assert (edge[:, 0] > 200).all() and (edge[:, 1] < 100).all()  # the red box, drawn in place


def test_a_study_gets_one_new_series_with_a_capture_per_view(tmp_path):
    import pydicom

    views = [
        dicom_xray(tmp_path / "in" / f"view{n}.dcm", sample)
        for n, sample in enumerate(SAMPLES[2:4])
    ]
    study = predictions.analyze_study(views)
    written = write_result_captures(study, tmp_path / "pacs")
    captures = [pydicom.dcmread(path) for path in written]
    assert len(captures) == 2 and len({c.SeriesInstanceUID for c in captures}) == 1
    assert [c.InstanceNumber for c in captures] == [1, 2]
    assert len({c.SOPInstanceUID for c in captures}) == 2


def test_a_non_dicom_input_gets_a_clear_message(results, tmp_path):
    with pytest.raises(NotDicomSourceError, match="is not a DICOM file"):
        write_result_captures(results[0], tmp_path / "pacs")
    assert not (tmp_path / "pacs").exists() or not any((tmp_path / "pacs").iterdir())


def test_a_standard_toolkit_opens_the_capture(results, tmp_path):
    """dicom3tools' dciodvfy finds no error, and DCMTK's dcm2pnm renders it (where installed)."""
    tools = [name for name in ("dciodvfy", "dcm2pnm") if shutil.which(name)]
    if not tools:
        pytest.skip("neither dciodvfy (dicom3tools) nor dcm2pnm (dcmtk) is installed")
    (written,) = write_result_captures(results[len(SAMPLES) + 1], tmp_path / "pacs")
    if "dciodvfy" in tools:
        done = subprocess.run(["dciodvfy", str(written)], capture_output=True, text=True)
        output = done.stdout + done.stderr
        assert "SCImage" in output and "Error" not in output, output
    if "dcm2pnm" in tools:
        png = tmp_path / "shown.png"
        subprocess.run(["dcm2pnm", "--write-png", str(written), str(png)], check=True)
        import pydicom
        from PIL import Image

        assert Image.open(png).size == (
            pydicom.dcmread(written).Columns,
            pydicom.dcmread(written).Rows,
        )


def test_the_training_note_follows_the_model_card(tmp_path):
    from core.manifest import FORMAT_VERSION, MANIFEST_NAME

    assert training_note() == FRACATLAS_NOTE  # the shipped weights
    card = {"attribution": "MURA v1.1 (Stanford ML Group)", "summary": "not FracAtlas"}
    (tmp_path / MANIFEST_NAME).write_text(
        json.dumps({"format_version": FORMAT_VERSION, "model_card": card})
    )
    assert training_note(tmp_path) == MURA_NOTE
    assert training_note(tmp_path / "missing") == UNKNOWN_TRAINING


def test_reports_need_no_window_and_no_tensorflow():
    modules = ("annotate", "csv_report", "outputs", "pdf_report", "rows", "secondary_capture")
    script = (
        "import sys\n"
        + "".join(f"import reports.{name}\n" for name in modules)
        + "print(sorted({'tkinter', 'customtkinter', 'tensorflow', 'keras'} & set(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_a_file_deleted_after_its_analysis_still_gets_its_page(tmp_path):
    from pypdf import PdfReader

    from core.errors import FileMissingError

    dicom = dicom_xray(tmp_path / "gone.dcm")
    result = predictions.analyze(dicom)
    dicom.unlink()
    reader = PdfReader(
        write_pdf([result, predictions.analyze(SAMPLES[3])], tmp_path / "report.pdf")
    )
    first = " ".join(reader.pages[0].extract_text().split())
    assert "Image not shown" in first and "'gone.dcm' was not found" in first
    assert f"Verdict: {make_row(result).verdict}" in first and not reader.pages[0].images
    assert len(reader.pages[1].images) == 1
    with pytest.raises(FileMissingError):
        write_result_captures(result, tmp_path / "pacs")


def test_a_capture_without_verdict_says_so_and_draws_no_box(dicom_elbow, results, tmp_path):
    import pydicom

    result = dataclasses.replace(results[len(SAMPLES) + 1], recognised=False)
    (written,) = write_result_captures(result, tmp_path / "pacs")
    capture = pydicom.dcmread(written)
    assert "Verdict: Not recognised - no verdict" in capture.ImageComments
    assert "probability" not in capture.ImageComments
    band = capture.Rows - pydicom.dcmread(dicom_elbow).Rows
    image = capture.pixel_array[band:].astype(int)
    assert (image[..., 0] == image[..., 1]).all()  # gray: no red box drawn


def test_a_probability_next_to_its_threshold_is_shown_apart_from_it(results):
    result = next(r for r in results if isinstance(r, predictions.Prediction) and r.recognised)
    close = dataclasses.replace(
        result, model_fracture_probability=0.4962, threshold=0.5, label="normal"
    )
    assert probability_text(make_row(close)) == "0.496 (threshold 0.500)"
    far = dataclasses.replace(result, model_fracture_probability=0.83, threshold=0.5)
    assert probability_text(make_row(far)) == "0.83 (threshold 0.50)"
