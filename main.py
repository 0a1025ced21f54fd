"""Start the Bone Fracture Detection app: `python main.py [--weights DIR]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str] | None = None) -> int:
    """Parse the optional weights folder and open the window."""
    parser = argparse.ArgumentParser(
        description="Bone-fracture triage on elbow, hand and shoulder X-rays"
    )
    parser.add_argument("--weights", help="folder with manifest.json and the model files")
    args = parser.parse_args(argv)
    from app.window import run

    run(args.weights)
    return 0


if __name__ == "__main__":
    sys.exit(main())
