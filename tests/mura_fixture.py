"""Generate small dataset trees in the layouts users download: MURA v1.1 and FracAtlas."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

MURA_TYPES = ("XR_ELBOW", "XR_HAND", "XR_SHOULDER", "XR_WRIST")
SHAPES = {"XR_ELBOW": 0, "XR_HAND": 1, "XR_SHOULDER": 2, "XR_WRIST": 3}


def synthetic_xray(kind: int, positive: bool, size: int, rng: np.random.Generator) -> np.ndarray:
    """A dark image with a bright shape that depends on the study type; positives get a gap."""
    image = rng.normal(25, 8, (size, size))
    third = size // 3
    if kind == 0:
        image[third : 2 * third, :] += 160  # horizontal band
    elif kind == 1:
        image[:, third : 2 * third] += 160  # vertical band
    elif kind == 2:
        yy, xx = np.mgrid[:size, :size]
        image[(yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2] += 160  # disc
    else:
        image[np.eye(size, dtype=bool)] += 200  # diagonal line
    if positive:
        image[size // 2 - 2 : size // 2 + 2, :] = 0  # a dark "fracture line"
    return np.clip(image, 0, 255).astype(np.uint8)


def make_mura_tree(root: Path, patients_per_type: int = 3, seed: int = 0, image_size: int = 64):
    """Write `root/MURA-v1.1/{train,valid}/...` with its four header-less CSVs.

    Includes a hidden `._image1.png` next to a real image (not listed), one hidden path listed in
    the CSV, one RGB image, and one study whose CSV label disagrees with its folder name.
    """
    rng = np.random.default_rng(seed)
    base = root / "MURA-v1.1"
    patient_number = 1
    for split in ("train", "valid"):
        image_lines, study_lines = [], []
        for study_type in MURA_TYPES:
            for _ in range(patients_per_type):
                patient = f"patient{patient_number:05d}"
                patient_number += 1
                for study_index in (1, 2):
                    positive = bool(rng.integers(0, 2))
                    study = f"study{study_index}_{'positive' if positive else 'negative'}"
                    folder = base / split / study_type / patient / study
                    folder.mkdir(parents=True, exist_ok=True)
                    relative = f"MURA-v1.1/{split}/{study_type}/{patient}/{study}"
                    for image_index in range(1, int(rng.integers(1, 4)) + 1):
                        pixels = synthetic_xray(SHAPES[study_type], positive, image_size, rng)
                        image = Image.fromarray(pixels)
                        if image_index == 2:
                            image = image.convert("RGB")
                        image.save(folder / f"image{image_index}.png")
                        image_lines.append(f"{relative}/image{image_index}.png")
                    study_lines.append((f"{relative}/", int(positive)))
        first = image_lines[0]
        hidden = str(Path(first).parent / "._image1.png")
        (root / hidden).write_bytes(b"\0\5\26\7 AppleDouble")  # unlisted hidden file
        image_lines.append(hidden)  # and a listed one
        path, label = study_lines[-1]
        study_lines[-1] = (path, 1 - label)  # CSV disagrees with the folder name
        _write_lines(base / f"{split}_image_paths.csv", [[line] for line in image_lines])
        _write_lines(base / f"{split}_labeled_studies.csv", study_lines)
    return root


def _write_lines(path: Path, rows) -> None:
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)


FRACATLAS_REGIONS = ("hand", "elbow", "shoulder", "forearm", "other")


def make_fracatlas_tree(root: Path, n: int = 40, seed: int = 0, size: int = 64) -> Path:
    """This project's shared-copy layout: labels.csv (with `region`) and images/."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(n):
        image_id = f"IMG{index * 7:07d}.jpg"
        region = FRACATLAS_REGIONS[index % len(FRACATLAS_REGIONS)]
        fractured = int(rng.integers(0, 2))
        Image.fromarray(synthetic_xray(index % 4, bool(fractured), size, rng)).save(
            root / "images" / image_id
        )
        rows.append(
            {
                "image_id": image_id,
                "region": region,
                "region_pass": 2,
                "group": "upper_limb",
                "fractured": fractured,
            }
        )
    with (root / "labels.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


def make_fracatlas_original(root: Path, n: int = 20, seed: int = 0, size: int = 64) -> Path:
    """The figshare download's layout: dataset.csv and images/Fractured|Non_fractured/, plus a
    regions CSV (`root/regions.csv`) like the one committed in training/data/."""
    rng = np.random.default_rng(seed)
    columns = [
        "image_id",
        "hand",
        "leg",
        "hip",
        "shoulder",
        "mixed",
        "hardware",
        "multiscan",
        "fractured",
        "fracture_count",
        "frontal",
        "lateral",
        "oblique",
    ]
    rows, regions = [], []
    for index in range(n):
        image_id = f"IMG{index:07d}.jpg"
        fractured = index % 3 == 0
        folder = root / "images" / ("Fractured" if fractured else "Non_fractured")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(synthetic_xray(index % 4, fractured, size, rng)).save(folder / image_id)
        row = dict.fromkeys(columns, 0)
        row.update(image_id=image_id, hand=1, fractured=int(fractured))
        rows.append(row)
        if index < n - 2:  # the last two have no region label
            regions.append((image_id, FRACATLAS_REGIONS[index % 5], "careful"))
    with (root / "dataset.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    with (root / "regions.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "region", "label_source"])
        writer.writerows(regions)
    return root
