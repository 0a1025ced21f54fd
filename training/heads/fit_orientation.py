"""Fit the orientation head: how many quarter turns an X-ray is from the orientation the fracture
networks were trained on, read from a network the app runs first (by default `bone_type`).

    python -m training.heads.fit_orientation --weights DIR --data PATH [--network bone_type]

Other hospitals store X-rays turned by 90 or 180 degrees, and the fracture networks, trained on
FracAtlas as stored, lose their signal on turned images. With this head the app turns such an
image back before the fracture networks see it (`core.engine`), at no extra network cost.

Every training image is shown at the four quarter turns; a softmax regression (L2) on the
network's mean-pooled features learns the turn. Its least confidence (below it the image is
left as it is) is chosen on validation: the one that lets the fracture networks see the most
views in their training orientation, views as stored weighing as much as all turned views
together. Features are read through the app's runtime and cached
(`training.heads.linear.pooled_features`).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from core.heads import softmax
from core.manifest import ORIENTATION_KEY
from core.models import ORIENTATION_CLASSES
from training.data import datasets
from training.export.litert import register_head
from training.heads.linear import (
    choose_gate,
    fit_softmax,
    gated_head_arguments,
    gated_head_provenance,
    pooled_features,
)

TURNS = len(ORIENTATION_CLASSES)


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    args = gated_head_arguments("fit_orientation", __doc__).parse_args(argv)
    started = time.time()
    splits, _ = datasets.load_splits("fracatlas", args.data, seed=args.seed)
    train, val = splits["train"], splits["val"]
    x_train = pooled_features(args.weights, args.network, train, args.cache, TURNS)
    x_val = pooled_features(args.weights, args.network, val, args.cache, TURNS)
    turns_train = np.tile(np.arange(TURNS), len(train))
    turns_val = np.tile(np.arange(TURNS), len(val))
    kernel, bias = fit_softmax(x_train, turns_train, args.strength, TURNS)
    probabilities = softmax(x_val @ kernel + bias)
    accuracy = float(np.mean(probabilities.argmax(axis=1) == turns_val))
    gate = choose_gate(probabilities, turns_val)
    validation = {"images": len(val), "views": len(turns_val), "accuracy": accuracy, **gate}
    print(json.dumps(validation, indent=1))
    register_head(
        args.weights,
        ORIENTATION_KEY,
        kernel.astype(np.float32),
        bias.astype(np.float32),
        args.network,
        threshold=gate["gate"],
        head=f"softmax regression (L2 {args.strength:g}) on the pooled features of "
        f"`{args.network}`, every training image at four quarter turns; least confidence chosen "
        "on validation (views as stored weigh as much as all turned views)",
        validation=validation,
        provenance=gated_head_provenance("fit_orientation", args.seed, argv, started),
    )
    print(f"Orientation head written to {args.weights}: least confidence {gate['gate']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
