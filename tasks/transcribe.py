"""`transcribe_window`: fetch a window's audio from Redis, run the model, append the result to the
ingress's reply stream. The model is built once per worker process, never at import.

Each task also takes the windows waiting beside it in the queue, up to WHISPER_BATCH_SIZE in all
(`tasks/inbox.py`), and runs them through the model together; each window is claimed, answered and
fails on its own."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import redis
from celery import Celery, signals

from models.transcriber import Transcriber, Transcription, UnsupportedLanguageError, Window
from service import names
from service.contracts import ErrorCode, WindowRequest, WindowResult
from service.settings import Settings
from tasks.inbox import Inbox
from tasks.metrics import WorkerMetrics

logger = logging.getLogger(__name__)


class WindowTranscriber(Protocol):
    """What a worker process needs of its model: `models.transcriber.Transcriber`, or the fixed-cost
    stand-in of the pipeline benchmark (`bench/standin.py`), which only that benchmark's own worker
    entry point passes in."""

    load_s: float

    @property
    def decoder_calls(self) -> int:
        """Model (decoder) calls made so far: windows over calls is the batch fill."""
        ...

    def check_language(self, language: str) -> None: ...

    def transcribe_batch(self, windows: Sequence[Window]) -> list[Transcription]: ...

    def warm_up(self) -> float: ...


LoadTranscriber = Callable[[Settings], WindowTranscriber]


@dataclass
class WorkerResources:
    transcriber: WindowTranscriber
    redis: redis.Redis
    worker_id: str
    """This process's name in its heartbeat key and in the claims on the windows it transcribes."""
    inbox: Inbox


class _ProcessResources:
    """Built on first use in each worker process (prefork children build it at start-up)."""

    def __init__(self, app: Celery, settings: Settings, load_transcriber: LoadTranscriber) -> None:
        self._app = app
        self._settings = settings
        self._load_transcriber = load_transcriber
        self._resources: WorkerResources | None = None
        self._pid = 0

    def get(self) -> WorkerResources:
        if self._resources is None or self._pid != os.getpid():
            self._pid = os.getpid()
            self._resources = WorkerResources(
                transcriber=self._load_transcriber(self._settings),
                redis=redis.Redis.from_url(self._settings.broker_url),
                worker_id=f"{socket.gethostname()}:{self._pid}",
                inbox=Inbox(self._app),
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


ANNOUNCE_SCRIPT = """
-- KEYS: this worker's heartbeat key, the set of ready workers. ARGV: worker id, time to live (s).
-- Scored in Redis's own clock, so the workers' and the ingresses' clocks never need to agree.
local now = tonumber(redis.call('TIME')[1])
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[1], 'ready', 'EX', ttl)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
-- The set outlives its longest heartbeat, never shortened by a beat with a shorter one.
if redis.call('TTL', KEYS[2]) < ttl then redis.call('EXPIRE', KEYS[2], ttl) end
return 1
"""


def announce(client: redis.Redis, worker_id: str, ttl_s: int = names.WORKER_HEARTBEAT_TTL_S) -> None:
    """One heartbeat (`client` may be a pipeline): the worker's own key, which the ingress looks at
    for the windows it claimed, and its place in the set of ready workers, which /readyz counts."""
    client.eval(
        ANNOUNCE_SCRIPT, 2, names.worker_heartbeat_key(worker_id), names.READY_WORKERS, worker_id, ttl_s
    )


def claim(client: redis.Redis, request_ids: list[str], worker_id: str) -> None:
    """Tell the waiting ingresses which process works on the windows, so they notice if it dies.

    The heartbeat is renewed with the claims: after Redis restarts, the heartbeat thread writes it
    again only at its next beat, and a claim naming a process with no heartbeat gets re-sent."""
    with client.pipeline(transaction=False) as pipe:
        for request_id in request_ids:
            pipe.set(names.claim_key(request_id), worker_id, ex=names.AUDIO_TTL_S)
        announce(pipe, worker_id)
        pipe.execute()


def publish_results(
    client: redis.Redis, answers: list[tuple[WindowRequest, WindowResult]], batch: bool = False
) -> None:
    """Each result to its own ingress's reply stream, in one round trip; `batch`: they are one
    batch's (counted: windows per batch is the batch fill)."""
    with client.pipeline(transaction=False) as pipe:
        if batch:
            pipe.incr(names.BATCHES_TRANSCRIBED)
        for request, result in answers:
            pipe.delete(names.claim_key(result.request_id))
            pipe.xadd(
                request.reply_to,
                {"result": result.model_dump_json()},
                maxlen=names.REPLY_STREAM_MAXLEN,
                approximate=True,
            )
            pipe.expire(request.reply_to, names.REPLY_STREAM_TTL_S)
            pipe.incrbyfloat(names.COMPUTE_SECONDS, result.compute_s)
            pipe.incr(names.WINDOWS_TRANSCRIBED)
        pipe.execute()


UNAVAILABLE = {
    ErrorCode.AUDIO_EXPIRED: "the window's audio expired before a worker picked it up",
    ErrorCode.WINDOW_ABANDONED: (
        "the ingress no longer awaits this window (answered, failed or gone): not transcribed"
    ),
}


@dataclass(frozen=True)
class Answer:
    result: WindowResult
    error: Exception | None = None
    """What made the window fail, when something unexpected did (logged; its task re-raises it)."""


def transcribe_requests(resources: WorkerResources, requests: list[WindowRequest]) -> list[Answer]:
    """Results of windows transcribed together, in order; one bad window fails alone."""
    pcms = window_audio(resources.redis, requests)
    answers: dict[int, Answer] = {}
    ready: list[tuple[int, Window]] = []
    for index, (request, pcm) in enumerate(zip(requests, pcms, strict=True)):
        if isinstance(pcm, ErrorCode):
            answers[index] = Answer(failure(request, pcm, UNAVAILABLE[pcm]))
            continue
        try:
            resources.transcriber.check_language(request.language)
        except UnsupportedLanguageError as error:
            answers[index] = Answer(failure(request, ErrorCode.UNSUPPORTED_LANGUAGE, str(error)))
            continue
        # A request is its hints.
        ready.append((index, Window(pcm, request.language, request, request.detect_language)))
    outcomes = transcribe_windows(resources.transcriber, [window for _, window in ready])
    for (index, _), outcome in zip(ready, outcomes, strict=True):
        request = requests[index]
        if isinstance(outcome, Transcription):
            answers[index] = Answer(
                WindowResult(
                    request_id=request.request_id,
                    words=outcome.words,
                    compute_s=outcome.compute_s,
                    language=outcome.language,
                    language_probability=outcome.language_probability,
                )
            )
        else:
            # A window that failed unexpectedly (`transcribe_windows` is its one catch-all): logged,
            # told to its participant; the task re-raises it when the window is its own.
            logger.error("window %s failed", request.request_id, exc_info=outcome)
            message = f"{type(outcome).__name__}: {outcome}"
            answers[index] = Answer(failure(request, ErrorCode.TRANSCRIPTION_FAILED, message), outcome)
    return [answers[index] for index in range(len(requests))]


def window_audio(client: redis.Redis, requests: list[WindowRequest]) -> list[bytes | ErrorCode]:
    """Each window's PCM, its pieces joined, in one round trip for the batch (a key several windows
    share is fetched once); where it cannot be had, the error code of its failure instead."""
    awaited = [names.window_key(request.request_id) for request in requests]
    keys = list(dict.fromkeys(piece.key for request in requests for piece in request.audio))
    values = client.mget([*awaited, *keys])
    marks, audio = values[: len(awaited)], values[len(awaited) :]
    stored = {key: value for key, value in zip(keys, audio, strict=True) if isinstance(value, bytes)}
    pcms: list[bytes | ErrorCode] = []
    for request, mark in zip(requests, marks, strict=True):
        if mark is None:
            pcms.append(ErrorCode.WINDOW_ABANDONED)
        elif all(piece.key in stored for piece in request.audio):
            pcms.append(b"".join(stored[piece.key][piece.start : piece.end] for piece in request.audio))
        else:
            pcms.append(ErrorCode.AUDIO_EXPIRED)
    return pcms


def transcribe_windows(
    transcriber: WindowTranscriber, windows: list[Window]
) -> list[Transcription | Exception]:
    """The windows in one batch; if the batch fails, each on its own, so only a bad one fails."""
    if not windows:
        return []
    try:
        return list(transcriber.transcribe_batch(windows))
    except Exception as error:
        if len(windows) == 1:
            return [error]
        logger.warning("a batch of %d windows failed (%s); transcribing each alone", len(windows), error)
    outcomes: list[Transcription | Exception] = []
    for window in windows:
        try:
            outcomes.append(transcriber.transcribe_batch([window])[0])
        except Exception as error:
            outcomes.append(error)
    return outcomes


def failure(request: WindowRequest, code: ErrorCode, message: str) -> WindowResult:
    return WindowResult(request_id=request.request_id, error_code=code, error_message=message)


def record(metrics: WorkerMetrics, results: list[WindowResult], decoder_calls: int) -> None:
    metrics.batch_size.observe(len(results))
    metrics.decoder_calls.inc(decoder_calls)
    for result in results:
        metrics.windows.labels(outcome=result.error_code or "ok").inc()
        if not result.error_code:
            metrics.window_seconds.observe(result.compute_s)


def register_tasks(
    app: Celery, settings: Settings, load_transcriber: LoadTranscriber = Transcriber.from_settings
) -> None:
    resources = _ProcessResources(app, settings, load_transcriber)

    metrics: list[WorkerMetrics] = []  # one per process, made after the fork (see tasks/metrics.py)

    def recorder() -> WorkerMetrics:
        if not metrics:
            metrics.append(WorkerMetrics.create())
        return metrics[0]

    @signals.worker_process_init.connect(weak=False)
    def _load_model(**_: Any) -> None:
        worker = resources.get()
        recorder().model_load_seconds.set(worker.transcriber.load_s)
        recorder().warm_up_seconds.set(worker.transcriber.warm_up())
        start_heartbeat(worker.redis, worker.worker_id)

    @app.task(name=names.TRANSCRIBE_TASK)
    def transcribe_window(payload: dict[str, Any]) -> None:
        request = WindowRequest.model_validate(payload)
        worker = resources.get()
        others = worker.inbox.take(settings.whisper_batch_size - 1)
        if others:
            logger.debug("window %s: %d waiting window(s) join its batch", request.request_id, len(others))
        requests = [request, *(other.request for other in others)]
        try:
            claim(worker.redis, [r.request_id for r in requests], worker.worker_id)
            calls_before = worker.transcriber.decoder_calls
            answers = transcribe_requests(worker, requests)
            results = [(r, a.result) for r, a in zip(requests, answers, strict=True)]
            publish_results(worker.redis, results, batch=True)
            record(
                recorder(),
                [answer.result for answer in answers],
                worker.transcriber.decoder_calls - calls_before,
            )
        except Exception as error:
            # Redis failed under the batch: tell every waiting participant, then let Celery see it.
            logger.exception("windows %s failed", ", ".join(r.request_id for r in requests))
            message = f"{type(error).__name__}: {error}"
            publish_results(
                worker.redis, [(r, failure(r, ErrorCode.TRANSCRIPTION_FAILED, message)) for r in requests]
            )
            raise
        finally:
            worker.inbox.acknowledge(others)
        if answers[0].error is not None:
            raise answers[0].error
