"""Child processes that end with the process that started them, however it ends: a stop, a crash,
an OOM kill or SIGKILL, so that `make run` never leaves a Redis server, worker or ingress behind.

Linux delivers a parent-death signal (prctl PR_SET_PDEATHSIG) when the *thread* that forked the
child exits, not the process. A child started from a short-lived thread (`asyncio.to_thread`, a
thread pool) would be stopped as soon as that thread ends; so every child is forked from one
spawner thread that lives until the interpreter exits. Elsewhere than on Linux there is no such
signal, and a hard kill of the launcher can still leave its children running.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

PARENT_DEATH_SIGNAL = signal.SIGTERM
"""What a child gets when its parent dies: each of ours stops cleanly on SIGTERM."""
PR_SET_PDEATHSIG = 1


def spawn_child(command: Sequence[str], **options: Any) -> subprocess.Popen[bytes]:
    """`subprocess.Popen(command, **options)`, the child stopped by SIGTERM if this process dies."""
    return _spawner().submit(_popen, list(command), options).result()


def exit_with_parent() -> None:
    """From now on this process gets SIGTERM when its parent dies (`make run` asks for it, so that
    a SIGKILLed make stops the service too). A parent that died before this call goes unnoticed."""
    arm = _parent_death_signal()
    if arm is not None:
        arm(os.getppid())


@functools.cache
def _spawner() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="child-spawner")


def _popen(command: list[str], options: dict[str, Any]) -> subprocess.Popen[bytes]:
    arm = _parent_death_signal()
    if arm is None:
        return subprocess.Popen(command, **options)
    return subprocess.Popen(command, preexec_fn=functools.partial(arm, os.getpid()), **options)


@functools.cache
def _parent_death_signal() -> Callable[[int], None] | None:
    """A function that arms the parent-death signal in the calling process, given the parent it
    expects; looked up here, in the parent, so that the child between fork and exec only calls it."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def arm(expected_parent: int) -> None:
        prctl(PR_SET_PDEATHSIG, int(PARENT_DEATH_SIGNAL))
        if os.getppid() != expected_parent:  # the parent died before the signal was armed
            os.kill(os.getpid(), PARENT_DEATH_SIGNAL)

    return arm
