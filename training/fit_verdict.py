"""Fit each bone's fracture verdict as one linear head over several networks' pooled features.

    python -m training.fit_verdict --weights DIR --data PATH --networks shared,fracture

The networks of a weights folder see an image at different scales (e.g. the 160-px whole view and
the 384-px fine-detail network). With mean pooling, a linear head on their concatenated pooled
features is the sum of one linear head per network, so the app runs each network once, as
before, and adds the heads' image logits (`plus_heads` in the manifest).

L2-regularised logistic regression on the training split (every region: fracture signs are
learned from all bones); the L2 strength is chosen by 5-fold cross-validation over training
patients; each bone's threshold on validation (Youden's J), moved to 0.5 through the bias.
Features are read through the app's own runtime and cached in `--cache` (keyed by checksum).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from core import manifest as manifest_io
from core.errors import TriageError
from core.heads import sigmoid
from core.imaging import preprocess, read_xray
from core.manifest import fracture_key, read_manifest, verified_path
from core.models import BONES
from core.runtime import Network
from training import datasets
from training.datasets import Record
from training.export import register_head
from training.metrics import auroc
from training.train import choose_thresholds, logit, operating_point_note

STRENGTHS = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
FOLDS = 5


def pooled_features(weights: Path, network: str, records: list[Record], cache: Path) -> np.ndarray:
    """(N, C) mean-pooled feature maps of `records` through `network` (the app's LiteRT file)."""
    manifest = read_manifest(weights)
    entry = manifest.networks[network]
    cache.mkdir(parents=True, exist_ok=True)
    store = cache / f"{network}-{entry.sha256[:12]}.npz"
    known = dict(np.load(store)) if store.is_file() else {}
    runner = None
    rows = []
    for record in records:
        name = Path(record.path).name
        if name not in known:
            runner = runner or Network(verified_path(manifest, entry), entry)
            try:
                pixels = preprocess(read_xray(record.path), entry.input_size)
            except TriageError as error:
                raise SystemExit(f"{record.path}: {error}") from error
            known[name] = runner.features(pixels).mean(axis=(0, 1))
        rows.append(known[name])
    if runner is not None:
        np.savez(store, **known)
    return np.stack(rows).astype(np.float64)


def fit_logistic(x: np.ndarray, y: np.ndarray, strength: float) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression: weights and bias (x already standardised)."""

    def loss(params):
        w, b = params[:-1], params[-1]
        z = x @ w + b
        value = np.mean(np.logaddexp(0, z) - y * z) + strength * w @ w
        g = (1 / (1 + np.exp(-z)) - y) / len(y)
        return value, np.concatenate([x.T @ g + 2 * strength * w, [g.sum()]])

    found = minimize(loss, np.zeros(x.shape[1] + 1), jac=True, method="L-BFGS-B")
    return found.x[:-1], float(found.x[-1])


def standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and spread of each feature (spread never 0)."""
    return x.mean(axis=0), x.std(axis=0) + 1e-6


def cross_validated_auroc(
    x: np.ndarray, records: list[Record], strength: float, folds: int = FOLDS
) -> float:
    """Mean of the out-of-fold AUROC on every region and on the three bones (folds by patient)."""
    y = np.array([r.label for r in records], dtype=float)
    fold = np.array([hash_fold(r.patient, folds) for r in records])
    scores = np.zeros(len(records))
    for k in range(folds):
        train, held = fold != k, fold == k
        mean, spread = standardise(x[train])
        w, b = fit_logistic((x[train] - mean) / spread, y[train], strength)
        scores[held] = (x[held] - mean) / spread @ w + b
    bones = np.array([r.bone in BONES for r in records])
    return float(np.mean([auroc(y, scores), auroc(y[bones], scores[bones])]))


def hash_fold(patient: str, folds: int) -> int:
    """A stable fold number for a patient."""
    return zlib.crc32(patient.encode()) % folds


def fit(features: list[np.ndarray], records: list[Record]) -> dict:
    """Choose the L2 strength by cross-validation, fit on all of `records`, and fold the
    standardisation into one (kernel, bias) per network."""
    x = np.concatenate(features, axis=1)
    cv = {s: cross_validated_auroc(x, records, s) for s in STRENGTHS}
    strength = max(cv, key=cv.get)
    mean, spread = standardise(x)
    y = np.array([r.label for r in records], dtype=float)
    w, b = fit_logistic((x - mean) / spread, y, strength)
    kernel = w / spread
    bias = b - float(mean @ kernel)
    parts, start = [], 0
    for block in features:
        parts.append(kernel[start : start + block.shape[1]].astype(np.float32)[:, None])
        start += block.shape[1]
    return {"kernels": parts, "bias": bias, "strength": strength, "cross_validation": cv}


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(
        prog="python -m training.fit_verdict",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--weights", type=Path, required=True, help="weights folder to update")
    parser.add_argument("--data", type=Path, required=True, help="FracAtlas folder")
    parser.add_argument("--networks", required=True, help="comma-separated, first = main head")
    parser.add_argument("--cache", type=Path, default=Path("runs/verdict_features"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.time()
    networks = args.networks.split(",")
    splits, _ = datasets.load_splits("fracatlas", args.data, seed=args.seed)
    train, val = splits["train"], splits["val"]
    both = [pooled_features(args.weights, net, train + val, args.cache) for net in networks]
    result = fit([block[: len(train)] for block in both], train)
    val_logits = sum(
        block[len(train) :] @ kernel[:, 0]
        for block, kernel in zip(both, result["kernels"], strict=True)
    )
    val_scores = sigmoid(val_logits + result["bias"])
    labels = np.array([r.label for r in val])
    bones = np.array([r.bone in BONES for r in val])
    validation = {
        "images": len(val),
        "auroc_all_regions": auroc(labels, val_scores),
        "auroc_three_bones": auroc(labels[bones], val_scores[bones]),
    }
    print(json.dumps({"cross_validation": result["cross_validation"], **validation}, indent=1))
    details = {
        "head": f"linear head on the pooled features of {' + '.join(networks)}, fitted on every "
        f"training region (L2 {result['strength']:g}, chosen by {FOLDS}-fold cross-validation "
        "over training patients)",
        "validation": validation,
        "provenance": {
            "data": f"fracatlas, train split (fit) and val split (thresholds), seed {args.seed}",
            "command": "python -m training.fit_verdict "
            + " ".join(sys.argv[1:] if argv is None else argv),
            "training_minutes": round((time.time() - started) / 60, 1),
        },
    }
    terms = []
    for network, kernel in zip(networks[1:], result["kernels"][1:], strict=True):
        key = f"fracture_term_{network}"
        register_head(args.weights, key, kernel, np.zeros(1, np.float32), network, **details)
        terms.append(key)
    thresholds = choose_thresholds(val, {bone: val_scores for bone in BONES})
    raw_before = manifest_io.load_raw(args.weights)
    for bone in BONES:
        threshold, source = thresholds[bone]
        key = fracture_key(bone)
        keep = {
            k: raw_before["heads"][key][k] for k in ("map_head",) if k in raw_before["heads"][key]
        }
        register_head(
            args.weights,
            key,
            result["kernels"][0],
            np.array([result["bias"] - logit(threshold)], np.float32),
            networks[0],
            threshold=0.5,
            operating_point=operating_point_note(threshold, source),
            plus_heads=terms,
            **keep,
            **details,
        )
    print(f"Verdict heads written to {args.weights} in {(time.time() - started) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
