"""Train the bone-type network (Elbow/Hand/Shoulder/Other) for X-rays framed like other hospitals'.

    python -m training.networks.train_bone_type --data PATH --out runs/bone_type [--size 128]
        [--epochs 12]
        [--max-minutes 50] [--resume] [--stage all|train|evaluate|export|shipped]

Its own ResNet50 at a small input, initialised from the earlier backbone (`--backbone
mobilenet_v1|mobilenet_v2 --init FILE`: an ImageNet MobileNet from a TFLite file instead, with
`--probe-steps N` to train the head alone on the frozen network first), global-average pooling
and a 4-way softmax. Every step draws a class-balanced batch from ALL training regions (Other =
every region but elbow, hand and shoulder, lower limb included): tight joint views cut around the
marked elbows and shoulders (`data/joint_marks.csv`) and whole images, all changed the way other
hospitals take them (`training.data.augment`), then the app's own `core.imaging.preprocess`.
Checkpoints every epoch; `--resume` continues; `--max-minutes` stops cleanly. The evaluate stage
reports the plain and the stress validation (`training.data.stress`) and chooses the recognition
threshold on both; the export stage writes the LiteRT network and head with
`training.export.litert`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image

from core.imaging import preprocess, read_xray
from core.models import BONE_TYPE_CLASSES
from training.data import augment, datasets, stress
from training.data.augment import JointMark
from training.data.datasets import Record
from training.data.pipeline import class_weights
from training.networks.backbones import (
    BACKBONES,
    MOBILENETS,
    RESNET50_INIT,
    build_pretrained_network,
)
from training.threads import configure_threads, machine

ROOT = Path(__file__).resolve().parent.parent.parent
NETWORK_NAME = "bone_type"
# the last feature map: ResNet50, MobileNet v1, MobileNet v2
FEATURE_LAYERS = ("conv5_block3_out", "pw13_relu", "conv_last_relu")
FROZEN_PREFIXES = ("conv1_", "pool1_", "conv2_", "conv0")  # the stem (ResNet50: and stage 2)
CLASS_MIX = {"Elbow": 0.25, "Hand": 0.2, "Shoulder": 0.25, "Other": 0.3}
CALIBRATION_IMAGES = 256
# Other regions that validation most often takes for a bone (wrists and forearms for hands, chest
# films for shoulders); `--confusable-share` draws them more often than their share of the images.
CONFUSABLE_REGIONS = ("wrist", "forearm", "chest")


@dataclass
class Options:
    """Command-line options (stored with the run)."""

    data: Path
    out: Path
    size: int = 128
    epochs: int = 12
    steps_per_epoch: int = 100
    batch: int = 16
    learning_rate: float = 3e-4
    init: str = str(RESNET50_INIT)
    freeze_stem: bool = True
    cache_side: int = 512
    max_minutes: float = 50.0
    resume: bool = False
    seed: int = 0
    threads: int = 1
    stage: str = "all"
    limit: int = 0  # use at most N images per split (tests and smoke runs)
    strength: float = 0.8
    other_share: float = CLASS_MIX["Other"]  # share of each batch drawn from other regions
    confusable_share: float = 0.0  # share of those drawn from CONFUSABLE_REGIONS (0: as found)
    backbone: str = "resnet50"  # or a MobileNet (`init`: a TFLite file of that network)
    probe_steps: int = 0  # steps training the head alone on the frozen backbone first (LP-FT)


def parse_args(argv: list[str] | None = None) -> Options:
    """Parse the command line into `Options`."""
    parser = argparse.ArgumentParser(
        prog="python -m training.networks.train_bone_type",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    defaults = Options(Path(), Path())
    parser.add_argument("--data", type=Path, required=True, help="FracAtlas folder")
    parser.add_argument("--out", type=Path, required=True, help="run folder (under runs/)")
    integers = ("size", "epochs", "steps_per_epoch", "batch", "cache_side", "seed", "threads")
    for name in (*integers, "probe_steps"):
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name)
        )
    parser.add_argument("--limit", type=int, default=0, help="at most N images per split")
    for name in ("learning_rate", "max_minutes", "strength", "other_share", "confusable_share"):
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name)
        )
    parser.add_argument(
        "--init", default=None,
        help="resnet50: backbone .npz (default: the shipped one), 'none' or 'imagenet'; "
        "mobilenet_v1|v2: a TFLite MobileNet file of that kind or 'none'",
    )  # fmt: skip
    parser.add_argument("--backbone", choices=BACKBONES, default=defaults.backbone)
    parser.add_argument("--no-freeze-stem", dest="freeze_stem", action="store_false")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    parser.add_argument(
        "--stage", choices=("all", "train", "evaluate", "export", "shipped"), default="all"
    )
    args = parser.parse_args(argv)
    if args.init is None:
        args.init = defaults.init if args.backbone == "resnet50" else "none"
    return Options(**vars(args))


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Source:
    """One way to draw a training example: an image, and a joint to zoom into (or None)."""

    index: int  # into the image cache
    bone: str  # class of the example
    region: str
    mark: JointMark | None = None


def training_sources(
    records: list[Record], marks: dict[str, list[JointMark]]
) -> dict[str, list[Source]]:
    """Per class, the sources to draw from: every image under its own class, plus one joint-view
    source per joint mark (under the joint's class, whatever the image's region)."""
    sources: dict[str, list[Source]] = {name: [] for name in BONE_TYPE_CLASSES}
    for index, record in enumerate(records):
        sources[record.bone].append(Source(index, record.bone, record.region))
        for mark in marks.get(Path(record.path).name, []):
            sources[mark.bone].append(Source(index, mark.bone, record.region, mark))
    return sources


def cache_images(records: list[Record], side: int) -> list[np.ndarray]:
    """Each image read like the app reads it, shrunk to at most `side` px, stored as uint8."""
    cached = []
    started = time.monotonic()
    for number, record in enumerate(records, 1):
        image = read_xray(record.path)
        scale = side / max(image.shape)
        if scale < 1:
            size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
            pil = Image.fromarray(image, mode="F").resize(size, Image.Resampling.BILINEAR)
            image = np.asarray(pil, np.float32)
        cached.append(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8))
        if number % 500 == 0:
            print(
                f"  cached {number}/{len(records)} ({time.monotonic() - started:.0f} s)", flush=True
            )
    return cached


def draw_example(
    image: np.ndarray, source: Source, rng: np.random.Generator, size: int, strength: float
) -> tuple[np.ndarray, int]:
    """One augmented, preprocessed example (size, size, 3) and its class index."""
    gray = image.astype(np.float32) / 255.0
    if source.mark is not None:
        view, bone = augment.joint_crop(gray, source.mark, rng), source.mark.bone
    else:
        view, bone = augment.synthesize(
            gray, source.bone, [], rng, crop_others=source.region == "other"
        )
    view = augment.acquisition(view, rng, strength)
    return preprocess(view, size), BONE_TYPE_CLASSES.index(bone)


def draw_batch(
    cache: list[np.ndarray],
    sources: dict[str, list[Source]],
    rng: np.random.Generator,
    options: Options,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A batch with classes drawn from `CLASS_MIX` (classes without sources are skipped),
    and per-example class weights computed on the batch's labels."""
    names = [name for name in BONE_TYPE_CLASSES if sources[name]]
    bone_share = (1 - options.other_share) / (1 - CLASS_MIX["Other"])
    mix = np.array(
        [options.other_share if n == "Other" else CLASS_MIX[n] * bone_share for n in names]
    )
    images, labels = [], []
    confusable = [s for s in sources.get("Other", []) if s.region in CONFUSABLE_REGIONS]
    for name in rng.choice(names, size=options.batch, p=mix / mix.sum()):
        pool = sources[str(name)]
        wanted = options.confusable_share > 0 and name == "Other" and confusable
        if wanted and rng.random() < options.confusable_share:
            pool = confusable
        source = pool[int(rng.integers(len(pool)))]
        image, label = draw_example(
            cache[source.index], source, rng, options.size, options.strength
        )
        images.append(image)
        labels.append(label)
    labels = np.array(labels, np.int32)
    weights = class_weights(labels.tolist(), len(BONE_TYPE_CLASSES))[labels]
    return np.stack(images), labels, weights / weights.mean()


# ----------------------------------------------------------------------------- model


def build_model(
    size: int,
    init: str,
    freeze_stem: bool = True,
    dropout: float = 0.2,
    backbone_name: str = "resnet50",
):
    """Backbone (ResNet50 or MobileNet v1, from `init`) -> global average pooling -> dropout ->
    Dense(4) softmax."""
    import keras

    from training.networks.models import build_backbone

    if backbone_name in MOBILENETS:
        backbone = build_pretrained_network(backbone_name, init, size, name=NETWORK_NAME)
    else:
        backbone = build_backbone(size, init=init)
    if freeze_stem:
        for layer in backbone.layers:
            if layer.name.startswith(FROZEN_PREFIXES):
                layer.trainable = False
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(backbone.output)
    dropped = keras.layers.Dropout(dropout, name="head_dropout")(pooled)
    output = keras.layers.Dense(
        len(BONE_TYPE_CLASSES), activation="softmax", name="bone_type", dtype="float32"
    )(dropped)
    return keras.Model(backbone.input, output, name="bone_type_classifier")


def feature_model(model):
    """The network to export: preprocessed image -> last conv block's feature map."""
    import keras

    names = {layer.name for layer in model.layers}
    layer = next(name for name in FEATURE_LAYERS if name in names)
    return keras.Model(model.input, model.get_layer(layer).output, name=NETWORK_NAME)


def head_arrays(model) -> tuple[np.ndarray, np.ndarray]:
    """The dense layer's (kernel (C, 4), bias (4,))."""
    kernel, bias = model.get_layer("bone_type").get_weights()
    return np.asarray(kernel, np.float32), np.asarray(bias, np.float32)


def cosine_rate(base: float, progress: float) -> float:
    """Learning rate at `progress` (0 = start, 1 = end of the epochs or of the time budget,
    whichever comes first): cosine from `base` down to 5% of it."""
    progress = min(max(progress, 0.0), 1.0)
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


# ----------------------------------------------------------------------------- training


def load_data(options: Options) -> tuple[dict[str, list[Record]], dict[str, list[JointMark]]]:
    """FracAtlas splits (the project's reviewed region labels) and the joint marks."""
    splits, reports = datasets.load_splits("fracatlas", options.data)
    for report in reports:
        print(report.summary())
    if options.limit:
        splits = {name: records[: options.limit] for name, records in splits.items()}
    return splits, augment.load_joint_marks()


def probe_head(model, cache, sources, options: Options) -> dict:
    """Train the dense head alone on the frozen backbone for `options.probe_steps` batches (the
    linear probe of LP-FT: a random head's first gradients would wreck pretrained features)."""
    import keras

    trainable = {layer.name: layer.trainable for layer in model.layers}
    for layer in model.layers:
        layer.trainable = layer.name == "bone_type"
    model.compile(
        keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy",
        weighted_metrics=["accuracy"],
    )  # fmt: skip
    rng, started, losses = np.random.default_rng([options.seed, 999]), time.monotonic(), []
    for _ in range(options.probe_steps):
        x, y, w = draw_batch(cache, sources, rng, options)
        losses.append(float(model.train_on_batch(x, y, sample_weight=w)[0]))
    for layer in model.layers:
        layer.trainable = trainable[layer.name]
    probe = {
        "steps": options.probe_steps,
        "loss_first_tenth": float(np.mean(losses[: max(1, len(losses) // 10)])),
        "loss_last_tenth": float(np.mean(losses[-max(1, len(losses) // 10) :])),
        "minutes": (time.monotonic() - started) / 60,
    }
    print("Linear probe:", json.dumps(probe), flush=True)
    return probe


def train(options: Options, splits, marks, build=build_model) -> dict:
    """Run (or resume) training; returns the state saved with the checkpoint.

    `build(size, init, freeze_stem)` makes the Keras model (tests pass a tiny one)."""
    import keras

    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    checkpoint, state_path = out / "checkpoint.weights.h5", out / "state.json"
    state = {"epochs_done": 0, "minutes": 0.0, "history": [], "options": _jsonable(options)}
    model = build(options.size, options.init, options.freeze_stem, backbone_name=options.backbone)
    if options.resume and state_path.is_file() and checkpoint.is_file():
        state = json.loads(state_path.read_text())
        model.load_weights(checkpoint)
        print(f"Resumed after epoch {state['epochs_done']} ({state['minutes']:.1f} min so far)")
        state.setdefault("resumed_with", []).append(_jsonable(options))
    optimizer = keras.optimizers.Adam(options.learning_rate)
    model.compile(optimizer, "sparse_categorical_crossentropy", weighted_metrics=["accuracy"])
    records = splits["train"]
    sources = training_sources(records, marks)
    print("Training sources:", {name: len(pool) for name, pool in sources.items()}, flush=True)
    started = time.monotonic()
    cache = cache_images(records, options.cache_side)
    print(f"Cached {len(cache)} images in {time.monotonic() - started:.0f} s", flush=True)
    budget_start, minutes_before = time.monotonic(), state["minutes"]
    if options.probe_steps and not state["epochs_done"] and not state.get("probe"):
        state["probe"] = probe_head(model, cache, sources, options)
        model.compile(optimizer, "sparse_categorical_crossentropy", weighted_metrics=["accuracy"])

    def minutes_used() -> float:
        return minutes_before + (time.monotonic() - budget_start) / 60

    for epoch in range(state["epochs_done"], options.epochs):
        rng = np.random.default_rng([options.seed, epoch])
        progress = max(epoch / options.epochs, minutes_used() / max(options.max_minutes, 1e-6))
        optimizer.learning_rate.assign(cosine_rate(options.learning_rate, progress))
        losses, accuracies, epoch_start = [], [], time.monotonic()
        for step in range(options.steps_per_epoch):
            x, y, w = draw_batch(cache, sources, rng, options)
            loss, accuracy = model.train_on_batch(x, y, sample_weight=w)
            losses.append(float(loss))
            accuracies.append(float(accuracy))
            if minutes_used() > options.max_minutes:
                print(f"Stopping: {options.max_minutes} min used (epoch {epoch + 1}, step {step})")
                break
        else:
            state["epochs_done"] = epoch + 1
        state["minutes"] = minutes_used()
        state["history"].append(
            {
                "epoch": epoch + 1,
                "steps": len(losses),
                "loss": float(np.mean(losses)),
                "accuracy": float(np.mean(accuracies)),
                "learning_rate": float(optimizer.learning_rate.numpy()),
                "seconds": time.monotonic() - epoch_start,
            }
        )
        model.save_weights(checkpoint)
        state_path.write_text(json.dumps(state, indent=2) + "\n")
        print(json.dumps(state["history"][-1]), flush=True)
        if minutes_used() > options.max_minutes:
            break
    state["finished"] = state["epochs_done"] >= options.epochs
    state_path.write_text(json.dumps(state, indent=2) + "\n")
    return state


# ----------------------------------------------------------------------------- evaluation


def predict_paths(model, paths: list[Path], size: int, batch: int = 32) -> np.ndarray:
    """Bone-type probabilities for files, through the app's `read_xray` + `preprocess`."""
    rows = []
    for start in range(0, len(paths), batch):
        chunk = np.stack([preprocess(read_xray(p), size) for p in paths[start : start + batch]])
        rows.append(np.asarray(model.predict(chunk, verbose=0)))
    return np.concatenate(rows) if rows else np.zeros((0, len(BONE_TYPE_CLASSES)))


def choose_threshold_on_both(truths: list[list[str]], probabilities: list[np.ndarray]) -> float:
    """The recognition threshold with the best mean `recognition_score` over the sets given
    (plain and stress validation); candidates and tie rule as `choose_recognition_threshold`."""
    from training.networks.train import recognition_score

    candidates = np.round(np.arange(0.5, 0.951, 0.05), 2)
    scores = [
        np.mean(
            [recognition_score(t, p, float(c)) for t, p in zip(truths, probabilities, strict=True)]
        )
        for c in candidates
    ]
    return float(candidates[int(np.argmax(scores))])


def stress_records(options: Options, splits, marks) -> list[Record]:
    """The stress-validation set rendered into the run folder (reused when already there)."""
    items = stress.build_stress_set(splits["val"], marks, seed=options.seed)
    return stress.write_stress_set(items, options.out / "stress_val")


def evaluate_probabilities(probabilities: dict[str, tuple[list[str], np.ndarray]]) -> dict:
    """Threshold chosen on every set given, then the summary of each set at that threshold."""
    names = list(probabilities)
    threshold = choose_threshold_on_both(
        [probabilities[n][0] for n in names], [probabilities[n][1] for n in names]
    )
    return {
        "recognition_threshold": threshold,
        "threshold_note": (
            f"chosen in 0.50..0.95 (step 0.05) for the best mean balanced recognition score "
            f"(bones recognised as the right bone vs other regions flagged) over "
            f"{' and '.join(names)}"
        ),
        **{n: stress.bone_type_summary(t, p, threshold) for n, (t, p) in probabilities.items()},
    }


def evaluate(options: Options, splits, marks, model=None) -> dict:
    """Plain and stress validation of the trained model; writes `evaluation.json`."""
    if model is None:
        model = build_model(
            options.size, "none", options.freeze_stem, backbone_name=options.backbone
        )
        model.load_weights(options.out / "checkpoint.weights.h5")
    plain = splits["val"]
    stressed = stress_records(options, splits, marks)
    probabilities = {
        "plain validation": (
            [r.bone for r in plain],
            predict_paths(model, [r.path for r in plain], options.size),
        ),
        "stress validation": (
            [r.bone for r in stressed],
            predict_paths(model, [r.path for r in stressed], options.size),
        ),
    }
    report = evaluate_probabilities(probabilities)
    (options.out / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n")
    np.savez(  # per-image probabilities, for looking into the errors
        options.out / "evaluation_probabilities.npz",
        **{
            f"{n} {kind}": np.asarray(v)
            for n, (t, p) in probabilities.items()
            for kind, v in (("truth", t), ("probabilities", p))
        },
    )
    return report


def shipped_model(weights_dir: Path):
    """A weights folder's bone-type stage as one Keras model (its network's Keras weights, global
    average pooling, its bone-type head); returns (model, input size, recognition threshold).
    Reads format 2 (`networks` + `heads`) and the older format 1 (`models`)."""
    import keras

    from core.models import load_arrays
    from training.networks.models import build_backbone

    raw = json.loads((weights_dir / "manifest.json").read_text())
    if "models" in raw:  # format 1: one shared backbone .npz and heads
        network = {"input_size": 160, "keras_weights": raw["models"]["backbone"]}
        head_file = raw["models"]["bone_type"]["file"]
    else:
        head_file = raw["heads"]["bone_type"]["file"]
        network = raw["networks"][raw["heads"]["bone_type"]["network"]]
    size = int(network["input_size"])
    backbone = build_backbone(size, init=str(weights_dir / network["keras_weights"]["file"]))
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(backbone.output)
    dense = keras.layers.Dense(len(BONE_TYPE_CLASSES), activation="softmax", name="bone_type")
    model = keras.Model(backbone.input, dense(pooled))
    head = load_arrays(weights_dir / head_file)
    dense.set_weights([head["kernel"].astype(np.float32), head["bias"].astype(np.float32)])
    return model, size, float(raw["recognition_threshold"])


def evaluate_shipped(options: Options, splits, marks, weights_dir: Path) -> dict:
    """Plain and stress validation of the shipped bone-type stage at its own threshold."""
    model, size, threshold = shipped_model(weights_dir)
    plain = splits["val"]
    stressed = stress_records(options, splits, marks)
    report = {"weights": str(weights_dir), "input_size": size, "recognition_threshold": threshold}
    for name, records in (("plain validation", plain), ("stress validation", stressed)):
        probabilities = predict_paths(model, [r.path for r in records], size)
        report[name] = stress.bone_type_summary([r.bone for r in records], probabilities, threshold)
    (options.out / "evaluation_shipped.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


# ----------------------------------------------------------------------------- export


def calibration_images(records: list[Record], size: int, seed: int) -> np.ndarray:
    """`CALIBRATION_IMAGES` preprocessed training images (fixed random choice) for int8."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(records), size=min(CALIBRATION_IMAGES, len(records)), replace=False)
    return np.stack([preprocess(read_xray(records[i].path), size) for i in sorted(chosen)])


def export(options: Options, splits, report: dict, state: dict, model=None) -> Path:
    """Write the network, head and threshold (via `training.export.litert`) into the run folder."""
    from core import manifest as manifest_io
    from training.export.litert import export_network, register_head

    if model is None:
        model = build_model(
            options.size, "none", options.freeze_stem, backbone_name=options.backbone
        )
        model.load_weights(options.out / "checkpoint.weights.h5")
    out = options.out / "export"
    runs = [state.get("options"), *state.get("resumed_with", [])]
    finished = datetime.now(UTC)
    provenance = {
        "data": "fracatlas",
        "split_seed": 0,
        "splits": {name: datasets.describe_counts(records) for name, records in splits.items()},
        "init": Path(options.init).name,
        "training_minutes": round(state.get("minutes", 0.0), 1),
        "training_minutes_note": "time in training steps on one TensorFlow thread (shared CPU), "
        "without image caching and start-up",
        "epochs": state.get("epochs_done"),
        "steps": sum(epoch["steps"] for epoch in state.get("history", [])),
        "command": "; then ".join(command_line(run) for run in runs if run),
        "training_options": state.get("options"),
        "resumed_with": state.get("resumed_with", []),
        "validation": {k: v for k, v in report.items() if k.endswith("validation")},
        "finished_utc": finished.isoformat(timespec="seconds"),
        "date": finished.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "joint_marks": "training/data/joint_marks.csv",
    }
    export_network(
        feature_model(model),
        out,
        NETWORK_NAME,
        calibration_images(splits["train"], options.size, options.seed),
        provenance,
    )
    kernel, bias = head_arrays(model)
    register_head(
        out, "bone_type", kernel, bias, NETWORK_NAME, pooling="mean", provenance=provenance
    )
    raw = manifest_io.load_raw(out)
    raw["recognition_threshold"] = report["recognition_threshold"]
    raw["recognition_threshold_note"] = report["threshold_note"]
    manifest_io.write_raw(out, raw)
    return out


def command_line(options: dict) -> str:
    """The training command that `options` (as stored in the run's state) stand for."""
    defaults = _jsonable(Options(Path(), Path()))
    parts = ["python -m training.networks.train_bone_type"]
    for key, value in options.items():
        if key in ("data", "out") or value != defaults.get(key):
            flag = f"--{key.replace('_', '-')}"
            if isinstance(value, bool):
                if key == "resume" and value:
                    parts.append(flag)
                elif key == "freeze_stem" and not value:
                    parts.append("--no-freeze-stem")
            else:
                parts.append(f"{flag} {value}")
    return " ".join(parts)


def _jsonable(options: Options) -> dict:
    return {
        key: str(value) if isinstance(value, Path) else value
        for key, value in asdict(options).items()
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    options = parse_args(argv)
    configure_threads(options.threads)
    splits, marks = load_data(options)
    state_path = options.out / "state.json"
    if options.stage == "shipped":  # the "before" figures: the shipped weights/ folder
        print(json.dumps(evaluate_shipped(options, splits, marks, ROOT / "weights"), indent=2))
        return 0
    model, state = None, {}
    if options.stage in ("all", "train"):
        state = train(options, splits, marks)
    elif state_path.is_file():
        state = json.loads(state_path.read_text())
    report = {}
    if options.stage in ("all", "evaluate"):
        report = evaluate(options, splits, marks, model)
        print(json.dumps(report, indent=2))
    if options.stage in ("all", "export"):
        if not report:
            report = json.loads((options.out / "evaluation.json").read_text())
        print(f"Exported to {export(options, splits, report, state, model)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
