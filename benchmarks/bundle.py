"""Print the double-clickable app's figures: build time, size on disk, launch to visible window.

    python -m benchmarks.bundle [--build] [--starts 5]

--build runs `python3 bootstrap.py bundle --clean` first and times it. The window is looked for
with `xdotool` on the current $DISPLAY (under Xvfb: `Xvfb :1 & DISPLAY=:1 python -m ...`); each
start is a fresh process, timed from launch until its window is mapped. Targets: built in <= 5 min,
<= 300 MB on disk, window within 3 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bootstrap import BUNDLE_NAME, ROOT, folder_size

BUNDLE = ROOT / "dist" / BUNDLE_NAME
WINDOW_TITLE = "Bone Fracture Detection"


def executable(folder: Path = BUNDLE) -> Path:
    """The app's executable in a built bundle folder."""
    return folder / (f"{BUNDLE_NAME}.exe" if os.name == "nt" else BUNDLE_NAME)


def build(clean: bool = True) -> float:
    """Build the bundle with `bootstrap.py bundle`; the seconds it took."""
    started = time.monotonic()
    command = [sys.executable, str(ROOT / "bootstrap.py"), "bundle"]
    subprocess.run([*command, *(["--clean"] if clean else [])], cwd=ROOT, check=True)
    return time.monotonic() - started


def folder_megabytes(folder: Path = BUNDLE) -> float:
    """Size of everything beneath `folder`, in MB (10^6 bytes)."""
    return folder_size(folder) / 1e6


def visible_windows() -> set[str]:
    """Ids of the visible windows titled like the app (Tk sets no _NET_WM_PID to match on)."""
    found = subprocess.run(
        ["xdotool", "search", "--onlyvisible", "--name", f"^{WINDOW_TITLE}$"],
        capture_output=True,
        text=True,
    )
    return set(found.stdout.split())


def time_to_window(program: Path, timeout: float = 60.0) -> tuple[float, subprocess.Popen, str]:
    """Launch `program` and return (seconds until a new window titled like the app is visible,
    the running process, that window's id); raises RuntimeError with its output if it exits or
    shows nothing within `timeout`."""
    before = visible_windows()
    started = time.monotonic()
    process = subprocess.Popen(
        [str(program)], cwd=program.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    while time.monotonic() - started < timeout:
        new = visible_windows() - before
        if new:
            return time.monotonic() - started, process, min(new)
        if process.poll() is not None:
            output = process.stdout.read().decode(errors="replace") if process.stdout else ""
            code = process.returncode
            raise RuntimeError(f"the app exited ({code}) before showing its window:\n{output}")
        time.sleep(0.02)
    stop(process)
    raise RuntimeError(f"no window within {timeout:.0f} s")


def stop(process: subprocess.Popen) -> None:
    """End a launched app and wait for it."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main(argv: list[str] | None = None) -> int:
    """Print build time (with --build), size on disk and time to window over several starts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", action="store_true", help="build it first (clean) and time it")
    parser.add_argument("--starts", type=int, default=5, help="fresh launches to time")
    args = parser.parse_args(argv)
    if args.build:
        print(f"build (bootstrap.py bundle --clean): {build():.1f} s")
    print(f"size on disk: {folder_megabytes():.1f} MB ({BUNDLE})")
    seconds = []
    for _ in range(args.starts):
        elapsed, process, _ = time_to_window(executable())
        stop(process)
        seconds.append(elapsed)
    shown = ", ".join(f"{value:.2f}" for value in seconds)
    print(f"launch to visible window: median {statistics.median(seconds):.2f} s ({shown})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
