"""Resume after reconnect, with real processes: a socket dropped mid-sentence (no close frame, as
when the network goes) and a reconnect to the same meeting, on the same ingress or on another
replica sharing the Redis, gives the finals an uninterrupted stream gives: the same words, none
twice, the utterance in progress under the id its interims had. After RESUME_TTL_S the state has
expired and a reconnect starts afresh."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import connect

from bench.scoring import error_rate
from commands.launcher import free_port
from demos.client import DEFAULT_CHUNK_SAMPLES, MAX_MESSAGE_BYTES, MeetingResult, stream_meeting
from service import names
from service.audio import SAMPLE_WIDTH_BYTES
from tests.integration.conftest import STREAM_TIMEOUT_S, TEST_SPEED, Service
from tests.integration.test_faults import frames, listen, new_result, speak

pytestmark = pytest.mark.integration

SPEAKER = "jfk"
DROP_CHUNKS = 6
"""The socket drops after 6.1 s of jfk_ask_not: within "what your country can do for you"."""
SETTLE_S = 1.0
"""After its last chunk, the dropped socket lives this long: the interims of its audio come back."""
KEY_WAIT_S = 10.0
MAX_EXTRA_WER = 0.10
"""Over the uninterrupted stream's WER (jfk_ask_not has 22 words: two more errors at most)."""
SHORT_TTL_S = 1.0


@dataclass
class Resumed:
    before: MeetingResult
    after: MeetingResult

    @property
    def finals(self) -> list[dict[str, Any]]:
        return self.before.finals(SPEAKER) + self.after.finals(SPEAKER)

    @property
    def text(self) -> str:
        return " ".join(final["text"] for final in self.finals)

    @property
    def open_id(self) -> str | None:
        """The utterance the dropped socket had interims of but no final."""
        said = [m.payload for m in self.before.messages if m.payload and m.payload["type"] != "error"]
        return said[-1]["id"] if said and said[-1]["type"] == "interim" else None


@pytest.fixture(scope="module")
def replica(service: Service) -> Iterator[str]:
    """A second ingress process on the same Redis and worker."""
    base = service.stack.start_ingress("ingress-resume", free_port(), {})
    try:
        yield base
    finally:
        service.stack.stop_process("ingress-resume")


@pytest.fixture(scope="module")
def short_lived(service: Service) -> Iterator[str]:
    """An ingress that keeps a dropped socket's state for one second only."""
    base = service.stack.start_ingress(
        "ingress-short-resume", free_port(), {"RESUME_TTL_S": str(SHORT_TTL_S)}
    )
    try:
        yield base
    finally:
        service.stack.stop_process("ingress-short-resume")


def drop_point() -> int:
    return DROP_CHUNKS * DEFAULT_CHUNK_SAMPLES * SAMPLE_WIDTH_BYTES


async def drop_mid_speech(url: str, pcm: bytes) -> MeetingResult:
    """Stream `pcm`, then let the network take the socket: no close frame, no end-of-meeting byte."""
    result = new_result(url)
    async with connect(url, max_size=MAX_MESSAGE_BYTES) as websocket:
        listener = asyncio.create_task(listen(websocket, result))
        await speak(websocket, frames(SPEAKER, pcm))
        await asyncio.sleep(SETTLE_S)
        websocket.transport.abort()
        await listener
    return result


async def wait_for_state(client: aioredis.Redis, meeting_id: str) -> None:
    deadline = time.monotonic() + KEY_WAIT_S
    while not await client.exists(names.resume_key(meeting_id)):
        assert time.monotonic() < deadline, f"meeting {meeting_id}: no state kept for a reconnect"
        await asyncio.sleep(0.05)


async def drop_and_resume(
    service: Service, client: aioredis.Redis, meeting_id: str, pcm: bytes, base: str | None = None
) -> Resumed:
    before = await drop_mid_speech(service.url(meeting_id), pcm[: drop_point()])
    await wait_for_state(client, meeting_id)
    after = await stream_meeting(
        service.url(meeting_id, base), [(SPEAKER, pcm[drop_point() :])], speed=TEST_SPEED
    )
    return Resumed(before, after)


def metric(base: str, name: str) -> float:
    with urllib.request.urlopen(base + "/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(f"streaming_whisper_{name} "):
                return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


def resumed_metric(base: str) -> float:
    return metric(base, "participants_resumed_total")


def check_resumed(resumed: Resumed, reference: str, uninterrupted_wer: float) -> None:
    print(f"before the drop: {[m['text'] for m in resumed.before.finals(SPEAKER)]}")
    print(f"after: {[m['text'] for m in resumed.after.finals(SPEAKER)]}")
    assert resumed.after.closed_normally, (resumed.after.close_code, resumed.after.close_reason)
    assert not resumed.before.errors() and not resumed.after.errors()
    open_id = resumed.open_id
    assert open_id is not None, "the socket dropped between utterances: nothing was in progress"
    # The utterance in progress goes on under its id; it is final once, on the new socket.
    after = [m.payload for m in resumed.after.messages if m.payload and m.payload["type"] != "error"]
    assert after and after[0]["id"] == open_id
    ids = [final["id"] for final in resumed.finals]
    assert len(ids) == len(set(ids)) and open_id in ids, ids
    wer = error_rate(reference, resumed.text)
    print(f"WER resumed {wer:.3f}, uninterrupted {uninterrupted_wer:.3f}: {resumed.text!r}")
    assert wer <= uninterrupted_wer + MAX_EXTRA_WER


def test_a_dropped_socket_resumed_on_the_same_or_another_replica_gives_the_same_finals(
    service: Service, replica: str, speech: Any, reference: Any
) -> None:
    pcm, text = speech("jfk_ask_not"), reference("jfk_ask_not")
    resumed_before = resumed_metric(replica)

    async def run() -> tuple[MeetingResult, Resumed, Resumed]:
        client = aioredis.Redis.from_url(service.stack.redis_url)
        try:
            async with asyncio.timeout(STREAM_TIMEOUT_S):
                results = await asyncio.gather(
                    stream_meeting(service.url("resume-none"), [(SPEAKER, pcm)], speed=TEST_SPEED),
                    drop_and_resume(service, client, "resume-here", pcm),
                    drop_and_resume(service, client, "resume-elsewhere", pcm, base=replica),
                )
            # A meeting that ended (and the resumed ones, once claimed) leave nothing in Redis.
            for meeting_id in ("resume-none", "resume-here", "resume-elsewhere"):
                assert not await client.exists(names.resume_key(meeting_id)), meeting_id
            return results
        finally:
            await client.aclose()

    uninterrupted, here, elsewhere = asyncio.run(run())

    uninterrupted_wer = error_rate(text, uninterrupted.transcript(SPEAKER))
    check_resumed(here, text, uninterrupted_wer)
    check_resumed(elsewhere, text, uninterrupted_wer)
    assert resumed_metric(replica) == resumed_before + 1


def test_after_the_ttl_the_state_is_gone_and_a_reconnect_starts_afresh(
    service: Service, short_lived: str, speech: Any
) -> None:
    pcm, meeting_id = speech("jfk_ask_not"), "resume-too-late"

    async def run() -> Resumed:
        client = aioredis.Redis.from_url(service.stack.redis_url)
        try:
            before = await drop_mid_speech(service.url(meeting_id, short_lived), pcm[: drop_point()])
            key = names.resume_key(meeting_id)
            await wait_for_state(client, meeting_id)
            assert 0 < await client.pttl(key) <= SHORT_TTL_S * 1000
            assert metric(short_lived, "participants") == 0  # the ingress holds nothing of it
            while await client.exists(key):  # Redis frees it on its own
                await asyncio.sleep(0.1)
            after = await stream_meeting(
                service.url(meeting_id, short_lived), [(SPEAKER, pcm[drop_point() :])], speed=TEST_SPEED
            )
            return Resumed(before, after)
        finally:
            await client.aclose()

    resumed = asyncio.run(run())

    assert resumed.after.closed_normally and not resumed.after.errors()
    assert resumed.open_id is not None
    ids = {m.payload["id"] for m in resumed.after.messages if m.payload and "id" in m.payload}
    assert ids and resumed.open_id not in ids
    # Afresh: the new socket hears only the audio it was sent.
    assert "fellow americans" not in resumed.after.transcript(SPEAKER).lower()
    assert resumed_metric(short_lived) == 0


def test_a_kept_state_that_cannot_be_read_is_dropped_and_the_meeting_goes_on(
    service: Service, speech: Any, reference: Any
) -> None:
    meeting_id = "resume-unreadable"

    async def plant() -> None:
        client = aioredis.Redis.from_url(service.stack.redis_url)
        try:
            await client.hset(names.resume_key(meeting_id), mapping={SPEAKER: '{"version": 0}'})
        finally:
            await client.aclose()

    asyncio.run(plant())
    result = service.stream(meeting_id, [(SPEAKER, speech("jfk_ask_not"))])

    assert result.closed_normally and not result.errors()
    assert error_rate(reference("jfk_ask_not"), result.transcript(SPEAKER)) <= 0.10

    async def left() -> int:
        client = aioredis.Redis.from_url(service.stack.redis_url)
        try:
            return int(await client.exists(names.resume_key(meeting_id)))
        finally:
            await client.aclose()

    assert asyncio.run(left()) == 0
