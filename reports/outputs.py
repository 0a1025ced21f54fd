"""The command line's report outputs (--csv, --report, --dicom-out): each written on its own,
so one that fails (full disk, no permission) costs none of the others."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from core.errors import NotDicomSourceError, TriageError
from reports.rows import Failure, Result


def write_outputs(
    outcomes: Sequence[Result | tuple[str, str]],
    csv_path: str | None = None,
    pdf_path: str | None = None,
    dicom_dir: str | None = None,
    json_mode: bool = False,
    weights_dir: str | None = None,
) -> int:
    """Write each requested output, print one line per output (and per file without a DICOM
    result), and return how many could not be written. A (path, message) pair is a failed input."""
    results = [Failure(*item) if isinstance(item, tuple) else item for item in outcomes]
    say = _printer(sys.stderr if json_mode else sys.stdout)
    problems = 0
    if csv_path:
        problems += _attempt(lambda: _csv(results, csv_path), "CSV", say)
    if pdf_path:
        problems += _attempt(lambda: _pdf(results, pdf_path, weights_dir), "PDF report", say)
    if dicom_dir:
        for result in results:
            if not isinstance(result, Failure):
                problems += _attempt(lambda r=result: _dicom(r, dicom_dir), "DICOM result", say)
    return problems


def _csv(results, path: str) -> str:
    from reports.csv_report import write_csv

    return f"CSV written to {write_csv(results, path)}"


def _pdf(results, path: str, weights_dir: str | None) -> str:
    from reports.pdf_report import write_pdf

    return f"PDF report written to {write_pdf(results, path, weights_dir)}"


def _dicom(result, out_dir: str) -> str:
    from reports.secondary_capture import write_result_captures

    try:
        written = write_result_captures(result, out_dir)
    except NotDicomSourceError as note:
        return f"No DICOM result: {note}"
    return "; ".join(f"DICOM result written to {path}" for path in written)


def _attempt(write: Callable[[], str], what: str, say: Callable[[str], None]) -> int:
    """1 if `write` failed (its one-line message printed to stderr), else 0."""
    try:
        say(write())
    except TriageError as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # noqa: BLE001 - one output's bug must not cost the others
        print(
            f"ERROR: the {what} could not be written because of an unexpected problem "
            f"({type(error).__name__}: {error}); the other outputs are unaffected.",
            file=sys.stderr,
        )
        return 1
    return 0


def _printer(stream) -> Callable[[str], None]:
    return lambda line: print(line, file=stream)
