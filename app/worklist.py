"""The worklist without Tk: analyse many files in a thread, group them into studies, sort them."""

from __future__ import annotations

import multiprocessing
import queue
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from core.bone_routing import study_of
from core.errors import TriageError
from predictions import CHOSEN, FRACTURED, FROM_TAG, Prediction, find_images

COLUMNS = ("file", "bone", "verdict", "probability", "error")
HEADINGS = {
    "file": "File",
    "bone": "Bone (set by)",
    "verdict": "Verdict",
    "probability": "Fracture prob.",
    "error": "Message",
}
SUSPICION = "verdict"  # the default order, the Verdict column's: most suspicious first
FRACTURED_RANK, NOT_RECOGNISED_RANK, NORMAL_RANK, FAILED_RANK = range(4)
VERDICTS = ("Fractured", "Not recognised", "Normal", "Failed")
SOURCE_WORDS = {CHOSEN: "chosen by you", FROM_TAG: "DICOM tag"}


@dataclass
class Row:
    """One file of the worklist: its study or folder, and its result or why it failed."""

    path: Path
    group: str  # StudyInstanceUID for DICOM, else the folder
    group_label: str
    result: Prediction | None = None
    error_title: str = ""
    error: str = ""
    number: int = 0  # order of arrival, a stable id

    @property
    def rank(self) -> int:
        """Fractured, then not recognised (no verdict: a person must look), normal, failed."""
        if self.result is None:
            return FAILED_RANK
        if not self.result.recognised:
            return NOT_RECOGNISED_RANK
        return FRACTURED_RANK if self.result.label == FRACTURED else NORMAL_RANK

    @property
    def probability(self) -> float | None:
        """The fracture probability; for an image with no verdict, the model's own one."""
        return None if self.result is None else model_probability(self.result)

    def cells(self) -> dict[str, str]:
        """The texts of the row's columns."""
        return {
            "file": self.path.name,
            "bone": bone_text(self.result),
            "verdict": VERDICTS[self.rank],
            "probability": probability_text(self.result),
            "error": f"{self.error_title}: {self.error}" if self.error else "",
        }


def model_probability(result: Prediction) -> float:
    """The fracture probability the model gave, also when the image was not recognised (then
    it may be stored apart as `model_fracture_probability`, with no verdict)."""
    value = getattr(result, "model_fracture_probability", None)
    return float(result.fracture_probability if value is None else value)


def bone_text(result: Prediction | None) -> str:
    """'Hand (model)', 'Elbow (DICOM tag)', 'Shoulder (chosen by you)' or the unrecognised guess."""
    if result is None:
        return ""
    if not result.recognised:
        return f"? (best guess {result.model_bone})"
    return f"{result.bone} ({SOURCE_WORDS.get(result.bone_source, 'model')})"


def probability_text(result: Prediction | None) -> str:
    """'0.87'; in brackets when there is no verdict (the model's number, not a finding)."""
    if result is None:
        return ""
    value = f"{model_probability(result):.2f}"
    return value if result.recognised else f"({value})"


# ----------------------------------------------------------------------------- sorting


def _file_key(row: Row):
    return (row.path.name.lower(), str(row.path))


SORT_KEYS: dict[str, Callable[[Row], object]] = {
    "file": _file_key,
    "bone": lambda row: bone_text(row.result).lower() or None,
    SUSPICION: lambda row: (row.rank, -(row.probability or 0.0), *_file_key(row)),
    "probability": lambda row: row.probability,
    "error": lambda row: row.cells()["error"].lower() or None,
}


def sort_rows(rows: Iterable[Row], column: str = SUSPICION, descending: bool = False) -> list[Row]:
    """Rows in `column`'s order; rows with nothing in that column come last either way."""
    key = SORT_KEYS[column]
    rows = list(rows)
    known = [row for row in rows if key(row) is not None]
    empty = [row for row in rows if key(row) is None]
    return sorted(known, key=key, reverse=descending) + sorted(empty, key=_file_key)


@dataclass
class Group:
    """The rows of one study (DICOM) or one folder, in the current order."""

    key: str
    label: str
    rows: list[Row] = field(default_factory=list)

    def cells(self) -> dict[str, str]:
        """A summary line: how many images, the bones, the findings, the highest probability."""
        count = len(self.rows)
        study = not self.key.startswith("folder:")
        noun = "views" if study else "images"
        bones = sorted(
            {row.result.bone for row in self.rows if row.result and row.result.recognised}
        )
        ranks = [row.rank for row in self.rows]
        findings = [
            f"{ranks.count(rank)} {VERDICTS[rank].lower()}"
            for rank in (FRACTURED_RANK, NOT_RECOGNISED_RANK, FAILED_RANK)
            if ranks.count(rank)
        ]
        verdicts = [row.probability for row in self.rows if row.rank in (0, 2)]
        return {
            "file": f"{self.label} ({count} {noun})",
            "bone": ", ".join(bones),
            "verdict": ", ".join(findings) or "all normal",
            "probability": f"max {max(verdicts):.2f}" if verdicts else "",
            "error": "",
        }


def arrange(
    rows: Iterable[Row], column: str = SUSPICION, descending: bool = False
) -> list[Row | Group]:
    """The worklist as shown: a file alone in its study or folder is one line; a study or folder
    of several files is a Group with its files beneath, ordered by its first file."""
    ordered = sort_rows(rows, column, descending)
    groups: dict[str, Group] = {}
    for row in ordered:
        groups.setdefault(row.group, Group(row.group, row.group_label)).rows.append(row)
    firsts = sort_rows([group.rows[0] for group in groups.values()], column, descending)
    return [groups[first.group] if len(groups[first.group].rows) > 1 else first for first in firsts]


# ----------------------------------------------------------------------------- grouping


def group_of(path: Path) -> tuple[str, str]:
    """(key, label) of the study a DICOM file belongs to (its StudyInstanceUID, header only),
    or of the folder another file is in."""
    study = study_of(path)
    if study is not None:
        uid, description = study
        return f"study:{uid}", f"Study {description or '…' + uid[-8:]}"
    folder = path.parent
    return f"folder:{folder}", f"Folder {folder.name or folder}"


def analyse_row(path: Path, analyse: Callable[[Path], Prediction], number: int = 0) -> Row:
    """One file's row: its result, or the message of why it failed (never raises)."""
    key, label = group_of(path)
    row = Row(path=path, group=key, group_label=label, number=number)
    try:
        row.result = analyse(path)
    except TriageError as error:
        row.error_title, row.error = error.title, str(error)
    except Exception as error:  # noqa: BLE001 - one bad file never stops the worklist
        if sys.stderr is not None:  # None under pythonw (Windows, no console)
            traceback.print_exception(error, file=sys.stderr)
        row.error_title = "Unexpected problem"
        row.error = f"The analysis of this file failed unexpectedly ({type(error).__name__})."
    return row


# ----------------------------------------------------------------------------- the run


def analyse_file(path: Path, weights_dir: str | Path | None = None) -> Prediction:
    """The window's own analysis of one file (Upload Image, then Predict)."""
    import predictions

    return predictions.analyze(path, weights_dir)


class WorklistRun:
    """Analyse files one by one in a child process; `cancel()` is seen between two files.

    A process, not a thread: LiteRT holds Python's lock (the GIL) for a whole network call, which
    takes 50 ms on an idle 2-core machine and several times that on a busy one, and the window's
    thread would wait for it. The child puts ("total", n), ("row", Row) and ("finished",
    cancelled) on `events`; `drain` also reports ("finished", True) if the child died.
    """

    def __init__(
        self,
        inputs: Sequence[str | Path],
        weights_dir: str | Path | None = None,
        analyse: Callable[[Path, str | Path | None], Prediction] = analyse_file,
    ) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a process holding Tk
        self.events = context.Queue()
        self._cancel = context.Event()
        self.crashed = False
        self._finished = False
        inputs = [str(item) for item in inputs]
        weights = None if weights_dir is None else str(weights_dir)
        self._process = context.Process(
            target=run_worklist,
            args=(inputs, weights, analyse, self.events, self._cancel),
            daemon=True,
        )

    def start(self) -> WorklistRun:
        """Start the child process."""
        self._process.start()
        return self

    def cancel(self) -> None:
        """Ask the child to stop before its next file."""
        self._cancel.set()

    @property
    def pid(self) -> int | None:
        """The child's process id."""
        return self._process.pid

    @property
    def alive(self) -> bool:
        """True while the child runs."""
        return self._process.is_alive()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the child to end."""
        self._process.join(timeout)

    def stop(self) -> None:
        """End the child at once (the window is closing)."""
        if self._process.is_alive():
            self._process.terminate()

    def drain(self, limit: int = 100) -> list[tuple[str, object]]:
        """Events waiting (at most `limit`), without blocking."""
        found = []
        while len(found) < limit:
            try:
                found.append(self.events.get_nowait())
            except queue.Empty:
                break
        if any(kind == "finished" for kind, _value in found):
            self._finished = True
        elif not found and not self._finished and self._process.exitcode not in (None, 0):
            self.crashed = self._finished = True  # died without a word (killed, crashed)
            found.append(("finished", True))
        return found


def run_worklist(
    inputs: Sequence[str],
    weights_dir: str | None,
    analyse: Callable[[Path, str | None], Prediction],
    events,
    cancel,
) -> None:
    """The child's work: find the X-rays, analyse each until cancelled, report every row."""
    import os

    if os.environ.get("WL_NICE"):
        os.nice(int(os.environ["WL_NICE"]))
    paths = find_images(inputs)
    events.put(("total", len(paths)))
    done = 0
    for number, path in enumerate(paths):
        if cancel.is_set():
            break
        events.put(("row", analyse_row(path, partial(analyse, weights_dir=weights_dir), number)))
        done += 1
    events.put(("finished", done < len(paths)))
