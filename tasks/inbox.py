"""The windows waiting in the transcribe queue beside a task's own, taken so they share its batch.

A worker process runs one task at a time. When a task starts, its model is free; the windows that
other participants' ingress tasks queued meanwhile are ready too (the ingress keeps at most one
window per participant in flight, so two windows of one participant are never both waiting, and
batching across participants reorders nothing). This takes up to a batch of them straight from the
queue with kombu's `basic_get`, on the process's own broker connection: Celery's consumer, which
prefetches no more than one message per pool process (`worker_prefetch_multiplier=1`, late acks),
has left them there.

Acknowledgement follows Celery's for the task that brought them (late acks): each is acknowledged
when its batch is over, answered or failed. A process that dies first leaves them unacknowledged in
the broker: the ingress sends each again once the process's heartbeat expires (it watches every
window it awaits, `ingress/dispatch.py`), and the visibility timeout restores the message later
still, a copy that finds its audio gone (`tasks/celery_app.py`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from celery import Celery
from kombu import Connection, Message
from pydantic import ValidationError

from service import names
from service.contracts import WindowRequest

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Taken:
    """A window taken from the queue, and its message to acknowledge once its batch is over."""

    request: WindowRequest
    message: Message


class Inbox:
    """The transcribe queue as one worker process reads it directly (connects on first use)."""

    def __init__(self, app: Celery) -> None:
        self._app = app
        self._connection: Connection | None = None
        self._errors: tuple[type[BaseException], ...] = ()

    def take(self, limit: int) -> list[Taken]:
        """Up to `limit` windows waiting now, oldest first; fewer, or none, when the broker fails
        (the task's own window goes on alone)."""
        taken: list[Taken] = []
        if limit <= 0:
            return taken
        connection = self._connect()
        try:
            queue = self._app.amqp.queues[names.TRANSCRIBE_QUEUE](connection.default_channel)
            while len(taken) < limit:
                message = queue.get(no_ack=False, accept=["json"])
                if message is None:
                    break
                request = _window_request(message)
                if request is None:
                    break
                taken.append(Taken(request, message))
        except self._errors as error:
            logger.warning("took %d waiting window(s), then the broker failed: %s", len(taken), error)
            self.close()
        return taken

    def acknowledge(self, taken: list[Taken]) -> None:
        for window in taken:
            try:
                window.message.ack()
            except self._errors as error:
                # It comes back after the visibility timeout, a copy that finds its audio gone.
                logger.warning("window %s: could not acknowledge it: %s", window.request.request_id, error)

    def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            try:
                connection.close()
            except self._errors:
                logger.debug("broker connection already gone")

    def _connect(self) -> Connection:
        if self._connection is None:
            self._connection = self._app.connection_for_read()
            self._errors = (*self._connection.connection_errors, *self._connection.channel_errors)
        return self._connection


def _window_request(message: Message) -> WindowRequest | None:
    """The window a Celery message carries; None, with the message put back, for anything else."""
    headers: dict[str, Any] = message.headers or {}
    if headers.get("task") != names.TRANSCRIBE_TASK:
        # Not a transcribe_window message of Celery's protocol 2: Celery's own consumer runs it.
        logger.warning("left a message of task %r in the queue for Celery", headers.get("task"))
        message.requeue()
        return None
    try:
        args, _kwargs, _embed = message.decode()
        return WindowRequest.model_validate(args[0])
    except (ValueError, TypeError, IndexError, ValidationError):
        # Celery would fail such a task (and acknowledge it): nobody can transcribe it.
        logger.error("dropped an unreadable transcribe_window message %s", headers.get("id"))
        message.ack()
        return None
