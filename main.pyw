"""Windows double-click launcher: starts the app without a console window.

Uses the project's `.venv` (made by `py -3.11 bootstrap.py app`) when it exists; otherwise says
how to set it up.
"""

import runpy
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV_PYTHONW = ROOT / ".venv" / "Scripts" / "pythonw.exe"


def main() -> None:
    """Run main.py with the virtual environment's pythonw, or explain the one-time setup."""
    in_venv = Path(sys.prefix).resolve() == (ROOT / ".venv").resolve()
    if not in_venv and VENV_PYTHONW.exists():
        subprocess.Popen([str(VENV_PYTHONW), str(ROOT / "main.py")], cwd=ROOT)
        return
    try:
        runpy.run_path(str(ROOT / "main.py"), run_name="__main__")
    except ImportError as error:
        from tkinter import Tk, messagebox

        root = Tk()
        root.withdraw()
        messagebox.showerror(
            "Bone Fracture Detection: setup needed",
            f"A required package is missing ({error.name}).\n\nOpen a terminal in\n{ROOT}\n"
            "and run once:\n\npy -3.11 bootstrap.py app\n\nAfter that, double-click main.pyw.",
        )


if __name__ == "__main__":
    main()
