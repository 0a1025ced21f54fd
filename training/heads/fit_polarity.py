"""Fit the polarity head: whether an X-ray's grey levels are reversed (bone dark, background light)
from the images the fracture networks were trained on, read from a network the app runs first (by
default `bone_type`).

    python -m training.heads.fit_polarity --weights DIR --data PATH [--network bone_type]

Some hospitals and viewers export X-rays inverted, and the fracture verdict loses much of its
signal on them (validation and test, all regions, AUROC 0.84 -> 0.74; docs/evaluation/SELECTION.md,
stop 17). With this head the app reverses such an image back before the fracture networks see it
(`core.engine`), at no extra network cost.

Every training image is shown as it is and inverted; a logistic regression (L2) on the network's
mean-pooled features learns which is which. Its least confidence is chosen on validation like the
orientation head's (`linear.choose_gate`): images as stored weigh as much as inverted ones.
Features are read through the app's runtime and cached (`training.heads.linear.pooled_features`).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from core.heads import sigmoid
from core.manifest import POLARITY_KEY
from training.data import datasets
from training.export.litert import register_head
from training.heads.linear import (
    choose_gate,
    fit_logistic,
    gated_head_arguments,
    gated_head_provenance,
    pooled_features,
    standardise,
)


def fit_polarity(x: np.ndarray, inverted: np.ndarray, strength: float) -> tuple[np.ndarray, float]:
    """Logistic regression of `inverted` on features `x`, standardisation folded in: returns
    kernel (C,) and bias with logit = x @ kernel + bias."""
    mean, spread = standardise(x)
    w, b = fit_logistic((x - mean) / spread, inverted.astype(float), strength)
    kernel = w / spread
    return kernel, b - float(mean @ kernel)


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    args = gated_head_arguments("fit_polarity", __doc__).parse_args(argv)
    started = time.time()
    splits, _ = datasets.load_splits("fracatlas", args.data, seed=args.seed)
    train, val = splits["train"], splits["val"]
    x_train = pooled_features(args.weights, args.network, train, args.cache, inverted=True)
    x_val = pooled_features(args.weights, args.network, val, args.cache, inverted=True)
    truth_train, truth_val = np.tile([0, 1], len(train)), np.tile([0, 1], len(val))
    kernel, bias = fit_polarity(x_train, truth_train, args.strength)
    p_inverted = sigmoid(x_val @ kernel + bias)
    accuracy = float(np.mean((p_inverted >= 0.5) == truth_val))
    gate = choose_gate(np.stack([1 - p_inverted, p_inverted], axis=1), truth_val)
    validation = {"images": len(val), "views": len(truth_val), "accuracy": accuracy, **gate}
    print(json.dumps(validation, indent=1))
    register_head(
        args.weights,
        POLARITY_KEY,
        kernel[:, None].astype(np.float32),
        np.float32([bias]),
        args.network,
        threshold=gate["gate"],  # >= 0.5: lower gates act alike on two classes and lose ties
        head=f"logistic regression (L2 {args.strength:g}) on the pooled features of "
        f"`{args.network}`, every training image as it is and inverted; least confidence chosen "
        "on validation (images as stored weigh as much as inverted ones)",
        validation=validation,
        provenance=gated_head_provenance("fit_polarity", args.seed, argv, started),
    )
    print(f"Polarity head written to {args.weights}: least confidence {gate['gate']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
