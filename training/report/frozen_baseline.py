"""The frozen-feature baseline: what ImageNet MobileNet v1 features give with nothing trained but
one logistic regression, measured the same ways as the shipped verdict.

    python -m training.report.frozen_baseline --data PATH --pretrained FILE
        [--weights DIR --networks fracture,shared] [--out FILE.json]

FILE is Google's `mobilenet_v1_1.0_224_quant_embedding_extractor.tflite` (README, "Pretrained
initialisation"), run as it is with LiteRT. Each image is read and framed as the app does it
(`core.imaging.prepare`) and seen in five views: the whole image at 224 px and the four corner
crops of 60% of each side (224 px each, cut from the image framed at 373 px, so they see it at
1.67 times the resolution); the 7 x 7 x 1024 map before the network's pooling is mean- and
max-pooled, the crops' pooled vectors averaged (means) and maximised (maxima): 4,096 features.

Two measures, each for the frozen features alone, the app's networks (`--weights`, mean-pooled
like `fit_verdict`) alone, and both together:
- grouped 5-fold cross-validation over the training and validation images (`cv_verdict`'s folds):
  fair for the frozen features; optimistic for networks trained on those images;
- fitted on the training split, scored on validation and test together: held out from every
  network's training, so the one fair comparison of the two.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from core.imaging import prepare, read_xray
from training.data import datasets
from training.data.datasets import Record
from training.heads.linear import fit_logistic, pooled_features, standardise
from training.report.cv_verdict import group_aurocs, out_of_fold_scores

VIEW = 224
CROP_SHARE = 0.6
MAP_TENSOR = "Conv2d_13_pointwise/Relu6"  # the last map, before the file's own pooling


def corner_crops(framed: np.ndarray, size: int = VIEW) -> list[np.ndarray]:
    """The four `size` x `size` corners of a square framed image."""
    far = framed.shape[0] - size
    return [framed[y : y + size, x : x + size] for y in (0, far) for x in (0, far)]


def mean_and_max(maps: list[np.ndarray]) -> np.ndarray:
    """(2C,) the mean over views of each map's mean, then the maximum over every map's cells."""
    means = np.mean([m.mean(axis=(0, 1)) for m in maps], axis=0)
    return np.concatenate([means, np.max([m.max(axis=(0, 1)) for m in maps], axis=0)])


class FrozenMobileNet:
    """Google's quantised MobileNet v1 file: uint8 pixels (224, 224, 3) -> its 7 x 7 x 1024 map."""

    def __init__(self, path: Path) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(
            model_path=str(path), num_threads=1, experimental_preserve_all_tensors=True
        )
        self._interpreter.allocate_tensors()
        tensors = self._interpreter.get_tensor_details()
        found = [t for t in tensors if MAP_TENSOR in t["name"] and len(t["shape"]) == 4]
        if not found:
            raise SystemExit(f"{path}: no tensor named like {MAP_TENSOR} (a MobileNet v1 file?)")
        self._map = found[-1]["index"]
        self._scale, self._zero = found[-1]["quantization"]
        self._input = self._interpreter.get_input_details()[0]["index"]

    def feature_map(self, pixels: np.ndarray) -> np.ndarray:
        """Pixels in [0, 255] -> the dequantised feature map."""
        batch = np.clip(np.round(pixels), 0, 255).astype(np.uint8)[None]
        self._interpreter.set_tensor(self._input, batch)
        self._interpreter.invoke()
        return (self._interpreter.get_tensor(self._map)[0].astype(np.float32) - self._zero) * (
            self._scale
        )


def view_features(network: FrozenMobileNet, gray: np.ndarray) -> np.ndarray:
    """(4C,) whole-image mean and max, then the four crops' mean and max."""
    whole = network.feature_map(prepare(gray, VIEW))
    framed = prepare(gray, round(VIEW / CROP_SHARE))
    crops = [network.feature_map(crop) for crop in corner_crops(framed)]
    return np.concatenate([mean_and_max([whole]), mean_and_max(crops)])


def frozen_features(pretrained: Path, records: list[Record], cache: Path) -> np.ndarray:
    """(N, 4C) frozen features of `records`, cached by file name in `cache`."""
    store = cache / f"frozen-mnv1-{VIEW}-crops.npz"
    known = dict(np.load(store)) if store.is_file() else {}
    network, started = None, time.monotonic()
    for number, record in enumerate(records, 1):
        name = Path(record.path).name
        if name not in known:
            network = network or FrozenMobileNet(pretrained)
            known[name] = view_features(network, read_xray(record.path))
        if number % 500 == 0:
            print(f"  {number}/{len(records)} ({time.monotonic() - started:.0f} s)", flush=True)
    if network is not None:
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(store, **known)
    return np.stack([known[Path(r.path).name] for r in records]).astype(np.float64)


def held_out_scores(
    x: np.ndarray, labels: np.ndarray, train: np.ndarray, strength: float
) -> np.ndarray:
    """Logits of the rows not in `train`, from the regression fitted on the `train` rows."""
    mean, spread = standardise(x[train])
    w, b = fit_logistic((x[train] - mean) / spread, labels[train], strength)
    return (x[~train] - mean) / spread @ w + b


def measure(x: np.ndarray, records: list[Record], split: np.ndarray, strength: float) -> dict:
    """Grouped CV over train + val, and train -> val + test, for one feature set (`split`: each
    record's split name)."""
    labels = np.array([r.label for r in records], dtype=float)
    bones = np.array([r.bone for r in records])
    patients = np.array([r.patient for r in records])
    is_train, seen = split == "train", np.isin(split, ("train", "val"))
    cv = out_of_fold_scores(x[seen], labels[seen], list(patients[seen]), strength)
    held = held_out_scores(x, labels, is_train, strength)
    return {
        "grouped_cv_train_val": group_aurocs(labels[seen], cv, bones[seen]),
        "train_to_val_and_test": group_aurocs(labels[~is_train], held, bones[~is_train]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="FracAtlas folder")
    parser.add_argument("--pretrained", type=Path, required=True, help="MobileNet v1 TFLite file")
    parser.add_argument("--weights", type=Path, help="a weights folder to compare and combine")
    parser.add_argument("--networks", default="fracture,shared", help="its networks to read")
    parser.add_argument("--strength", type=float, default=0.1, help="L2 strength")
    parser.add_argument("--cache", type=Path, default=Path("runs/verdict_features"))
    parser.add_argument("--out", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    splits, _ = datasets.load_splits("fracatlas", args.data)
    names = ("train", "val", "test")
    records = [r for name in names for r in splits[name]]
    split = np.array([name for name in names for _ in splits[name]])
    sets = {"frozen MobileNet v1, 5 views": frozen_features(args.pretrained, records, args.cache)}
    if args.weights:
        networks = args.networks.split(",")
        app = np.concatenate(
            [pooled_features(args.weights, n, records, args.cache) for n in networks], axis=1
        )
        sets[f"{args.weights} ({'+'.join(networks)})"] = app
        sets["both"] = np.concatenate([sets["frozen MobileNet v1, 5 views"], app], axis=1)
    report = {"strength": args.strength, "views": "whole 224 px + 4 corner crops of 60%"}
    report.update({name: measure(x, records, split, args.strength) for name, x in sets.items()})
    text = json.dumps(report, indent=1, default=float)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    for name in sets:
        for kind, groups in report[name].items():
            line = ", ".join(
                f"{group} {figures['auroc']:.3f} [{figures['auroc_ci'][0]:.2f}, "
                f"{figures['auroc_ci'][1]:.2f}]"
                for group, figures in groups.items()
            )
            print(f"{name} | {kind}: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
