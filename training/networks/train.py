"""Train the models the app loads, and record them in the weights manifest.

    python -m training.networks.train backbone --data PATH  # shared ResNet50, bone-type, fracture
    python -m training.networks.train parts    --data PATH  # retrain the bone-type head only
    python -m training.networks.train elbow|hand|shoulder --data PATH  # one bone's fracture head

`backbone` trains the whole network on every region at once: the bone-type head learns
Elbow / Hand / Shoulder / Other and the fracture head learns fracture signs from all regions; its
output seeds each bone's fracture head. The head targets reuse the frozen shared backbone, so the
app still runs a single backbone pass per image.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from core import manifest as manifest_io
from core.models import BONE_TYPE_CLASSES, BONES, is_recognised, load_head
from training.data import datasets
from training.data.datasets import Record
from training.data.pipeline import calibration_images, class_weights, image_dataset, images_only
from training.export.litert import QUANTIZED, export_network, register_head
from training.metrics import auroc
from training.networks.models import build_backbone, build_training_model
from training.threads import configure_threads, machine

ROOT = Path(__file__).resolve().parent.parent.parent
SHARED_NETWORK = "shared"
TARGETS = ("backbone", "parts", *[bone.lower() for bone in BONES])


@dataclass(frozen=True)
class Options:
    """Parsed command-line options."""

    target: str
    data: Path
    dataset: str
    out: Path
    run_dir: Path
    input_size: int
    batch_size: int
    epochs: int
    head_epochs: int
    learning_rate: float
    init: str
    seed: int
    val_fraction: float
    test_fraction: float
    patience: int
    max_minutes: float
    resume: bool
    strategy: str
    recognition_threshold: float | None
    limit: int
    bone: str | None
    verbose: int
    threads: int
    quantized: tuple[str, ...]
    command: str


def parse_args(argv: list[str] | None = None) -> Options:
    """Command-line interface."""
    parser = argparse.ArgumentParser(
        prog="python -m training.networks.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("target", choices=TARGETS, help="what to train")
    parser.add_argument("--data", type=Path, required=True, help="MURA or FracAtlas folder")
    parser.add_argument("--dataset", choices=("auto", "mura", "fracatlas"), default="auto")
    parser.add_argument("--out", type=Path, default=ROOT / "weights", help="weights folder")
    parser.add_argument("--run-dir", type=Path, help="checkpoints and logs (default runs/TARGET)")
    parser.add_argument("--input-size", type=int, default=224, help="square input side, px")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=30, help="maximum epochs (early stopping)")
    parser.add_argument(
        "--head-epochs", type=int, default=3, help="epochs with a frozen pretrained backbone"
    )
    parser.add_argument("--lr", type=float, default=1e-3, dest="learning_rate")
    parser.add_argument(
        "--init",
        default="auto",
        help="backbone start: auto (ImageNet if it can be downloaded, else random), "
        "imagenet, none, or the path of a backbone .npz",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-fraction", type=float, default=0.15)
    parser.add_argument("--test-fraction", type=float, default=0.15, help="FracAtlas only")
    parser.add_argument("--patience", type=int, default=6, help="early-stopping patience")
    parser.add_argument(
        "--max-minutes", type=float, default=0, help="stop after this (0: no limit)"
    )
    parser.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
    parser.add_argument(
        "--strategy", choices=("default", "mirrored", "multiworker"), default="default"
    )
    parser.add_argument(
        "--recognition-threshold",
        type=float,
        help="minimum bone-type probability to accept an image as elbow, hand or shoulder "
        "(default: chosen on the validation split, at least 0.5)",
    )
    parser.add_argument("--limit", type=int, default=0, help="use at most N training images")
    parser.add_argument(
        "--bone",
        type=str.capitalize,
        choices=BONES,
        help="with `backbone`: fine-tune a whole network for this bone's fracture model only "
        "(e.g. on MURA with a GPU); it becomes that bone's own network in the manifest",
    )
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2))
    parser.add_argument(
        "--threads", type=int, default=0, help="CPU threads for TensorFlow (0: every core)"
    )
    parser.add_argument(
        "--quantized", nargs="*", choices=QUANTIZED, default=list(QUANTIZED),
        help="quantized LiteRT files to write beside the float32 one (default: both; none with "
        "a bare --quantized)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    args.quantized = tuple(args.quantized)
    run_dir = args.run_dir or ROOT / "runs" / args.target
    dataset = args.dataset if args.dataset != "auto" else datasets.detect_kind(args.data)
    arguments = sys.argv[1:] if argv is None else argv
    command = "python -m training.networks.train " + shlex.join(arguments)
    return Options(**{**vars(args), "run_dir": run_dir, "dataset": dataset, "command": command})


def load_records(options: Options) -> dict[str, list[Record]]:
    """Train / val / test records, printing what the loaders skipped."""
    splits, reports = datasets.load_splits(
        options.dataset, options.data, options.seed, options.val_fraction, options.test_fraction
    )
    for report in reports:
        print(report.summary())
    if options.bone:
        splits = {
            name: datasets.for_bone(records, options.bone) for name, records in splits.items()
        }
    if options.limit:
        rng = np.random.default_rng(options.seed)
        order = rng.permutation(len(splits["train"]))[: options.limit]
        splits["train"] = [splits["train"][i] for i in sorted(order)]
    for name, records in splits.items():
        print(f"{name:>5}: {len(records)} images, {len({r.patient for r in records})} patients")
    return splits


# ----------------------------------------------------------------------------- backbone


def resolve_init(init: str, size: int):
    """Build the backbone for `init`; with 'auto', fall back to random weights when offline."""
    if init != "auto":
        return build_backbone(size, init), init
    try:
        return build_backbone(size, "imagenet"), "imagenet"
    except Exception as exc:  # noqa: BLE001 - any download failure means "offline"
        print(
            "ImageNet weights could not be downloaded "
            f"({type(exc).__name__}: {str(exc)[:120]}).\n"
            "Training the backbone from random initialisation instead. Pass --init none to "
            "choose this explicitly, or --init PATH to start from a backbone .npz you have.",
            file=sys.stderr,
        )
        return build_backbone(size, "none"), "none"


def distribution_strategy(name: str):
    """tf.distribute strategy for several GPUs (mirrored) or machines (multiworker)."""
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def train_backbone(options: Options, splits: dict[str, list[Record]]) -> dict:
    """Train backbone + both heads end to end; returns the run's history and timing."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(options.seed)
    if tf.config.list_physical_devices("GPU"):
        keras.mixed_precision.set_global_policy("mixed_float16")
    options.run_dir.mkdir(parents=True, exist_ok=True)
    if not options.resume:
        for stale in options.run_dir.glob("*"):
            if stale.is_file():
                stale.unlink()
            else:
                shutil.rmtree(stale)
    strategy = distribution_strategy(options.strategy)
    with strategy.scope():
        backbone, used_init = resolve_init(options.init, options.input_size)
        model = build_training_model(backbone)
    size, batch = options.input_size, options.batch_size
    train = image_dataset(splits["train"], size, batch, training=True, seed=options.seed)
    val = image_dataset(splits["val"], size, batch, weights_from=splits["train"])
    start = time.time()
    phases = []
    if used_init != "none" and options.head_epochs > 0:
        phases.append(("head", options.head_epochs, options.learning_rate, "frozen"))
        phases.append(("finetune", options.epochs, options.learning_rate / 10, "upper"))
    else:
        phases.append(("full", options.epochs, options.learning_rate, "all"))
    history: dict[str, list[float]] = {}
    for name, epochs, learning_rate, trainable in phases:
        done_marker = options.run_dir / f"{name}.done"
        checkpoint = options.run_dir / f"{name}.weights.h5"
        if options.resume and done_marker.exists():
            model.load_weights(checkpoint)
            print(f"Phase '{name}' already finished; loaded {checkpoint}")
            continue
        set_trainable(backbone, trainable)
        with strategy.scope():
            compile_model(model, learning_rate)
        remaining = options.max_minutes - (time.time() - start) / 60 if options.max_minutes else 0
        result = model.fit(
            train,
            validation_data=val,
            epochs=epochs,
            callbacks=callbacks(options, name, checkpoint, remaining),
            verbose=options.verbose,
        )
        for key, values in result.history.items():
            history.setdefault(key, []).extend(float(v) for v in values)
        model.save_weights(checkpoint)
        done_marker.write_text(datetime.now(UTC).isoformat())
    return {
        "model": model,
        "backbone": backbone,
        "history": history,
        "init": used_init,
        "minutes": (time.time() - start) / 60,
    }


def set_trainable(backbone, which: str) -> None:
    """'frozen': nothing trains; 'upper': stages conv4 and conv5 (not batch-norm); 'all'."""
    import keras

    backbone.trainable = which != "frozen"
    if which != "upper":
        return
    for layer in backbone.layers:
        upper = layer.name.startswith(("conv4_", "conv5_"))
        layer.trainable = upper and not isinstance(layer, keras.layers.BatchNormalization)


def compile_model(model, learning_rate: float) -> None:
    """Adam with weight decay; cross-entropy for both heads; accuracy and AUROC metrics."""
    import keras

    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=1e-4),
        loss={
            "bone_type": keras.losses.SparseCategoricalCrossentropy(),
            "fracture": keras.losses.BinaryCrossentropy(),
        },
        metrics={
            "bone_type": ["accuracy"],
            "fracture": [keras.metrics.AUC(name="auc")],
        },
    )


def callbacks(options: Options, phase: str, checkpoint: Path, minutes_left: float) -> list:
    """Early stopping and reduce-on-plateau on validation loss, checkpoints, resume, logs."""
    import keras

    items = [
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=options.patience, restore_best_weights=True
        ),
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.3, patience=max(2, options.patience // 3), min_lr=1e-6
        ),
        keras.callbacks.ModelCheckpoint(
            str(checkpoint), monitor="val_loss", save_best_only=True, save_weights_only=True
        ),
        keras.callbacks.BackupAndRestore(str(options.run_dir / f"backup_{phase}")),
        keras.callbacks.CSVLogger(str(options.run_dir / f"{phase}_log.csv"), append=True),
    ]
    if options.max_minutes:
        items.append(TimeLimit(minutes_left))
    return items


def _time_limit_base():
    import keras

    return keras.callbacks.Callback


class TimeLimit(_time_limit_base()):
    """Stop before an epoch that would end after the time budget."""

    def __init__(self, minutes: float) -> None:
        super().__init__()
        self.deadline = time.time() + minutes * 60
        self.epoch_start = time.time()

    def on_epoch_begin(self, epoch, logs=None):  # noqa: D102
        self.epoch_start = time.time()

    def on_epoch_end(self, epoch, logs=None):  # noqa: D102
        if time.time() + (time.time() - self.epoch_start) > self.deadline:
            print(f"\nTime budget reached after epoch {epoch + 1}; stopping.")
            self.model.stop_training = True


# ----------------------------------------------------------------------------- heads


def pooled_features(backbone, records: list[Record], size: int, batch: int) -> np.ndarray:
    """Global-average-pooled backbone features (n, 2048) for records, in order."""
    import keras

    pooled = keras.Sequential([backbone, keras.layers.GlobalAveragePooling2D()])
    return pooled.predict(images_only(records, size, batch), verbose=0)


def fit_linear_head(
    features: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray,
    prior: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    softmax: bool,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Fine-tune a linear head from `prior`, with an L2 pull towards it (few examples need it)."""
    import keras

    keras.utils.set_random_seed(seed)
    kernel0, bias0 = prior
    outputs = kernel0.shape[1]
    anchor = keras.ops.convert_to_tensor(kernel0)

    def pull_to_prior(kernel):
        return 1e-2 * keras.ops.sum(keras.ops.square(kernel - anchor))

    layer = keras.layers.Dense(
        outputs, activation="softmax" if softmax else "sigmoid", kernel_regularizer=pull_to_prior
    )
    model = keras.Sequential([keras.Input((features.shape[1],)), keras.layers.Dropout(0.3), layer])
    layer.set_weights([kernel0, bias0])
    loss = "sparse_categorical_crossentropy" if softmax else "binary_crossentropy"
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    y = labels if softmax else labels[:, None].astype(np.float32)
    val_y = val[1] if softmax else val[1][:, None].astype(np.float32)
    model.fit(
        features,
        y,
        sample_weight=weights,
        validation_data=(val[0], val_y) if len(val[0]) else None,
        epochs=100,
        batch_size=32,
        verbose=0,
        callbacks=[
            keras.callbacks.EarlyStopping(
                monitor="val_loss" if len(val[0]) else "loss", patience=8, restore_best_weights=True
            )
        ],
    )
    kernel, bias = layer.get_weights()
    return kernel, bias


# ----------------------------------------------------------------------------- thresholds


def youden_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """Threshold maximising sensitivity + specificity - 1 (0.5 when a class is missing)."""
    labels = np.asarray(labels).astype(int)
    if labels.min(initial=1) == labels.max(initial=0):
        return 0.5
    best, best_j = 0.5, -1.0
    for threshold in np.unique(scores):
        predicted = scores >= threshold
        sensitivity = predicted[labels == 1].mean()
        specificity = (~predicted[labels == 0]).mean()
        if sensitivity + specificity - 1 > best_j:
            best, best_j = float(threshold), sensitivity + specificity - 1
    return best


def recognition_score(truth: list[str], probabilities: np.ndarray, threshold: float) -> float:
    """Balanced accuracy of the 'not recognised' answer: the mean of the share of bone images
    recognised as the right bone and the share of other-region images flagged."""
    shown = []  # the bone the app would report, or None for "not recognised"
    for row in probabilities:
        named = dict(zip(BONE_TYPE_CLASSES, map(float, row), strict=True))
        shown.append(max(BONES, key=named.get) if is_recognised(named, threshold) else None)
    bones = [s == t for s, t in zip(shown, truth, strict=True) if t in BONES]
    others = [s is None for s, t in zip(shown, truth, strict=True) if t not in BONES]
    rates = [float(np.mean(group)) for group in (bones, others) if group]
    return float(np.mean(rates)) if rates else 0.0


def choose_recognition_threshold(truth: list[str], probabilities: np.ndarray) -> float:
    """The threshold in 0.50, 0.55 ... 0.95 with the best `recognition_score` (lowest on ties)."""
    candidates = np.round(np.arange(0.5, 0.951, 0.05), 2)
    scores = [recognition_score(truth, probabilities, float(t)) for t in candidates]
    return float(candidates[int(np.argmax(scores))])


def logit(probability: float) -> float:
    """Inverse of the sigmoid, clipped away from 0 and 1."""
    p = min(max(probability, 1e-4), 1 - 1e-4)
    return float(np.log(p / (1 - p)))


def operating_point_note(threshold: float, source: str) -> str:
    """Manifest note: the validation threshold is moved to 0.5 by shifting the head's bias."""
    return (
        f"threshold {threshold:.4f} chosen on {source} (Youden's J), then moved to 0.5 by "
        f"subtracting {logit(threshold):.4f} from the head's bias, so 'fractured' means p >= 0.5"
    )


def choose_thresholds(records: list[Record], fracture_scores: dict[str, np.ndarray]) -> dict:
    """Per-bone threshold from validation images of that bone when it has at least 5 of each
    class; otherwise the threshold chosen on all validation images (every region pooled)."""
    labels = np.array([r.label for r in records])
    chosen = {}
    for bone in BONES:
        scores = fracture_scores[bone]
        pooled = youden_threshold(labels, scores)
        mask = np.array([r.bone == bone for r in records])
        positives, negatives = int(labels[mask].sum()), int((1 - labels[mask]).sum())
        if positives >= 5 and negatives >= 5:
            chosen[bone] = (youden_threshold(labels[mask], scores[mask]), "this bone's val images")
        else:
            chosen[bone] = (pooled, f"all val images (only {positives} positive {bone} images)")
    return chosen


# ----------------------------------------------------------------------------- outputs


def provenance(options: Options, splits: dict[str, list[Record]], minutes: float) -> dict:
    """Where a model came from: data, split sizes, command, commit, date, time taken."""
    return {
        "data": options.dataset,
        "data_path_name": options.data.name,
        "split_seed": options.seed,
        "splits": {
            name: {"images": len(records), "regions": datasets.describe_counts(records)}
            for name, records in splits.items()
        },
        "input_size": options.input_size,
        "command": options.command,
        "git_commit": git_commit(),
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "training_minutes": round(minutes, 1),
        "machine": machine(),
    }


def init_lineage(init: str) -> dict | None:
    """When the backbone started from a weights folder's backbone, how that one was made."""
    manifest_path = Path(init).parent / manifest_io.MANIFEST_NAME
    if init in ("none", "imagenet") or not manifest_path.is_file():
        return None
    raw = json.loads(manifest_path.read_text())
    networks = raw.get("networks") or {}
    entry = next(
        (e for e in networks.values() if e.get("keras_weights", {}).get("file") == Path(init).name),
        raw.get("models", {}).get("backbone", {}),
    )
    source = entry.get("provenance", {})
    return {
        "version": entry.get("version"),
        "sha256": entry.get("sha256"),
        "command": source.get("command"),
        "training_minutes": source.get("training_minutes"),
        "init": source.get("init"),
        "init_from": source.get("init_from"),  # the chain back to the first run
    }


def git_commit() -> str:
    """Current commit of the repository, or 'unknown'."""
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
            ).stdout.strip()
            or "unknown"
        )
    except OSError:
        return "unknown"


def version_tag() -> str:
    """Model version: UTC date and time plus the commit."""
    return f"{datetime.now(UTC).strftime('%Y%m%d-%H%M')}-{git_commit()}"


def write_manifest_basics(options: Options, recognition_threshold: float, note: str) -> None:
    """Input size and recognition threshold (with how it was chosen) at the top of the manifest."""
    raw = manifest_io.load_raw(options.out)
    raw["recognition_threshold"] = recognition_threshold
    raw["recognition_threshold_note"] = note
    manifest_io.write_raw(options.out, raw)


def recognition_threshold(options: Options, records: list[Record], probabilities) -> tuple:
    """The --recognition-threshold given, or the one chosen on validation; with a note."""
    truth = [r.bone for r in records]
    if options.recognition_threshold is not None:
        chosen, how = options.recognition_threshold, "given by --recognition-threshold"
    elif records:
        chosen, how = choose_recognition_threshold(truth, probabilities), "chosen on validation"
    else:
        chosen, how = 0.5, "default (no validation images)"
    score = f"{recognition_score(truth, probabilities, chosen):.3f}" if records else "n/a"
    note = f"{how}; balanced accuracy on {len(records)} val images: {score}"
    print(f"recognition threshold {chosen} ({note})")
    return chosen, note


def export_backbone_run(options: Options, splits, result) -> None:
    """Write backbone, bone-type head and per-bone fracture heads; register them all."""
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    model, backbone = result["model"], result["backbone"]
    info = provenance(options, splits, result["minutes"])
    info["init"] = result["init"]
    info["init_from"] = init_lineage(result["init"])
    version = version_tag()
    val_bone, val_fracture = predict_heads(model, splits["val"], options)
    export_network(
        backbone,
        out,
        SHARED_NETWORK,
        calibration_images(splits["train"], options.input_size),
        info,
        version=version,
        quantized=options.quantized,
        architecture="ResNet50 without top; features = conv5_block3_out",
    )
    write_manifest_basics(options, *recognition_threshold(options, splits["val"], val_bone))
    bone_kernel, bone_bias = model.get_layer("bone_type").get_weights()
    print(f"val bone type: {bone_type_summary(splits['val'], val_bone)}")
    register_head(
        out,
        "bone_type",
        bone_kernel,
        bone_bias,
        SHARED_NETWORK,
        version=version,
        provenance=info,
        validation=bone_type_summary(splits["val"], val_bone),
    )
    fracture_kernel, fracture_bias = model.get_layer("fracture").get_weights()
    scores = {bone: val_fracture for bone in BONES}
    thresholds = choose_thresholds(splits["val"], scores)
    labels = np.array([r.label for r in splits["val"]])
    for bone in BONES:
        threshold, source = thresholds[bone]
        mask = np.array([r.bone == bone for r in splits["val"]], dtype=bool)
        validation = {
            "images": int(mask.sum()),
            "fractured": int(labels[mask].sum()) if mask.any() else 0,
            "auroc": auroc(labels[mask], val_fracture[mask]) if mask.any() else None,
            "auroc_all_regions": auroc(labels, val_fracture),
        }
        print(f"val {bone}: {validation}")
        register_head(
            out,
            manifest_io.fracture_key(bone),
            fracture_kernel,
            fracture_bias - logit(threshold),
            SHARED_NETWORK,
            threshold=0.5,
            version=version,
            operating_point=operating_point_note(threshold, source),
            validation=validation,
            head="shared fracture head trained on every region",
            provenance=info,
        )
    history_path = out / "history_backbone.json"
    history_path.write_text(json.dumps(result["history"], indent=1) + "\n")


def export_bone_network(options: Options, splits, result) -> None:
    """One bone's own fracture network (the seed's shape): its file and head join the manifest,
    the other stages keep theirs."""
    bone, out = options.bone, options.out
    name = f"{bone.lower()}_network"
    info = provenance(options, splits, result["minutes"])
    info["init"] = result["init"]
    val_fracture = np.zeros(0)
    if splits["val"]:
        _, val_fracture = predict_heads(result["model"], splits["val"], options)
    export_network(
        result["backbone"],
        out,
        name,
        calibration_images(splits["train"], options.input_size),
        info,
        version=version_tag(),
        quantized=options.quantized,
        architecture=f"ResNet50 without top, fine-tuned end to end on {bone} images",
    )
    labels = np.array([r.label for r in splits["val"]])
    threshold = youden_threshold(labels, val_fracture) if 0 < labels.sum() < len(labels) else 0.5
    kernel, bias = result["model"].get_layer("fracture").get_weights()
    register_head(
        out,
        manifest_io.fracture_key(bone),
        kernel,
        bias - logit(threshold),
        name,
        threshold=0.5,
        version=version_tag(),
        operating_point=operating_point_note(threshold, f"{len(labels)} val images of this bone"),
        provenance=info,
    )
    print(f"{bone} now reads its own network '{name}' ({out / manifest_io.MANIFEST_NAME}).")


def predict_heads(model, records: list[Record], options: Options):
    """Bone-type probabilities and fracture probabilities of the training model on records."""
    outputs = model.predict(images_only(records, options.input_size, options.batch_size), verbose=0)
    return outputs["bone_type"], outputs["fracture"][:, 0]


def bone_type_summary(records: list[Record], probabilities: np.ndarray) -> dict:
    """Validation accuracy and confusion (rows true, columns predicted) of the bone-type head."""
    truth = np.array([BONE_TYPE_CLASSES.index(r.bone) for r in records])
    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((len(BONE_TYPE_CLASSES),) * 2, int)
    for t, p in zip(truth, predicted, strict=True):
        confusion[t, p] += 1
    return {
        "images": len(records),
        "accuracy_4_class": round(float((truth == predicted).mean()), 4) if len(records) else None,
        "classes": list(BONE_TYPE_CLASSES),
        "confusion": confusion.tolist(),
    }


def train_head(options: Options, splits: dict[str, list[Record]]) -> None:
    """Retrain one head (bone type or a bone's fracture head) on the frozen shared backbone."""
    import keras

    keras.utils.set_random_seed(options.seed)
    start = time.time()
    manifest = manifest_io.read_manifest(options.out)
    if options.target == "parts":
        key, entry, outputs = "bone_type", manifest.bone_type, len(BONE_TYPE_CLASSES)
        chosen = splits
    else:
        bone = options.target.capitalize()
        key, entry, outputs = manifest_io.fracture_key(bone), manifest.fracture[bone], 1
        chosen = {name: datasets.for_bone(records, bone) for name, records in splits.items()}
    network = manifest.network_of(entry)
    size, channels = network.input_size, network.feature_shape[-1]
    options = Options(**{**vars(options), "input_size": size})
    keras_weights = manifest.folder / network.details["keras_weights"]["file"]
    backbone = build_backbone(size, str(keras_weights), network.details["cut"])
    train, val = chosen["train"], chosen["val"]
    if not train:
        raise SystemExit(f"No training images for '{options.target}' in {options.data}")
    prior = load_head(manifest_io.verified_path(manifest, entry), channels, outputs)
    train_x = pooled_features(backbone, train, size, options.batch_size)
    val_x = (
        pooled_features(backbone, val, size, options.batch_size) if val else np.zeros((0, channels))
    )
    if options.target == "parts":
        labels = np.array([BONE_TYPE_CLASSES.index(r.bone) for r in train])
        val_labels = np.array([BONE_TYPE_CLASSES.index(r.bone) for r in val])
        weights = class_weights(labels.tolist(), len(BONE_TYPE_CLASSES))[labels]
    else:
        labels = np.array([r.label for r in train])
        val_labels = np.array([r.label for r in val])
        positive = max(1, labels.sum())
        weights = np.where(labels == 1, (len(labels) - positive) / positive, 1.0).astype(np.float32)
    kernel, bias = fit_linear_head(
        train_x,
        labels,
        weights,
        prior,
        (val_x, val_labels),
        options.target == "parts",
        options.seed,
    )
    info = provenance(options, chosen, (time.time() - start) / 60)
    details = {"version": version_tag(), "provenance": info, "head": f"retrained on {len(train)}"}
    if options.target != "parts":
        logits = val_x @ kernel + bias if len(val_x) else np.zeros((0, 1))
        scores = 1 / (1 + np.exp(-logits[:, 0]))
        threshold = youden_threshold(val_labels, scores) if len(val) else 0.5
        bias = bias - logit(threshold)
        details["threshold"] = 0.5
        details["operating_point"] = operating_point_note(
            threshold, f"{len(val)} val images of this bone"
        )
    else:
        logits = val_x @ kernel + bias if len(val_x) else np.zeros((0, outputs))
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities = shifted / shifted.sum(axis=1, keepdims=True)
        write_manifest_basics(options, *recognition_threshold(options, val, probabilities))
    register_head(options.out, key, kernel, bias, entry.network, pooling=entry.pooling, **details)
    print(f"Wrote {key}_head.npz and updated {options.out / manifest_io.MANIFEST_NAME}")


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    options = parse_args(argv)
    configure_threads(options.threads)
    splits = load_records(options)
    if options.target == "backbone" and options.bone:
        result = train_backbone(options, splits)
        export_bone_network(options, splits, result)
    elif options.target == "backbone":
        result = train_backbone(options, splits)
        export_backbone_run(options, splits, result)
        print(f"Training took {result['minutes']:.1f} min; weights written to {options.out}")
        data = shlex.quote(str(options.data))
        print("Evaluate with: python -m training.report.evaluate --data", data)
    else:
        train_head(options, splits)
    return 0


if __name__ == "__main__":
    sys.exit(main())
