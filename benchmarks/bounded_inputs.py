"""Print time and peak memory for each of issue 23's reproducers (routing, then the analysis' read),
each in a child process under a 1.5 GB address-space limit.

    .venv/bin/python -m benchmarks.bounded_inputs
"""

from __future__ import annotations

import tempfile
from pathlib import Path


def main() -> None:
    """One line per reproducer: outcome, seconds of each call, peak resident memory."""
    from tests.bounded import run_bounded
    from tests.test_reliability_round2 import REPRODUCERS

    print(f"{'reproducer':<45} {'route s':>8} {'open s':>8} {'peak MB':>8}  outcome")
    with tempfile.TemporaryDirectory() as folder:
        for name, (build, _expected, _seconds) in REPRODUCERS.items():
            path = build(Path(folder))
            measured = run_bounded(path)
            route, opened = measured["calls"]
            print(
                f"{name:<45} {route['seconds']:>8.2f} {opened['seconds']:>8.2f} "
                f"{measured['peak_bytes'] / 2**20:>8.0f}  {opened['outcome']}"
            )
            path.unlink()


if __name__ == "__main__":
    main()
