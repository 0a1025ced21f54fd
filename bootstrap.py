"""Set up a virtual environment and run the app or the test suite, or build the double-clickable
app: `python3 bootstrap.py app|test|bundle`.

Uses only the standard library so it runs on a fresh machine. The environment lives in `.venv`
next to this file (`.venv-bundle` for `bundle`, which holds no TensorFlow) and is reinstalled
only when a requirements file changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BUNDLE_VENV = ROOT / ".venv-bundle"  # the app's requirements and PyInstaller only
BUNDLE_SPEC = ROOT / "launchers" / "bone_fracture.spec"
BUNDLE_NAME = "BoneFractureDetection"


def venv_python(folder: Path = VENV) -> Path:
    """Path of a virtual environment's interpreter on this platform."""
    if os.name == "nt":
        return folder / "Scripts" / "python.exe"
    return folder / "bin" / "python"


def ensure_environment(requirements: str, folder: Path = VENV) -> Path:
    """Create the environment `folder` and install `requirements` into it unless already done
    for this content."""
    python = venv_python(folder)
    if not python.exists():
        print(f"Creating virtual environment in {folder} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(folder)
    digest = hashlib.sha256()
    for name in ("requirements.txt", "requirements-train.txt", requirements):
        digest.update((ROOT / name).read_bytes())
    stamp = folder / f".setup-stamp-{Path(requirements).stem}"
    if not stamp.exists() or stamp.read_text() != digest.hexdigest():
        print(f"Installing {requirements} (first run only, a few minutes) ...", flush=True)
        pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-compile"]
        subprocess.run([*pip, "-r", str(ROOT / requirements)], check=True)
        stamp.write_text(digest.hexdigest())
    return python


def folder_size(folder: Path) -> int:
    """Bytes of all files beneath `folder` (symbolic links not followed)."""
    return sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def build_bundle(extra: list[str]) -> int:
    """Build `dist/BoneFractureDetection/` with PyInstaller from the bundle environment; `extra`
    goes to PyInstaller (e.g. `--clean`)."""
    python = ensure_environment("requirements-bundle.txt", BUNDLE_VENV)
    started = time.monotonic()
    command = [str(python), "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN"]
    command += ["--distpath", str(ROOT / "dist"), "--workpath", str(ROOT / "build")]
    code = subprocess.call([*command, *extra, str(BUNDLE_SPEC)], cwd=ROOT)
    if code:
        return code
    folder = ROOT / "dist" / BUNDLE_NAME
    megabytes = folder_size(folder) / 1e6
    print(f"Built {folder} ({megabytes:.0f} MB) in {time.monotonic() - started:.0f} s.")
    return 0


def main(argv: list[str]) -> int:
    """Entry point: `app` installs only the app's requirements (no TensorFlow) and launches the
    window; `test` installs everything (app, training, test tools) and runs ruff and pytest;
    `bundle` builds the self-contained app folder in dist/ (see README)."""
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
    if command == "bundle":
        return build_bundle(argv[1:])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
