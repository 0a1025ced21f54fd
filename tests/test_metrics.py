"""Metric functions against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training import metrics


def test_auroc_by_hand_with_ties():
    # positives 0.8, 0.4; negatives 0.4, 0.2. Pairs: (0.8>0.4)=1, (0.8>0.2)=1, (0.4=0.4)=0.5,
    # (0.4>0.2)=1  -> 3.5 / 4
    assert metrics.auroc([1, 1, 0, 0], [0.8, 0.4, 0.4, 0.2]) == 0.875


def test_auroc_perfect_inverted_and_undefined():
    assert metrics.auroc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert metrics.auroc([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4]) == 0.0
    assert math.isnan(metrics.auroc([1, 1], [0.2, 0.3]))


def test_cohen_kappa_by_hand():
    # table (rows true, cols predicted): [[20, 5], [10, 15]], n = 50
    # p_o = 35/50 = 0.7; p_e = (30*25 + 20*25) / 2500 = 0.5; kappa = 0.2 / 0.5 = 0.4
    truth = [0] * 25 + [1] * 25
    predicted = [0] * 20 + [1] * 5 + [0] * 10 + [1] * 15
    assert metrics.cohen_kappa(truth, predicted) == pytest.approx(0.4)
    assert metrics.confusion_matrix(truth, predicted).tolist() == [[20, 5], [10, 15]]


def test_kappa_perfect_and_multiclass():
    assert metrics.cohen_kappa([0, 1, 2, 1], [0, 1, 2, 1], classes=3) == 1.0
    # all predicted 0 while truth is mixed: p_o = 0.5, p_e = 0.5 -> 0
    assert metrics.cohen_kappa([0, 1, 0, 1], [0, 0, 0, 0]) == 0.0


def test_rates_at_threshold_by_hand():
    # threshold 0.5: predicted [1, 0, 1, 0]; truth [1, 1, 0, 0] -> tp 1, fn 1, fp 1, tn 1
    rates = metrics.binary_rates([1, 1, 0, 0], [0.9, 0.2, 0.6, 0.1], 0.5)
    assert rates["sensitivity"] == 0.5 and rates["specificity"] == 0.5
    assert rates["accuracy"] == 0.5 and rates["confusion"] == [[1, 1], [1, 1]]


def test_study_probability_is_mean_of_images():
    names, labels, scores = metrics.study_scores(
        ["a", "a", "b", "a"], [1, 1, 0, 1], [0.2, 0.4, 0.9, 0.6]
    )
    assert names == ["a", "b"]
    assert labels.tolist() == [1, 0]
    assert scores.tolist() == pytest.approx([0.4, 0.9])


def test_bootstrap_interval_is_deterministic_and_contains_the_estimate():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    scores = labels * 0.3 + rng.random(200) * 0.7
    low, high = metrics.bootstrap_ci(metrics.auroc, labels, scores, n=300, seed=3)
    assert (low, high) == metrics.bootstrap_ci(metrics.auroc, labels, scores, n=300, seed=3)
    assert low < metrics.auroc(labels, scores) < high
    assert high - low < 0.2


def test_summary_has_every_metric_with_intervals():
    summary = metrics.summarise([1, 0, 1, 0, 1, 0], [0.9, 0.1, 0.7, 0.4, 0.3, 0.2], 0.5)
    for name in ("auroc", "kappa", "sensitivity", "specificity", "accuracy"):
        assert name in summary and len(summary[f"{name}_ci"]) == 2
    assert summary["n"] == 6 and summary["positives"] == 3
