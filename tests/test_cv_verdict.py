"""Grouped cross-validation of a verdict: folds by patient, out-of-fold scores, group AUROCs."""

from __future__ import annotations

import numpy as np

from training.report.cv_verdict import group_aurocs, out_of_fold_scores


def test_out_of_fold_scores_find_a_real_signal_and_not_a_leaked_one():
    rng = np.random.default_rng(0)
    patients = [f"p{i // 4}" for i in range(400)]  # four images per patient
    labels = (rng.random(400) < 0.3).astype(float)
    signal = np.c_[labels + rng.normal(0, 0.7, 400), rng.normal(size=(400, 5))]
    scores = out_of_fold_scores(signal, labels, patients, strength=0.01)
    assert group_aurocs(labels, scores, np.array(["Hand"] * 400))["Hand"]["auroc"] > 0.8
    # a feature that only identifies the patient scores high only if a patient's images were
    # split across folds (it would then recall the patient's label)
    patient_label = np.repeat((rng.random(100) < 0.3).astype(float), 4)
    identity = np.eye(100)[np.arange(400) // 4]
    scores = out_of_fold_scores(identity, patient_label, patients, strength=0.01)
    report = group_aurocs(patient_label, scores, np.array(["Hand", "Other"] * 200))
    assert report["all regions"]["auroc"] < 0.6
    leaked = out_of_fold_scores(identity, patient_label, [str(i) for i in range(400)], 0.01)
    assert group_aurocs(patient_label, leaked, np.array(["Hand"] * 400))["Hand"]["auroc"] > 0.9
    assert report["three bones"]["n"] == 200 and report["all regions"]["n"] == 400
    low, high = report["all regions"]["auroc_ci"]
    assert low <= report["all regions"]["auroc"] <= high
