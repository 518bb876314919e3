"""One worker process per GPU: `WHISPER_GPU_INDICES=0,1 streaming-whisper worker` on a CUDA machine
starts a worker for each index, each seeing only its own (`WHISPER_GPU_INDICES=<i>`), and stays in
front of them: a signal stops them all, and when one exits the others are stopped too, so the
supervisor (systemd, compose, Kubernetes) sees the failure and restarts the set."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from types import FrameType

from commands.children import spawn_child
from commands.launcher import STOP_TIMEOUT_S

logger = logging.getLogger(__name__)

POLL_S = 0.5


def per_gpu_environments(base: Mapping[str, str], indices: Sequence[int]) -> list[dict[str, str]]:
    """The environment of each GPU's worker: the same settings, one index each."""
    return [{**base, "WHISPER_GPU_INDICES": str(index)} for index in indices]


def run_one_per_gpu(indices: Sequence[int], command: Sequence[str] | None = None) -> int:
    """Start `command` (by default this program's `worker`) once per index; returns the exit status
    to leave with: 0 after a stop signal, else the first worker's non-zero status."""
    command = list(command or [sys.executable, "-m", "commands.cli", "worker"])
    children = [spawn_child(command, env=env) for env in per_gpu_environments(os.environ, indices)]
    started = ", ".join(f"GPU {i}: pid {c.pid}" for i, c in zip(indices, children, strict=True))
    logger.info("one worker per GPU (%s)", started)
    stopping: list[int] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(POLL_S)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        exited = [child for child in children if child.poll() is not None]  # on their own
        for child in children:
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for child in children:
            try:
                child.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    if stopping:
        return 0
    for index, child in zip(indices, children, strict=True):
        if child in exited:
            logger.error("the worker of GPU %d exited (%d); stopped the others", index, child.returncode)
    failed = [child.returncode for child in exited if child.returncode]
    return failed[0] if failed else 1  # a worker that ends by itself is a failure too
