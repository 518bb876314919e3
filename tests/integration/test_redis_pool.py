"""An ingress whose Redis pool is far smaller than its talkers: commands wait for a connection
instead of failing (redis-py's default pool raised "Too many connections", and the meetings closed
with 1011, at 256 talkers on one ingress)."""

from __future__ import annotations

import asyncio
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from bench.scoring import error_rate
from ingress.dispatch import connect_redis
from tests.integration.conftest import ARTIFACTS, Service
from tests.integration.test_faults import replica

pytestmark = pytest.mark.integration

MEETINGS = ("pool-a", "pool-b")
TRACKS = {f"spk{n}": f"meeting_3spk_dev.spk{n}" for n in (1, 2, 3)}


def test_six_talkers_through_two_redis_connections_get_every_final(
    service: Service, speech: Any, reference: Any
) -> None:
    # Two connections: the reply reader's, and one that every window's commands share.
    env = {"REDIS_MAX_CONNECTIONS": "2"}
    log = ARTIFACTS / "logs" / "ingress-small-pool.log"
    earlier = log.stat().st_size if log.exists() else 0  # the log is appended to, run after run
    with replica(service, "ingress-small-pool", env) as base:
        tracks = [(speaker, speech(name)) for speaker, name in TRACKS.items()]
        with ThreadPoolExecutor(len(MEETINGS)) as pool:
            futures = [pool.submit(service.stream, meeting, tracks, base=base) for meeting in MEETINGS]
            results = [future.result() for future in futures]

    for result in results:
        assert result.closed_normally, (result.close_code, result.close_reason)
        assert not result.of_type("error")
        for speaker, name in TRACKS.items():
            wer = error_rate(reference(name), result.transcript(speaker))
            assert wer <= 0.25, (speaker, wer, result.transcript(speaker))
    with log.open("rb") as file:
        file.seek(earlier)
        assert b"Too many connections" not in file.read()


def test_a_command_waits_for_a_free_connection_and_fails_clearly_past_its_timeout(service: Service) -> None:
    async def scenario(pool_timeout_s: float) -> tuple[bool, float]:
        client = connect_redis(service.stack.redis_url, max_connections=2, pool_timeout_s=pool_timeout_s)
        try:
            # Two commands hold both connections for a second (nothing is ever pushed to the key).
            key = f"pool-test-{uuid.uuid4().hex}"
            holders = [asyncio.create_task(client.blpop([key], timeout=1)) for _ in range(2)]
            await asyncio.sleep(0.2)
            started = time.monotonic()
            try:
                answered = bool(await client.ping())
            except RedisConnectionError as error:
                assert "No connection available" in str(error)
                answered = False
            waited = time.monotonic() - started
            await asyncio.gather(*holders)
            return answered, waited
        finally:
            await client.aclose()

    answered, waited = asyncio.run(scenario(pool_timeout_s=5.0))
    assert answered and waited >= 0.5  # it waited for a holder to finish, then ran
    answered, waited = asyncio.run(scenario(pool_timeout_s=0.1))
    assert not answered and waited < 0.7  # past the timeout: the error, not a wait for the holders
