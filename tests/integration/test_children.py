"""commands.children with real processes: a child stops when its parent is killed outright, whichever
thread started it, and a process that asked to exit with its parent does."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time

import psutil
import pytest

from commands.children import spawn_child
from tests.processes import survivors

pytestmark = pytest.mark.integration

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]
DEATH_TIMEOUT_S = 10


def killed_parent_leaves(parent_code: str) -> psutil.Process:
    """Run `parent_code` (its child prints its pid), SIGKILL it once the pid is out, and return that child."""
    with subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(parent_code)], stdout=subprocess.PIPE
    ) as parent:
        assert parent.stdout is not None
        child = psutil.Process(int(parent.stdout.readline()))
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    return child


def test_a_child_outlives_the_short_lived_thread_that_started_it() -> None:
    started: list[subprocess.Popen[bytes]] = []
    thread = threading.Thread(target=lambda: started.append(spawn_child(SLEEPER)))
    thread.start()
    thread.join()
    child = started[0]
    try:
        time.sleep(0.5)  # Linux would have signalled it by now, were it tied to that thread
        assert child.poll() is None
    finally:
        child.kill()
        child.wait()


def test_a_child_stops_when_its_parent_is_killed_outright() -> None:
    child = killed_parent_leaves(
        f"""
        import time
        from commands.children import spawn_child
        print(spawn_child({SLEEPER!r}).pid, flush=True)
        time.sleep(120)
        """
    )

    assert not survivors([child], DEATH_TIMEOUT_S), child


def test_a_process_that_asked_to_exit_with_its_parent_does() -> None:
    armed = "import os, time; from commands.children import exit_with_parent; exit_with_parent(); "
    armed += "print(os.getpid(), flush=True); time.sleep(120)"
    child = killed_parent_leaves(  # the child prints its pid once armed, on its parent's stdout
        f"""
        import subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", {armed!r}])
        time.sleep(120)
        """
    )

    assert not survivors([child], DEATH_TIMEOUT_S), child
