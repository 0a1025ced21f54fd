"""How the fracture verdict holds up under one acquisition change at a time.

    python -m training.report.per_change --data PATH [--weights DIR] [--splits val,test]
        [--negatives 300] [--out F]

The held-out images (validation + test: no network saw them in training) are scored as stored and
after each change another hospital's image may show (a quarter or half turn, a small rotation,
darker or lighter exposure, noise, blur, inverted grey levels, a burned-in letter, black borders).
Every changed image goes through the app's engine (orientation and polarity heads included); the
fracture probability is that of the bone the engine thinks likeliest, as the app routes it. The
report gives, per change, AUROC over all regions and over the three bones, and the mean shift of
the fracture logit against the image as stored (a positive shift means more false alarms).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from core import engine as engines
from core.imaging import read_xray
from core.models import BONES
from training import metrics
from training.data import augment, datasets
from training.data.datasets import Record

Change = Callable[[np.ndarray, np.random.Generator], np.ndarray]

CHANGES: dict[str, Change] = {
    "as stored": lambda image, rng: image,
    "quarter turn": lambda image, rng: augment.rotate90(image, 1),
    "half turn": lambda image, rng: augment.rotate90(image, 2),
    "mirrored": lambda image, rng: augment.flip(image),
    "rotated 15 degrees": lambda image, rng: augment.rotate(image, 15.0),
    "lighter (gamma 0.5)": lambda image, rng: augment.gamma(image, 0.5),
    "darker (gamma 2)": lambda image, rng: augment.gamma(image, 2.0),
    "low contrast": lambda image, rng: augment.contrast(image, 0.6, 0.1),
    "blurred": lambda image, rng: augment.blur(image, 1.5 * max(image.shape) / 512),
    "noise": lambda image, rng: augment.noise(image, rng, 0.03),
    "inverted": lambda image, rng: augment.invert(image),
    "letter": lambda image, rng: augment.burn_letter(image, rng),
    "black borders": lambda image, rng: augment.add_borders(image, rng, widest=0.3, value=0.0),
}


def held_out(records: Sequence[Record], negatives: int, seed: int = 0) -> list[Record]:
    """Every fractured record and a seeded sample of `negatives` normal ones (0 = all)."""
    fractured = [r for r in records if r.label]
    normal = [r for r in records if not r.label]
    if negatives and negatives < len(normal):
        picked = np.random.default_rng(seed).choice(len(normal), negatives, replace=False)
        normal = [normal[i] for i in sorted(picked)]
    return fractured + normal


def routed_probability(raw) -> float:
    """The fracture probability of the bone the engine thinks likeliest (the app's route)."""
    bone = max(BONES, key=lambda name: raw.bone_probabilities.get(name, 0.0))
    return float(raw.fracture_probabilities[bone])


def logit(probability: float) -> float:
    clipped = min(max(probability, 1e-6), 1 - 1e-6)
    return math.log(clipped / (1 - clipped))


def score_changes(
    records: Sequence[Record], weights: Path | str | None, changes: dict[str, Change] = CHANGES
) -> dict[str, list[float]]:
    """Fracture probability of every record under every change (seeded per image and change)."""
    engine = engines.get_engine(weights)
    scores: dict[str, list[float]] = {name: [] for name in changes}
    for index, record in enumerate(records):
        image = read_xray(record.path)
        for number, (name, change) in enumerate(changes.items()):
            rng = np.random.default_rng([index, number])
            changed = image if name == "as stored" else augment.restretch(change(image, rng))
            scores[name].append(routed_probability(engine.run(changed)))
    return scores


def summarise(records: Sequence[Record], scores: dict[str, list[float]]) -> dict[str, dict]:
    """Per change: AUROC over all regions and the three bones, and the mean logit shift."""
    labels = np.array([r.label for r in records])
    three = np.array([r.bone in BONES for r in records])
    stored = np.array([logit(p) for p in scores["as stored"]])
    table = {}
    for name, probabilities in scores.items():
        values = np.array(probabilities)
        table[name] = {
            "auroc_all_regions": metrics.auroc(labels, values),
            "auroc_three_bones": metrics.auroc(labels[three], values[three]),
            "mean_logit_shift": float(np.mean([logit(p) for p in values] - stored)),
        }
    return table


def format_table(table: dict[str, dict]) -> str:
    lines = [f"{'change':22s} {'all regions':>11s} {'three bones':>11s} {'logit shift':>11s}"]
    for name, row in table.items():
        lines.append(
            f"{name:22s} {row['auroc_all_regions']:11.3f} {row['auroc_three_bones']:11.3f} "
            f"{row['mean_logit_shift']:+11.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="FracAtlas folder")
    parser.add_argument("--weights", type=Path, default=None, help="weights folder (the app's)")
    parser.add_argument("--negatives", type=int, default=300, help="normal images (0 = all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the table")
    parser.add_argument("--splits", default="val,test", help="held-out splits (comma-separated)")
    args = parser.parse_args(argv)
    splits, _ = datasets.load_splits("fracatlas", args.data)
    chosen = [record for name in args.splits.split(",") for record in splits[name]]
    records = held_out(chosen, args.negatives, args.seed)
    bones = sum(r.bone in BONES for r in records)
    print(f"{len(records)} held-out images ({bones} of the three bones)", flush=True)
    table = summarise(records, score_changes(records, args.weights))
    print(format_table(table))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"images": len(records), "weights": str(args.weights), "changes": table}
        args.out.write_text(json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
