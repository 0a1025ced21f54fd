"""Run one exported network (a LiteRT `.tflite` file) on a preprocessed image, and time it.

The network's contract: one float32 input of shape (1, S, S, 3) (`core.imaging.preprocess`) and
one float32 output, the feature map (1, h, w, C). Anything else is refused as an invalid model file.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

from core.manifest import NetworkEntry
from core.models import invalid_model_file

MADV_DONTNEED = 4  # Linux <sys/mman.h>


def release_mapped_pages(path: Path) -> int:
    """Let the OS drop this process's resident pages of a read-only mapping of `path`; the
    number of bytes of such mappings (0 where there are none, or off Linux).

    LiteRT maps the model file, and XNNPACK packs its own copy of the weights when the model
    loads, so the mapped pages are not read while predicting: about 23 MB per ResNet50 that
    otherwise stay resident. Were they read again, the OS would page them back in from the file.
    """
    maps = Path("/proc/self/maps")
    if not sys.platform.startswith("linux") or not maps.is_file():
        return 0
    target = str(Path(path).resolve())
    madvise = ctypes.CDLL(None, use_errno=True).madvise
    madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    released = 0
    for line in maps.read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or fields[5] != target or "w" in fields[1]:
            continue  # another file, or a writable mapping (its pages may hold changes)
        start, end = (int(value, 16) for value in fields[0].split("-"))
        if madvise(start, end - start, MADV_DONTNEED) == 0:
            released += end - start
    return released


def interpreter_class():
    """LiteRT's interpreter (the `ai-edge-litert` package)."""
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter


class Network:
    """A loaded LiteRT network that maps a preprocessed image to its feature map (thread-safe)."""

    def __init__(self, path: Path, entry: NetworkEntry, threads: int | None = None) -> None:
        self.entry = entry
        self._lock = threading.Lock()
        try:
            self._interpreter = interpreter_class()(
                model_path=str(path), num_threads=threads or os.cpu_count() or 1
            )
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise invalid_model_file(path, "it is not a LiteRT model") from exc
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        size = entry.input_size
        if len(inputs) != 1 or tuple(inputs[0]["shape"]) != (1, size, size, 3):
            found = [tuple(int(s) for s in detail["shape"]) for detail in inputs]
            raise invalid_model_file(path, f"its input is {found}, expected (1, {size}, {size}, 3)")
        if inputs[0]["dtype"] != np.float32:
            raise invalid_model_file(path, "its input is not float32")
        if len(outputs) != 1:
            raise invalid_model_file(path, f"it has {len(outputs)} outputs, expected 1")
        shape = tuple(int(s) for s in outputs[0]["shape"])
        if shape != (1, *entry.feature_shape) or outputs[0]["dtype"] != np.float32:
            raise invalid_model_file(
                path,
                f"its output is {shape}, expected (1, {', '.join(map(str, entry.feature_shape))})",
            )
        self._input = inputs[0]["index"]
        self._output = outputs[0]["index"]
        release_mapped_pages(path)

    @property
    def input_size(self) -> int:
        """Side of the square input, in pixels."""
        return self.entry.input_size

    def features(self, pixels: np.ndarray) -> np.ndarray:
        """Preprocessed image (S, S, 3) -> feature map (h, w, C), float32."""
        batch = np.ascontiguousarray(pixels, dtype=np.float32)[None]
        with self._lock:
            self._interpreter.set_tensor(self._input, batch)
            self._interpreter.invoke()
            return self._interpreter.get_tensor(self._output)[0]  # get_tensor copies


def median_run_ms(network: Network, runs: int) -> float:
    """Median milliseconds of `runs` runs of `network` on one seeded input of its size, after
    a first, untimed run (warm: what a prediction pays per network)."""
    size = network.input_size
    pixels = np.random.default_rng(0).uniform(-120, 150, (size, size, 3)).astype(np.float32)
    network.features(pixels)
    calls = []
    for _ in range(runs):
        start = time.perf_counter()
        network.features(pixels)
        calls.append(time.perf_counter() - start)
    return float(np.median(calls)) * 1000
