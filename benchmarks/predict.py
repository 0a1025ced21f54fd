"""Print inference speed on this machine: warm two-stage latency, start to first result, memory.

    python -m benchmarks.predict [--weights DIR] [--image FILE] [--runs 30] [--starts 5]

Targets (2-core CPU): warm two-stage median <= 80 ms, start to first result <= 4 s, peak memory
<= 1.2 GB. The seed's design measured 0.43 s per warm click, 7.1 s to load, 1.11 GB peak.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHILD = """
import resource, sys, time, json
sys.path.insert(0, {root!r})
import predictions
result = predictions.analyze({image!r}, {weights!r})
done = time.time()
print(json.dumps({{"done": done, "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}}))
"""


def cold_start(image: Path, weights: Path) -> tuple[float, float]:
    """Seconds from launching a fresh interpreter to its first result, and its peak memory (MB)."""
    code = CHILD.format(root=str(ROOT), image=str(image), weights=str(weights))
    start = time.time()
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"},
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return figures["done"] - start, figures["peak_kb"] / 1024


def warm_latency(image: Path, weights: Path, runs: int) -> list[float]:
    """Per-call seconds of `predictions.analyze` after a first (loading) call."""
    import predictions

    predictions.analyze(image, weights)  # loads the models and runs eagerly
    predictions.analyze(image, weights)  # traces the fast inference function
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        predictions.analyze(image, weights)
        timings.append(time.perf_counter() - start)
    return timings


def main(argv: list[str] | None = None) -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--weights", type=Path, default=ROOT / "weights")
    parser.add_argument("--image", type=Path, default=ROOT / "test" / "Hand" / "normal")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--starts", type=int, default=5, help="cold starts to take the median of")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as temporary:
        weights = args.weights
        if not (weights / "manifest.json").is_file():
            from tests.factories import make_random_weights

            weights = make_random_weights(Path(temporary) / "weights", input_size=128)
            print("No weights found: using random-weight models at 128 px (same code path).")
        image = args.image
        if image.is_dir():
            image = sorted(p for p in image.iterdir() if p.is_file())[0]
        print(f"image: {image}\nweights: {weights}")
        starts = [cold_start(image, weights) for _ in range(args.starts)]
        seconds = statistics.median(s for s, _ in starts)
        peak = max(p for _, p in starts)
        timings = sorted(warm_latency(image, weights, args.runs))
        median = statistics.median(timings) * 1000
        p90 = timings[int(0.9 * (len(timings) - 1))] * 1000
        print(
            f"warm two-stage latency: median {median:.1f} ms, p90 {p90:.1f} ms "
            f"over {len(timings)} runs (target <= 80 ms)"
        )
        print(
            f"process start to first result: median {seconds:.2f} s of {len(starts)} starts, "
            f"range {min(s for s, _ in starts):.2f}-{max(s for s, _ in starts):.2f} s "
            "(target <= 4 s)"
        )
        print(f"peak memory of that process: {peak:.0f} MB (target <= 1200 MB)")


if __name__ == "__main__":
    main()
