"""Grouped cross-validation of a fracture verdict over the training and validation images, for
comparisons where the held-out splits hold too few fractured elbows, hands and shoulders to tell.

    python -m training.report.cv_verdict --data PATH --weights DIR --networks fracture[,shared]
        [--strength 0.1] [--folds 5] [--out FILE.json]

The verdict is `fit_verdict`'s: one L2-regularised logistic regression on the mean-pooled
features of the networks named (read through the app's runtime, cached like `fit_verdict`),
fitted on every region. Folds are drawn by patient (FracAtlas: blocks of consecutive ids), each
image is scored by the fit on the other folds, and AUROC (95% bootstrap interval) is reported for
the hand, the three bones and every region.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from core.models import BONES
from training import metrics
from training.data import datasets
from training.heads.fit_verdict import FOLDS, hash_fold
from training.heads.linear import fit_logistic, pooled_features, standardise


def out_of_fold_scores(
    x: np.ndarray, labels: np.ndarray, patients: list[str], strength: float, folds: int = FOLDS
) -> np.ndarray:
    """Each image's verdict logit from the regression fitted on the folds without its patient."""
    fold = np.array([hash_fold(patient, folds) for patient in patients])
    scores = np.zeros(len(labels))
    for k in range(folds):
        train, held = fold != k, fold == k
        mean, spread = standardise(x[train])
        w, b = fit_logistic((x[train] - mean) / spread, labels[train], strength)
        scores[held] = (x[held] - mean) / spread @ w + b
    return scores


def group_aurocs(labels: np.ndarray, scores: np.ndarray, bones: np.ndarray) -> dict:
    """AUROC with its interval and counts for the hand, the three bones and every region."""
    groups = {"Hand": bones == "Hand", "three bones": np.isin(bones, BONES)}
    groups["all regions"] = np.ones(len(labels), dtype=bool)
    report = {}
    for name, member in groups.items():
        y, s = labels[member], scores[member]
        report[name] = {
            "auroc": metrics.auroc(y, s),
            "auroc_ci": metrics.bootstrap_ci(metrics.auroc, y, s),
            "n": int(member.sum()),
            "fractured": int(y.sum()),
        }
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="FracAtlas folder")
    parser.add_argument("--weights", type=Path, required=True, help="weights folder")
    parser.add_argument("--networks", required=True, help="comma-separated network names")
    parser.add_argument("--strength", type=float, default=0.1, help="L2 strength")
    parser.add_argument("--folds", type=int, default=FOLDS)
    parser.add_argument("--cache", type=Path, default=Path("runs/verdict_features"))
    parser.add_argument("--out", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    splits, _ = datasets.load_splits("fracatlas", args.data)
    records = splits["train"] + splits["val"]
    names = args.networks.split(",")
    x = np.concatenate(
        [pooled_features(args.weights, name, records, args.cache) for name in names], axis=1
    )
    labels = np.array([r.label for r in records], dtype=float)
    scores = out_of_fold_scores(x, labels, [r.patient for r in records], args.strength, args.folds)
    report = {
        "weights": str(args.weights),
        "networks": names,
        "strength": args.strength,
        "folds": args.folds,
        "images": "train + val",
        **group_aurocs(labels, scores, np.array([r.bone for r in records])),
    }
    text = json.dumps(report, indent=1, default=float)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
