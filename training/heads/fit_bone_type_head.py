"""Refit the bone-type head on what the shipped network sees: many augmented training views.

    python -m training.heads.fit_bone_type_head --weights DIR --data PATH [--views-per-class 9000]
        [--strength 1e-3]

`training.networks.train_bone_type` trains the network and its softmax head together, on batches of
16. This refits only the head (a softmax regression, L2) on the network's mean-pooled features, read
through the app's runtime (the quantized file the app runs), of a class-balanced draw of training
views made as in training: tight joint views and whole images, turned, framed, lettered and
re-exposed (`training.networks.train_bone_type.draw_example`). The recognition threshold is chosen
again on the plain and the stress validation (`choose_threshold_on_both`). The network is unchanged.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from core import manifest as manifest_io
from core.engine import Engine
from core.errors import TriageError
from core.framing import content_box
from core.heads import softmax
from core.imaging import model_inputs, read_xray
from core.models import BONE_TYPE_CLASSES
from training.data import augment, datasets, stress
from training.data.datasets import Record
from training.export.litert import register_head
from training.heads.linear import fit_softmax
from training.networks.train_bone_type import (
    cache_images,
    draw_example,
    evaluate_probabilities,
    training_sources,
)


def view_features(
    engine: Engine,
    records: list[Record],
    per_class: int,
    seed: int,
    strength: float = 0.8,
    cache_side: int = 512,
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled features and classes of `per_class` augmented views of each bone-type class."""
    network = engine.networks[engine.manifest.bone_type.network]
    sources = training_sources(records, augment.load_joint_marks())
    cache = cache_images(records, cache_side)
    rng = np.random.default_rng(seed)
    features, classes = [], []
    for name in BONE_TYPE_CLASSES:
        for _ in range(per_class if sources[name] else 0):
            source = sources[name][int(rng.integers(len(sources[name])))]
            pixels, label = draw_example(
                cache[source.index], source, rng, network.input_size, strength
            )
            features.append(network.features(pixels).mean(axis=(0, 1)))
            classes.append(label)
    return np.array(features), np.array(classes)


def image_features(engine: Engine, records: list[Record]) -> tuple[np.ndarray, list[Record]]:
    """Pooled features of each readable image as the app frames it, and those images."""
    network = engine.networks[engine.manifest.bone_type.network]
    features, kept = [], []
    for record in records:
        try:
            gray = read_xray(record.path)
        except TriageError:
            continue  # as the app would refuse it (e.g. a joint view cut from a tiny image)
        ((pixels, _),) = model_inputs(gray, [network.input_size], content_box(gray))
        features.append(network.features(pixels).mean(axis=(0, 1)))
        kept.append(record)
    return np.array(features).reshape(len(kept), -1), kept


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(
        prog="python -m training.heads.fit_bone_type_head",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--weights", type=Path, required=True, help="weights folder to update")
    parser.add_argument("--data", type=Path, required=True, help="FracAtlas folder")
    parser.add_argument("--views-per-class", type=int, default=9000)
    parser.add_argument("--strength", type=float, default=1e-3, help="L2 strength")
    parser.add_argument("--stress-dir", type=Path, default=Path("runs/stress_val"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.time()
    splits, _ = datasets.load_splits("fracatlas", args.data, seed=args.seed)
    engine = Engine(manifest_io.read_manifest(args.weights))
    x, classes = view_features(engine, splits["train"], args.views_per_class, args.seed)
    kernel, bias = fit_softmax(x, classes, args.strength, len(BONE_TYPE_CLASSES), 500)
    items = stress.build_stress_set(splits["val"], augment.load_joint_marks(), args.seed)
    sets = {
        "plain validation": splits["val"],
        "stress validation": stress.write_stress_set(items, args.stress_dir),
    }
    probabilities = {}
    for name, records in sets.items():
        features, kept = image_features(engine, records)
        probabilities[name] = ([r.bone for r in kept], softmax(features @ kernel + bias))
    validation = evaluate_probabilities(probabilities)
    print(json.dumps(validation, indent=1))
    raw = manifest_io.load_raw(args.weights)
    network = raw["heads"]["bone_type"]["network"]
    provenance = dict(raw["heads"]["bone_type"].get("provenance", {}))
    provenance["head_refit"] = {
        "command": "python -m training.heads.fit_bone_type_head "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "views": len(classes),
        "validation": validation,
        "minutes": round((time.time() - started) / 60, 1),
    }
    register_head(
        args.weights,
        "bone_type",
        kernel.astype(np.float32),
        bias.astype(np.float32),
        network,
        head=f"softmax regression (L2 {args.strength:g}) on the pooled features of `{network}` "
        f"(as the app runs it) of {args.views_per_class} augmented training views per class",
        provenance=provenance,
    )
    raw = manifest_io.load_raw(args.weights)
    raw["recognition_threshold"] = validation["recognition_threshold"]
    raw["recognition_threshold_note"] = validation["threshold_note"]
    manifest_io.write_raw(args.weights, raw)
    print(
        f"Bone-type head written to {args.weights}: recognition threshold "
        f"{validation['recognition_threshold']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
