"""Head and threshold choice on validation images, from hand-made cell logits."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.test_fracture_data import write_fracatlas
from training.data.datasets import load_fracatlas
from training.data.fracture_data import build_cache
from training.report import fracture_report as fr


def test_youden_threshold_by_hand():
    labels = np.array([0, 0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.2, 0.6, 0.4, 0.7, 0.9])
    # at 0.7: sens 2/3, spec 1 (1.67); at 0.4: sens 1, spec 2/3 (1.67, first found wins)
    assert fr.youden_threshold(labels, scores) == pytest.approx(0.4)


def test_choice_uses_the_shared_head_where_a_bone_is_too_small_and_finds_boxes(tmp_path):
    data = write_fracatlas(tmp_path / "atlas", per_split=4)
    records, _ = load_fracatlas(data, regions_csv=None)
    cache = build_cache(records, data, tmp_path / "cache", size=64)
    rows = list(range(len(records)))
    logits = np.full((len(rows), 4, 4, 4), -6.0, dtype=np.float32)
    for k, row in enumerate(rows):  # a perfect map: the fracture's cells are confident
        mask = cache.mask(row)
        for r in range(4):
            for c in range(4):
                if mask[16 * r : 16 * r + 16, 16 * c : 16 * c + 16].any():
                    logits[k, r, c, :] = 6.0
    split = {"logits": logits, "rows": rows, "meta": [cache.meta[i] for i in rows]}
    choice = fr.choose(split, cache, "lse", 5.0)
    assert choice["heads"] == {"Elbow": "shared", "Hand": "shared", "Shoulder": "shared"}
    figures = choice["val_localisation_at_box_threshold"]
    assert figures["top_box_hit_rate"] == 1.0 and figures["false_boxes_per_normal_image"] == 0.0
    report = fr.split_report(split, cache, choice, shipped=None)
    assert report["auroc"]["all regions"]["auroc"] == 1.0


def test_pooling_is_chosen_by_validation_auroc():
    logits = np.full((4, 4, 4, 4), -1.0, dtype=np.float32)  # two fractured images: all cells -1
    logits[2:] = -3.0
    logits[2:, 0, 0] = 5.0  # two normal images: mean -2.5, but one confident cell
    meta = [{"label": label, "bone": "Other"} for label in (1, 1, 0, 0)]
    pooling, r, tried = fr.choose_pooling({"logits": logits, "rows": [0, 1, 2, 3], "meta": meta})
    assert (pooling, r) == ("mean", 1.0)
    assert tried["mean r=1"] == 1.0 and tried["lse r=10"] == 0.0


def test_shipped_probabilities_come_from_the_apps_engine(tmp_path):
    from core import engine
    from tests.factories import make_random_weights
    from tests.mura_fixture import make_fracatlas_tree
    from training.data import datasets

    data = make_fracatlas_tree(tmp_path / "data", n=12)
    weights = make_random_weights(tmp_path / "weights", favour_bone="Hand", fracture_logit=2.0)
    records = datasets.load_splits("fracatlas", data)[0]["train"][:5]
    engine.clear_cache()
    probabilities = fr.shipped_probabilities(records, weights)
    engine.clear_cache()
    assert list(probabilities) == [r.path.name for r in records]
    assert all(abs(p - 1 / (1 + math.exp(-2.0))) < 1e-3 for p in probabilities.values())
