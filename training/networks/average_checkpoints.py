"""Average the weights of several fracture checkpoints of one lineage into a new run folder.

Weights taken along one fine-tuning run (or runs that went on from one checkpoint) lie in one
basin; their mean tends to sit nearer its centre than any single epoch and often generalises
better than the epoch a small validation monitor liked (stochastic weight averaging, "model
soups"; tried on FracAtlas at stop 20 and not shipped: docs/evaluation/SELECTION.md). The result
is a run folder whose `best.npz` holds the mean weights, so the usual steps follow:
`train_fracture --logits-only val test`, `fracture_report`, `export.fracture`.

Run: python -m training.networks.average_checkpoints --out DIR CHECKPOINT [CHECKPOINT ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from training.networks.train_fracture import checkpoint_state

WEIGHT_PREFIXES = ("trunk/", "heads/")


def mean_weights(paths: list[Path]) -> dict[str, np.ndarray]:
    """The element-wise mean of the trunk and head weights of `paths` (same network each)."""
    sums: dict[str, np.ndarray] = {}
    for path in paths:
        with np.load(path, allow_pickle=False) as archive:
            names = sorted(n for n in archive.files if n.startswith(WEIGHT_PREFIXES))
            if sums and names != sorted(sums):
                raise ValueError(f"{path} holds other weights than {paths[0]}")
            for name in names:
                sums[name] = sums.get(name, 0.0) + archive[name].astype(np.float64)
    return {name: (total / len(paths)).astype(np.float32) for name, total in sums.items()}


def averaged_state(paths: list[Path], command: str = "") -> dict:
    """The loop state of the average: the last checkpoint's (backbone, layer, minutes, the run it
    started from), with every source listed, the training commands of all of them and the
    averaging `command`."""
    states = [checkpoint_state(path) for path in paths]
    latest = states[-1]
    shared_keys = ("backbone", "layer")
    for path, state in zip(paths, states, strict=True):
        for key in shared_keys:
            if state.get(key) != latest.get(key):
                raise ValueError(f"{path}: {key} {state.get(key)!r}, not {latest.get(key)!r}")
    state = {key: value for key, value in latest.items() if key != "history"}
    state["best_epoch"] = None
    commands = [s["command"] for s in states if s.get("command")]
    state["command"] = "; ".join(dict.fromkeys(commands))  # each run's once, in order
    state["averaged_by"] = command
    state["averaged_from"] = [
        {"checkpoint": str(path), "epoch": s.get("epoch"), "minutes": round(s["minutes"], 1)}
        for path, s in zip(paths, states, strict=True)
    ]
    return state


def write_average(paths: list[Path], out: Path, command: str = "") -> Path:
    """Write `out/best.npz`: the mean weights of `paths` and their provenance."""
    out.mkdir(parents=True, exist_ok=True)
    arrays = mean_weights(paths)
    state = averaged_state(paths, command)
    arrays["state"] = np.frombuffer(json.dumps(state).encode(), dtype=np.uint8)
    target = out / "best.npz"
    temporary = out / "best.tmp.npz"
    np.savez(temporary, **arrays)
    temporary.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="new run folder (under runs/)")
    parser.add_argument("checkpoints", type=Path, nargs="+", help="best.npz / last.npz / epochs")
    args = parser.parse_args(argv)
    if (args.out / "best.npz").exists():
        parser.error(f"{args.out} already holds a best.npz: give a new folder")
    command = "python -m training.networks.average_checkpoints " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    target = write_average(args.checkpoints, args.out, command)
    print(f"mean of {len(args.checkpoints)} checkpoints: {target}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
