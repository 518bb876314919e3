"""`transcribe_window`: fetch a window's audio from Redis, run the model, append the result to the
ingress's reply stream. The model is built once per worker process, never at import."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery, signals

from models.transcriber import Transcriber, UnsupportedLanguageError
from service import names
from service.contracts import WindowRequest, WindowResult
from service.settings import Settings

logger = logging.getLogger(__name__)


@dataclass
class WorkerResources:
    transcriber: Transcriber
    redis: redis.Redis
    worker_id: str
    """This process's name in its heartbeat key and in the claims on the windows it transcribes."""


class _ProcessResources:
    """Built on first use in each worker process (prefork children build it at start-up)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._resources: WorkerResources | None = None
        self._pid = 0

    def get(self) -> WorkerResources:
        if self._resources is None or self._pid != os.getpid():
            self._pid = os.getpid()
            self._resources = WorkerResources(
                transcriber=Transcriber.from_settings(self._settings),
                redis=redis.Redis.from_url(self._settings.broker_url),
                worker_id=f"{socket.gethostname()}:{self._pid}",
            )
        return self._resources


def start_heartbeat(client: redis.Redis, worker_id: str) -> threading.Thread:
    """Advertise this process (its model is loaded) to the ingress: its readiness check, and its
    watch over windows in flight (a window claimed by a process whose heartbeat is gone is sent again)."""

    def beat() -> None:
        while True:
            try:
                announce(client, worker_id)
            except redis.RedisError as error:
                logger.warning("worker heartbeat: %s", error)
            time.sleep(names.WORKER_HEARTBEAT_EVERY_S)

    thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
    thread.start()
    return thread


def announce(client: redis.Redis, worker_id: str) -> None:
    """One heartbeat (`client` may be a pipeline)."""
    client.set(names.worker_heartbeat_key(worker_id), "ready", ex=names.WORKER_HEARTBEAT_TTL_S)


def claim(client: redis.Redis, request_id: str, worker_id: str) -> None:
    """Tell the waiting ingress which process works on the window, so it notices if that one dies.

    The heartbeat is renewed with the claim: after Redis restarts, the heartbeat thread writes it
    again only at its next beat, and a claim naming a process with no heartbeat gets re-sent."""
    with client.pipeline(transaction=False) as pipe:
        pipe.set(names.claim_key(request_id), worker_id, ex=names.AUDIO_TTL_S)
        announce(pipe, worker_id)
        pipe.execute()


def publish_result(client: redis.Redis, reply_to: str, result: WindowResult) -> None:
    with client.pipeline(transaction=False) as pipe:
        pipe.delete(names.claim_key(result.request_id))
        pipe.xadd(
            reply_to,
            {"result": result.model_dump_json()},
            maxlen=names.REPLY_STREAM_MAXLEN,
            approximate=True,
        )
        pipe.expire(reply_to, names.REPLY_STREAM_TTL_S)
        pipe.incrbyfloat(names.COMPUTE_SECONDS, result.compute_s)
        pipe.incr(names.WINDOWS_TRANSCRIBED)
        pipe.execute()


def transcribe_request(resources: WorkerResources, request: WindowRequest) -> WindowResult:
    pcm = resources.redis.get(request.audio_key)
    if not isinstance(pcm, bytes):
        return WindowResult(
            request_id=request.request_id,
            error_code="audio_expired",
            error_message="the window's audio expired before a worker picked it up",
        )
    try:
        transcription = resources.transcriber.transcribe(pcm, request.language, request.prompt)
    except UnsupportedLanguageError as error:
        return WindowResult(
            request_id=request.request_id, error_code="unsupported_language", error_message=str(error)
        )
    return WindowResult(
        request_id=request.request_id, words=transcription.words, compute_s=transcription.compute_s
    )


def register_tasks(app: Celery, settings: Settings) -> None:
    resources = _ProcessResources(settings)

    @signals.worker_process_init.connect(weak=False)
    def _load_model(**_: Any) -> None:
        worker = resources.get()
        start_heartbeat(worker.redis, worker.worker_id)

    @app.task(name=names.TRANSCRIBE_TASK)
    def transcribe_window(payload: dict[str, Any]) -> None:
        request = WindowRequest.model_validate(payload)
        worker = resources.get()
        try:
            claim(worker.redis, request.request_id, worker.worker_id)
            result = transcribe_request(worker, request)
        except Exception as error:
            # The one catch-all of the task: tell the waiting participant, then let Celery see it.
            logger.exception("window %s failed", request.request_id)
            publish_result(
                worker.redis,
                request.reply_to,
                WindowResult(
                    request_id=request.request_id,
                    error_code="transcription_failed",
                    error_message=f"{type(error).__name__}: {error}",
                ),
            )
            raise
        publish_result(worker.redis, request.reply_to, result)
