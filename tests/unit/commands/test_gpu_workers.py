"""One worker per GPU: each child sees its own index, and the set lives and dies together.
(Real child processes running a tiny Python program stand in for workers: no GPU here.)"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import psutil
import pytest

from commands.gpu_workers import per_gpu_environments, run_one_per_gpu

pytestmark = pytest.mark.unit


def test_each_gpu_worker_gets_its_own_index_and_the_rest_of_the_settings() -> None:
    environments = per_gpu_environments({"WHISPER_DEVICE": "cuda", "WHISPER_GPU_INDICES": "0,1"}, [0, 1])

    assert environments == [
        {"WHISPER_DEVICE": "cuda", "WHISPER_GPU_INDICES": "0"},
        {"WHISPER_DEVICE": "cuda", "WHISPER_GPU_INDICES": "1"},
    ]


def worker_program(tmp_path: Path, exit_for: str | None) -> list[str]:
    """Writes its index to a file named after it, then sleeps (or exits 3 for index `exit_for`)."""
    code = (
        "import os, sys, time, pathlib\n"
        "index = os.environ['WHISPER_GPU_INDICES']\n"
        f"pathlib.Path({str(tmp_path)!r}, index).write_text(str(os.getpid()))\n"
        f"sys.exit(3) if index == {exit_for!r} else time.sleep(60)\n"
    )
    return [sys.executable, "-c", code]


def test_a_stop_signal_stops_every_gpu_worker(tmp_path: Path) -> None:
    threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGTERM)).start()

    status = run_one_per_gpu([0, 1], worker_program(tmp_path, exit_for=None))

    assert status == 0
    pids = [int((tmp_path / index).read_text()) for index in ("0", "1")]
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie" for pid in pids)


def test_when_one_gpu_worker_dies_the_others_are_stopped_and_its_status_returned(tmp_path: Path) -> None:
    status = run_one_per_gpu([0, 1], worker_program(tmp_path, exit_for="1"))

    assert status == 3
    survivor = int((tmp_path / "0").read_text())
    assert not psutil.pid_exists(survivor) or psutil.Process(survivor).status() == "zombie"
