"""Where the app's own files (weights/, images/, test/) lie: the repository or the bundle."""

from __future__ import annotations

import sys
from pathlib import Path


def app_root() -> Path:
    """The folder holding weights/, images/ and test/: the bundle's data folder when running as a
    PyInstaller app (`sys._MEIPASS`), else the repository (the parent of `core/`)."""
    bundled = getattr(sys, "_MEIPASS", None)
    if getattr(sys, "frozen", False) and bundled:
        return Path(bundled)
    return Path(__file__).resolve().parent.parent


ROOT = app_root()
WEIGHTS = ROOT / "weights"
IMAGES = ROOT / "images"
SAMPLES = ROOT / "test"
