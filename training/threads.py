"""How many CPU threads TensorFlow may use (training shares machines with other work)."""

from __future__ import annotations


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
