"""Faults the service survives, each caused for real: a worker lost mid-window (SIGKILL of the whole
worker, as when its node goes), Redis restarted mid-meeting, an ingress stopped with SIGTERM
mid-meeting, and two ingress replicas with two workers sharing one Redis. Where a fault would harm
the session's shared service, the test brings its own stack (its own Redis, workers and ingress)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Awaitable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import psutil
import pytest
import redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.scoring import error_rate
from commands.launcher import LocalStack, free_port
from demos.client import (
    DEFAULT_CHUNK_SAMPLES,
    MAX_MESSAGE_BYTES,
    MeetingResult,
    ReceivedMessage,
    send_schedule,
    stream_meeting,
)
from ingress.protocol import END_OF_MEETING
from models.transcriber import Transcriber
from service import names
from service.audio import SAMPLE_RATE, SAMPLE_WIDTH_BYTES
from service.settings import Settings
from tests.integration.conftest import ARTIFACTS, STREAM_TIMEOUT_S, TEST_SPEED, Service

pytestmark = pytest.mark.integration

JFK = "jfk_ask_not"
OTHER = "synth_en_us"
MAX_WER = 0.15
HANG_S = 60.0
"""Generous bound on a recovery: far beyond what it takes, far below the timeouts that would hide
a failure to recover (the stacks here wait `SLOW_TIMEOUT_S` for a window before giving up on it)."""
SLOW_TIMEOUT_S = "120"
SLOW_ENV = {"TRANSCRIPTION_TIMEOUT_S": SLOW_TIMEOUT_S}
STRANDED_DB, LOSSY_DB = 3, 4
"""Databases of the shared Redis that no worker serves: windows sent there are never answered."""
T = TypeVar("T")


# ---- stacks and processes ---------------------------------------------------------------------


@contextlib.contextmanager
def own_stack(name: str, **env: str) -> Iterator[LocalStack]:
    """A whole service of its own: an embedded Redis, a worker and an ingress, logs under `name`."""
    settings = Settings(port=free_port(), bypass_authorization=True, redis_url=None, redis_host=None)
    extra_env = {"BYPASS_AUTHORIZATION": "1", "LOG_LEVEL": "INFO", **env}
    with LocalStack(settings, log_dir=ARTIFACTS / "logs" / name, extra_env=extra_env) as stack:
        yield stack


@contextlib.contextmanager
def replica(service: Service, name: str, env: dict[str, str]) -> Iterator[str]:
    """One more ingress on the shared service, with its own settings; its base URL."""
    try:
        yield service.stack.start_ingress(name, free_port(), env)
    finally:
        service.stack.stop_process(name)  # nothing to do when the test has stopped it already


def ws_url(base: str, meeting_id: str) -> str:
    return base.replace("http://", "ws://") + f"/streaming-whisper/ws/{meeting_id}"


def family(stack: LocalStack, name: str) -> list[psutil.Process]:
    """A process of the stack and its children (a worker and its pool), parent first."""
    parent = psutil.Process(stack.process(name).pid)
    return [parent, *parent.children(recursive=True)]


def claimed_windows(client: redis.Redis) -> dict[str, int]:
    """Windows being transcribed right now: request id -> pid of the worker process on it."""
    claims: dict[str, int] = {}
    for key in client.scan_iter(match=names.claim_key("*")):
        holder = client.get(key)
        if isinstance(holder, bytes):
            claims[key.decode().rsplit(":", 1)[1]] = int(holder.decode().rsplit(":", 1)[1])
    return claims


def wait_for_a_window_in_flight(client: redis.Redis, timeout_s: float = HANG_S) -> tuple[str, int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for request_id, pid in claimed_windows(client).items():
            return request_id, pid
        time.sleep(0.005)
    raise AssertionError("no window was seen in flight")


@dataclass
class Loss:
    worker: str
    request_id: str
    at: float
    """time.monotonic() of the kill."""


def lose_a_worker_mid_window(stack: LocalStack, workers: Sequence[str], client: redis.Redis) -> Loss:
    """SIGKILL the whole worker (main process and pool) that is transcribing a window, as a lost
    node: frozen first (SIGSTOP), then killed only if the window is still unanswered."""
    deadline = time.monotonic() + HANG_S
    while time.monotonic() < deadline:
        request_id, pid = wait_for_a_window_in_flight(client)
        worker = next(name for name in workers if pid in {p.pid for p in family(stack, name)})
        processes = family(stack, worker)
        for process in processes:
            process.suspend()
        if claimed_windows(client).get(request_id) == pid:  # it published nothing: still on it
            for process in processes:
                process.kill()
            killed_at = time.monotonic()
            stack.stop_process(worker)  # reaps it; the stack forgets it
            return Loss(worker, request_id, killed_at)
        for process in reversed(processes):
            process.resume()
    raise AssertionError("could not catch a worker in the middle of a window")


def run(coroutine: Awaitable[T]) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(STREAM_TIMEOUT_S):
            return await coroutine

    return asyncio.run(bounded())


# ---- a client that can pause ------------------------------------------------------------------


def frames(participant: str, pcm: bytes, speed: float = TEST_SPEED) -> list[tuple[float, bytes]]:
    return [(m.offset_s, m.message) for m in send_schedule([(participant, pcm)], speed=speed)]


def silence(seconds: float) -> bytes:
    return bytes(int(seconds * SAMPLE_RATE) * SAMPLE_WIDTH_BYTES)


async def speak(websocket: ClientConnection, schedule: Sequence[tuple[float, bytes]]) -> None:
    """Send the frames on their schedule, offsets counted from now."""
    started = time.monotonic()
    for offset_s, frame in schedule:
        await asyncio.sleep(max(0.0, started + offset_s - time.monotonic()))
        await websocket.send(frame)


async def listen(websocket: ClientConnection, result: MeetingResult) -> MeetingResult:
    """Record every message until the server closes the socket."""
    with contextlib.suppress(ConnectionClosed):
        async for raw in websocket:
            text = raw if isinstance(raw, str) else raw.decode()
            result.messages.append(ReceivedMessage(time.monotonic(), text, json.loads(text)))
    result.close_code = websocket.close_code
    result.close_reason = websocket.close_reason or ""
    return result


def new_result(url: str) -> MeetingResult:
    return MeetingResult(url=url, started_at=time.monotonic(), started_at_wall=time.time())


# ---- what to check ----------------------------------------------------------------------------


def assert_in_order_once(result: MeetingResult, participant: str) -> None:
    """Finals in speaking order (by `ts`), each utterance final once."""
    finals = result.finals(participant)
    assert finals, f"no final for {participant}"
    stamps = [final["ts"] for final in finals]
    assert stamps == sorted(stamps), stamps
    ids = [final["id"] for final in finals]
    assert len(ids) == len(set(ids)), ids


def assert_close_to(text: str, reference: str, max_wer: float = MAX_WER) -> None:
    wer = error_rate(reference, text)
    print(f"WER {wer:.3f}: {text!r}")
    assert wer <= max_wer, (text, reference)


# ---- a worker lost mid-window -----------------------------------------------------------------


def test_a_worker_lost_mid_window_costs_no_audio(speech: Any, reference: Any) -> None:
    with own_stack("faults-worker-lost", **SLOW_ENV) as stack:
        stack.start_worker("worker-2")
        stack.wait_for_workers(2)
        client = redis.Redis.from_url(stack.redis_url)

        async def meeting() -> tuple[Loss, MeetingResult]:
            talking = asyncio.create_task(
                stream_meeting(stack.meeting_url("worker-lost"), [("jfk", speech(JFK))], speed=TEST_SPEED)
            )
            loss = await asyncio.to_thread(lose_a_worker_mid_window, stack, ["worker", "worker-2"], client)
            return loss, await talking

        loss, result = run(meeting())
        ended_at = time.monotonic()

    print(f"lost {loss.worker} while it transcribed window {loss.request_id}")
    assert result.closed_normally, (result.close_code, result.close_reason)
    assert result.errors() == []  # the window was sent again, not failed
    assert ended_at - loss.at < HANG_S  # not the transcription timeout, nor the broker's visibility timeout
    assert_in_order_once(result, "jfk")
    assert_close_to(result.transcript("jfk"), reference(JFK))  # nothing lost, nothing said twice


# ---- Redis restarted mid-meeting --------------------------------------------------------------

OUTAGE_S = 3.0


def test_redis_restarted_mid_meeting_costs_an_error_message_then_the_meeting_goes_on(
    speech: Any, reference: Any
) -> None:
    with own_stack("faults-redis-restart", **SLOW_ENV) as stack:
        url = stack.meeting_url("redis-restart")
        client = redis.Redis.from_url(stack.redis_url)
        stopped_at: list[float] = []

        async def restart_redis_mid_window() -> None:
            await asyncio.to_thread(wait_for_a_window_in_flight, client)
            client.close()
            stopped_at.append(time.monotonic())
            await asyncio.to_thread(stack.stop_redis)  # an empty Redis comes back: nothing survives
            await asyncio.sleep(OUTAGE_S)
            await asyncio.to_thread(stack.start_redis)

        async def meeting() -> MeetingResult:
            async with connect(url, max_size=MAX_MESSAGE_BYTES) as websocket:
                result = new_result(url)
                listening = asyncio.create_task(listen(websocket, result))
                fault = asyncio.create_task(restart_redis_mid_window())
                await speak(websocket, frames("before", speech(JFK)))  # Redis goes as this begins
                await fault
                await speak(websocket, frames("after", speech(OTHER)))  # once it is back
                await websocket.send(END_OF_MEETING)
                return await listening

        result = run(meeting())

    errors = result.errors()
    for error in errors:
        print(f"  error {error['code']} ({error.get('participant_id')}): {error['message']}")
    assert result.closed_normally, (result.close_code, result.close_reason)
    assert errors, "the window in flight was lost: the client must hear of it"
    assert all(e["code"] == 1011 and e["participant_id"] == "before" for e in errors), errors
    first_error_at = next(m.arrived_at for m in result.messages if m.type == "error")
    assert first_error_at - stopped_at[0] < OUTAGE_S + HANG_S  # told, not left hanging
    # What was said before and during the outage waited in the ingress, and was sent again once
    # Redis was back; what was said after went through as usual.
    for participant, name in (("before", JFK), ("after", OTHER)):
        assert_in_order_once(result, participant)
        assert_close_to(result.transcript(participant), reference(name))


def test_a_window_whose_audio_redis_lost_is_reported_at_once(service: Service, speech: Any) -> None:
    # Redis lost its data under a waiting window (a restart quicker than the ingress's look, a
    # failover to a replica behind, an eviction): here, windows no worker serves, then FLUSHDB.
    lossy = service.stack.redis_url.rsplit("/", 1)[0] + f"/{LOSSY_DB}"
    client = redis.Redis.from_url(lossy)

    def lose_a_window() -> float:
        deadline = time.monotonic() + HANG_S
        while not list(client.scan_iter(match=names.audio_pattern())):
            assert time.monotonic() < deadline, "no window was sent"
            time.sleep(0.01)
        client.flushdb()
        return time.monotonic()

    async def meeting(url: str) -> tuple[MeetingResult, float]:
        async with connect(url, max_size=MAX_MESSAGE_BYTES) as websocket:
            result = new_result(url)
            listening = asyncio.create_task(listen(websocket, result))
            talking = asyncio.create_task(speak(websocket, frames("jfk", speech(JFK))))
            lost_at = await asyncio.to_thread(lose_a_window)
            while not result.errors():
                await asyncio.sleep(0.1)
            talking.cancel()
            await websocket.close()
            return await listening, lost_at

    with replica(service, "ingress-lossy", {"REDIS_URL": lossy, **SLOW_ENV}) as base:
        result, lost_at = run(meeting(ws_url(base, "lossy")))
    client.close()

    first = next(m for m in result.messages if m.type == "error")
    print(f"told {first.arrived_at - lost_at:.1f} s after the loss: {first.payload}")
    assert first.payload is not None
    assert (first.payload["code"], first.payload["participant_id"]) == (1011, "jfk")
    assert first.payload["message"] == "Redis lost this window before a worker answered (was it restarted?)"
    assert first.arrived_at - lost_at < HANG_S  # not the transcription timeout


# ---- an ingress stopped with SIGTERM ----------------------------------------------------------

SPOKEN_CHUNKS = 7
"""Chunks sent before SIGTERM: 7.2 s of jfk_ask_not, ending mid-sentence."""
NO_FLUSH_ENV = {"WHISPER_FLUSH_BUFFER_INTERVAL": "60000"}
"""The silence after the last chunk never flushes it: only the shutdown does."""


def sigterm(stack: LocalStack, name: str) -> float:
    stack.process(name).send_signal(signal.SIGTERM)
    return time.monotonic()


def wait_gone(stack: LocalStack, name: str) -> float:
    """Seconds until the process exits (a hang fails the test)."""
    started = time.monotonic()
    stack.process(name).wait(HANG_S)
    stack.stop_process(name)  # it has exited: the stack just forgets it
    return time.monotonic() - started


def test_sigterm_flushes_every_participant_then_closes_1001(
    service: Service, speech: Any, reference: Any
) -> None:
    name = "ingress-sigterm"
    spoken_bytes = SPOKEN_CHUNKS * DEFAULT_CHUNK_SAMPLES * SAMPLE_WIDTH_BYTES
    spoken = {"jfk": speech(JFK)[:spoken_bytes], "other": speech(OTHER)[:spoken_bytes]}
    schedule = sorted(
        (item for participant, pcm in spoken.items() for item in frames(participant, pcm)),
        key=lambda item: item[0],
    )

    async def meeting(url: str) -> tuple[MeetingResult, float]:
        async with connect(url, max_size=MAX_MESSAGE_BYTES) as websocket:
            result = new_result(url)
            listening = asyncio.create_task(listen(websocket, result))
            await speak(websocket, schedule)
            await asyncio.sleep(1.0)  # interims, no finals: the speech ends mid-sentence
            stopped_at = await asyncio.to_thread(sigterm, service.stack, name)
            return await listening, stopped_at

    with replica(service, name, NO_FLUSH_ENV) as base:
        result, stopped_at = run(meeting(ws_url(base, "sigterm")))
        exit_s = wait_gone(service.stack, name)

    print(f"closed {result.close_code} {result.close_reason!r}; the ingress exited {exit_s:.1f} s later")
    assert result.close_code == 1001, (result.close_code, result.close_reason)
    assert result.close_reason == "server is shutting down; reconnect to go on"
    last = result.messages[-1].payload
    assert last is not None and (last["type"], last["code"]) == ("error", 1001), last
    assert [e["code"] for e in result.errors()] == [1001]
    offline = Transcriber.from_settings(Settings())
    for participant, pcm in spoken.items():
        assert_in_order_once(result, participant)
        flushed = [
            m.payload for m in result.messages if m.arrived_at > stopped_at and m.participant == participant
        ]
        assert any(p is not None and p["type"] == "final" for p in flushed), "nothing flushed at SIGTERM"
        said = "".join(word.text for word in offline.transcribe_recording(pcm, "en").words)
        assert_close_to(result.transcript(participant), said)


def test_sigterm_with_no_worker_answering_closes_within_the_flush_timeout_and_refuses_newcomers(
    service: Service, speech: Any
) -> None:
    name = "ingress-sigterm-stranded"
    stranded = service.stack.redis_url.rsplit("/", 1)[0] + f"/{STRANDED_DB}"
    env = {**NO_FLUSH_ENV, "REDIS_URL": stranded, "SHUTDOWN_FLUSH_TIMEOUT_S": "3"}
    spoken = speech(JFK)[: SPOKEN_CHUNKS * DEFAULT_CHUNK_SAMPLES * SAMPLE_WIDTH_BYTES]

    async def newcomer(url: str) -> MeetingResult:
        async with connect(url, max_size=MAX_MESSAGE_BYTES) as websocket:
            return await listen(websocket, new_result(url))

    async def meeting(base: str) -> tuple[MeetingResult, MeetingResult, float]:
        url = ws_url(base, "sigterm-stranded")
        async with connect(url, max_size=MAX_MESSAGE_BYTES) as websocket:
            result = new_result(url)
            listening = asyncio.create_task(listen(websocket, result))
            await speak(websocket, frames("jfk", spoken))
            stopped_at = await asyncio.to_thread(sigterm, service.stack, name)
            await asyncio.sleep(1.0)  # the flush waits for windows no worker will answer
            late = await newcomer(ws_url(base, "sigterm-late"))
            return await listening, late, stopped_at

    with replica(service, name, env) as base:
        result, late, stopped_at = run(meeting(base))
        exit_s = wait_gone(service.stack, name)
    closed_after_s = result.messages[-1].arrived_at - stopped_at

    print(f"closed {closed_after_s:.1f} s after SIGTERM; the ingress exited {exit_s:.1f} s later")
    assert result.close_code == 1001, (result.close_code, result.close_reason)
    assert closed_after_s < HANG_S
    assert [(e["code"], e.get("participant_id")) for e in result.errors()] == [(1011, "jfk"), (1001, None)]
    assert "speech not yet transcribed after 3 s is lost" in result.errors()[0]["message"]
    assert not result.finals("jfk")
    assert (late.close_code, late.close_reason) == (1001, "server is shutting down; reconnect to go on")
    assert [e["code"] for e in late.errors()] == [1001]


# ---- two replicas, two workers, one Redis -----------------------------------------------------


def test_replicas_sharing_redis_and_workers_each_get_only_their_own_results(
    speech: Any, reference: Any
) -> None:
    with own_stack("faults-replicas") as stack:
        stack.start_worker("worker-2")
        second = stack.start_ingress("ingress-2", free_port(), {})
        stack.wait_for_workers(2)
        # The same meeting id and participant id on both replicas, at the same time.
        tracks = {stack.base_http_url: speech(JFK), second: speech(OTHER)}

        async def both() -> list[MeetingResult]:
            return list(
                await asyncio.gather(
                    *(
                        stream_meeting(ws_url(base, "same"), [("speaker", pcm)], speed=TEST_SPEED)
                        for base, pcm in tracks.items()
                    )
                )
            )

        first_result, second_result = run(both())

    for result, name in ((first_result, JFK), (second_result, OTHER)):
        assert result.closed_normally, (result.close_code, result.close_reason)
        assert result.errors() == []
        assert_in_order_once(result, "speaker")
        assert_close_to(result.transcript("speaker"), reference(name))
