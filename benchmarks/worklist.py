"""Measure the window's worklist: throughput, longest event-loop block, peak memory, Cancel time.

    python -m benchmarks.worklist [--count 200] [--bad 4] [--weights DIR] [--json]

Needs a display (on a server: `xvfb-run -a python -m benchmarks.worklist`). It writes `--count`
X-rays into a temporary folder: the samples in `test/`, each copy re-encoded with one pixel changed
so that every file is decoded anew (no copy is answered from the decode cache), in one folder per
bone, plus `--bad` files that cannot be read. The real window (shipped weights) analyses them
through "Open Folder" while a 10 ms heartbeat on the Tk event loop records the longest gap; the
longest block is that gap less the 10 ms. Then the same folder is opened again and Cancel is pressed
after 20 files: the time until the analysis process has stopped and until the window says so.
Peak memory is the window process's peak resident size (the window, its own models for single
uploads, the results) plus the analysis process's (its models, the images being decoded), both
read from /proc (VmHWM: Linux only).
Targets (issue 24, 2-core CPU): >= 10 images/s, block <= 100 ms, peak <= 400 MB, Cancel <= 0.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HEARTBEAT_MS = 10
CANCEL_AFTER = 20


def make_worklist(folder: Path, count: int = 200, bad: int = 4) -> list[Path]:
    """`count - bad` distinct X-rays made from the samples, and `bad` files that fail."""
    samples = sorted((ROOT / "test").rglob("*.jpg"))
    made = []
    for index in range(count - bad):
        sample = samples[index % len(samples)]
        pixels = np.array(Image.open(sample).convert("L"))
        pixels[0, 0] = index % 256  # a distinct file, the same X-ray
        target = folder / sample.parent.parent.name / f"{sample.stem}_{index:03d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(target, quality=92)
        made.append(target)
    broken = folder / "broken"
    broken.mkdir(exist_ok=True)
    kinds = [
        ("notes.png", b"this is a text file, not an image"),
        ("empty.jpg", b""),
        ("cut.dcm", b"\0" * 128 + b"DICM" + b"\x02\x00"),
        ("blank.png", None),
    ]
    for number in range(bad):
        name, data = kinds[number % len(kinds)]
        target = broken / f"{number:02d}_{name}"
        if data is None:
            Image.new("L", (200, 200)).save(target)
        else:
            target.write_bytes(data)
        made.append(target)
    return made


def _peak_mb(pid: int) -> float:
    """A live process's peak resident size (VmHWM of its own memory since it started)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    line = next((item for item in text.splitlines() if item.startswith("VmHWM:")), "VmHWM: 0")
    return int(line.split()[1]) / 1024


def _wait_models(app) -> None:
    while app.worker.busy or not app.worker._results.empty():
        app.update()
        time.sleep(0.01)
    app.update()


def measure(folder: Path, weights: Path | None = None) -> dict:
    """Run the worklist on `folder` in the real window and return the figures."""
    from app.window import FractureApp

    app = FractureApp(weights)
    app.update()
    _wait_models(app)
    gaps: list[float] = []
    state = {"last": time.perf_counter(), "shown": False, "analysis_mb": 0.0}

    def beat() -> None:
        now = time.perf_counter()
        gaps.append(now - state["last"])
        state["last"] = now
        panel = app.worklist
        if panel is not None and panel.run is not None and len(gaps) % 10 == 0:
            peak = _peak_mb(panel.run.pid)
            state["analysis_mb"] = max(state["analysis_mb"], peak)
        if panel is not None and panel.finished:
            app.quit()
            return
        if panel is not None and len(panel.rows) >= 100 and not state["shown"]:
            state["shown"] = True  # choose a row while the run goes on, as a clinician would
            app.after(0, panel.move, 1)
        app.after(HEARTBEAT_MS, beat)

    app.start_worklist([str(folder)])
    state["last"] = time.perf_counter()
    app.after(HEARTBEAT_MS, beat)
    app.mainloop()
    panel = app.worklist
    rows = list(panel.rows.values())
    figures = {
        "images": len(rows),
        "failed": sum(1 for row in rows if row.result is None),
        "seconds": round(panel.seconds, 3),
        "images_per_second": round(len(rows) / panel.seconds, 2),
        "longest_block_ms": round(max(max(gaps) - HEARTBEAT_MS / 1000, 0) * 1000, 1),
        "heartbeats": len(gaps),
        "shown_file": app.file_label.cget("text"),
    }
    figures.update(_cancel(app, folder))
    app.destroy()
    window = _peak_mb(os.getpid())  # not ru_maxrss: it counts the launching process at fork
    analysis = state["analysis_mb"]  # sampled while it ran
    figures["peak_window_mb"] = round(window, 1)
    figures["peak_analysis_mb"] = round(analysis, 1)
    figures["peak_memory_mb"] = round(window + analysis, 1)  # both peaks at once: an upper bound
    return figures


def _cancel(app, folder: Path) -> dict:
    """Open the folder again, press Cancel after a few files, time the stop."""
    panel = app.worklist
    app.start_worklist([str(folder)])
    while len(panel.rows) < CANCEL_AFTER:
        app.update()
        time.sleep(0.005)
    pressed = time.perf_counter()
    panel.cancel_button.invoke()
    panel.run.join(timeout=10)
    stopped = time.perf_counter() - pressed
    while not panel.finished:
        app.update()
        time.sleep(0.005)
    shown = time.perf_counter() - pressed
    return {
        "cancel_stopped_s": round(stopped, 3),
        "cancel_shown_s": round(shown, 3),
        "cancelled_after": len(panel.rows),
        "cancel_reported": panel.cancelled,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--bad", type=int, default=4)
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary) / "worklist"
        make_worklist(folder, args.count, args.bad)
        figures = measure(folder, args.weights)
    if args.json:
        print(json.dumps(figures))
        return 0
    print(f"{figures['images']} images ({figures['failed']} unreadable) in {figures['seconds']} s")
    print(f"  throughput          {figures['images_per_second']} images/s   (target >= 10)")
    print(f"  longest block       {figures['longest_block_ms']} ms        (target <= 100)")
    print(
        f"  peak memory         {figures['peak_memory_mb']} MB       (target <= 400; window "
        f"{figures['peak_window_mb']} + analysis process {figures['peak_analysis_mb']})"
    )
    print(
        f"  Cancel: analysis stopped in {figures['cancel_stopped_s']} s, window shows it "
        f"in {figures['cancel_shown_s']} s (target <= 0.5)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
