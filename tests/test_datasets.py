"""MURA and FracAtlas loaders, and patient-grouped deterministic splits."""

from __future__ import annotations

import pytest

from tests.mura_fixture import make_fracatlas_original, make_fracatlas_tree, make_mura_tree
from training.data import datasets


@pytest.fixture(scope="module")
def mura(tmp_path_factory):
    return make_mura_tree(tmp_path_factory.mktemp("mura"))


def test_mura_loader_maps_bones_and_skips_hidden_files(mura):
    records, report = datasets.load_mura(mura, "train")
    listed = (mura / "MURA-v1.1" / "train_image_paths.csv").read_text().splitlines()
    assert report.hidden_skipped == 1  # the hidden path listed in the CSV
    assert len(records) == len(listed) - 1 == report.images
    assert not any(r.path.name.startswith(".") for r in records)
    assert {r.bone for r in records} == {"Elbow", "Hand", "Shoulder", "Other"}
    assert {r.region for r in records if r.bone == "Other"} == {"wrist"}
    assert all(r.patient.startswith("patient") for r in records)


def test_mura_csv_label_wins_over_folder_name(mura):
    records, report = datasets.load_mura(mura, "valid")
    assert report.label_disagreements == 1
    disagreeing = [r for r in records if r.label != r.study.endswith("_positive")]
    assert disagreeing and len({r.study for r in disagreeing}) == 1


def test_mura_root_can_be_the_dataset_folder_itself(mura):
    records, _ = datasets.load_mura(mura / "MURA-v1.1", "valid")
    assert records


def test_missing_images_are_counted(tmp_path):
    root = make_mura_tree(tmp_path, patients_per_type=1)
    first = (root / "MURA-v1.1" / "train_image_paths.csv").read_text().splitlines()[0]
    (root / first).unlink()
    _, report = datasets.load_mura(root, "train")
    assert report.missing_skipped == 1


def test_mura_test_split_is_the_official_valid_set(mura):
    splits, _ = datasets.load_splits("mura", mura, seed=0, val_fraction=0.3)
    valid, _ = datasets.load_mura(mura, "valid")
    assert [r.path for r in splits["test"]] == [r.path for r in valid]
    train_patients = {r.patient for r in splits["train"] + splits["val"]}
    assert not train_patients & {r.patient for r in splits["test"]}


def test_fracatlas_shared_copy(tmp_path):
    root = make_fracatlas_tree(tmp_path, n=10)
    records, report = datasets.load_fracatlas(root, regions_csv=None)
    assert report.images == 10
    assert [r.bone for r in records[:5]] == ["Hand", "Elbow", "Shoulder", "Other", "Other"]
    assert records[3].region == "forearm"


def test_fracatlas_original_download_uses_region_csv(tmp_path):
    root = make_fracatlas_original(tmp_path, n=12)
    records, report = datasets.load_fracatlas(root, regions_csv=root / "regions.csv")
    assert report.images == 10 and report.unlabelled_skipped == 2
    assert all(r.path.parent.name == ("Fractured" if r.label else "Non_fractured") for r in records)


def _many_records(n=2000):
    return [
        datasets.Record(
            path=f"p{i}.png",
            bone="Hand",
            region="hand",
            label=i % 2,
            patient=f"patient{i // 3}",
            study=f"s{i // 2}",
        )
        for i in range(n)
    ]


def test_splits_group_patients_and_are_deterministic():
    records = _many_records()
    first = datasets.split_records(records, seed=1, val_fraction=0.2, test_fraction=0.1)
    again = datasets.split_records(records, seed=1, val_fraction=0.2, test_fraction=0.1)
    other = datasets.split_records(records, seed=2, val_fraction=0.2, test_fraction=0.1)
    assert first == again and first != other
    patients = [{r.patient for r in first[name]} for name in ("train", "val", "test")]
    assert not (patients[0] & patients[1] or patients[0] & patients[2] or patients[1] & patients[2])
    assert sum(len(v) for v in first.values()) == len(records)
    assert abs(len(first["val"]) / len(records) - 0.2) < 0.05
    assert abs(len(first["test"]) / len(records) - 0.1) < 0.04


def test_fracatlas_proxy_patients_are_blocks_of_ids(tmp_path):
    root = make_fracatlas_tree(tmp_path, n=10)  # ids 0, 7, 14, ... 63
    records, _ = datasets.load_fracatlas(root, regions_csv=None)
    assert records[0].patient == records[2].patient  # ids 0 and 14: same block of 20
    assert records[0].patient != records[3].patient  # id 21: next block
