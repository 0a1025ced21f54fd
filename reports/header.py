"""Patient and study fields from a DICOM file's header, for reports and Secondary Captures."""

from __future__ import annotations

from pathlib import Path

# Shown in reports (keyword, label), in this order; empty ones are left out.
SHOWN_FIELDS = (
    ("PatientName", "Patient name"),
    ("PatientID", "Patient ID"),
    ("PatientBirthDate", "Birth date"),
    ("PatientSex", "Sex"),
    ("StudyDate", "Study date"),
    ("AccessionNumber", "Accession number"),
    ("StudyDescription", "Study description"),
    ("Modality", "Modality"),
    ("BodyPartExamined", "Body part (header)"),
    ("StudyInstanceUID", "Study UID"),
)
_DATES = ("PatientBirthDate", "StudyDate")


def is_dicom_file(path: str | Path) -> bool:
    """True when the file carries the DICOM marker, or is a .dcm/.dicom file pydicom can parse."""
    try:
        with open(path, "rb") as file:
            start = file.read(132)
    except OSError:
        return False
    if start[128:132] == b"DICM":
        return True
    return Path(path).suffix.lower() in (".dcm", ".dicom") and read_header(path) is not None


def read_header(path: str | Path, with_pixels: bool = False):
    """The pydicom dataset of a DICOM file, or None when it is not one that can be read."""
    from core.dicom import quiet_pydicom

    pydicom = quiet_pydicom()
    try:
        dataset = pydicom.dcmread(path, force=True, stop_before_pixels=not with_pixels)
    except Exception:  # noqa: BLE001 - not DICOM, or damaged: no header fields
        return None
    return dataset if len(dataset) else None


def study_fields(path: str | Path) -> dict[str, str]:
    """Readable patient and study fields ({label: text}) of a DICOM file; {} for other files."""
    if not is_dicom_file(path):
        return {}
    dataset = read_header(path)
    if dataset is None:
        return {}
    fields = {}
    for keyword, label in SHOWN_FIELDS:
        text = _text(dataset, keyword)
        if text:
            fields[label] = text
    return fields


def _text(dataset, keyword: str) -> str:
    try:
        value = dataset.get(keyword, None)
    except Exception:  # noqa: BLE001 - an unreadable element is left out
        return ""
    if value is None:
        return ""
    if keyword == "PatientName":
        parts = [part for part in str(value).split("^") if part]
        return f"{parts[0]}, {' '.join(parts[1:])}" if len(parts) > 1 else "".join(parts)
    text = str(value).strip()
    if keyword in _DATES and len(text) == 8 and text.isdigit():
        return f"{text[:4]}-{text[4:6]}-{text[6:]}"
    return text
