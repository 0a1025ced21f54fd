"""Run reader calls on one file in a child process under a memory limit, and measure them.

The child sets RLIMIT_AS to what it already uses plus `limit` bytes, so a bomb that gets past the
guards fails instead of swapping; an error caused by running out of memory counts as a failure
even when it reaches the caller as a typed error (the guards should have refused it first).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 1536 * 2**20  # 1.5 GB, the bound

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, ROOT)

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0

import predictions
from core.bone_routing import bone_from_dicom
from core.errors import TriageError

CALLS = {"route": bone_from_dicom, "open": predictions._opened}
start_vm = status("VmSize")
resource.setrlimit(resource.RLIMIT_AS, (start_vm + LIMIT, start_vm + LIMIT))
base_rss = status("VmHWM")
results = []
for call in CALLS_WANTED:
    start = time.perf_counter()
    try:
        CALLS[call](PATH)
        outcome = "result"
    except TriageError as error:
        outcome = type(error).__name__
        cause = error.__cause__ or error.__context__
        while cause is not None:
            if isinstance(cause, MemoryError):
                outcome = "MEMORY " + outcome
            cause = cause.__cause__ or cause.__context__
    except BaseException as error:
        outcome = "UNTYPED " + type(error).__name__
    results.append({"call": call, "outcome": outcome, "seconds": time.perf_counter() - start})
peak = status("VmHWM")  # this process's own peak (ru_maxrss keeps the parent's over exec)
print(json.dumps({"calls": results, "peak_bytes": peak, "base_bytes": base_rss}))
"""


def run_bounded(path: Path, calls=("route", "open"), limit: int = LIMIT, timeout: float = 120):
    """{'calls': [{'call', 'outcome', 'seconds'}], 'peak_bytes', 'base_bytes'} for `path`:
    `route` is the DICOM header routing, `open` what analysis does (read once, route, decode)."""
    code = (
        f"ROOT = {str(ROOT)!r}\nLIMIT = {limit}\nPATH = {str(path)!r}\n"
        f"CALLS_WANTED = {list(calls)!r}\n" + CHILD
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )
    if done.returncode != 0:
        raise AssertionError(f"the child failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
