"""The per-change robustness report: held-out sampling, the table's figures, the command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.factories import make_random_weights
from tests.mura_fixture import make_fracatlas_tree
from training.data import datasets
from training.data.datasets import Record
from training.report import per_change


def record(label: int, bone: str = "Hand", name: str = "x.png") -> Record:
    return Record(Path(name), bone, bone.lower(), label, "p", name)


def test_held_out_keeps_every_fracture_and_samples_the_normal_images():
    records = [record(k % 5 == 0, name=f"{k}.png") for k in range(50)]
    picked = per_change.held_out(records, negatives=12, seed=1)
    assert sum(r.label for r in picked) == 10 and len(picked) == 22
    assert picked == per_change.held_out(records, negatives=12, seed=1)
    assert len(per_change.held_out(records, negatives=0)) == 50


def test_summary_reads_each_change_against_the_stored_images():
    records = [record(1), record(1), record(0), record(0, "Other")]
    scores = {
        "as stored": [0.9, 0.8, 0.2, 0.1],
        "darker (gamma 2)": [0.2, 0.1, 0.9, 0.8],  # order reversed: AUROC 0
    }
    table = per_change.summarise(records, scores)
    assert table["as stored"]["auroc_all_regions"] == 1.0
    assert table["as stored"]["mean_logit_shift"] == 0.0
    assert table["darker (gamma 2)"]["auroc_all_regions"] == 0.0
    assert table["darker (gamma 2)"]["auroc_three_bones"] == 0.0  # the 'Other' image left out
    stored, darker = scores.values()
    pairs = zip(stored, darker, strict=True)
    shifts = [per_change.logit(d) - per_change.logit(s) for s, d in pairs]
    assert table["darker (gamma 2)"]["mean_logit_shift"] == pytest.approx(np.mean(shifts))


def test_every_change_alters_the_image():
    image = np.random.default_rng(5).uniform(0.1, 0.9, (200, 300)).astype(np.float32)
    for name, change in per_change.CHANGES.items():
        changed = change(image, np.random.default_rng(0))
        if name == "as stored":
            assert changed is image
        else:
            assert changed.ndim == 2 and 0.0 <= changed.min() <= changed.max() <= 1.0, name
            assert changed.shape != image.shape or not np.allclose(changed, image), name


def test_command_writes_a_row_per_change(tmp_path, capsys):
    data = make_fracatlas_tree(tmp_path / "data", n=60)
    weights = make_random_weights(tmp_path / "weights")
    out = tmp_path / "per_change.json"
    args = ["--data", str(data), "--weights", str(weights), "--negatives", "6", "--out", str(out)]
    assert per_change.main([*args, "--splits", "val"]) == 0
    report = json.loads(out.read_text())
    val = datasets.load_splits("fracatlas", data)[0]["val"]
    assert report["images"] == len(per_change.held_out(val, 6))  # validation alone
    assert list(report["changes"]) == list(per_change.CHANGES)
    assert report["changes"]["as stored"]["mean_logit_shift"] == 0.0
    assert "darker (gamma 2)" in capsys.readouterr().out
