"""Run slow work (model loading and prediction) off the Tk thread and hand results back."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any


class Worker:
    """One background job at a time; the Tk side polls `poll()` from `after` callbacks."""

    def __init__(self) -> None:
        self._results: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        """True while a job runs."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, job: Callable[[], Any], on_done: Callable[[Any, BaseException | None], None]):
        """Run `job` in a thread; `poll` later calls `on_done(result, error)` on the Tk side."""

        def run() -> None:
            try:
                self._results.put((on_done, job(), None))
            except BaseException as error:  # noqa: BLE001 - handed to the UI, never lost
                self._results.put((on_done, None, error))

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def poll(self) -> bool:
        """Deliver finished jobs (call from the Tk thread). Returns True if one was delivered."""
        delivered = False
        while True:
            try:
                on_done, result, error = self._results.get_nowait()
            except queue.Empty:
                return delivered
            on_done(result, error)
            delivered = True
