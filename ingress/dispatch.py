"""Talking to the workers: send a window as a Celery task, get its result back from Redis.

The window's PCM goes into a Redis key (binary, with a TTL) and the task carries only the key.
Workers append results to this ingress process's reply stream; one reader task per process
routes each result to the participant awaiting it. Nothing here blocks the event loop: Redis is
`redis.asyncio`, and Celery's blocking publish runs in a thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any, cast

import redis.asyncio as aioredis
from celery import Celery
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ingress.metrics import Metrics
from service import names
from service.contracts import WindowRequest, WindowResult

logger = logging.getLogger(__name__)

READ_BLOCK_MS = 1000
READ_BATCH = 100
RECONNECT_DELAY_S = 0.5


class TranscriptionError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Dispatcher:
    """One per ingress process; its random id keeps its replies apart from other replicas'."""

    def __init__(self, redis_client: aioredis.Redis, celery_app: Celery, metrics: Metrics) -> None:
        self.ingress_id = uuid.uuid4().hex
        self.reply_stream = names.reply_stream(self.ingress_id)
        self._redis = redis_client
        self._celery = celery_app
        self._metrics = metrics
        self._pending: dict[str, asyncio.Future[WindowResult]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._reader = asyncio.create_task(self._read_replies(), name="reply-reader")

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        for future in self._pending.values():
            future.cancel()
        try:
            await self._redis.delete(self.reply_stream)
        except (RedisConnectionError, RedisTimeoutError):
            logger.warning("could not delete reply stream %s; it expires by itself", self.reply_stream)

    async def live_workers(self) -> int:
        """Worker processes whose heartbeat key exists; raises Redis errors when Redis does not answer."""
        await self._redis.ping()
        return len([key async for key in self._redis.scan_iter(match=names.worker_heartbeat_pattern())])

    async def transcribe(
        self, pcm: bytes, language: str, prompt: str, timeout_s: float, final: bool = False
    ) -> WindowResult:
        """Send one window and wait for its result; raises TranscriptionError on any failure."""
        request_id = uuid.uuid4().hex
        request = WindowRequest(
            request_id=request_id,
            audio_key=names.audio_key(request_id),
            reply_to=self.reply_stream,
            language=language,
            prompt=prompt,
        )
        future: asyncio.Future[WindowResult] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        self._metrics.windows_dispatched.labels(kind="final" if final else "interim").inc()
        started = time.monotonic()
        try:
            await self._redis.set(request.audio_key, pcm, ex=names.AUDIO_TTL_S)
            await asyncio.to_thread(self._send_task, request.model_dump())
            result = await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            raise TranscriptionError("timeout", f"no worker answered within {timeout_s:.0f} s") from None
        except (RedisConnectionError, RedisTimeoutError, OSError) as error:
            raise TranscriptionError("broker_unavailable", f"cannot reach Redis: {error}") from None
        finally:
            self._pending.pop(request_id, None)
        self._metrics.window_round_trip.observe(time.monotonic() - started)
        await self._forget_audio(request.audio_key)
        if result.error_code:
            raise TranscriptionError(result.error_code, result.error_message or result.error_code)
        self._metrics.model_compute.observe(result.compute_s)
        return result

    def _send_task(self, payload: dict[str, Any]) -> None:
        self._celery.send_task(names.TRANSCRIBE_TASK, args=[payload], queue=names.TRANSCRIBE_QUEUE)

    async def _forget_audio(self, key: str) -> None:
        try:
            await self._redis.delete(key)
        except (RedisConnectionError, RedisTimeoutError):
            logger.debug("could not delete %s; it expires by itself", key)

    async def _read_replies(self) -> None:
        last_id = "0-0"
        while True:
            try:
                batches = await self._redis.xread(
                    {self.reply_stream: last_id}, block=READ_BLOCK_MS, count=READ_BATCH
                )
            except (RedisConnectionError, RedisTimeoutError) as error:
                logger.warning("reply stream %s: %s; reconnecting", self.reply_stream, error)
                await asyncio.sleep(RECONNECT_DELAY_S)
                continue
            replies = cast(list[Any], batches or [])  # RESP2: [[stream, [(id, fields), ...]], ...]
            for _stream, entries in replies:
                for entry_id, fields in entries:
                    last_id = entry_id
                    self._deliver(fields)

    def _deliver(self, fields: dict[bytes, bytes]) -> None:
        try:
            result = WindowResult.model_validate_json(fields[b"result"])
        except (KeyError, ValueError):
            logger.error("reply stream %s: unreadable entry dropped", self.reply_stream)
            return
        future = self._pending.get(result.request_id)
        if future is not None and not future.done():
            future.set_result(result)
