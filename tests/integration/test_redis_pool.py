"""An ingress whose Redis pool is far smaller than its talkers: commands wait for a connection
instead of failing (redis-py's default pool raised "Too many connections", and the meetings closed
with 1011, at 256 talkers on one ingress)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from bench.scoring import error_rate
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
