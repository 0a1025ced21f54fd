"""The stress-validation set is deterministic, labelled by what each view shows, and summarised with
the app's recognition rule."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from core.imaging import read_xray
from training.data import stress
from training.data.augment import JointMark
from training.data.datasets import Record


def write_xray(path: Path, seed: int, shape=(120, 90)) -> Path:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    pixels = 120 + 60 * np.sin(xx / 6.0) * np.cos(yy / 9.0) + rng.normal(0, 10, shape)
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture()
def val_records(tmp_path) -> list[Record]:
    layout = [("elbow", "Elbow"), ("hand", "Hand"), ("full_arm", "Other"), ("other", "Other")]
    records = []
    for index, (region, bone) in enumerate(layout):
        path = write_xray(tmp_path / f"IMG{index:07d}.jpg", index)
        records.append(Record(path, bone, region, 0, f"block{index}", path.name))
    return records


MARKS = {
    "IMG0000000.jpg": [JointMark("elbow", 0.5, 0.5)],
    "IMG0000002.jpg": [JointMark("elbow", 0.3, 0.6), JointMark("shoulder", 0.6, 0.1)],
}


def test_stress_set_counts_and_truth(val_records):
    items = stress.build_stress_set(val_records, MARKS, seed=0)
    joints = [i for i in items if i.view == "joint"]
    assert len(joints) == 3 * stress.VARIANTS_PER_JOINT
    assert [i.bone for i in joints].count("Shoulder") == stress.VARIANTS_PER_JOINT
    whole = [i for i in items if i.view == "whole"]
    assert len(whole) == 2 * stress.WHOLE_VARIANTS_PER_BONE_IMAGE + 2  # 2 bone images, 2 others
    assert all(i.bone == i.record.bone for i in whole)
    # a whole-arm view stays Other; its cut-out elbow is an Elbow
    arm = [i for i in items if i.record.region == "full_arm"]
    assert {i.bone for i in arm} == {"Other", "Elbow", "Shoulder"}


def test_stress_set_is_deterministic_and_seeded(val_records):
    first = stress.build_stress_set(val_records, MARKS, seed=0)
    again = stress.build_stress_set(val_records, MARKS, seed=0)
    other = stress.build_stress_set(val_records, MARKS, seed=1)
    assert [i.seed for i in first] == [i.seed for i in again]
    assert [i.seed for i in first] != [i.seed for i in other]
    assert len({i.name for i in first}) == len(first)
    item = first[0]
    assert np.array_equal(stress.render(item), stress.render(item))


def test_joint_items_render_a_tight_view(val_records):
    items = stress.build_stress_set(val_records, MARKS, seed=0)
    joint = next(i for i in items if i.view == "joint")
    image = read_xray(joint.record.path)
    rendered = stress.render(joint, image)
    assert rendered.ndim == 2 and rendered.min() >= 0 and rendered.max() <= 1
    # a joint view is at most half the long side before borders are added
    assert min(rendered.shape) <= 0.5 * max(image.shape) * 1.4 + 2


def test_write_stress_set_gives_readable_files_and_records(val_records, tmp_path):
    items = stress.build_stress_set(val_records, MARKS, seed=0)
    out = tmp_path / "stress"
    records = stress.write_stress_set(items, out)
    assert len(records) == len(items)
    assert [r.bone for r in records] == [i.bone for i in items]
    assert all(r.path.parent == out and r.path.is_file() for r in records)
    assert read_xray(records[0].path).shape == Image.open(records[0].path).size[::-1]
    lines = (out / "stress.csv").read_text().splitlines()
    assert len(lines) == len(items) + 1
    before = records[0].path.stat().st_mtime_ns
    stress.write_stress_set(items, out)  # rendered files are reused
    assert records[0].path.stat().st_mtime_ns == before


def test_bone_type_summary_uses_the_app_rule():
    truth = ["Elbow", "Elbow", "Hand", "Other", "Other"]
    probabilities = np.array(
        [
            [0.9, 0.05, 0.03, 0.02],  # elbow, recognised
            [0.4, 0.1, 0.1, 0.4],  # elbow best guess, below the threshold
            [0.1, 0.2, 0.6, 0.1],  # hand taken for a shoulder
            [0.1, 0.1, 0.1, 0.7],  # other, flagged
            [0.1, 0.8, 0.05, 0.05],  # other taken for a hand
        ]
    )
    summary = stress.bone_type_summary(truth, probabilities, threshold=0.65)
    assert summary["Elbow best guess right"] == 1.0
    assert summary["Elbow recognised and right"] == 0.5
    assert summary["Hand best guess right"] == 0.0
    assert summary["Shoulder images"] == 0 and summary["Shoulder best guess right"] is None
    assert summary["3 bones best guess right"] == pytest.approx(2 / 3)
    assert summary["3 bones recognised and right"] == pytest.approx(1 / 3)
    assert summary["other flagged not recognised"] == 0.5


def test_evaluation_reports_each_bone_beside_the_totals():
    from types import SimpleNamespace

    from training.report.evaluate import bone_type_report

    def row(truth, shown, recognised):
        return (record_of(truth), SimpleNamespace(bone=shown, recognised=recognised))

    rows = [
        row("Elbow", "Elbow", True),
        row("Elbow", "Elbow", False),
        row("Elbow", "Hand", True),
        row("Shoulder", "Shoulder", True),
        row("Other", "Hand", False),
    ]
    report = bone_type_report(rows)["per_bone"]
    assert report["Elbow"] == {
        "images": 3,
        "best_guess_right": pytest.approx(2 / 3),
        "recognised_and_right": pytest.approx(1 / 3),
    }
    assert report["Shoulder"]["recognised_and_right"] == 1.0
    assert report["Hand"] == {"images": 0, "best_guess_right": None, "recognised_and_right": None}


def record_of(bone: str) -> Record:
    return Record(Path("x.png"), bone, bone.lower(), 0, "b", "x.png")


def test_fracture_labels_hold_on_whole_views_only(val_records):
    items = stress.build_stress_set(val_records, MARKS, seed=0)
    kept = [(i.view, i.record.region) for i in items if stress.keeps_fracture_label(i)]
    assert kept == [("whole", "elbow")] * 2 + [("whole", "hand")] * 2 + [("whole", "full_arm")]
    assert any(i.view == "joint" for i in items) and any(i.record.region == "other" for i in items)


def test_evaluate_reports_fracture_on_the_stress_whole_views(tmp_path, capsys):
    from tests.factories import make_random_weights
    from tests.mura_fixture import make_fracatlas_tree
    from training.data import augment, datasets
    from training.report import evaluate

    data = make_fracatlas_tree(tmp_path / "data", n=80)
    for path in (data / "images").glob("*.jpg"):  # twice the size: zoomed views >= 48 px
        Image.open(path).resize((128, 128), Image.BILINEAR).save(path)
    weights = make_random_weights(tmp_path / "weights")
    out = tmp_path / "report"
    code = evaluate.main(
        [
            "--data",
            str(data),
            "--split",
            "val",
            "--weights",
            str(weights),
            "--out",
            str(out),
            "--stress",
        ]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    records = datasets.load_splits("fracatlas", data)[0]["val"]
    items = stress.build_stress_set(records, augment.load_joint_marks(), seed=0)
    whole = [i for i in items if stress.keeps_fracture_label(i)]
    fracture = report["stress"]["fracture_whole_views"]
    assert fracture["all regions"]["per_image"]["n"] == len(whole) < len(items)
    hands = sum(i.record.bone == "Hand" for i in whole)
    assert hands == 2 * sum(r.bone == "Hand" for r in records) > 0
    assert fracture["Hand"]["per_image"]["n"] == hands
    printed = capsys.readouterr().out
    assert "Stress version, whole views: fracture AUROC Hand" in printed
    assert "Stress version, tight joint views: " in printed
    assert "fracture_zoomed_views" not in report["stress"]  # no boxes.csv, no zoomed views

    fractured = [r for r in records if r.label == 1]
    with (data / "boxes.csv").open("w") as handle:  # FracAtlas' fracture boxes
        handle.write("image_id,x_min,y_min,x_max,y_max\n")
        handle.writelines(f"{r.path.name},10,12,30,40\n" for r in fractured)
    assert evaluate.main(["--data", str(data), "--split", "val", "--weights", str(weights),
                          "--out", str(tmp_path / "zoomed"), "--stress"]) == 0  # fmt: skip
    again = json.loads((tmp_path / "zoomed" / "report.json").read_text())["stress"]
    zoomed = again["fracture_zoomed_views"]["all regions"]["per_image"]
    assert not [failed for failed in again["failed"] if "_zoomed_" in failed["path"]]
    assert zoomed["n"] == len(records) and zoomed["positives"] == len(fractured) > 0
    assert again["fracture_whole_views"] == report["stress"]["fracture_whole_views"]
    assert again["bone_type"] == report["stress"]["bone_type"]  # zoomed views not counted there
    assert "Stress version, zoomed views (every fracture box kept): fracture AUROC" in (
        capsys.readouterr().out
    )


def test_stress_report_gives_bone_type_on_the_tight_joint_views_apart(
    val_records, tmp_path, monkeypatch
):
    from training.report import evaluate

    def predict_all(records, weights_dir):  # right on joint views, "Hand" on whole views
        rows = []
        for record in records:
            joint = "_joint_" in record.path.name
            shown = record.bone if joint else "Hand"
            rows.append(
                (
                    record,
                    SimpleNamespace(
                        bone=shown, recognised=joint, threshold=0.5, fracture_probability=0.5
                    ),
                )
            )
        return rows, []

    monkeypatch.setattr(evaluate, "predict_all", predict_all)
    monkeypatch.setattr("training.data.augment.load_joint_marks", lambda: MARKS)
    report = evaluate.stress_report(val_records, None, tmp_path)
    joints = report["bone_type_joint_views"]
    assert joints["images_of_3_bones"] == 3 * stress.VARIANTS_PER_JOINT
    assert joints["recognised_and_correct_3_bones"] == 1.0
    assert joints["per_bone"]["Shoulder"]["images"] == stress.VARIANTS_PER_JOINT
    assert joints["per_bone"]["Hand"]["images"] == 0
    assert report["bone_type"]["recognised_and_correct_3_bones"] < 1.0  # whole views are wrong
    sentence = evaluate.joint_view_sentence(joints)
    assert sentence.startswith("elbows 100.0% best guess, 100.0% recognised and right (4 views)")
    assert "hands" not in sentence


def coordinates(height: int = 200, width: int = 160) -> np.ndarray:
    """An image whose every pixel's value encodes its position (row * width + column)."""
    return np.arange(height * width, dtype=np.float64).reshape(height, width)


def crop_span(crop: np.ndarray, width: int) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of a crop of `coordinates`, from its corner values."""
    top, left = divmod(int(crop[0, 0]), width)
    return top, left, top + crop.shape[0], left + crop.shape[1]


@pytest.mark.parametrize("seed", range(20))
def test_a_zoomed_view_keeps_every_fracture_box_whole(seed):
    image = coordinates()
    boxes = [(30.5, 120.0, 60.2, 150.7), (70.0, 100.0, 90.0, 130.0)]
    crop = stress.zoom_keeping(image, boxes, np.random.default_rng(seed))
    top, left, bottom, right = crop_span(crop, image.shape[1])
    assert top <= 100 and left <= 30 and bottom >= 151 and right >= 91  # both boxes inside
    assert crop.shape[0] <= 0.75 * 200 + 1 and crop.shape[1] <= 0.75 * 160 + 1  # tighter
    huge = stress.zoom_keeping(image, [(2.0, 3.0, 150.0, 190.0)], np.random.default_rng(seed))
    assert crop_span(huge, 160)[0] <= 3 and crop_span(huge, 160)[2] >= 190  # as big as the box


@pytest.mark.parametrize("seed", range(10))
def test_a_normal_images_zoomed_view_shows_bone(seed):
    rng = np.random.default_rng(seed)
    image = np.full((120, 90), 0.05)
    image[40:60, 10:25] = 0.9  # the only bright part: bone
    crop = stress.zoom_keeping(image, [], rng)
    assert crop.max() == 0.9 and crop.shape[0] < 120 and crop.shape[1] < 90


def test_zoomed_views_only_with_boxes_and_they_keep_the_label(val_records):
    plain = stress.build_stress_set(val_records, MARKS, seed=0)
    assert not any(i.view == "zoomed" for i in plain)
    boxes = {"IMG0000001.jpg": [(10.0, 20.0, 30.0, 40.0)]}
    items = stress.build_stress_set(val_records, MARKS, seed=0, boxes=boxes)
    zoomed = [i for i in items if i.view == "zoomed"]
    assert [i.record for i in zoomed] == val_records  # one per image, every region
    assert [i.boxes for i in zoomed] == [(), ((10.0, 20.0, 30.0, 40.0),), (), ()]
    assert all(stress.keeps_fracture_label(i) for i in zoomed)
    assert [i for i in items if i.view != "zoomed"] == plain  # the rest as before
    rendered = stress.render(zoomed[1])
    assert rendered.shape != read_xray(val_records[1].path).shape
