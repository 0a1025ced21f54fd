"""Results back to PACS: the annotated image as a DICOM Secondary Capture in a new series of the
source's study (patient and study identity copied, new UIDs, burned-in annotation flagged).
The source file is only read, never written."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image

from core.errors import NotDicomSourceError
from core.imaging import read_file_bytes
from predictions import Prediction, StudyPrediction
from reports.annotate import annotated_view, with_caption
from reports.files import write_bytes
from reports.header import is_dicom_file, read_header
from reports.rows import bone_text, make_row, plain, probability_text

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
SERIES_DESCRIPTION = "Fracture triage: decision support, not a diagnosis"  # LO: 64 chars at most
SERIES_NUMBER = 901
COPIED = (  # patient, study and series fields that identify the source; copied when present
    "SpecificCharacterSet",
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "StudyInstanceUID",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyDescription",
    "InstitutionName",
    "BodyPartExamined",
    "Laterality",
    "ImageLaterality",
)
REQUIRED_EMPTY = (  # type 2: present even when the source has no value
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "PatientOrientation",
    "Laterality",  # 2C: a hand or shoulder is paired; empty when the source does not say
)


def write_secondary_capture(
    source_path: str | Path,
    annotated_rgb: Image.Image,
    out_dir: str | Path,
    result: Prediction | StudyPrediction,
    series_uid: str | None = None,
    instance_number: int = 1,
) -> Path:
    """Write `annotated_rgb` as a Secondary Capture of the DICOM file `source_path` into
    `out_dir` and return its path. Raises `NotDicomSourceError` for a non-DICOM source, an
    `ImageReadError` when the source can no longer be read, and `ReportWriteError` when the
    result cannot be written."""
    source_path = Path(source_path)
    read_file_bytes(source_path)  # a file gone or unreadable since the analysis: its own error
    source = read_header(source_path) if is_dicom_file(source_path) else None
    if source is None:
        raise NotDicomSourceError(
            f"'{source_path.name}' is not a DICOM file, so no DICOM result was made for it.",
            "Its result is in the table, the CSV and the PDF report.",
        )
    dataset = secondary_capture(source, annotated_rgb, result, series_uid, instance_number)
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    target = _target(source_path, Path(out_dir))
    return write_bytes(target, buffer.getvalue(), "DICOM result")


def write_result_captures(result: Prediction | StudyPrediction, out_dir: str | Path) -> list[Path]:
    """One Secondary Capture per view of a result, all in one new series; captioned with the
    verdict. Raises like `write_secondary_capture` (a study's views are all DICOM or none)."""
    from pydicom.uid import generate_uid

    series_uid = generate_uid()
    paths = result.paths if isinstance(result, StudyPrediction) else (result.path,)
    written = []
    for index, path in enumerate(paths):
        image = with_caption(annotated_view(result, index), caption_lines(result))
        written.append(write_secondary_capture(path, image, out_dir, result, series_uid, index + 1))
    return written


def caption_lines(result: Prediction | StudyPrediction) -> list[str]:
    """The text burned in above the image."""
    row = make_row(result)
    verdict = f"Verdict: {row.verdict}"
    if row.has_verdict:
        verdict += f"  |  fracture probability {probability_text(row)}"
    lines = ["DECISION SUPPORT - NOT A DIAGNOSIS", verdict, f"Bone: {bone_text(row)}"]
    return [plain(line) for line in lines]


def secondary_capture(
    source,
    annotated_rgb: Image.Image,
    result: Prediction | StudyPrediction,
    series_uid: str | None = None,
    instance_number: int = 1,
):
    """The Secondary Capture dataset (with file meta) for a source dataset and an RGB image."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    now = datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    instance_uid = generate_uid()
    dataset = Dataset()
    for keyword in COPIED:
        if keyword in source and source[keyword].value not in (None, ""):
            dataset[keyword] = source[keyword]
    for keyword in REQUIRED_EMPTY:
        if keyword not in dataset:
            setattr(dataset, keyword, "")
    dataset.SOPClassUID = SECONDARY_CAPTURE
    dataset.SOPInstanceUID = instance_uid
    dataset.Modality = str(source.get("Modality", "") or "OT")
    dataset.SeriesInstanceUID = series_uid or generate_uid()
    dataset.SeriesNumber = SERIES_NUMBER
    dataset.SeriesDescription = SERIES_DESCRIPTION
    dataset.InstanceNumber = instance_number
    dataset.SeriesDate = dataset.ContentDate = dataset.InstanceCreationDate = date
    dataset.SeriesTime = dataset.ContentTime = dataset.InstanceCreationTime = time
    dataset.ImageType = ["DERIVED", "SECONDARY"]
    dataset.ConversionType = "WSD"
    dataset.BurnedInAnnotation = "YES"
    dataset.LossyImageCompression = "00"
    dataset.SecondaryCaptureDeviceManufacturer = "Bone Fracture Detection (open source)"
    dataset.SecondaryCaptureDeviceManufacturerModelName = "Fracture triage"
    dataset.DerivationDescription = (
        "Annotated by a fracture-triage model: likely fracture regions boxed, verdict burned in. "
        "Decision support only, not a diagnosis."
    )
    dataset.ImageComments = " | ".join(caption_lines(result))
    _reference_source(dataset, source)
    _set_pixels(dataset, annotated_rgb)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    meta.MediaStorageSOPInstanceUID = instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.file_meta = meta
    return dataset


def _reference_source(dataset, source) -> None:
    from pydicom.dataset import Dataset

    if "SOPClassUID" in source and "SOPInstanceUID" in source:
        item = Dataset()
        item.ReferencedSOPClassUID = source.SOPClassUID
        item.ReferencedSOPInstanceUID = source.SOPInstanceUID
        dataset.SourceImageSequence = [item]


def _set_pixels(dataset, image: Image.Image) -> None:
    pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    dataset.Rows, dataset.Columns = pixels.shape[:2]
    dataset.SamplesPerPixel = 3
    dataset.PhotometricInterpretation = "RGB"
    dataset.PlanarConfiguration = 0
    dataset.BitsAllocated = dataset.BitsStored = 8
    dataset.HighBit = 7
    dataset.PixelRepresentation = 0
    dataset.PixelData = pixels.tobytes()
    dataset["PixelData"].VR = "OB"


def _target(source_path: Path, out_dir: Path) -> Path:
    """The output file's path; never the source itself."""
    target = out_dir / f"{source_path.stem}_triage_SC.dcm"
    try:
        same = target.exists() and target.samefile(source_path)
    except OSError:
        same = False
    return out_dir / f"{source_path.stem}_triage_SC_2.dcm" if same else target
