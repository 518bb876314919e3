"""Talking to the workers: send a window as a Celery task, get its result back from Redis.

The window's audio goes into Redis once per stretch of the stream, not once per window that
hears it (`audio_ledger.py`: the task names pieces of stored keys), in the same round trip as a
mark that this ingress awaits the window (`names.window_key`) and the window's Celery task message
(`task_messages.py`); the windows dispatched while a round trip is under way share the next one.
Workers append results to this ingress process's reply stream; one reader task per process
routes each result to the participant awaiting it. Nothing here blocks the event loop: Redis is
`redis.asyncio`, and Celery's blocking client is never used to publish.

One watcher task per process looks at every window in flight (every `WATCH_EVERY_S`, in one
round trip for all of them, not one poll loop per window): a worker claims each window it starts
(`names.claim_key`), so a window whose worker's heartbeat has expired (the whole worker died: a
lost node, SIGKILL, OOM) is sent again, under the same request id, instead of after the broker's
visibility timeout (`tasks/celery_app.py`); a window whose audio Redis no longer holds (Redis
restarted, or failed over) can never be answered, and fails instead of waiting for the
transcription timeout (the participant's audio is kept and sent again); when Redis does not answer
the watcher, the windows it watched fail as unreachable, as their own commands would.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis
from celery import Celery
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ingress.audio_ledger import AudioPlan
from ingress.load import LoadGauge
from ingress.metrics import Metrics
from ingress.task_messages import build_task_message
from service import names
from service.audio import BYTES_PER_SECOND
from service.contracts import DecoderHints, ErrorCode, WindowRequest, WindowResult
from streaming.driver import WindowFailed

logger = logging.getLogger(__name__)

READ_BLOCK_MS = 1000
READ_BATCH = 100
GATHER_REPLIES_S = 0.01
"""After a read that found replies, how long the reader lets more gather before the next: under
load one read then takes several replies instead of one each (a read's round trip costs the event
loop more than delivering its reply), and a reply waits at most this much longer; one that comes
while the reader waits is delivered at once (docs/capacity-log.md has the profile)."""
RECONNECT_DELAY_S = 0.5
"""The reply reader's first pause after Redis failed; it doubles up to `MAX_RECONNECT_DELAY_S`."""
MAX_RECONNECT_DELAY_S = 2.0
WATCH_EVERY_S = 2.0
"""How often the windows in flight are checked (each once it has waited this long): its audio
still in Redis, its worker still alive."""
FORGET_EVERY_S = 0.05
"""How late a key nobody needs any more is deleted at most (`Dispatcher.forget`)."""
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
"""Redis did not answer, retries included (`connect_redis`)."""


def connect_redis(url: str, max_connections: int, pool_timeout_s: float) -> aioredis.Redis:
    """A pooled client. The pool is bounded and blocking: past `max_connections` a command waits
    up to `pool_timeout_s` for a free connection (redis-py's default pool raises "Too many
    connections" at once, and 256 talkers on one ingress met it). After Redis restarts, each pooled
    connection is dead: a command that meets one retries on a fresh connection (3 times within a
    second), instead of failing once per connection; a Redis that stays down still fails fast."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=pool_timeout_s,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    return aioredis.Redis.from_pool(pool)  # closing the client closes its pool


class TranscriptionError(WindowFailed):
    """A window's failure as the workers or Redis reported it; permanent when the loaded model
    cannot serve the participant's language."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message, permanent=code == ErrorCode.UNSUPPORTED_LANGUAGE)
        self.code = code

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass
class _InFlight:
    """A window sent to the workers and not yet answered."""

    request: WindowRequest
    final: bool
    future: asyncio.Future[WindowResult]
    sent_s: float | None = None
    """When its task was published (monotonic); the watcher looks at it from then on."""


@dataclass
class _QueuedStore:
    """A window whose audio and task wait for the next round trip."""

    request: WindowRequest
    audio: AudioPlan
    final: bool
    done: asyncio.Future[None]


class Dispatcher:
    """One per ingress process; its random id keeps its replies apart from other replicas'."""

    def __init__(
        self,
        redis_client: aioredis.Redis,
        celery_app: Celery,
        metrics: Metrics,
        load: LoadGauge | None = None,
    ) -> None:
        self.ingress_id = uuid.uuid4().hex
        self.reply_stream = names.reply_stream(self.ingress_id)
        self._redis = redis_client
        self._celery = celery_app
        self._metrics = metrics
        self._pending: dict[str, _InFlight] = {}
        self._reader: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._forgotten: list[str] = []
        self._forgetter: asyncio.Task[None] | None = None
        self._to_store: list[_QueuedStore] = []
        """Windows waiting for the round trip that stores them (`_store_queued`)."""
        self._storer: asyncio.Task[None] | None = None
        self.load = load or LoadGauge(limit_s=0.0)
        """Round trips of this process's windows: whether the worker pool keeps up."""

    async def start(self) -> None:
        self._reader = asyncio.create_task(self._read_replies(), name="reply-reader")
        self._watcher = asyncio.create_task(self._watch(), name="window-watcher")

    async def stop(self) -> None:
        tasks = [task for task in (self._reader, self._watcher, self._storer) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for window in self._pending.values():
            window.future.cancel()
        if self._forgetter is not None:
            await asyncio.gather(self._forgetter, return_exceptions=True)
        try:
            await self._redis.delete(self.reply_stream)
        except (RedisConnectionError, RedisTimeoutError):
            logger.warning("could not delete reply stream %s; it expires by itself", self.reply_stream)

    async def live_workers(self) -> int:
        """Worker processes whose heartbeat key exists; raises Redis errors when Redis does not answer."""
        seconds, _microseconds = await self._redis.time()
        return int(await self._redis.zcount(names.READY_WORKERS, f"({seconds}", "+inf"))

    async def transcribe(
        self,
        audio: AudioPlan,
        language: str,
        hints: DecoderHints,
        timeout_s: float,
        final: bool = False,
        detect_language: bool = False,
    ) -> WindowResult:
        """Store what the window's audio needs, send the window and wait for its result; raises
        TranscriptionError on any failure (the participant's ledger then trusts nothing stored)."""
        request_id = uuid.uuid4().hex
        request = WindowRequest(
            **hints.model_dump(),
            request_id=request_id,
            audio=audio.pieces,
            reply_to=self.reply_stream,
            language=language,
            detect_language=detect_language,
        )
        window = _InFlight(request, final, asyncio.get_running_loop().create_future())
        self._pending[request_id] = window
        self._metrics.windows_dispatched.labels(kind="final" if final else "interim").inc()
        started = time.monotonic()
        self.load.sent(request_id, started)
        try:
            async with asyncio.timeout(timeout_s):
                await self._store(request, audio, final)
                window.sent_s = time.monotonic()
                result = await window.future
                self.load.answered(request_id, time.monotonic())
        except TimeoutError:
            raise TranscriptionError(
                ErrorCode.TIMEOUT, f"no worker answered within {timeout_s:.0f} s"
            ) from None
        except UNREACHABLE as error:
            raise TranscriptionError(ErrorCode.BROKER_UNAVAILABLE, f"cannot reach Redis: {error}") from None
        finally:
            self._pending.pop(request_id, None)
            self.load.dropped(request_id)  # a no-op once answered
            # Whatever happened: a copy of the task still queued, or redelivered later, finds
            # nobody waiting and costs a worker nothing.
            self.forget([names.window_key(request_id)])
        self._metrics.window_round_trip.observe(time.monotonic() - started)
        if result.error_code:
            raise TranscriptionError(result.error_code, result.error_message or result.error_code)
        self._metrics.model_compute.observe(result.compute_s)
        return result

    async def _store(self, request: WindowRequest, audio: AudioPlan, final: bool) -> None:
        """Store what the window needs and send its task, in the next round trip (`_store_queued`);
        raises Redis's errors."""
        queued = _QueuedStore(request, audio, final, asyncio.get_running_loop().create_future())
        self._to_store.append(queued)
        if self._storer is None:
            self._storer = asyncio.create_task(self._store_queued(), name="window-storer")
        await queued.done
        self._metrics.audio_stored_seconds.inc(sum(len(pcm) for _, pcm in audio.uploads) / BYTES_PER_SECOND)
        self._metrics.window_audio_seconds.inc(audio.bytes / BYTES_PER_SECOND)

    async def _store_queued(self) -> None:
        """One round trip at a time, for every window queued meanwhile: under load the windows of
        many participants share one pipeline instead of one each (taking a connection from the
        pool and giving it back, sending, reading the replies); a window alone goes at once."""
        batch: list[_QueuedStore] = []
        try:
            while self._to_store:
                # A window whose wait was cancelled meanwhile (its timeout) is not sent.
                batch = [queued for queued in self._to_store if not queued.done.done()]
                self._to_store = []
                try:
                    await self._store_batch(batch)
                except Exception as error:  # each window of the round trip meets its failure
                    settle(batch, error)
                else:
                    settle(batch, None)
        except asyncio.CancelledError:  # the ingress stops
            for queued in [*batch, *self._to_store]:
                queued.done.cancel()
            raise
        finally:
            self._storer = None

    async def _store_batch(self, batch: list[_QueuedStore]) -> None:
        """For each window in order: the audio it is first to need, the time to live of what it
        shares with earlier windows, the stretches no window needs any more and the mark that
        this ingress awaits it; last the windows' tasks, one LPUSH a queue in the windows' order
        (a worker may take a task at once, so its audio goes first)."""
        if not batch:
            return
        tasks: dict[str, list[str]] = {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for queued in batch:
                audio, request = queued.audio, queued.request
                if audio.forgotten:
                    pipe.delete(*audio.forgotten)
                for key, pcm in audio.uploads:
                    pipe.set(key, pcm, ex=names.AUDIO_TTL_S)
                for key in audio.renewed:
                    pipe.expire(key, names.AUDIO_TTL_S)
                pipe.set(names.window_key(request.request_id), 1, ex=names.AUDIO_TTL_S)
                task = build_task_message(self._celery, request, queued.final)
                tasks.setdefault(task.queue_list, []).append(task.raw)
            for queue, messages in tasks.items():
                pipe.lpush(queue, *messages)  # the first is popped first: workers pop the tail
            await pipe.execute()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_EVERY_S)
            watched = [
                window
                for window in self._pending.values()
                if window.sent_s is not None and time.monotonic() - window.sent_s >= WATCH_EVERY_S
            ]
            if not watched:
                continue
            try:
                await self._check(watched)
            except UNREACHABLE as error:
                unreachable = TranscriptionError(ErrorCode.BROKER_UNAVAILABLE, f"cannot reach Redis: {error}")
                for window in watched:
                    fail(window.future, unreachable)

    async def _check(self, watched: list[_InFlight]) -> None:
        """Re-send the windows whose worker died, fail those whose audio Redis lost."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for window in watched:
                keys = [names.window_key(window.request.request_id), *audio_keys(window.request)]
                pipe.exists(*keys)
                pipe.get(names.claim_key(window.request.request_id))
            replies = await pipe.execute()
        states = [
            (window, replies[2 * i] == 1 + len(audio_keys(window.request)), replies[2 * i + 1])
            for i, window in enumerate(watched)
        ]
        workers = sorted({worker.decode(errors="replace") for _, _, worker in states if worker is not None})
        async with self._redis.pipeline(transaction=False) as pipe:
            for worker in workers:
                pipe.exists(names.worker_heartbeat_key(worker))
            alive = dict(zip(workers, await pipe.execute(), strict=True))
        orphans: list[_InFlight] = []
        for window, audio_kept, worker in states:
            if window.future.done():
                continue  # answered while we looked
            if not audio_kept:
                lost = "Redis lost this window before a worker answered (was it restarted?)"
                fail(window.future, TranscriptionError(ErrorCode.WINDOW_LOST, lost))
            elif worker is not None and not alive[worker.decode(errors="replace")]:
                logger.warning(
                    "window %s: worker %s stopped beating while transcribing it; sending it again",
                    window.request.request_id,
                    worker.decode(errors="replace"),
                )
                orphans.append(window)
        if orphans:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.delete(*(names.claim_key(w.request.request_id) for w in orphans))
                for window in orphans:
                    task = build_task_message(self._celery, window.request, window.final)
                    pipe.lpush(task.queue_list, task.raw)
                await pipe.execute()

    def forget(self, keys: list[str]) -> None:
        """Delete keys in the background: nobody waits for it, and they expire anyway. Keys
        forgotten within `FORGET_EVERY_S` of each other go in one command (a round trip costs the
        ingress more CPU than anything else a window needs but the VAD)."""
        if not keys:
            return
        self._forgotten.extend(keys)
        if self._forgetter is None:
            self._forgetter = asyncio.create_task(self._forget_soon(), name="key-forgetter")

    async def _forget_soon(self) -> None:
        await asyncio.sleep(FORGET_EVERY_S)
        keys, self._forgotten, self._forgetter = self._forgotten, [], None
        try:
            await self._redis.delete(*keys)
        except (RedisConnectionError, RedisTimeoutError):
            logger.debug("could not delete %d key(s); they expire by themselves", len(keys))

    async def _read_replies(self) -> None:
        last_id = "0-0"
        delay_s = RECONNECT_DELAY_S
        while True:
            try:
                batches = await self._redis.xread(
                    {self.reply_stream: last_id}, block=READ_BLOCK_MS, count=READ_BATCH
                )
            except (RedisConnectionError, RedisTimeoutError) as error:
                logger.warning(
                    "reply stream %s: %s; reconnecting in %.1f s", self.reply_stream, error, delay_s
                )
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, MAX_RECONNECT_DELAY_S)
                continue
            if delay_s > RECONNECT_DELAY_S:
                logger.info("reply stream %s: reading again", self.reply_stream)
                delay_s = RECONNECT_DELAY_S
            replies = cast(list[Any], batches or [])  # RESP2: [[stream, [(id, fields), ...]], ...]
            delivered = 0
            for _stream, entries in replies:
                for entry_id, fields in entries:
                    last_id = entry_id
                    self._deliver(fields)
                    delivered += 1
            if 0 < delivered < READ_BATCH:
                await asyncio.sleep(GATHER_REPLIES_S)

    def _deliver(self, fields: dict[bytes, bytes]) -> None:
        try:
            result = WindowResult.model_validate_json(fields[b"result"])
        except (KeyError, ValueError):
            logger.error("reply stream %s: unreadable entry dropped", self.reply_stream)
            return
        window = self._pending.get(result.request_id)
        if window is not None and not window.future.done():
            window.future.set_result(result)


def audio_keys(request: WindowRequest) -> list[str]:
    return list(dict.fromkeys(piece.key for piece in request.audio))


def settle(batch: list[_QueuedStore], error: Exception | None) -> None:
    """Tell each window of a round trip that it is stored, or that it failed with `error`."""
    for queued in batch:
        if queued.done.done():
            continue
        if error is None:
            queued.done.set_result(None)
        else:
            queued.done.set_exception(error)


def fail(future: asyncio.Future[WindowResult], error: TranscriptionError) -> None:
    if not future.done():
        future.set_exception(error)
