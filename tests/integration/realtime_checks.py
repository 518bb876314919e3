"""What the Realtime route's tests check, shared by test_realtime.py and test_meeting.py (whose
long-form stream goes through both protocols at once)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bench.scoring import error_rate
from demos.client import MeetingResult
from demos.realtime_client import COMPLETED, DELTA, RealtimeResult, stream_realtime
from tests.integration.conftest import STREAM_TIMEOUT_S, TEST_SPEED, Service

MAX_ITEM_ID = 32
WER_RATIO = 1.05
"""The Realtime route's WER against the seed route's on the same audio (issue 20)."""
WER_SLACK = 0.01
"""Added to the bound: the audio went through 24 kHz and back, and a WER of 0 leaves no ratio."""


def both_protocols(service: Service, name: str, pcm: bytes) -> tuple[MeetingResult, RealtimeResult]:
    """The same audio through the seed route and the Realtime route, at the same time."""

    def realtime() -> RealtimeResult:
        async def bounded() -> RealtimeResult:
            async with asyncio.timeout(STREAM_TIMEOUT_S):
                return await stream_realtime(service.stack.base_http_url, pcm, speed=TEST_SPEED)

        return asyncio.run(bounded())

    with ThreadPoolExecutor(2) as pool:
        seed = pool.submit(service.stream, f"seed-{name}", [("reader", pcm)])
        openai = pool.submit(realtime)
        return seed.result(), openai.result()


def check_events(result: RealtimeResult) -> None:
    """The API's rules: each item starts, grows by deltas that only append, is committed after the
    one before it and completed once; no error."""
    assert result.events[0].type == "session.created"
    assert not result.errors(), result.errors()
    started: set[str] = set()
    said: dict[str, str] = {}
    completed: list[str] = []
    previous: str | None = None
    for event in result.events:
        payload = event.payload
        item_id = payload.get("item_id")
        if event.type == "input_audio_buffer.speech_started":
            assert item_id not in started
            started.add(item_id)
        elif event.type == DELTA:
            assert item_id in started and item_id not in completed
            said[item_id] = said.get(item_id, "") + payload["delta"]
        elif event.type == "input_audio_buffer.committed":
            assert payload.get("previous_item_id") == previous
            previous = item_id
        elif event.type == COMPLETED:
            assert item_id == previous, "completed before its commit"
            assert item_id not in completed
            assert payload["transcript"].startswith(said.get(item_id, "").strip())
            completed.append(item_id)
    for item_id in completed:
        assert item_id.startswith("item_") and len(item_id) <= MAX_ITEM_ID


def check_wer(name: str, reference: str, seed_text: str, openai_text: str) -> None:
    seed_wer = error_rate(reference, seed_text)
    openai_wer = error_rate(reference, openai_text)
    print(f"{name}: seed route WER {seed_wer:.3f}, Realtime route WER {openai_wer:.3f}")
    assert openai_wer <= WER_RATIO * seed_wer + WER_SLACK, (seed_text, openai_text)


def realtime_url(base_http_url: str, query: str = "?intent=transcription") -> str:
    return base_http_url.replace("http://", "ws://") + "/v1/realtime" + query


def append(pcm: bytes) -> str:
    return json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()})


async def raw_session(
    url: str, frames: Sequence[str | bytes], until: str | None = None, times: int = 1
) -> tuple[list[dict[str, Any]], int | None]:
    """Send frames as they are, then read events until the `times`th of type `until` or the
    close; the events and the close code (None when `until` came first)."""
    received: list[dict[str, Any]] = []
    async with connect(url) as socket:
        for frame in frames:
            await socket.send(frame)
        async with asyncio.timeout(60):
            with contextlib.suppress(ConnectionClosed):
                while True:
                    received.append(json.loads(await socket.recv()))
                    if [event["type"] for event in received].count(until) == times:
                        return received, None
        return received, socket.close_code
