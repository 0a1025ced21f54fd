"""How many CPU threads TensorFlow may use (training shares machines with other work), and the
machine a run records in its provenance."""

from __future__ import annotations

import os
import platform


def machine() -> str:
    """This machine as training provenance names it, e.g. 'x86_64, 2 CPU cores'."""
    return f"{platform.machine()}, {os.cpu_count()} CPU cores"


def configure_threads(threads: int = 1) -> None:
    """Limit TensorFlow to `threads` threads; 0 keeps its default (every core). Call before any
    TensorFlow op; once TensorFlow has started, e.g. inside a test session, its setting is kept."""
    if threads <= 0:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass
