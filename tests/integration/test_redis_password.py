"""A Redis that requires a password: REDIS_URL carries it to the ingress and the workers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from bench.scoring import error_rate
from commands.launcher import EmbeddedRedis, LocalStack, free_port
from demos.client import stream_meeting
from service.settings import Settings
from tests.integration.conftest import ARTIFACTS, STREAM_TIMEOUT_S, TEST_SPEED

pytestmark = pytest.mark.integration

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(scope="module")
def locked_redis() -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(password=PASSWORD)
    try:
        yield server
    finally:
        server.stop()


def test_the_whole_path_works_through_a_password_protected_redis(
    locked_redis: EmbeddedRedis, speech: Any, reference: Any
) -> None:
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=locked_redis.port).ping()  # the server really wants the password
    settings = Settings(port=free_port(), redis_url=locked_redis.url, bypass_authorization=True)
    logs = ARTIFACTS / "logs" / "redis-password"
    with LocalStack(settings, log_dir=logs, extra_env={"BYPASS_AUTHORIZATION": "1"}) as stack:
        result = asyncio.run(
            asyncio.wait_for(
                stream_meeting(
                    stack.meeting_url("locked"), [("jfk", speech("jfk_ask_not"))], speed=TEST_SPEED
                ),
                STREAM_TIMEOUT_S,
            )
        )

    assert result.closed_normally
    assert not result.errors()
    assert error_rate(reference("jfk_ask_not"), result.transcript("jfk")) <= 0.10
    assert all(PASSWORD not in path.read_text(errors="replace") for path in Path(logs).glob("*.log"))
