"""Export Keras feature networks to LiteRT (`.tflite`, three precisions) and register them.

    python -m training.export.litert --weights DIR --data PATH           # re-export DIR's networks
    python -m training.export.litert --weights DIR --data PATH --choose  # int8 or float32, on test
    python -m training.export.litert --weights DIR --merge OTHER         # OTHER's networks, heads
    python -m training.export.litert --weights DIR --locate-with-maps    # boxes from KEY_map heads
    python -m training.export.litert --weights DIR --prune               # drop what nothing reads

Every network is written three times: `NAME.float32.tflite`, `NAME.dynamic-int8.tflite` (int8
weights, activations quantized on the fly) and `NAME.int8.tflite` (int8 weights and activations,
calibrated on training images); all take and give float. The manifest lists the file the app
loads, every variant with its checksum, and parity figures against the Keras float model.
`--choose` keeps a quantized variant only where it earns it on the test split (the bone-type
answer matches float on at least 99.5% of images and every fracture AUROC is within 0.01),
trying int8 first, then dynamic-int8, else float32.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from core import manifest as manifest_io
from core.manifest import sha256_file
from core.models import save_head
from core.runtime import Network, median_run_ms

MIN_CALIBRATION = 200
QUANTIZED = ("int8", "dynamic-int8")  # tried in this order (fastest first) by `choose`
PARITY_IMAGES = 32
INT8_MIN_AGREEMENT = 0.995
INT8_MAX_AUROC_DROP = 0.01


def convert(model, quantization: str, calibration: np.ndarray | None = None) -> bytes:
    """The LiteRT flatbuffer of a Keras model: float32; dynamic-int8 (int8 weights, activations
    quantized at run time); or int8 weights and activations calibrated on `calibration`."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantization != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "int8":

        def representative():
            for image in calibration:
                yield [np.asarray(image, np.float32)[None]]

        converter.representative_dataset = representative
    return converter.convert()


def tflite_features(path: Path, entry: manifest_io.NetworkEntry, images: np.ndarray) -> np.ndarray:
    """Feature maps of `images` through a `.tflite` file, with the app's own runtime."""
    network = Network(path, entry)
    return np.stack([network.features(image) for image in images])


def parity(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """How close a LiteRT network's feature maps are to the Keras float model's."""
    scale = float(np.abs(reference).mean()) or 1.0
    pooled_ref = reference.mean(axis=(1, 2))
    pooled = candidate.mean(axis=(1, 2))
    cosine = (pooled_ref * pooled).sum(1) / (
        np.linalg.norm(pooled_ref, axis=1) * np.linalg.norm(pooled, axis=1) + 1e-12
    )
    return {
        "images": len(reference),
        "relative_mean_abs_error": round(float(np.abs(reference - candidate).mean()) / scale, 5),
        "pooled_cosine_min": round(float(cosine.min()), 5),
    }


def export_network(
    model,
    out_dir: Path,
    name: str,
    calibration: np.ndarray,
    provenance: dict[str, Any] | None = None,
    quantized: tuple[str, ...] = QUANTIZED,
    keras_weights: dict[str, str] | None = None,
    **details: Any,
) -> dict[str, Any]:
    """Write NAME.float32.tflite, the `quantized` variants (NAME.int8.tflite,
    NAME.dynamic-int8.tflite) and the Keras weights (NAME.keras.npz, float16, for re-export and
    fine-tuning; with `keras_weights`, the manifest entry of a weights file that already holds
    them, and none is written), measure parity, and register the network.

    `model` (built by `training.networks.models.build_backbone`) maps a preprocessed (S, S, 3)
    image to a feature map (h, w, C); `calibration` holds at least 200 preprocessed training images.
    The int8 file (float32 without it) is the one loaded until `--choose`.
    """
    from training.networks.models import save_backbone

    if len(calibration) < MIN_CALIBRATION:
        print(f"Warning: int8 calibration on {len(calibration)} images (< {MIN_CALIBRATION}).")
    out_dir.mkdir(parents=True, exist_ok=True)
    if keras_weights is None:
        keras_path = out_dir / f"{name}.keras.npz"
        save_backbone(model, keras_path)
        keras_weights = {"file": keras_path.name, "sha256": sha256_file(keras_path)}
    size = int(model.input_shape[1])
    feature_shape = tuple(int(side) for side in model.output_shape[1:])
    check = calibration[:: max(1, len(calibration) // PARITY_IMAGES)][:PARITY_IMAGES]
    reference = np.asarray(model.predict(check, batch_size=8, verbose=0), np.float32)
    variants, parities = {}, {}
    for quantization in ("float32", *quantized):
        path = out_dir / f"{name}.{quantization}.tflite"
        path.write_bytes(convert(model, quantization, calibration))
        entry = manifest_io.NetworkEntry(
            name, path.name, sha256_file(path), size, quantization, feature_shape
        )
        parities[quantization] = parity(reference, tflite_features(path, entry, check))
        variants[quantization] = {"file": path.name, "sha256": entry.sha256}
        print(f"{path.name}: {path.stat().st_size / 1e6:.1f} MB, parity {parities[quantization]}")
    loaded = "int8" if "int8" in variants else "float32"
    return manifest_io.register_network(
        out_dir,
        name,
        out_dir / variants[loaded]["file"],
        size,
        loaded,
        feature_shape,
        variants=variants,
        parity={"features_vs_keras_float": parities, "calibration_images": len(calibration)},
        cut=model.layers[-1].name,
        keras_weights=keras_weights,
        provenance=provenance or {},
        **details,
    )


def register_head(
    out_dir: Path,
    key: str,
    kernel: np.ndarray,
    bias: np.ndarray,
    network: str,
    pooling: str = "mean",
    threshold: float | None = None,
    **details: Any,
) -> dict[str, Any]:
    """Write KEY_head.npz and its manifest entry (on `network`'s feature map)."""
    path = out_dir / f"{key}_head.npz"
    save_head(np.asarray(kernel), np.asarray(bias), path)
    extra = {"pooling": pooling, **details}
    if threshold is not None:
        extra["threshold"] = float(threshold)
    return manifest_io.register_head_entry(out_dir, key, path, network, **extra)


# ----------------------------------------------------------------------------- int8 or float32


def use_variant(weights: Path, name: str, quantization: str) -> None:
    """Point network `name` at its `quantization` file."""
    raw = manifest_io.load_raw(weights)
    entry = raw["networks"][name]
    variant = entry["variants"][quantization]
    entry.update(file=variant["file"], sha256=variant["sha256"], quantization=quantization)
    manifest_io.write_raw(weights, raw)


def analyse_with(
    weights: Path, records: list, quantized: dict[str, str], keep: tuple[str, ...] = ()
) -> list:
    """The app's results on `records` with each network of `quantized` in the variant given
    there (e.g. {"shared": "int8"}), the networks in `keep` as they are, every other in float32."""
    import predictions

    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary) / "weights"
        shutil.copytree(weights, folder)
        for name in manifest_io.load_raw(folder)["networks"]:
            if name not in keep:
                use_variant(folder, name, quantized.get(name, "float32"))
        return [predictions.analyze(record.path, folder) for record in records]


def compare(reference: list, candidate: list, records: list) -> dict[str, Any]:
    """How far `candidate` results are from the float32 `reference`, by the int8 rule."""
    from training.metrics import auroc

    pairs = list(zip(reference, candidate, strict=True))
    agree = np.mean([_answer(a) == _answer(b) for a, b in pairs])
    diffs = np.abs([a.fracture_probability - b.fracture_probability for a, b in pairs])
    aurocs = {}
    for bone in ("Elbow", "Hand", "Shoulder", None):
        members = [i for i, r in enumerate(records) if bone is None or r.bone == bone]
        labels = [records[i].label for i in members]
        if not 0 < sum(labels) < len(labels):
            continue
        aurocs[bone or "all regions"] = {
            name: round(auroc(labels, [results[i].fracture_probability for i in members]), 4)
            for name, results in (("float32", reference), ("quantized", candidate))
        }
    drops = [v["float32"] - v["quantized"] for v in aurocs.values()]
    earns = bool(agree >= INT8_MIN_AGREEMENT and all(drop <= INT8_MAX_AUROC_DROP for drop in drops))
    return {
        "images": len(records),
        "bone_type_agreement": round(float(agree), 4),
        "fracture_probability_abs_diff_median": round(float(np.median(diffs)), 4),
        "fracture_probability_abs_diff_max": round(float(diffs.max()), 4),
        "fracture_auroc": aurocs,
        "earns_its_place": earns,
    }


def latency_ms(weights: Path, name: str, quantization: str, runs: int = 15) -> float:
    """Median milliseconds of one run of network `name`'s `quantization` file here (after a
    first, untimed run)."""
    raw = manifest_io.load_raw(weights)["networks"][name]
    variant = raw["variants"][quantization]
    entry = manifest_io.NetworkEntry(
        name, variant["file"], variant["sha256"], raw["input_size"], quantization,
        tuple(raw["feature_shape"]),
    )  # fmt: skip
    return round(median_run_ms(Network(weights / variant["file"], entry), runs), 2)


def _answer(result) -> str:
    """The bone-type answer: the most likely of the four classes (Other included)."""
    return max(result.bone_probabilities, key=result.bone_probabilities.get)


def choose(weights: Path, records: list, only: tuple[str, ...] = ()) -> dict[str, Any]:
    """Per network, the first quantized variant that earns its place on `records` (tried alone,
    the other networks float32: int8, then dynamic-int8; it must keep the answers and run faster
    than float32 on this machine), else float32; then measure the chosen combination. Both are
    recorded in the manifest. With `only`, just those networks are chosen and every other keeps
    the variant it has (e.g. when their float32 files are not at hand)."""
    raw = manifest_io.load_raw(weights)
    keep = tuple(name for name in raw["networks"] if only and name not in only)
    reference = analyse_with(weights, records, {}, keep)
    chosen: dict[str, str] = {name: raw["networks"][name]["quantization"] for name in keep}
    for name, entry in raw["networks"].items():
        if name in keep:
            continue
        reports = entry.setdefault("parity", {})["test_split"] = {}
        float_ms = latency_ms(weights, name, "float32")
        for quantization in QUANTIZED:
            if quantization not in entry.get("variants", {}):
                continue
            candidate = analyse_with(weights, records, {name: quantization}, keep)
            report = compare(reference, candidate, records)
            report["latency_ms"] = {
                "float32": float_ms,
                quantization: latency_ms(weights, name, quantization),
            }
            report["answers_kept"] = report["earns_its_place"]
            report["earns_its_place"] = bool(
                report["answers_kept"] and report["latency_ms"][quantization] < float_ms
            )
            reports[quantization] = report
            if report["earns_its_place"]:
                chosen[name] = quantization
                break
        chosen.setdefault(name, "float32")
    combined = compare(reference, analyse_with(weights, records, chosen), records)
    kept_note = f"; kept as they were: {', '.join(keep)}" if keep else ""
    raw["quantization_choice"] = {
        "rule": f"a quantized variant if, with only that network quantized, the bone-type answer "
        f"matches float on >= {INT8_MIN_AGREEMENT:.1%} of test images and every fracture AUROC "
        f"drops by <= {INT8_MAX_AUROC_DROP}, and it runs faster than float32 here; int8 tried "
        f"first, then dynamic-int8{kept_note}",
        "chosen": chosen,
        "chosen_combination_vs_all_float32": combined,
    }
    manifest_io.write_raw(weights, raw)
    for name, quantization in chosen.items():
        use_variant(weights, name, quantization)
    print(json.dumps(manifest_io.load_raw(weights)["quantization_choice"], indent=1))
    return raw["quantization_choice"]


def main(argv: list[str] | None = None) -> int:
    """Command line: re-export, merge, or choose each network's quantization."""
    from training.data import datasets

    parser = argparse.ArgumentParser(
        prog="python -m training.export.litert",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--weights", type=Path, default=manifest_io.DEFAULT_WEIGHTS)
    parser.add_argument("--data", type=Path, help="the data (calibration, or test for --choose)")
    parser.add_argument(
        "--merge",
        type=Path,
        action="append",
        default=[],
        metavar="OTHER",
        help="copy every network and head of this weights folder (repeatable)",
    )
    parser.add_argument(
        "--choose", action="store_true", help="int8, dynamic-int8 or float32, on the test split"
    )
    parser.add_argument(
        "--locate-with-maps",
        action="store_true",
        help="each fracture head takes its boxes and heatmap from the head KEY_map",
    )
    parser.add_argument(
        "--prune",
        action="store_true",
        help="drop verdict terms no head adds and networks no head reads (with their files)",
    )
    parser.add_argument(
        "--networks", default="", help="with --choose: only these networks (comma-separated)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for other in args.merge:
        merge(args.weights, other)
    if args.locate_with_maps:
        locate_with_maps(args.weights)
    if args.prune:
        print(f"Dropped: {', '.join(prune(args.weights)) or 'nothing'}")
    if (args.merge or args.locate_with_maps or args.prune) and not args.data:
        return 0
    if not args.data:
        parser.error("--data is needed to export or to choose")
    splits, _ = datasets.load_splits(datasets.detect_kind(args.data), args.data, seed=args.seed)
    if args.choose:
        choose(args.weights, splits["test"], tuple(filter(None, args.networks.split(","))))
        return 0
    reexport(args.weights, splits["train"])
    return 0


def reexport(weights: Path, train_records: list) -> None:
    """Rebuild each network from its Keras weights file and export it again, in the variants it
    had, loading the one it loaded (run `--choose` again to re-measure the choice)."""
    from training.data.pipeline import calibration_images

    if _format(weights) == 1:
        migrate_format_1(weights, train_records)
        return
    raw = manifest_io.load_raw(weights)
    for name, entry in raw["networks"].items():
        recorded = entry.get("keras_weights")
        path = keras_weights_path(weights, recorded["file"]) if recorded else None
        if path is None or not path.is_file():
            print(
                f"Network '{name}': its Keras weights ({path or 'none recorded'}) are not here, "
                "so it was not exported again. Copy the NAME.keras.npz that its export wrote "
                "(in the run's export folder) next to the manifest."
            )
            continue
        if recorded.get("sha256") and sha256_file(path) != recorded["sha256"]:
            print(f"Network '{name}': {path} is not the Keras weights it was exported from "
                  "(another checksum), so it was not exported again.")  # fmt: skip
            continue
        model = rebuild_network(entry, path)
        variants = tuple(q for q in entry.get("variants", {}) if q != "float32")
        present = {
            v["file"] for v in entry.get("variants", {}).values() if (weights / v["file"]).is_file()
        }
        export_network(
            model,
            weights,
            name,
            calibration_images(train_records, entry["input_size"]),
            entry.get("provenance"),
            quantized=variants if entry.get("variants") else QUANTIZED,
            keras_weights=recorded,
            **({"version": entry["version"]} if "version" in entry else {}),
        )
        if entry["quantization"] in (*variants, "float32"):
            use_variant(weights, name, entry["quantization"])
        after = manifest_io.load_raw(weights)["networks"][name]
        drop_variant_files(weights, after, keep=present | {after["file"]})
        print(f"Network '{name}' exported again ({entry['quantization']} loaded).")


def drop_variant_files(weights: Path, entry: dict, keep: set[str]) -> None:
    """Delete the variant files of a network entry that are not in `keep`, so a re-export leaves
    the folder with the files it had (the manifest still lists every variant)."""
    for variant in entry.get("variants", {}).values():
        if variant["file"] not in keep:
            (weights / variant["file"]).unlink(missing_ok=True)


def keras_weights_path(weights: Path, file: str) -> Path:
    """A network's Keras weights file: beside the manifest, else where the repository's own
    `weights/` finds it (the ResNet50's is `../training/init/...`, a training input)."""
    path, shipped = (weights / file).resolve(), (manifest_io.DEFAULT_WEIGHTS / file).resolve()
    return shipped if not path.is_file() and shipped.is_file() else path


def network_backbone(entry: dict) -> str:
    """The family of a manifest network ("resnet50", "mobilenet_v1", ...), from its provenance
    (the fracture export's `backbone`, the bone-type training options') or ResNet50."""
    provenance = entry.get("provenance", {})
    return (
        provenance.get("backbone")
        or provenance.get("training_options", {}).get("backbone")
        or "resnet50"
    )


def rebuild_network(entry: dict, keras_weights: Path):
    """The Keras network of a manifest entry (input size, cut, backbone) with the weights of
    `keras_weights` (a `save_backbone` file)."""
    from training.networks.backbones import MOBILENETS, build_pretrained_network
    from training.networks.models import build_backbone, load_backbone_weights

    backbone, size = network_backbone(entry), entry["input_size"]
    if backbone not in MOBILENETS:
        return build_backbone(size, str(keras_weights), entry["cut"])
    import keras

    stride = size // entry["feature_shape"][0]  # 16: the atrous form of the fracture network
    full = build_pretrained_network(backbone, "none", size, 16 if stride == 16 else 32)
    model = keras.Model(full.input, full.get_layer(entry["cut"]).output, name=backbone)
    load_backbone_weights(model, keras_weights)
    return model


def merge(weights: Path, other: Path) -> None:
    """Copy `other`'s networks and heads (files and entries) into `weights`, replacing entries of
    the same name; a bone-type head brings its recognition threshold along. Heads of `weights`
    that read a network replaced by one with another number of channels are dropped (refit them,
    e.g. the orientation head)."""
    source, target = manifest_io.load_raw(other), manifest_io.load_raw(weights)
    weights.mkdir(parents=True, exist_ok=True)
    changed = {  # networks replaced by one with another feature map: their old heads cannot read it
        name
        for name, entry in source["networks"].items()
        if name in target["networks"]
        and entry["feature_shape"][-1] != target["networks"][name]["feature_shape"][-1]
    }
    for key in [k for k, head in target["heads"].items() if head["network"] in changed]:
        if key not in source["heads"]:
            print(f"Dropped head '{key}': it read the previous '{target['heads'][key]['network']}'")
            (weights / target["heads"].pop(key)["file"]).unlink(missing_ok=True)
    for section in ("networks", "heads"):
        for name, entry in source[section].items():
            for file in entry_files(entry):
                if (other / file).is_file():
                    shutil.copy2(other / file, weights / file)
            target[section][name] = entry
    if "bone_type" in source["heads"]:
        for key in ("recognition_threshold", "recognition_threshold_note"):
            if key in source:
                target[key] = source[key]
    manifest_io.write_raw(weights, target)
    print(
        f"Merged {len(source['networks'])} network(s), {len(source['heads'])} head(s) from {other}"
    )


def entry_files(entry: dict) -> set[str]:
    """Every file a manifest entry names: the one loaded, its variants and its Keras weights."""
    files = {entry["file"], entry.get("keras_weights", {}).get("file")}
    files |= {variant["file"] for variant in entry.get("variants", {}).values()}
    return files - {None}


def locate_with_maps(weights: Path) -> None:
    """Point every fracture head that has a `KEY_map` head at it (boxes and heatmap from there)."""
    raw = manifest_io.load_raw(weights)
    for key, entry in raw["heads"].items():
        if f"{key}_map" in raw["heads"]:
            entry["map_head"] = f"{key}_map"
            print(f"{key}: verdict from network '{entry['network']}', boxes from '{key}_map'")
    manifest_io.write_raw(weights, raw)


def prune(weights: Path, networks: bool = True) -> list[str]:
    """Drop verdict terms (`fracture_term_*` heads) that no head adds any more and, with
    `networks`, networks that no head reads, with the files in `weights` that no remaining entry
    lists (a file outside the folder, such as a training input, is left alone). Returns the
    names dropped."""
    raw = manifest_io.load_raw(weights)
    added = {term for head in raw["heads"].values() for term in head.get("plus_heads", [])}
    dropped = [k for k in raw["heads"] if k.startswith("fracture_term_") and k not in added]
    files = {raw["heads"].pop(key)["file"] for key in dropped}
    read = {head["network"] for head in raw["heads"].values()}
    for name in [n for n in raw["networks"] if networks and n not in read]:
        files |= entry_files(raw["networks"].pop(name))
        dropped.append(name)
    kept = {
        f
        for section in ("networks", "heads")
        for e in raw[section].values()
        for f in entry_files(e)
    }
    for file in files - kept:
        path = weights / file
        if path.parent.resolve() == weights.resolve():
            path.unlink(missing_ok=True)
    manifest_io.write_raw(weights, raw)
    return dropped


def _format(weights: Path) -> int:
    path = weights / manifest_io.MANIFEST_NAME
    return json.loads(path.read_text())["format_version"] if path.is_file() else 0


def migrate_format_1(weights: Path, train_records: list) -> None:
    """Turn a format-1 folder (one shared backbone .npz + heads) into a LiteRT format-2 folder."""
    from training.data.pipeline import calibration_images
    from training.networks.models import build_backbone

    old = json.loads((weights / manifest_io.MANIFEST_NAME).read_text())
    size, models = old["input_size"], old["models"]
    backbone = models["backbone"]
    model = build_backbone(size, str(weights / backbone["file"]))
    (weights / manifest_io.MANIFEST_NAME).unlink()
    export_network(
        model,
        weights,
        "shared",
        calibration_images(train_records, size),
        backbone.get("provenance"),
        version=backbone.get("version", ""),
    )
    raw = manifest_io.load_raw(weights)
    raw["recognition_threshold"] = old["recognition_threshold"]
    raw["recognition_threshold_note"] = old.get("recognition_threshold_note", "")
    raw["model_card"] = old.get("model_card", {})
    manifest_io.write_raw(weights, raw)
    for key, entry in models.items():
        if key == "backbone":
            continue
        details = {k: v for k, v in entry.items() if k not in ("file", "sha256", "classes")}
        manifest_io.register_head_entry(weights, key, weights / entry["file"], "shared", **details)
    print(f"Migrated {weights} to format {manifest_io.FORMAT_VERSION} (network 'shared').")


if __name__ == "__main__":
    sys.exit(main())
