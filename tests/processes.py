"""Watching real processes end, on machines whose init never collects orphans: an orphan that has
exited stays a zombie there (its exit status belongs to whoever adopted it), and counts as ended."""

from __future__ import annotations

import time
from collections.abc import Sequence

import psutil

POLL_S = 0.05


def still_running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def survivors(processes: Sequence[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Those of `processes` still running once `timeout_s` has passed (or at once, all ended)."""
    deadline = time.monotonic() + timeout_s
    running = [process for process in processes if still_running(process)]
    while running and time.monotonic() < deadline:
        time.sleep(POLL_S)
        running = [process for process in running if still_running(process)]
    return running
