"""Train the fine-detail fracture network: a trunk (ResNet50 cut at conv4, or a MobileNet) on
crops of 384-px images, with a per-cell fracture map supervised by FracAtlas' outlines and per-bone
heads pooled by LSE.

Run: python -m training.networks.train_fracture --data PATH --out DIR [--max-minutes 55] [--resume]
It writes a resumable checkpoint (`last.npz`) each epoch, `history.json`, the best weights
(`best.npz`), every epoch's weights with `--keep-epochs` (`epochs/epoch_NN.npz`, to average) and,
at the end, the cell logits of the validation and test images (`cell_logits_{val,test}.npz`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from core.imaging import normalize
from training import metrics
from training.data import datasets
from training.data.fracture_data import CropSampler, CropSettings, build_cache
from training.networks.backbones import (
    BACKBONES,
    DEFAULT_LAYER,
    RESNET50_INIT,
    build_trunk,
    trunk_stride,
)
from training.threads import configure_threads

HEADS = ("shared", "Elbow", "Hand", "Shoulder")  # columns of the cell-logit map
TRUNK_LAYER = "conv4_block6_out"


# ----------------------------------------------------------------------------- model


def pool_logits(cell_logits, pooling: str = "lse", r: float = 5.0):
    """(B, h, w, n) cell logits -> (B, n) image logits; the same formula as `core.heads.pool`:
    "mean", or "lse" = (1/r) * log(mean(exp(r * x))) over the h * w cells."""
    import tensorflow as tf

    if pooling == "mean":
        return tf.reduce_mean(cell_logits, axis=[1, 2])
    if pooling == "lse":
        cells = tf.cast(tf.shape(cell_logits)[1] * tf.shape(cell_logits)[2], cell_logits.dtype)
        lse = tf.reduce_logsumexp(r * cell_logits, axis=[1, 2])
        return (lse - tf.math.log(cells)) / r
    raise ValueError(f"unknown pooling {pooling!r}")


def make_heads(channels: int, prior: float = 0.02):
    """The heads layer: a shared (C, 1) head trained on every region plus, per bone, a (C, 1)
    head = shared + a bone-specific difference (initialised at zero, so each bone head starts as
    the shared head and is pulled towards it by an L2 penalty)."""
    import keras

    class FractureHeads(keras.layers.Layer):
        def build(self, input_shape):
            self.shared_kernel = self.add_weight(
                shape=(channels, 1),
                initializer=keras.initializers.RandomNormal(stddev=0.01),
                name="shared_kernel",
            )
            self.shared_bias = self.add_weight(
                shape=(1,),
                initializer=keras.initializers.Constant(math.log(prior / (1 - prior))),
                name="shared_bias",
            )
            self.delta_kernel = self.add_weight(
                shape=(channels, 3), initializer="zeros", name="delta_kernel"
            )
            self.delta_bias = self.add_weight(shape=(3,), initializer="zeros", name="delta_bias")

        def kernels(self):
            import tensorflow as tf

            kernel = tf.concat([self.shared_kernel, self.shared_kernel + self.delta_kernel], 1)
            bias = tf.concat([self.shared_bias, self.shared_bias + self.delta_bias], 0)
            return kernel, bias

        def call(self, features):
            kernel, bias = self.kernels()
            return features @ kernel + bias

    return FractureHeads(name="fracture_heads")


def head_arrays(heads) -> tuple[np.ndarray, np.ndarray]:
    """Numpy (C, 4) kernel and (4,) bias, columns in `HEADS` order."""
    kernel, bias = heads.kernels()
    return np.asarray(kernel, dtype=np.float32), np.asarray(bias, dtype=np.float32)


# ----------------------------------------------------------------------------- loss


def losses(cell_logits, masks, bone_index, pooling: str, r: float, cell_pos_weight: float):
    """Per-cell weighted BCE + crop-level BCE on the pooled logit, for the shared head on every
    crop and for each crop's bone head (crops of other regions train only the shared head)."""
    import tensorflow as tf

    masks = tf.cast(masks, cell_logits.dtype)
    crop_labels = tf.reduce_max(masks, axis=[1, 2])
    pooled = pool_logits(cell_logits, pooling, r)  # (B, 4)

    def cell_bce(logits):
        loss = tf.nn.weighted_cross_entropy_with_logits(masks, logits, cell_pos_weight)
        return tf.reduce_mean(loss, axis=[1, 2]) / cell_pos_weight * 4.0

    def crop_bce(logits):
        return tf.nn.sigmoid_cross_entropy_with_logits(crop_labels, logits)

    shared = tf.reduce_mean(cell_bce(cell_logits[..., 0]) + crop_bce(pooled[:, 0]))
    column = tf.maximum(bone_index, 0) + 1
    bone_cells = tf.gather(tf.transpose(cell_logits, [0, 3, 1, 2]), column, batch_dims=1)
    bone_pooled = tf.gather(pooled, column, batch_dims=1)
    per_crop = cell_bce(bone_cells) + crop_bce(bone_pooled)
    has_bone = tf.cast(bone_index >= 0, per_crop.dtype)
    bone = tf.reduce_sum(per_crop * has_bone) / tf.maximum(tf.reduce_sum(has_bone), 1.0)
    return shared, bone


def probe_head(trunk, heads, sampler, args) -> None:
    """LP-FT's first step: fit the shared head (and so every bone head, whose differences start at
    zero) on the frozen trunk's cell features of `--probe-crops` training crops."""
    import tensorflow as tf

    from training.networks.linear_probe import fit_cell_probe

    tick = time.time()
    features, masks = [], []
    for _ in range(0, args.probe_crops, args.batch):
        images, cell_masks, _rows = sampler.batch(args.batch)
        features.append(np.asarray(trunk(normalize(tf.constant(images)), training=False)))
        masks.append(cell_masks)
    kernel, bias = fit_cell_probe(
        np.concatenate(features), np.concatenate(masks), args.cell_pos_weight
    )
    heads.shared_kernel.assign(kernel[:, None])
    heads.shared_bias.assign([bias])
    print(f"linear probe on {args.probe_crops} crops: {time.time() - tick:.0f} s", flush=True)


# ----------------------------------------------------------------------------- checkpoints


def save_state(path: Path, trunk, heads, optimizer, state: dict) -> None:
    """Weights, optimizer slots and loop state in one .npz (written atomically)."""
    arrays = {f"trunk/{i}": w for i, w in enumerate(trunk.get_weights())}
    arrays.update({f"heads/{i}": w for i, w in enumerate(heads.get_weights())})
    if optimizer is not None:
        arrays.update({f"opt/{i}": np.asarray(v) for i, v in enumerate(optimizer.variables)})
    arrays["state"] = np.frombuffer(json.dumps(state).encode(), dtype=np.uint8)
    temporary = path.with_suffix(".tmp.npz")
    np.savez(temporary, **arrays)
    temporary.replace(path)


def epoch_path(run: Path, epoch: int) -> Path:
    """Where `--keep-epochs` keeps the weights of one epoch."""
    return run / "epochs" / f"epoch_{epoch:02d}.npz"


def checkpoint_state(path: Path) -> dict:
    """The loop state `save_state` wrote (epoch, minutes, command, ...), without the weights."""
    with np.load(path, allow_pickle=False) as archive:
        return json.loads(bytes(archive["state"]).decode())


def load_state(path: Path, trunk, heads, optimizer=None) -> dict:
    """Restore what `save_state` wrote; returns the loop state."""
    with np.load(path, allow_pickle=False) as archive:
        trunk.set_weights([archive[f"trunk/{i}"] for i in range(len(trunk.get_weights()))])
        heads.set_weights([archive[f"heads/{i}"] for i in range(len(heads.get_weights()))])
        if optimizer is not None and "opt/0" in archive.files:
            for i, variable in enumerate(optimizer.variables):
                variable.assign(archive[f"opt/{i}"])
        return json.loads(bytes(archive["state"]).decode())


# ----------------------------------------------------------------------------- evaluation


def cell_logits_of(trunk, heads, cache, indices, batch: int = 4) -> np.ndarray:
    """(N, h, w, 4) cell logits of whole prepared images (the inference geometry)."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def run(pixels):
        return heads(trunk(normalize(pixels), training=False))

    outputs = []
    for start in range(0, len(indices), batch):
        rows = [cache.images[i] for i in indices[start : start + batch]]
        pixels = np.repeat(np.stack(rows).astype(np.float32)[..., None], 3, axis=3)
        outputs.append(np.asarray(run(tf.constant(pixels))))
    return np.concatenate(outputs) if outputs else np.zeros((0, 1, 1, len(HEADS)), np.float32)


def numpy_pool(cell_logits: np.ndarray, pooling: str, r: float) -> np.ndarray:
    """(N, h, w, n) -> (N, n) with the numpy runtime's formula (`core.heads.pool`)."""
    from core.heads import pool

    return np.stack([pool(item, pooling, r) for item in cell_logits])


def image_scores(cache, indices, cell_logits, pooling: str, r: float) -> dict[str, np.ndarray]:
    """Per image: label, pooled shared logit, pooled logit of its own bone's head (shared for
    other regions), and whether the image's top cell lies in a true fracture box."""
    pooled = numpy_pool(cell_logits, pooling, r)
    bone_column = np.array(
        [
            HEADS.index(cache.meta[i]["bone"]) if cache.meta[i]["bone"] in HEADS else 0
            for i in indices
        ]
    )
    return {
        "label": np.array([cache.meta[i]["label"] for i in indices]),
        "bone": np.array([cache.meta[i]["bone"] for i in indices]),
        "shared": pooled[:, 0],
        "own": pooled[np.arange(len(indices)), bone_column],
        "upper_limb": np.array([cache.meta[i]["region"] != "other" for i in indices]),
        "top_cell_hit": np.array(
            [
                top_cell_hit(cache.meta[i]["model_boxes"], c[..., 0], cache.images.shape[1])
                for i, c in zip(indices, cell_logits, strict=True)
            ]
        ),
    }


def top_cell_hit(model_boxes: list, cells: np.ndarray, size: int) -> float:
    """1.0 if the centre of the highest cell lies inside a true box (model pixels, input `size`),
    NaN for an image without boxes."""
    if not model_boxes:
        return float("nan")
    stride = size / cells.shape[0]
    row, column = np.unravel_index(int(np.argmax(cells)), cells.shape)
    x, y = (column + 0.5) * stride, (row + 0.5) * stride
    margin = stride / 2  # a box smaller than a cell still counts when its cell is on top
    return float(
        any(
            x0 - margin <= x <= x1 + margin and y0 - margin <= y <= y1 + margin
            for x0, y0, x1, y1 in model_boxes
        )
    )


def monitoring_subset(cache, indices, limit: int, seed: int = 0) -> list[int]:
    """Validation rows checked after each epoch: every image of the three bones, then a seeded
    random sample of the other regions up to `limit` in all (0 = every validation image)."""
    if not limit or limit >= len(indices):
        return list(indices)
    bones = [i for i in indices if cache.meta[i]["bone"] in HEADS]
    others = [i for i in indices if cache.meta[i]["bone"] not in HEADS]
    room = max(0, limit - len(bones))
    picked = np.random.default_rng(seed).permutation(len(others))[:room]
    return sorted(bones + [others[k] for k in picked])


def summary(scores: dict[str, np.ndarray]) -> dict[str, float]:
    """Validation figures tracked per epoch."""
    bones = np.isin(scores["bone"], HEADS[1:])
    hand = scores["bone"] == "Hand"
    upper = scores["upper_limb"]
    return {
        "auroc_all_shared": metrics.auroc(scores["label"], scores["shared"]),
        "auroc_3bones_own": metrics.auroc(scores["label"][bones], scores["own"][bones]),
        "auroc_3bones_shared": metrics.auroc(scores["label"][bones], scores["shared"][bones]),
        "auroc_hand_own": metrics.auroc(scores["label"][hand], scores["own"][hand]),
        "auroc_upper_limb_own": metrics.auroc(scores["label"][upper], scores["own"][upper]),
        "top_cell_hit": float(np.nanmean(scores["top_cell_hit"])),
    }


# ----------------------------------------------------------------------------- training


MONITORS = {  # the validation figures whose sum picks best.npz
    "all": ("auroc_all_shared", "top_cell_hit"),
    "upper_limb": ("auroc_upper_limb_own", "top_cell_hit"),
}


def monitored_score(figures: dict[str, float], monitor: str) -> float:
    """The sum of the `monitor`'s figures (a missing figure counts 0)."""
    return float(sum(np.nan_to_num(figures[name]) for name in MONITORS[monitor]))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="FracAtlas folder (labels.csv)")
    parser.add_argument("--out", type=Path, required=True, help="run folder (under runs/)")
    parser.add_argument("--cache", type=Path, default=None, help="prepared-image cache folder")
    parser.add_argument("--backbone", choices=BACKBONES, default="resnet50")
    parser.add_argument(
        "--init", default=None,
        help="resnet50: backbone .npz (default: the shipped one), 'imagenet' or 'none'; "
        "mobilenet_v1 / mobilenet_v2: a TFLite MobileNet v1 / v2 file or 'none'",
    )  # fmt: skip
    parser.add_argument(
        "--start-from", type=Path, default=None,
        help="a checkpoint (best.npz / last.npz) of an earlier run with the same backbone and "
        "layer: its weights, a fresh optimiser and schedule, no linear probe",
    )  # fmt: skip
    parser.add_argument(
        "--upper-limb-weight", type=float, default=CropSettings.upper_limb_weight,
        help="sampling weight of upper-limb images against lower limb and hip (1 = as many)",
    )  # fmt: skip
    parser.add_argument(
        "--monitor", choices=tuple(MONITORS), default="all",
        help="validation figures that pick best.npz: AUROC over all regions or the upper limb "
        "(its bone heads), plus the top-cell hit",
    )  # fmt: skip
    parser.add_argument("--layer", default=None, help="layer giving the map (default per backbone)")
    parser.add_argument(
        "--probe-crops", type=int, default=0,
        help="linear probe first (LP-FT): fit the shared head on the frozen features of N crops",
    )  # fmt: skip
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--steps-per-epoch", type=int, default=200)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--warmup-steps", type=int, default=100)
    parser.add_argument("--pooling", choices=("lse", "mean"), default="lse")
    parser.add_argument("--r", type=float, default=5.0)
    parser.add_argument("--cell-pos-weight", type=float, default=10.0)
    parser.add_argument("--bone-weight", type=float, default=0.5)
    parser.add_argument(
        "--hospital", type=float, default=0.0,
        help="strength of other hospitals' changes on crops (turns, exposure, polarity, letters)",
    )  # fmt: skip
    parser.add_argument(
        "--whole-angle", type=float, default=0.0,
        help="whole-image steps turn the image by up to this many degrees",
    )  # fmt: skip
    parser.add_argument(
        "--zoom-in", type=float, default=1.0,
        help="magnify half the crops and whole images by up to this (tighter framing)",
    )  # fmt: skip
    parser.add_argument("--whole-every", type=int, default=3, help="whole-image step every N")
    parser.add_argument("--whole-batch", type=int, default=2, help="whole images per such step")
    parser.add_argument("--delta-l2", type=float, default=1e-2)
    parser.add_argument("--max-minutes", type=float, default=55.0, help="training time, all runs")
    parser.add_argument("--stop-at", default=None, help="UTC HH:MM after which training stops")
    parser.add_argument("--resume", action="store_true", help="continue from last.npz")
    parser.add_argument("--val-limit", type=int, default=260, help="images checked per epoch")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=0, help="use only N records (tests)")
    parser.add_argument("--time-check", type=int, default=0, help="time N steps and exit")
    parser.add_argument("--no-final-logits", action="store_true")
    parser.add_argument(
        "--keep-epochs", action="store_true",
        help="also keep every epoch's weights (epochs/epoch_NN.npz), to average them later",
    )  # fmt: skip
    parser.add_argument(
        "--logits-only", nargs="+", choices=("val", "test"), default=None,
        help="skip training; write the cell logits of these splits from best.npz",
    )  # fmt: skip
    args = parser.parse_args(argv)
    args.layer = args.layer or DEFAULT_LAYER[args.backbone]
    if args.init is None:
        args.init = str(RESNET50_INIT) if args.backbone == "resnet50" else "none"
    return args


def learning_rate(args, step: int, total_steps: int, minutes: float) -> float:
    """Linear warm-up, then cosine decay over progress = max(step share, time share)."""
    if step < args.warmup_steps:
        return args.lr * (0.1 + 0.9 * step / args.warmup_steps)
    progress = min(1.0, max(step / max(1, total_steps), minutes / args.max_minutes))
    return args.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))


def out_of_time(args, minutes: float) -> bool:
    """True once `--max-minutes` of training are used or the `--stop-at` UTC time has passed."""
    if minutes >= args.max_minutes:
        return True
    if args.stop_at:
        hour, minute = (int(part) for part in args.stop_at.split(":"))
        now = datetime.now(UTC)
        return (now.hour, now.minute) >= (hour, minute)
    return False


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_threads(args.threads)
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(args.seed)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    splits, reports = datasets.load_splits("fracatlas", args.data)
    if args.limit:
        splits = {name: records[: args.limit] for name, records in splits.items()}
    for report in reports:
        print(report.summary(), flush=True)
    started = time.time()
    cache_dir = args.cache or out / f"cache{args.size}"
    cache = build_cache(
        splits["train"] + splits["val"] + splits["test"], args.data, cache_dir, args.size
    )
    print(f"cache ready in {time.time() - started:.0f} s: {cache_dir}", flush=True)
    index = {
        name: cache.indices([r.path.name for r in records]) for name, records in splits.items()
    }
    monitor = monitoring_subset(cache, index["val"], args.val_limit, args.seed)

    trunk = build_trunk(args.backbone, args.init, args.layer)
    heads = make_heads(trunk.output_shape[-1])
    heads.build(trunk.output_shape)
    optimizer = keras.optimizers.Adam(learning_rate=args.lr)
    variables = trunk.trainable_variables + heads.trainable_variables
    optimizer.build(variables)
    sampler = CropSampler(
        cache,
        index["train"],
        CropSettings(
            crop=args.crop,
            stride=trunk_stride(args.backbone, args.layer),
            hospital=args.hospital,
            whole_angle=args.whole_angle,
            zoom_in=args.zoom_in,
            upper_limb_weight=args.upper_limb_weight,
        ),
        seed=args.seed,
    )
    bone_of = {
        i: HEADS.index(m["bone"]) - 1 if m["bone"] in HEADS else -1
        for i, m in enumerate(cache.meta)
    }

    @tf.function
    def train_step(pixels, masks, bones):
        with tf.GradientTape() as tape:
            cells = heads(trunk(normalize(pixels), training=False))
            shared, bone = losses(cells, masks, bones, args.pooling, args.r, args.cell_pos_weight)
            penalty = args.delta_l2 * (
                tf.reduce_sum(tf.square(heads.delta_kernel))
                + tf.reduce_sum(tf.square(heads.delta_bias))
            )
            loss = shared + args.bone_weight * bone + penalty
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return shared, bone

    state = {
        "epoch": 0,
        "step": 0,
        "minutes": 0.0,
        "best": -1.0,
        "history": [],
        "layer": args.layer,
        "backbone": args.backbone,
        "init": str(args.init),
        "start_from": str(args.start_from) if args.start_from else None,
        "command": "python -m training.networks.train_fracture "
        + " ".join(sys.argv[1:] if argv is None else argv),
    }
    last, best = out / "last.npz", out / "best.npz"
    if args.resume and last.is_file():
        state = load_state(last, trunk, heads, optimizer)
        sampler.rng = np.random.default_rng(args.seed + 1000 * state["epoch"] + 1)
        print(f"resumed at epoch {state['epoch']}, {state['minutes']:.1f} min used", flush=True)
    elif args.start_from:
        load_state(args.start_from, trunk, heads)
        print(f"weights from {args.start_from}", flush=True)
    elif args.probe_crops:
        probe_head(trunk, heads, sampler, args)
    total_steps = args.epochs * args.steps_per_epoch

    if args.time_check:
        images, masks, rows = sampler.batch(args.batch)
        train_step(images, masks, np.array([bone_of[i] for i in rows]))
        tick = time.time()
        for _ in range(args.time_check):
            images, masks, rows = sampler.batch(args.batch)
            train_step(images, masks, np.array([bone_of[i] for i in rows]))
        per_image = (time.time() - tick) / (args.time_check * args.batch)
        tick = time.time()
        cell_logits_of(trunk, heads, cache, monitor[:4])
        tick = time.time()
        cell_logits_of(trunk, heads, cache, monitor[4:12])
        per_val = (time.time() - tick) / 8
        epoch = per_image * args.batch * args.steps_per_epoch + per_val * len(monitor)
        print(
            f"time check: {per_image:.3f} s per training crop, {per_val:.3f} s per validation "
            f"image ; an epoch of {args.steps_per_epoch} steps ~ "
            f"{epoch / 60:.1f} min",
            flush=True,
        )
        return 0

    if args.logits_only:
        return write_logits(out, trunk, heads, cache, index, args.logits_only)

    while state["epoch"] < args.epochs and not out_of_time(args, state["minutes"]):
        tick, sums = time.time(), np.zeros(2)
        steps = 0
        for _ in range(args.steps_per_epoch):
            minutes = state["minutes"] + (time.time() - tick) / 60
            if out_of_time(args, minutes):
                break
            optimizer.learning_rate.assign(learning_rate(args, state["step"], total_steps, minutes))
            images, masks, rows = sampler.batch(args.batch)
            shared, bone = train_step(images, masks, np.array([bone_of[i] for i in rows]))
            if args.whole_every and state["step"] % args.whole_every == 0:
                images, masks, rows = sampler.whole(args.whole_batch)
                train_step(images, masks, np.array([bone_of[i] for i in rows]))
            sums += (float(shared), float(bone))
            steps += 1
            state["step"] += 1
        train_minutes = (time.time() - tick) / 60
        val_tick = time.time()
        scores = image_scores(
            cache,
            monitor,
            cell_logits_of(trunk, heads, cache, monitor),
            args.pooling,
            args.r,
        )
        figures = summary(scores)
        state["minutes"] += train_minutes + (time.time() - val_tick) / 60
        state["epoch"] += 1
        record = {
            "epoch": state["epoch"],
            "steps": steps,
            "loss_shared": sums[0] / max(1, steps),
            "loss_bone": sums[1] / max(1, steps),
            "lr": float(optimizer.learning_rate.numpy()),
            "train_minutes": train_minutes,
            "val_minutes": (time.time() - val_tick) / 60,
            **figures,
        }
        state["history"].append(record)
        print(json.dumps(record), flush=True)
        score = monitored_score(figures, args.monitor)
        if score > state["best"]:
            state["best"] = float(score)
            state["best_epoch"] = state["epoch"]
            save_state(best, trunk, heads, None, state)
        if args.keep_epochs:
            (out / "epochs").mkdir(exist_ok=True)
            save_state(epoch_path(out, state["epoch"]), trunk, heads, None, state)
        save_state(last, trunk, heads, optimizer, state)
        (out / "history.json").write_text(json.dumps(state["history"], indent=1))

    print(f"training done: {state['epoch']} epochs, {state['minutes']:.1f} min", flush=True)
    if args.no_final_logits or not best.is_file():
        return 0
    return write_logits(out, trunk, heads, cache, index, ("val", "test"))


def write_logits(out: Path, trunk, heads, cache, index: dict, names) -> int:
    """Load the best weights and write the heads and the cell logits of the `names` splits."""
    load_state(out / "best.npz", trunk, heads)
    kernel, bias = head_arrays(heads)
    np.savez(out / "heads.npz", kernel=kernel, bias=bias, names=np.array(HEADS))
    for name in names:
        tick = time.time()
        logits = cell_logits_of(trunk, heads, cache, index[name])
        np.savez(
            out / f"cell_logits_{name}.npz",
            logits=logits.astype(np.float32),
            image_ids=np.array([cache.meta[i]["image_id"] for i in index[name]]),
        )
        print(
            f"{name} cell logits: {len(index[name])} images in {time.time() - tick:.0f} s",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
