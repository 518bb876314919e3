"""`streaming-whisper run` (what `make run` starts): everything up, then down on a signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import psutil
import pytest

from service.launcher import free_port

pytestmark = pytest.mark.integration

START_TIMEOUT_S = 120
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


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_run_starts_redis_worker_and_ingress_and_stops_them_all(stop_signal: signal.Signals) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REDIS_HOST")}
    env.update(PORT=str(port), BYPASS_AUTHORIZATION="1")
    command = [sys.executable, "-m", "service.cli", "run"]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as process:
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
