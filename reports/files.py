"""Write an output file whole or not at all, with a clinician-readable error on failure."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from core.errors import ReportWriteError


def write_bytes(path: str | Path, data: bytes, what: str) -> Path:
    """Write `data` to `path` through a temporary file beside it, so a failed write (full disk,
    no permission) leaves any earlier file of that name as it was. Raises `ReportWriteError`."""
    path = Path(path)
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.parent / f".{path.name}.{secrets.token_hex(4)}.part"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        handle = os.open(temporary, flags, 0o666)  # the user's umask applies, as for any file
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
        temporary = None
    except OSError as error:
        raise write_error(path, what, error) from error
    finally:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
    return path


def write_error(path: Path, what: str, error: OSError) -> ReportWriteError:
    """The one-line message for an output that could not be written."""
    reason = error.strerror or type(error).__name__
    blocking = next((folder for folder in path.parents if folder.is_file()), None)
    if blocking is not None:
        reason = f"'{blocking}' is a file, not a folder"
    return ReportWriteError(
        f"The {what} could not be written to '{path}' ({reason}).",
        "Nothing else was affected: choose another folder or free some disk space, then try again.",
    )
