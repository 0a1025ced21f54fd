"""The pieces every linear head shares: pooled features read through the app's runtime, their
standardisation, L2 softmax and logistic regressions, and for the heads that act above a least
confidence (orientation, polarity) its choice and their command line (the heads' own fits build
on these)."""

from __future__ import annotations

import argparse
import sys
import time
import zlib
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from core.errors import TriageError
from core.heads import softmax
from core.imaging import preprocess, read_xray
from core.manifest import read_manifest, verified_path
from core.runtime import Network
from training.data import augment
from training.data.datasets import Record


def pooled_features(
    weights: Path,
    network: str,
    records: list[Record],
    cache: Path,
    turns: int = 1,
    inverted: bool = False,
) -> np.ndarray:
    """(N * views, C) mean-pooled feature maps of `records` through `network` (the app's LiteRT
    file); with `turns` > 1, each record at 0, 1, ... quarter turns, in that order; with
    `inverted`, each record as it is, then with its grey levels reversed."""
    if inverted and turns != 1:
        raise ValueError("pooled_features: turns or inverted views, not both")
    suffix = "-inverted" if inverted else ("" if turns == 1 else f"-turns{turns}")

    def views(gray: np.ndarray, _name: str) -> list[np.ndarray]:
        return [gray, 1.0 - gray] if inverted else [np.rot90(gray, k) for k in range(turns)]

    return _cached_views(weights, network, records, cache, suffix, views)


def changed_features(
    weights: Path, network: str, records: list[Record], cache: Path, copies: int, seed: int = 0
) -> np.ndarray:
    """(N * copies, C) mean-pooled features of `copies` views of each record as another hospital
    might show it after the app's corrections (`augment.after_correction`), record by record;
    each view is seeded by the record's file name, so the rows do not depend on their order."""

    def views(gray: np.ndarray, name: str) -> list[np.ndarray]:
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        return [augment.after_correction(gray, rng) for _ in range(copies)]

    return _cached_views(weights, network, records, cache, f"-hospital{copies}s{seed}", views)


def _cached_views(
    weights: Path, network: str, records: list[Record], cache: Path, suffix: str, views_of
) -> np.ndarray:
    """(N * views, C) mean-pooled features of the views `views_of(gray, file name)` makes of
    each record, read through the app's runtime and cached per network checksum and `suffix`."""
    manifest = read_manifest(weights)
    entry = manifest.networks[network]
    cache.mkdir(parents=True, exist_ok=True)
    store = cache / f"{network}-{entry.sha256[:12]}{suffix}.npz"
    known = dict(np.load(store)) if store.is_file() else {}
    runner = None
    rows = []
    for record in records:
        name = Path(record.path).name
        if name not in known:
            runner = runner or Network(verified_path(manifest, entry), entry)
            try:
                gray = read_xray(record.path)
            except TriageError as error:
                raise SystemExit(f"{record.path}: {error}") from error
            pooled = [
                runner.features(preprocess(view, entry.input_size)).mean(axis=(0, 1))
                for view in views_of(gray, name)
            ]
            known[name] = pooled[0] if len(pooled) == 1 else np.stack(pooled)
        rows.append(known[name])
    if runner is not None:
        np.savez(store, **known)
    return np.concatenate([np.reshape(row, (-1, row.shape[-1])) for row in rows]).astype(np.float64)


def standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and spread of each feature (spread never 0)."""
    return x.mean(axis=0), x.std(axis=0) + 1e-6


def fit_softmax(
    x: np.ndarray,
    classes: np.ndarray,
    strength: float,
    count: int,
    iterations: int = 300,
) -> tuple[np.ndarray, np.ndarray]:
    """L2-regularised softmax regression of `count` classes on raw features: (kernel (C, K),
    bias (K,)), with the standardisation folded in."""
    mean, spread = standardise(x)
    z = (x - mean) / spread
    target = np.eye(count)[classes]
    n, width = z.shape

    def loss(params):
        w, b = params[:-count].reshape(width, count), params[-count:]
        p = softmax(z @ w + b)
        value = -np.mean(np.log(p[target == 1] + 1e-12)) + strength * np.sum(w * w)
        g = (p - target) / n
        return value, np.concatenate([(z.T @ g + 2 * strength * w).ravel(), g.sum(axis=0)])

    found = minimize(
        loss,
        np.zeros(width * count + count),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": iterations},
    )
    w, b = found.x[:-count].reshape(width, count), found.x[-count:]
    kernel = w / spread[:, None]
    return kernel, b - mean @ kernel


def fit_logistic(
    x: np.ndarray, y: np.ndarray, strength: float, offset: np.ndarray | float = 0.0
) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression: weights and bias (x already standardised), on top of
    fixed logits `offset` (a bone's offset is fitted on top of the common head)."""

    def loss(params):
        w, b = params[:-1], params[-1]
        z = offset + x @ w + b
        value = np.mean(np.logaddexp(0, z) - y * z) + strength * w @ w
        g = (1 / (1 + np.exp(-z)) - y) / len(y)
        return value, np.concatenate([x.T @ g + 2 * strength * w, [g.sum()]])

    found = minimize(loss, np.zeros(x.shape[1] + 1), jac=True, method="L-BFGS-B")
    return found.x[:-1], float(found.x[-1])


GATES = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # the manifest takes thresholds in (0, 1)


def choose_gate(probabilities: np.ndarray, truth: np.ndarray) -> dict:
    """The least confidence in GATES that maximises the share of views the fracture networks see
    in their training orientation, with views as stored weighing as much as all turned views
    together (a turn not taken leaves a turned view; a wrong turn spoils one); of gates that tie,
    the highest."""
    guess = probabilities.argmax(axis=1)
    acts = guess != 0
    upright = truth == 0
    table = {}
    for gate in GATES:
        turned_back = acts & (probabilities.max(axis=1) >= gate)
        seen_right = np.where(turned_back, guess == truth, upright)
        table[gate] = {
            "as_stored_left_alone": float(np.mean(seen_right[upright])),
            "turned_seen_upright": float(np.mean(seen_right[~upright])),
        }
        table[gate]["score"] = float(np.mean(list(table[gate].values())))
    # on a tie, the surest gate: act on an image only when as sure as validation allows
    chosen = max(GATES, key=lambda gate: (round(table[gate]["score"], 9), gate))
    return {"gate": chosen, "by_gate": table}


def gated_head_arguments(module: str, doc: str | None) -> argparse.ArgumentParser:
    """The command line of a head fitted on a first-run network's features (orientation,
    polarity): weights folder, data, network, L2 strength, feature cache, split seed."""
    parser = argparse.ArgumentParser(
        prog=f"python -m training.heads.{module}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--weights", type=Path, required=True, help="weights folder to update")
    parser.add_argument("--data", type=Path, required=True, help="FracAtlas folder")
    parser.add_argument("--network", default="bone_type", help="network whose features it reads")
    parser.add_argument("--strength", type=float, default=1e-3, help="L2 strength")
    parser.add_argument("--cache", type=Path, default=Path("runs/orientation_features"))
    parser.add_argument("--seed", type=int, default=0)
    return parser


def gated_head_provenance(module: str, seed: int, argv: list[str] | None, started: float) -> dict:
    """Where a gated head came from: its data, its command and how long it took."""
    return {
        "data": f"fracatlas, train split (fit) and val split (least confidence), seed {seed}",
        "command": f"python -m training.heads.{module} "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "training_minutes": round((time.time() - started) / 60, 1),
    }
