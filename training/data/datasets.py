"""MURA v1.1 and FracAtlas read into one record type, and patient-grouped splits.

Every later step (input pipeline, training, evaluation) works on `Record`s, so both datasets share
one code path.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from core.models import BONES

REGION_TO_BONE = {"elbow": "Elbow", "hand": "Hand", "shoulder": "Shoulder"}
DEFAULT_REGIONS_CSV = Path(__file__).resolve().parent / "fracatlas_regions.csv"
FRACATLAS_ID_BLOCK = 20  # consecutive FracAtlas ids treated as one (proxy) patient


@dataclass(frozen=True)
class Record:
    """One image: its bone class (Elbow/Hand/Shoulder/Other), finer region, label and grouping."""

    path: Path
    bone: str
    region: str
    label: int  # 1 = positive (MURA: abnormal, which includes fractures; FracAtlas: fractured)
    patient: str
    study: str


@dataclass
class LoadReport:
    """What a loader skipped or corrected, to print and store with the run."""

    source: str
    images: int = 0
    hidden_skipped: int = 0
    missing_skipped: int = 0
    label_disagreements: int = 0
    unlabelled_skipped: int = 0

    def summary(self) -> str:
        """One line for logs."""
        return (
            f"{self.source}: {self.images} images; skipped {self.hidden_skipped} hidden, "
            f"{self.missing_skipped} missing, {self.unlabelled_skipped} without a region label; "
            f"{self.label_disagreements} studies where the CSV label overrode the folder name"
        )


def bone_of_region(region: str) -> str:
    """Map a region ('elbow', 'wrist', ...) to the app's class ('Elbow', ..., or 'Other')."""
    return REGION_TO_BONE.get(region.lower(), "Other")


# ----------------------------------------------------------------------------- MURA


def find_mura_root(path: Path) -> Path:
    """The folder that contains `MURA-v1.1/` (accepts that folder itself or its parent)."""
    path = Path(path)
    if (path / "MURA-v1.1").is_dir():
        return path
    if path.name == "MURA-v1.1" and path.is_dir():
        return path.parent
    raise FileNotFoundError(f"No MURA-v1.1 folder found in or at {path}")


def load_mura(path: Path, split: str) -> tuple[list[Record], LoadReport]:
    """Read MURA `split` ('train' or 'valid') from its CSVs; CSV labels win over folder names."""
    root = find_mura_root(path)
    base = root / "MURA-v1.1"
    report = LoadReport(source=f"MURA {split}")
    study_labels: dict[str, int] = {}
    with (base / f"{split}_labeled_studies.csv").open(newline="") as handle:
        for row in csv.reader(handle):
            if row:
                study_labels[row[0].strip().rstrip("/")] = int(row[1])
    disagreeing: set[str] = set()
    records: list[Record] = []
    with (base / f"{split}_image_paths.csv").open(newline="") as handle:
        for row in csv.reader(handle):
            if not row or not row[0].strip():
                continue
            relative = row[0].strip()
            image = root / relative
            if image.name.startswith("."):
                report.hidden_skipped += 1
                continue
            if not image.is_file():
                report.missing_skipped += 1
                continue
            study_key = str(Path(relative).parent)
            folder_label = 1 if Path(study_key).name.endswith("_positive") else 0
            label = study_labels.get(study_key, folder_label)
            if label != folder_label:
                disagreeing.add(study_key)
            parts = Path(relative).parts  # MURA-v1.1/train/XR_ELBOW/patientN/studyN_x/imageN.png
            region = parts[2].removeprefix("XR_").lower()
            records.append(
                Record(
                    path=image,
                    bone=bone_of_region(region),
                    region=region,
                    label=label,
                    patient=parts[3],
                    study=study_key,
                )
            )
    report.images = len(records)
    report.label_disagreements = len(disagreeing)
    return records, report


# ----------------------------------------------------------------------------- FracAtlas


def load_region_labels(csv_path: Path = DEFAULT_REGIONS_CSV) -> dict[str, str]:
    """image_id -> region, from the region labels committed with the repo."""
    with Path(csv_path).open(newline="") as handle:
        return {row["image_id"]: row["region"] for row in csv.DictReader(handle)}


def load_fracatlas(
    path: Path, regions_csv: Path | None = DEFAULT_REGIONS_CSV
) -> tuple[list[Record], LoadReport]:
    """Read FracAtlas: this project's shared copy (`labels.csv`) or the original figshare download.

    The original download has `dataset.csv` and `images/Fractured|Non_fractured/`; its images get
    their region from `regions_csv` (images without a region label are skipped and counted).
    """
    path = Path(path)
    report = LoadReport(source="FracAtlas")
    regions = load_region_labels(regions_csv) if regions_csv and Path(regions_csv).is_file() else {}
    if (path / "labels.csv").is_file():
        rows = _read_csv(path / "labels.csv")
        locate = {row["image_id"]: path / "images" / row["image_id"] for row in rows}
    elif (path / "dataset.csv").is_file():
        rows = _read_csv(path / "dataset.csv")
        locate = {
            row["image_id"]: path
            / "images"
            / ("Fractured" if row["fractured"] == "1" else "Non_fractured")
            / row["image_id"]
            for row in rows
        }
    else:
        raise FileNotFoundError(f"No FracAtlas labels.csv or dataset.csv in {path}")
    records: list[Record] = []
    for row in rows:
        image_id = row["image_id"]
        region = regions.get(image_id) or row.get("region")
        if not region:
            report.unlabelled_skipped += 1
            continue
        image = locate[image_id]
        if not image.is_file():
            report.missing_skipped += 1
            continue
        number = int(re.sub(r"\D", "", image_id) or 0)
        patient = f"block{number // FRACATLAS_ID_BLOCK:05d}"
        records.append(
            Record(
                path=image,
                bone=bone_of_region(region),
                region=region,
                label=int(row["fractured"]),
                patient=patient,
                study=image_id,
            )
        )
    report.images = len(records)
    return records, report


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


# ----------------------------------------------------------------------------- splits


def split_of(patient: str, seed: int, val_fraction: float, test_fraction: float) -> str:
    """'train', 'val' or 'test' for a patient: a stable hash of (seed, patient), so no patient
    is ever in two splits and the same seed always gives the same split."""
    digest = hashlib.sha256(f"{seed}:{patient}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    if position < test_fraction:
        return "test"
    if position < test_fraction + val_fraction:
        return "val"
    return "train"


def split_records(
    records: list[Record], seed: int = 0, val_fraction: float = 0.15, test_fraction: float = 0.15
) -> dict[str, list[Record]]:
    """Split records by patient into train / val / test (test empty when `test_fraction` is 0)."""
    splits: dict[str, list[Record]] = {"train": [], "val": [], "test": []}
    for record in records:
        splits[split_of(record.patient, seed, val_fraction, test_fraction)].append(record)
    return splits


def load_splits(
    kind: str, path: Path, seed: int = 0, val_fraction: float = 0.15, test_fraction: float = 0.15
) -> tuple[dict[str, list[Record]], list[LoadReport]]:
    """Train/val/test records for `kind` ('mura' or 'fracatlas').

    MURA: its official `valid` set is the test set, and `train` is split by patient into
    train/val. FracAtlas: split by (proxy) patient into all three.
    """
    if kind == "mura":
        train, train_report = load_mura(path, "train")
        test, test_report = load_mura(path, "valid")
        splits = split_records(train, seed, val_fraction, test_fraction=0.0)
        splits["test"] = test
        return splits, [train_report, test_report]
    if kind == "fracatlas":
        records, report = load_fracatlas(path)
        return split_records(records, seed, val_fraction, test_fraction), [report]
    raise ValueError(f"Unknown dataset kind {kind!r}; use 'mura' or 'fracatlas'")


def detect_kind(path: Path) -> str:
    """Guess the dataset kind from the folder layout."""
    path = Path(path)
    if (path / "MURA-v1.1").is_dir() or path.name == "MURA-v1.1":
        return "mura"
    if (path / "labels.csv").is_file() or (path / "dataset.csv").is_file():
        return "fracatlas"
    raise FileNotFoundError(
        f"{path} holds neither MURA-v1.1 nor FracAtlas (labels.csv/dataset.csv)"
    )


def describe_counts(records: list[Record]) -> dict[str, dict[str, int]]:
    """{region: {'images': n, 'positive': k}} for model cards and logs."""
    totals = Counter(record.region for record in records)
    positives = Counter(record.region for record in records if record.label)
    return {
        region: {"images": totals[region], "positive": positives[region]}
        for region in sorted(totals)
    }


def for_bone(records: list[Record], bone: str) -> list[Record]:
    """Records of one of the app's bones."""
    if bone not in BONES:
        raise ValueError(f"bone must be one of {BONES}")
    return [record for record in records if record.bone == bone]
