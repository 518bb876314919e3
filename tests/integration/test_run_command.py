"""`streaming-whisper run` (what `make run` starts): everything up, then down on a signal; and
nothing left running when it, or `make run`, is killed outright."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

from commands.launcher import free_port
from tests.processes import survivors

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120
DEATH_TIMEOUT_S = 30
"""SIGTERM reaches every child at once; the worker's warm shutdown takes the longest."""
READY_LINE = "Streaming Whisper is ready: ws://127.0.0.1:{port}/streaming-whisper/ws/"


class Output:
    """Collects a process's output in a thread and says when a line has appeared."""

    def __init__(self, process: subprocess.Popen[bytes], wanted: str) -> None:
        self.lines: list[str] = []
        self.seen = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(process, wanted), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[bytes], wanted: str) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.decode(errors="replace")
            self.lines.append(line)
            if wanted in line:
                self.seen.set()

    def text(self) -> str:
        self._thread.join(timeout=10)
        return "".join(self.lines)


def environment(port: int) -> dict[str, str]:
    """No Redis from the caller's environment: the command starts its embedded one."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REDIS_HOST")}
    env.update(PORT=str(port), BYPASS_AUTHORIZATION="1")
    return env


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_run_starts_redis_worker_and_ingress_and_stops_them_all(stop_signal: signal.Signals) -> None:
    port = free_port()
    command = [sys.executable, "-m", "commands.cli", "run"]
    with subprocess.Popen(
        command, env=environment(port), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    ) as process:
        output = Output(process, READY_LINE.format(port=port))
        try:
            assert output.seen.wait(START_TIMEOUT_S), output.text()
            children = psutil.Process(process.pid).children(recursive=True)
            assert len(children) >= 3  # redis-server, the worker (and its pool process), the ingress

            process.send_signal(stop_signal)
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
        text = output.text()

    assert process.returncode == 0, text
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, alive


def make_run() -> list[str]:
    """`make run` with this test's virtual environment, taken as installed (never reinstalled here)."""
    venv = Path(sys.prefix)
    return ["make", "--no-print-directory", "-o", str(venv / ".installed"), "run", f"VENV={venv}"]


@pytest.mark.parametrize(
    "command",
    [[sys.executable, "-m", "commands.cli", "run"], make_run()],
    ids=["streaming-whisper run", "make run"],
)
def test_a_sigkilled_run_leaves_no_process_behind(command: list[str]) -> None:
    port = free_port()
    with subprocess.Popen(
        command, env=environment(port), cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    ) as process:
        output = Output(process, READY_LINE.format(port=port))
        try:
            assert output.seen.wait(START_TIMEOUT_S), output.text()
            family = psutil.Process(process.pid).children(recursive=True)
            names = [member.name() for member in family]
            assert any(name.startswith("redis-server") for name in names), names

            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()

        left = survivors(family, DEATH_TIMEOUT_S)
        described = [f"{survivor.pid} {' '.join(survivor.cmdline()[:4])}" for survivor in left]
        for survivor in left:  # leave the machine as it was, then fail
            survivor.kill()
    assert not left, described
