"""The dispatcher's round trips that store windows (real Redis, no worker): windows dispatched
together share one and reach the queue in order, a window whose wait ended while it was queued is
not sent, and a Redis that does not answer fails every window of the round trip clearly."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator

import pytest
import redis
from celery import Celery

from commands.launcher import EmbeddedRedis
from ingress.audio_ledger import AudioLedger, AudioPlan
from ingress.dispatch import Dispatcher, TranscriptionError, connect_redis
from ingress.metrics import Metrics
from ingress.task_messages import queue_list
from service import names
from service.contracts import DecoderHints, ErrorCode

pytestmark = pytest.mark.integration

ONE_SECOND = bytes(32000)


def window_audio(stream_id: str) -> AudioPlan:
    return AudioLedger(stream_id).place([(0, 16000)], ONE_SECOND, oldest_needed=0, now_s=time.monotonic())


def queued_audio_keys(broker: EmbeddedRedis) -> list[str]:
    """Of each interim task in the transcribe queue, oldest first, the audio key its window names."""
    client = redis.Redis.from_url(broker.url)
    try:
        raw = client.lrange(queue_list(names.INTERIM_PRIORITY), 0, -1)
    finally:
        client.close()
    keys = []
    for message in reversed(raw):  # LPUSH: the newest first
        args, _kwargs, _embed = json.loads(base64.b64decode(json.loads(message)["body"]))
        [piece] = args[0]["audio"]
        keys.append(piece["key"])
    return keys


def stall_redis(broker: EmbeddedRedis, seconds: float) -> None:
    """Redis answers nobody for `seconds` (it sleeps in a command)."""
    client = redis.Redis.from_url(broker.url)
    try:
        client.execute_command("DEBUG", "SLEEP", str(seconds))
    finally:
        client.close()


@contextlib.asynccontextmanager
async def stalled(broker: EmbeddedRedis, seconds: float) -> AsyncIterator[None]:
    """Within: Redis has stalled for `seconds` (from a thread: the event loop stays free)."""
    stall = threading.Thread(target=stall_redis, args=(broker, seconds))
    stall.start()
    await asyncio.sleep(0.1)
    try:
        yield
    finally:
        await asyncio.to_thread(stall.join)


@contextlib.asynccontextmanager
async def dispatcher_on(broker: EmbeddedRedis, app: Celery) -> AsyncIterator[Dispatcher]:
    """A dispatcher on the test's Redis (its reply reader not started: no worker answers)."""
    client = connect_redis(broker.url, 4, 5.0)
    dispatcher = Dispatcher(client, app, Metrics.create())
    try:
        yield dispatcher
    finally:
        await dispatcher.stop()
        await client.aclose()


async def dispatch(
    dispatcher: Dispatcher, stream_ids: list[str], timeout_s: float
) -> list[TranscriptionError | None]:
    """Windows of `stream_ids`, dispatched in one turn of the event loop; no worker answers."""
    windows = [
        dispatcher.transcribe(window_audio(stream_id), "en", DecoderHints(), timeout_s)
        for stream_id in stream_ids
    ]
    results = await asyncio.gather(*windows, return_exceptions=True)
    for result in results:
        assert isinstance(result, TranscriptionError), result
    return [result if isinstance(result, TranscriptionError) else None for result in results]


def test_windows_dispatched_together_all_reach_the_queue_in_their_order(
    broker: EmbeddedRedis, app: Celery
) -> None:
    streams = [f"stream-{n}" for n in range(12)]

    async def scenario() -> list[TranscriptionError | None]:
        async with dispatcher_on(broker, app) as dispatcher:
            return await dispatch(dispatcher, streams, timeout_s=1.0)

    errors = asyncio.run(scenario())
    assert all(error is not None and error.code == ErrorCode.TIMEOUT for error in errors)
    # Each window's task, in the order they were dispatched, and each window's audio stored.
    assert queued_audio_keys(broker) == [names.audio_key(stream_id, 1) for stream_id in streams]
    client = redis.Redis.from_url(broker.url)
    try:
        for stream_id in streams:
            assert client.get(names.audio_key(stream_id, 1)) == ONE_SECOND
    finally:
        client.close()


def test_a_window_whose_wait_ended_while_queued_is_never_sent(broker: EmbeddedRedis, app: Celery) -> None:
    async def scenario() -> tuple[list[TranscriptionError | None], list[TranscriptionError | None]]:
        # Redis stalls for a second: the first window's round trip waits in it, and the second
        # window, queued behind that round trip, runs out of time before it could go.
        async with dispatcher_on(broker, app) as dispatcher, stalled(broker, 1.0):
            first = asyncio.create_task(dispatch(dispatcher, ["sent"], timeout_s=2.0))
            await asyncio.sleep(0.1)
            second = await dispatch(dispatcher, ["too-late"], timeout_s=0.3)
            return await first, second

    first, second = asyncio.run(scenario())
    assert first[0] is not None and first[0].code == ErrorCode.TIMEOUT  # no worker answered
    assert second[0] is not None and second[0].code == ErrorCode.TIMEOUT
    assert queued_audio_keys(broker) == [names.audio_key("sent", 1)]  # the first window's task only
    client = redis.Redis.from_url(broker.url)
    try:
        assert client.exists(names.audio_key("sent", 1)) == 1
        assert client.exists(names.audio_key("too-late", 1)) == 0
    finally:
        client.close()


def test_a_redis_that_stopped_fails_each_window_of_the_round_trip_as_unreachable(
    broker: EmbeddedRedis, app: Celery
) -> None:
    async def scenario() -> list[TranscriptionError | None]:
        async with dispatcher_on(broker, app) as dispatcher:
            broker.stop()
            return await dispatch(dispatcher, [f"stream-{n}" for n in range(5)], timeout_s=10.0)

    errors = asyncio.run(scenario())
    assert all(error is not None and error.code == ErrorCode.BROKER_UNAVAILABLE for error in errors), errors


def test_windows_waiting_on_a_round_trip_end_when_the_dispatcher_stops(
    broker: EmbeddedRedis, app: Celery
) -> None:
    def transcribe(dispatcher: Dispatcher, stream_id: str) -> asyncio.Task[object]:
        return asyncio.create_task(dispatcher.transcribe(window_audio(stream_id), "en", DecoderHints(), 30.0))

    async def scenario() -> list[object]:
        async with dispatcher_on(broker, app) as dispatcher, stalled(broker, 1.0):
            # Two windows in the round trip Redis stalls, one queued behind it; the ingress stops.
            windows = [transcribe(dispatcher, "in-flight-1"), transcribe(dispatcher, "in-flight-2")]
            await asyncio.sleep(0.05)
            windows.append(transcribe(dispatcher, "queued"))
            await asyncio.sleep(0.05)
            await dispatcher.stop()
            # None waits out its 30 s timeout, none hangs (wait_for raises past 5 s).
            return await asyncio.wait_for(asyncio.gather(*windows, return_exceptions=True), 5.0)

    results = asyncio.run(scenario())
    assert all(isinstance(result, asyncio.CancelledError) for result in results), results
