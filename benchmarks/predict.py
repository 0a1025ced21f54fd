"""Print inference speed side by side: the app's LiteRT path, the same networks in Keras, the seed.

    python -m benchmarks.predict [--weights DIR] [--image FILE] [--runs 30] [--starts 5]

Each path runs in fresh processes (start to first result: median of --starts launches; warm
latency: median of --runs calls after the first; peak resident memory of the process):
- litert: what the app runs (`predictions.analyze`, int8/float32 `.tflite`, no TensorFlow);
- keras:  the same networks and heads, rebuilt in Keras float32 from their `.keras.npz` weights;
- seed:   the design this project descends from: four full Keras ResNet50 models at 224 px,
          bone type, then the fracture model, then bone type again, each through `model.predict`.
Targets (2-core CPU, shipped weights): start to first result <= 0.5 s, warm two-stage <= 50 ms,
peak memory <= 200 MB (LiteRT path). The keras and seed paths need the training requirements.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATHS = ("litert", "keras", "seed")
SEED_SIZE = 224


def litert_runner(weights: Path):
    """The app's own call."""
    import predictions

    return lambda image: predictions.analyze(image, weights)


def keras_runner(weights: Path):
    """The manifest's networks in Keras float32, heads in numpy: the float reference path.
    A network whose Keras weights are not shipped is built with random weights (same cost)."""
    from core.engine import Engine
    from core.imaging import normalize, prepare_framed, read_xray
    from core.manifest import read_manifest
    from training.networks.models import build_backbone

    manifest = read_manifest(weights)
    engine = Engine(manifest)  # heads and checks; its LiteRT networks are not used below
    models = {}
    for name in engine.networks:
        entry = manifest.networks[name]
        npz = weights / entry.details["keras_weights"]["file"]
        init = str(npz) if npz.is_file() else "none"  # speed does not depend on the values
        models[name] = (
            entry.input_size,
            build_backbone(entry.input_size, init, entry.details["cut"]),
        )

    def run(image):
        gray = read_xray(image)
        features = {}
        for name, (size, model) in models.items():
            pixels, _ = prepare_framed(gray, size)
            features[name] = model(normalize(pixels)[None], training=False).numpy()[0]
        bone = engine.heads["bone_type"].logits(features[manifest.bone_type.network])
        best = ("Elbow", "Hand", "Shoulder")[int(bone[:3].argmax())]
        return sum(
            engine.heads[head.name].logits(features[head.network])
            for head in manifest.verdict_of(best)
        )

    return run


def seed_runner(_weights: Path):
    """Four ResNet50 classifiers at 224 px; bone type, fracture, bone type again via predict."""
    import keras

    from core.imaging import preprocess, read_xray

    bone_type = keras.applications.ResNet50(weights=None, classes=3)
    fracture = {
        bone: keras.applications.ResNet50(weights=None, classes=2)
        for bone in ("Elbow", "Hand", "Shoulder")
    }

    def run(image):
        x = preprocess(read_xray(image), SEED_SIZE)[None]
        bone = ("Elbow", "Hand", "Shoulder")[int(bone_type.predict(x, verbose=0).argmax())]
        label = fracture[bone].predict(x, verbose=0)
        bone_type.predict(x, verbose=0)
        return label

    return run


def child(path: str, image: Path, weights: Path, runs: int) -> None:
    """Run one path in this (fresh) process and print its figures as JSON."""
    run = {"litert": litert_runner, "keras": keras_runner, "seed": seed_runner}[path](weights)
    run(image)
    first = time.time()
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        run(image)
        timings.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    networks = network_timings(weights, runs) if path == "litert" and runs else {}
    print(json.dumps({"first": first, "warm": timings, "peak_mb": peak, "networks": networks}))


def network_timings(weights: Path, runs: int) -> dict[str, float]:
    """Median warm ms of each LiteRT network alone (where the app's time goes)."""
    from core.engine import get_engine
    from core.runtime import median_run_ms

    timings = {}
    for name, network in get_engine(weights).networks.items():
        label = f"{name} ({network.input_size} px, {network.entry.quantization})"
        timings[label] = median_run_ms(network, runs)
    return timings


def launch(path: str, image: Path, weights: Path, runs: int) -> dict:
    """Start a fresh interpreter for `path`; seconds to first result, warm timings, peak MB."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "benchmarks.predict", "--child", path, "--runs", str(runs)]
    start = time.time()
    done = subprocess.run(
        [*command, "--image", str(image), "--weights", str(weights)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=env,
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["start"] = figures.pop("first") - start
    return figures


def measure(path: str, image: Path, weights: Path, runs: int, starts: int) -> dict:
    """Median start-up over `starts` launches; warm timings of the first launch; max peak."""
    launches = [launch(path, image, weights, runs if i == 0 else 0) for i in range(starts)]
    return {
        "start_s": statistics.median(f["start"] for f in launches),
        "start_range": (min(f["start"] for f in launches), max(f["start"] for f in launches)),
        "warm_ms": statistics.median(launches[0]["warm"]) * 1000,
        "peak_mb": max(f["peak_mb"] for f in launches),
        "networks": launches[0].get("networks", {}),
    }


def main(argv: list[str] | None = None) -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--weights", type=Path, default=ROOT / "weights")
    parser.add_argument("--image", type=Path, default=ROOT / "test" / "Hand" / "normal")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--starts", type=int, default=5, help="cold starts to take the median of")
    parser.add_argument("--paths", default=",".join(PATHS), help="which paths, comma-separated")
    parser.add_argument("--child", choices=PATHS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    image = args.image
    if image.is_dir():
        image = sorted(p for p in image.iterdir() if p.is_file())[0]
    if args.child:
        child(args.child, image, args.weights, args.runs)
        return
    print(f"image: {image}\nweights: {args.weights}\ncores: {os.cpu_count()}")
    results = {}
    for path in args.paths.split(","):
        starts = args.starts if path == "litert" else 1
        results[path] = measure(
            path, image, args.weights, args.runs if path != "seed" else 10, starts
        )
    base = results.get("litert")
    print(f"\n{'path':<8} {'start to first result':>24} {'warm two-stage':>16} {'peak memory':>12}")
    for path, r in results.items():
        ratio = ""
        if base and path != "litert":
            ratio = "   (vs litert: x{:.1f} start, x{:.1f} warm, x{:.1f} memory)".format(
                r["start_s"] / base["start_s"],
                r["warm_ms"] / base["warm_ms"],
                r["peak_mb"] / base["peak_mb"],
            )
        low, high = r["start_range"]
        print(
            f"{path:<8} {r['start_s']:>9.2f} s ({low:.2f}-{high:.2f}) {r['warm_ms']:>13.1f} ms "
            f"{r['peak_mb']:>9.0f} MB{ratio}"
        )
    for name, ms in results.get("litert", {}).get("networks", {}).items():
        print(f"  litert network {name}: {ms:.1f} ms")
    print("\nTargets for litert: start <= 0.5 s, warm <= 50 ms (12 ms at 160 px), peak <= 200 MB.")


if __name__ == "__main__":
    main()
