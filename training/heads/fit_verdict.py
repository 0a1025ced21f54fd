"""Fit each bone's fracture verdict as one linear head over several networks' pooled features.

    python -m training.heads.fit_verdict --weights DIR --data PATH --networks shared,fracture

The networks of a weights folder see an image at different scales (e.g. the 160-px whole view and
the 384-px fine-detail network). With mean pooling, a linear head on their concatenated pooled
features is the sum of one linear head per network, so the app runs each network once, as
before, and adds the heads' image logits (`plus_heads` in the manifest).

L2-regularised logistic regression on the training split (every region: fracture signs are
learned from all bones). With `--bone-offsets`, each bone's head adds an offset fitted on that
bone's images on top of it and pulled towards zero by its own L2 ("none" is one of the choices).
L2 strengths are chosen by 5-fold cross-validation over training patients; each bone's threshold
on validation (Youden's J), moved to 0.5 through the bias. With `--hospital-copies N`, the
regression also sees N changed views of each training image (`augment.after_correction`: how
another hospital's image reaches the fracture networks after the app's corrections), with the
image's label and patient, and validation is reported on one changed view of each image too.
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

from core import manifest as manifest_io
from core.heads import sigmoid
from core.manifest import fracture_key
from core.models import BONES
from training.data import datasets
from training.data.datasets import Record
from training.export.fracture import answered_by
from training.export.litert import prune, register_head
from training.heads.linear import changed_features, fit_logistic, pooled_features, standardise
from training.metrics import auroc
from training.networks.train import choose_thresholds, logit, operating_point_note

STRENGTHS = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
BONE_STRENGTHS = (None, 0.1, 0.3, 1.0, 3.0)  # L2 of each bone's offset; None = no offsets
FOLDS = 5
COMMON = "common"  # the head every region shares; scores the other regions in cross-validation


def fit_heads(
    z: np.ndarray, y: np.ndarray, bones: np.ndarray, strength: float, bone_strength: float | None
) -> dict[str, tuple[np.ndarray, float]]:
    """(weights, bias) of the common head and of each bone's head on standardised features `z`:
    the common head fitted on every region, each bone's head = common + that bone's offset."""
    common = fit_logistic(z, y, strength)
    heads = {COMMON: common}
    for bone in BONES:
        mine = bones == bone
        if bone_strength is None or not mine.any():
            heads[bone] = common
            continue
        base = z[mine] @ common[0] + common[1]
        w, b = fit_logistic(z[mine], y[mine], bone_strength, offset=base)
        heads[bone] = (common[0] + w, common[1] + b)
    return heads


def cross_validated_auroc(
    x: np.ndarray,
    records: list[Record],
    strength: float,
    bone_strength: float | None = None,
    folds: int = FOLDS,
) -> float:
    """Mean of the out-of-fold AUROC on every region and on the three bones (folds by patient);
    each image is scored by its bone's head, other regions by the common head."""
    y = np.array([r.label for r in records], dtype=float)
    bones = np.array([r.bone for r in records])
    fold = np.array([hash_fold(r.patient, folds) for r in records])
    scores = np.zeros(len(records))
    for k in range(folds):
        train, held = fold != k, fold == k
        mean, spread = standardise(x[train])
        heads = fit_heads(
            (x[train] - mean) / spread, y[train], bones[train], strength, bone_strength
        )
        for index in np.flatnonzero(held):
            w, b = heads.get(bones[index], heads[COMMON])
            scores[index] = (x[index] - mean) / spread @ w + b
    three = np.isin(bones, BONES)
    return float(np.mean([auroc(y, scores), auroc(y[three], scores[three])]))


def hash_fold(patient: str, folds: int) -> int:
    """A stable fold number for a patient."""
    return zlib.crc32(patient.encode()) % folds


def fit(
    features: list[np.ndarray],
    records: list[Record],
    bone_strengths: tuple[float | None, ...] = (None,),
) -> dict:
    """Choose the L2 strengths (the common head's, then the bones' offsets' among
    `bone_strengths`) by cross-validation, fit on all of `records`, and fold the standardisation
    into one (kernel, bias) per network for each bone and for the common head."""
    x = np.concatenate(features, axis=1)
    cv = {s: cross_validated_auroc(x, records, s) for s in STRENGTHS}
    strength = max(cv, key=cv.get)
    bone_cv = {  # no offsets = the common head, already cross-validated
        s: cv[strength] if s is None else cross_validated_auroc(x, records, strength, s)
        for s in bone_strengths
    }
    bone_strength = max(bone_cv, key=bone_cv.get)
    mean, spread = standardise(x)
    y = np.array([r.label for r in records], dtype=float)
    bones = np.array([r.bone for r in records])
    heads = fit_heads((x - mean) / spread, y, bones, strength, bone_strength)
    kernels, biases = {}, {}
    for bone in (*BONES, COMMON):
        w, b = heads[bone]
        kernel = w / spread
        biases[bone] = b - float(mean @ kernel)
        kernels[bone], start = [], 0
        for block in features:
            kernels[bone].append(kernel[start : start + block.shape[1]].astype(np.float32)[:, None])
            start += block.shape[1]
    return {
        "kernels": kernels,
        "bias": biases,
        "strength": strength,
        "bone_strength": bone_strength,
        "cross_validation": cv,
        "bone_cross_validation": {str(s).lower(): v for s, v in bone_cv.items()},
    }


def verdict_logits(blocks: list[np.ndarray], result: dict, bone: str) -> np.ndarray:
    """`bone`'s verdict logits from each network's pooled features, as the app adds them."""
    kernels = result["kernels"][bone]
    return (
        sum(block @ k[:, 0] for block, k in zip(blocks, kernels, strict=True))
        + result["bias"][bone]
    )


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(
        prog="python -m training.heads.fit_verdict",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--weights", type=Path, required=True, help="weights folder to update")
    parser.add_argument("--data", type=Path, required=True, help="FracAtlas folder")
    parser.add_argument("--networks", required=True, help="comma-separated, first = main head")
    parser.add_argument("--cache", type=Path, default=Path("runs/verdict_features"))
    parser.add_argument(
        "--bone-offsets",
        action="store_true",
        help="fit an offset per bone on top of the common head (L2 or none by cross-validation)",
    )
    parser.add_argument(
        "--hospital-copies",
        type=int,
        default=0,
        help="also fit on N changed views of each training image (augment.after_correction)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.time()
    networks = args.networks.split(",")
    splits, _ = datasets.load_splits("fracatlas", args.data, seed=args.seed)
    train, val = splits["train"], splits["val"]
    both = [pooled_features(args.weights, net, train + val, args.cache) for net in networks]
    fit_blocks, fit_records = [block[: len(train)] for block in both], list(train)
    if args.hospital_copies:
        copies = args.hospital_copies
        changed = [
            changed_features(args.weights, net, train, args.cache, copies, args.seed)
            for net in networks
        ]
        fit_blocks = [np.concatenate(pair) for pair in zip(fit_blocks, changed, strict=True)]
        fit_records += [r for r in train for _ in range(copies)]
    strengths = BONE_STRENGTHS if args.bone_offsets else (None,)
    result = fit(fit_blocks, fit_records, strengths)
    val_scores = head_scores([block[len(train) :] for block in both], result)
    validation = {"images": len(val), **validation_auroc(val, val_scores)}
    if args.hospital_copies:
        changed_val = [
            changed_features(args.weights, net, val, args.cache, 1, args.seed) for net in networks
        ]
        validation["changed_view"] = validation_auroc(val, head_scores(changed_val, result))
    summary = {k: result[k] for k in ("cross_validation", "bone_cross_validation")}
    print(json.dumps({**summary, **validation}, indent=1))
    offsets = (
        ""
        if result["bone_strength"] is None
        else ", plus an offset per bone fitted on that bone's images "
        f"(L2 {result['bone_strength']:g})"
    )
    hospital = (
        f", on each training image and {args.hospital_copies} changed view(s) of it "
        "(augment.after_correction)"
        if args.hospital_copies
        else ""
    )
    details = {
        "head": f"linear head on the pooled features of {' + '.join(networks)}, fitted on every "
        f"training region (L2 {result['strength']:g}){offsets}{hospital}; L2 chosen by "
        f"{FOLDS}-fold cross-validation over training patients",
        "validation": validation,
        **({"hospital_copies": args.hospital_copies} if args.hospital_copies else {}),
        "provenance": {
            "data": f"fracatlas, train split (fit) and val split (thresholds), seed {args.seed}",
            "command": "python -m training.heads.fit_verdict "
            + " ".join(sys.argv[1:] if argv is None else argv),
            "training_minutes": round((time.time() - started) / 60, 1),
        },
    }
    thresholds = choose_thresholds(val, {bone: val_scores[bone] for bone in BONES})
    raw_before = manifest_io.load_raw(args.weights)
    for bone in BONES:
        kernels = result["kernels"][bone]
        terms = []
        for network, kernel in zip(networks[1:], kernels[1:], strict=True):
            key = f"fracture_term_{network}"  # one term for every bone, unless offsets
            key += "" if result["bone_strength"] is None else f"_{bone.lower()}"
            register_head(args.weights, key, kernel, np.zeros(1, np.float32), network, **details)
            terms.append(key)
        threshold, source = thresholds[bone]
        key = fracture_key(bone)
        keep = {
            k: raw_before["heads"][key][k] for k in ("map_head",) if k in raw_before["heads"][key]
        }
        register_head(
            args.weights,
            key,
            kernels[0],
            np.array([result["bias"][bone] - logit(threshold)], np.float32),
            networks[0],
            threshold=0.5,
            operating_point=operating_point_note(threshold, source),
            plus_heads=terms,
            answered_by=answered_by(bone, result["bone_strength"] is not None),
            **keep,
            **details,
        )
    prune(args.weights, networks=False)
    print(f"Verdict heads written to {args.weights} in {(time.time() - started) / 60:.1f} min")
    return 0


def head_scores(blocks: list[np.ndarray], result: dict) -> dict[str, np.ndarray]:
    """Each bone's and the common head's verdict probabilities from each network's features."""
    return {head: sigmoid(verdict_logits(blocks, result, head)) for head in (*BONES, COMMON)}


def validation_auroc(records: list[Record], scores: dict[str, np.ndarray]) -> dict[str, float]:
    """AUROC over every region and over the three bones, each image scored by its bone's head
    and other regions by the common head."""
    labels = np.array([r.label for r in records])
    three = np.array([r.bone in BONES for r in records])
    own = np.array(
        [scores[r.bone if r.bone in BONES else COMMON][i] for i, r in enumerate(records)]
    )
    return {
        "auroc_all_regions": auroc(labels, own),
        "auroc_three_bones": auroc(labels[three], own[three]),
    }


if __name__ == "__main__":
    sys.exit(main())
