"""The worklist as CSV: one line per image or study, failures included, in the order given."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path

from reports.files import write_bytes
from reports.header import SHOWN_FIELDS
from reports.rows import ReportRow, Result, make_rows

COLUMNS = (
    "file",
    "kind",
    "verdict",
    "fracture_probability",
    "threshold",
    "verdict_confidence",
    "bone",
    "bone_set_by",
    "bone_probability",
    "model_best_guess",
    "boxes",
    "top_box_probability",
    "notes",
    "error",
    *(keyword for keyword, _label in SHOWN_FIELDS),
    "model_versions",
    "path",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def write_csv(results: Iterable[Result], path: str | Path) -> Path:
    """Write the results as UTF-8 CSV (with a byte-order mark so spreadsheets read it right).
    Raises `core.errors.ReportWriteError` if it cannot be written."""
    return write_bytes(path, csv_text(results).encode("utf-8-sig"), "CSV file")


def csv_text(results: Iterable[Result]) -> str:
    """The CSV as text: a header line, then one line per result."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in make_rows(results):
        writer.writerow([_cell(value) for value in _values(row)])
    return buffer.getvalue()


def _values(row: ReportRow) -> list:
    labels = dict(SHOWN_FIELDS)
    return [
        row.file,
        row.kind,
        row.verdict,
        _number(row.fracture_probability),
        _number(row.threshold),
        _number(row.verdict_confidence),
        row.bone,
        row.bone_set_by,
        _number(row.bone_probability),
        row.model_guess,
        row.boxes if row.has_verdict else "",
        _number(row.top_box_probability),
        row.notes,
        row.error,
        *(row.header.get(labels[keyword], "") for keyword, _label in SHOWN_FIELDS),
        row.model_versions,
        "; ".join(row.paths),
    ]


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _cell(value) -> str:
    """Text that a spreadsheet would run as a formula gets a leading apostrophe."""
    text = str(value)
    return f"'{text}" if text.startswith(_FORMULA_START) else text
