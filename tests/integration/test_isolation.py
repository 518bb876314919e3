"""Results reach only the socket whose audio produced them, even when two sockets use the same
meeting id and participant id at once, or when a client reconnects while its old windows are still
being transcribed. (Replicas are covered in test_faults.py; other meetings in test_meeting.py.)"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from websockets.asyncio.client import connect

from bench.scoring import error_rate, normalize_text
from demos.client import DEFAULT_CHUNK_SAMPLES, MeetingResult, stream_meeting
from ingress.protocol import build_header
from service.audio import SAMPLE_WIDTH_BYTES
from tests.integration.conftest import STREAM_TIMEOUT_S, TEST_SPEED, Service

pytestmark = pytest.mark.integration

SAME_MEETING = "same-meeting"
SAME_PARTICIPANT = "alice"
JFK_ONLY_WORD = "americans"
"""In jfk_ask_not's first seconds and nowhere in meeting_3spk_dev.spk2."""


def words(text: str) -> set[str]:
    return set(normalize_text(text).split())


def test_two_sockets_with_the_same_meeting_and_participant_ids_get_their_own_results(
    service: Service, speech: Any, reference: Any
) -> None:
    async def both() -> tuple[MeetingResult, MeetingResult]:
        url = service.url(SAME_MEETING)
        return await asyncio.gather(
            stream_meeting(url, [(SAME_PARTICIPANT, speech("jfk_ask_not"))], speed=TEST_SPEED),
            stream_meeting(url, [(SAME_PARTICIPANT, speech("meeting_3spk_dev.spk2"))], speed=TEST_SPEED),
        )

    jfk, other = asyncio.run(asyncio.wait_for(both(), STREAM_TIMEOUT_S))

    assert jfk.closed_normally and other.closed_normally
    jfk_reference, other_reference = reference("jfk_ask_not"), reference("meeting_3spk_dev.spk2")
    assert error_rate(jfk_reference, jfk.transcript(SAME_PARTICIPANT)) <= 0.15
    assert error_rate(other_reference, other.transcript(SAME_PARTICIPANT)) <= 0.25
    assert JFK_ONLY_WORD in words(jfk.transcript(SAME_PARTICIPANT))
    assert JFK_ONLY_WORD not in words(other.transcript(SAME_PARTICIPANT))


def test_a_reconnecting_client_never_gets_the_old_connections_results(
    service: Service, speech: Any, reference: Any
) -> None:
    """The first socket sends speech and vanishes with windows still in flight; the same meeting
    and participant reconnect at once with other speech and must see only that speech."""
    jfk = speech("jfk_ask_not")
    chunk_bytes = DEFAULT_CHUNK_SAMPLES * SAMPLE_WIDTH_BYTES
    header = build_header(SAME_PARTICIPANT, "en")

    async def drop_then_reconnect() -> MeetingResult:
        async with connect(service.url("reconnect-meeting")) as first:
            for start in range(0, 6 * chunk_bytes, chunk_bytes):  # "And so, my fellow Americans, ..."
                await first.send(header + jfk[start : start + chunk_bytes])
                await asyncio.sleep(DEFAULT_CHUNK_SAMPLES / 16_000 / TEST_SPEED)
        return await stream_meeting(
            service.url("reconnect-meeting"),
            [(SAME_PARTICIPANT, speech("meeting_3spk_dev.spk2"))],
            speed=TEST_SPEED,
        )

    second = asyncio.run(asyncio.wait_for(drop_then_reconnect(), STREAM_TIMEOUT_S))

    assert second.closed_normally
    assert not second.errors()
    transcript = second.transcript(SAME_PARTICIPANT)
    assert error_rate(reference("meeting_3spk_dev.spk2"), transcript) <= 0.25
    assert JFK_ONLY_WORD not in words(transcript)
