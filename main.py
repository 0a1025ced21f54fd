"""Start the app: `python main.py [--weights DIR]`, or its command line (the bundle's CLI mode):
`python main.py --cli IMAGE_OR_FOLDER... [predictions.py's options]`."""

from __future__ import annotations

import argparse
import multiprocessing
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

CLI_FLAG = "--cli"


def main(argv: list[str] | None = None) -> int:
    """Open the window (with an optional weights folder), or with `--cli` first, run
    predictions.py's command line on the remaining arguments."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [CLI_FLAG]:
        import predictions

        return predictions.main(argv[1:])
    parser = argparse.ArgumentParser(
        description="Bone-fracture triage on elbow, hand and shoulder X-rays"
        f" (command line: {CLI_FLAG} IMAGE_OR_FOLDER... --json)"
    )
    parser.add_argument("--weights", help="folder with manifest.json and the model files")
    args = parser.parse_args(argv)
    from app.window import run

    run(args.weights)
    return 0


if __name__ == "__main__":
    multiprocessing.freeze_support()  # the worklist's analysis process, in a bundled app
    sys.exit(main())
