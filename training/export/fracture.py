"""Export a trained fracture run: the 384-px trunk as the "fracture" LiteRT network and one head per
bone with the pooling, fracture threshold and box threshold chosen on validation images (and the
same map as `fracture_BONE_map`, for use as another network's `map_head`).

Run: python -m training.export.fracture --data PATH --run DIR --out DIR
(after `training.networks.train_fracture` and `training.report.fracture_report`; `--out` is a
folder under runs/).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from core.imaging import normalize
from core.models import BONES
from training.data import datasets
from training.data.fracture_data import open_cache
from training.networks.backbones import build_trunk
from training.networks.train_fracture import HEADS, TRUNK_LAYER, checkpoint_state
from training.threads import configure_threads, machine

CALIBRATION_IMAGES = 200


def run_minutes(run: Path, default: float) -> float:
    """Minutes the whole run trained (every epoch of its history): more than those of the kept
    best checkpoint when training went on after it."""
    history = run / "history.json"
    if not history.is_file():
        return default
    epochs = json.loads(history.read_text())
    return sum(e["train_minutes"] + e["val_minutes"] for e in epochs) if epochs else default


def saved_at(path: Path) -> str:
    """When a checkpoint was written (UTC, from the file's modification time)."""
    return datetime.fromtimestamp(path.stat().st_mtime, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def started_from(state: dict) -> dict | None:
    """The run a `--start-from` run continued: its checkpoint, and (when the file is still there)
    its run folder, epoch, training minutes, command and the run it continued in turn. None for
    a run that did not."""
    start = state.get("start_from")
    if not start:
        return None
    path = Path(start)
    if not path.is_file():
        return {"checkpoint": start}
    parent = checkpoint_state(path)
    return {
        "checkpoint": start,
        "run": path.parent.name,
        "epoch": parent.get("epoch"),
        "training_minutes": round(parent.get("minutes", 0.0), 1),
        "command": parent.get("command"),
        "started_from": started_from(parent),
    }


def ancestry(parent: dict | None) -> list[dict]:
    """The runs a run went on from (`started_from`, its own `started_from`, ...), oldest first."""
    chain = []
    while parent:
        chain.insert(0, parent)
        parent = parent.get("started_from")
    return chain


def answered_by(bone: str, own_model: bool) -> str:
    """The result's words for the model behind `bone`'s verdict: its own (the all-region model
    fitted further on that bone's images, kept where validation supports it) or the all-region
    one."""
    if own_model:
        return f"the {bone.lower()} model (the all-region model fitted further on {bone.lower()}s)"
    return "the all-region model, the same for every bone"


def fixed_size_trunk(weights_from, size: int, layer: str = TRUNK_LAYER, backbone: str = "resnet50"):
    """A (size, size, 3) -> feature-map Keras model with the weights of a trained trunk."""
    model = build_trunk(backbone, "none", layer, input_size=size)
    model.set_weights(weights_from.get_weights())
    return model


def describe_init(init: str | None) -> str:
    """Where the trunk's first weights came from: a file with its sha256, or the shipped
    ResNet50 backbone (the default of earlier runs)."""
    if not init:
        return "weights/backbone_resnet50.npz (shipped 160-px backbone)"
    path = Path(init)
    if not path.is_file():
        return init
    return f"{path.name} (sha256 {hashlib.sha256(path.read_bytes()).hexdigest()})"


def calibration_images(cache, rows, count: int = CALIBRATION_IMAGES, seed: int = 0) -> np.ndarray:
    """`count` preprocessed training images (a seeded sample of `rows`) for int8 calibration."""
    picked = np.random.default_rng(seed).permutation(len(rows))[:count]
    pixels = np.stack([cache.images[rows[k]] for k in sorted(picked)]).astype(np.float32)
    return normalize(np.repeat(pixels[..., None], 3, axis=3)).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--run", type=Path, required=True, help="training run folder")
    parser.add_argument("--out", type=Path, required=True, help="export folder (under runs/)")
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--init", default=None, help="the run's --init, if its state lacks it")
    args = parser.parse_args(argv)
    configure_threads(1)
    from training.export.litert import export_network, register_head
    from training.networks.train_fracture import load_state, make_heads

    cache = open_cache(args.cache or args.run / "cache384")
    choice = json.loads((args.run / "report" / "choice.json").read_text())
    state = checkpoint_state(args.run / "best.npz")  # the network's shape, then its weights
    layer, backbone = state.get("layer", TRUNK_LAYER), state.get("backbone", "resnet50")
    trunk = build_trunk(backbone, "none", layer)
    heads = make_heads(trunk.output_shape[-1])
    heads.build(trunk.output_shape)
    load_state(args.run / "best.npz", trunk, heads)
    parent = started_from(state)
    export_command = "python -m training.export.fracture " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    size = cache.images.shape[1]
    model = fixed_size_trunk(trunk, size, layer, backbone)
    splits, _ = datasets.load_splits("fracatlas", args.data)
    train_rows = cache.indices([record.path.name for record in splits["train"]])
    provenance = {
        "data": "FracAtlas (CC BY 4.0, Abedeen et al. 2023), train split, seed 0",
        "trained_by": "python -m training.networks.train_fracture",
        "run": args.run.name,
        "epoch": state.get("epoch"),  # the epoch these weights are from
        "best_epoch": state.get("best_epoch"),  # the one the run's monitor preferred
        "training_minutes": round(state["minutes"], 1),
        "run_minutes": round(run_minutes(args.run, state["minutes"]), 1),
        "date": saved_at(args.run / "best.npz"),
        "machine": machine(),
        "backbone": backbone,
        "init": describe_init(args.init or state.get("init")),
        "started_from": parent,
        "averaged_from": state.get("averaged_from"),  # the checkpoints whose mean these are
        "command": "; ".join(
            filter(
                None,
                [
                    *(ancestor.get("command") for ancestor in ancestry(parent)),
                    state.get("command"),
                    state.get("averaged_by"),
                    export_command,
                ],
            )
        ),
    }
    export_network(model, args.out, "fracture", calibration_images(cache, train_rows), provenance)
    head_provenance = {  # the heads trained with the network; the choices made on validation
        "data": f"{provenance['data']} (trained with the network); pooling, thresholds and each "
        "bone's column chosen on the val split by training.report.fracture_report",
        "run": args.run.name,
        "command": export_command,
    }
    kernel, bias = np.asarray(heads.kernels()[0]), np.asarray(heads.kernels()[1])
    for bone in BONES:
        column = HEADS.index(choice["heads"][bone])
        head = {
            "kernel": kernel[:, column : column + 1],
            "bias": bias[column : column + 1],
            "network": "fracture",
            "pooling": choice["pooling"],
            "pooling_r": choice["pooling_r"],
            "box_threshold": choice["box_threshold"],
            "provenance": head_provenance,
        }
        register_head(
            args.out,
            f"fracture_{bone.lower()}",
            threshold=choice["thresholds"][bone],
            head_trained_on="all regions" if HEADS[column] == "shared" else f"{bone}, from shared",
            answered_by=answered_by(bone, own_model=HEADS[column] != "shared"),
            **head,
        )
        # The same map under its own key, for a manifest whose verdict for this bone comes from
        # another network (its fracture head then names this one as map_head).
        register_head(args.out, f"fracture_{bone.lower()}_map", **head)
    print(f"exported to {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
