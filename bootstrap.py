"""Set up a virtual environment and run the app or the test suite: `python3 bootstrap.py app|test`.

Uses only the standard library so it runs on a fresh machine. The environment lives in `.venv`
next to this file and is reinstalled only when a requirements file changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"


def venv_python() -> Path:
    """Path of the virtual environment's interpreter on this platform."""
    if os.name == "nt":
        return VENV / "Scripts" / "python.exe"
    return VENV / "bin" / "python"


def ensure_environment(requirements: str) -> Path:
    """Create `.venv` and install `requirements` into it unless already done for this content."""
    python = venv_python()
    if not python.exists():
        print(f"Creating virtual environment in {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256()
    for name in ("requirements.txt", "requirements-train.txt", requirements):
        digest.update((ROOT / name).read_bytes())
    stamp = VENV / f".setup-stamp-{Path(requirements).stem}"
    if not stamp.exists() or stamp.read_text() != digest.hexdigest():
        print(f"Installing {requirements} (first run only, a few minutes) ...", flush=True)
        pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-compile"]
        subprocess.run([*pip, "-r", str(ROOT / requirements)], check=True)
        stamp.write_text(digest.hexdigest())
    return python


def main(argv: list[str]) -> int:
    """Entry point: `app` installs only the app's requirements (no TensorFlow) and launches the
    window; `test` installs everything (app, training, test tools) and runs ruff and pytest."""
    if sys.version_info[:2] != (3, 11):
        print(f"Warning: built for Python 3.11, running {sys.version.split()[0]}.")
    command = argv[0] if argv else "app"
    if command == "app":
        python = ensure_environment("requirements.txt")
        return subprocess.call([str(python), str(ROOT / "main.py"), *argv[1:]], cwd=ROOT)
    if command == "test":
        python = ensure_environment("requirements-dev.txt")
        lint = subprocess.call([str(python), "-m", "ruff", "check", "."], cwd=ROOT)
        tests = subprocess.call([str(python), "-m", "pytest", *argv[1:]], cwd=ROOT)
        return tests or lint
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
