"""The windows waiting in the transcribe queue beside a task's own, taken so they share its batch.

A worker process runs one task at a time. When a task starts, its model is free; the windows that
other participants' ingress tasks queued meanwhile are ready too (the ingress keeps at most one
window per participant in flight, so two windows of one participant are never both waiting, and
batching across participants reorders nothing). This takes up to a batch of them straight from the
queue, on the process's own broker connection: Celery's consumer, which prefetches no more than one
message per pool process (`worker_prefetch_multiplier=1`, late acks), has left them there.

They are taken in one round trip, whatever their number: a Lua script pops them from the queue's
priority lists in kombu's order (finals first, oldest first) and books each as delivered and not
yet acknowledged, in the hash and index kombu's Redis transport keeps for the purpose, in the same
step (kombu's `basic_get` pops and books one message at a time, three round trips each; taking 31
windows so cost a quarter of the worker's CPU in `make bench-pipeline`). Nothing is ever popped
without being booked, even when the worker dies between the two.

Acknowledgement follows Celery's for the task that brought them (late acks): all of a batch's are
acknowledged in one round trip when it is over, answered or failed. A process that dies first
leaves them booked: the ingress sends each again once the process's heartbeat expires (it watches
every window it awaits, `ingress/dispatch.py`), and kombu's visibility timeout restores the message
later still, a copy that finds its audio gone (`tasks/celery_app.py`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery import Celery
from kombu import Connection
from kombu.exceptions import OperationalError
from pydantic import ValidationError

from service import names
from service.contracts import WindowRequest

logger = logging.getLogger(__name__)

TAKE_SCRIPT = """
-- KEYS: the unacked hash, its index (sorted by delivery time), then the queue's lists in the order
-- they are served. ARGV[1]: how many messages at most. Returns the raw messages taken, in order.
local now = redis.call('TIME')
local stamp = tonumber(now[1]) + tonumber(now[2]) / 1000000
local taken = {}
for index = 3, #KEYS do
    local want = tonumber(ARGV[1]) - #taken
    if want <= 0 then break end
    local items = redis.call('RPOP', KEYS[index], want)
    if items then
        for _, raw in ipairs(items) do
            local ok, message = pcall(cjson.decode, raw)
            if ok and type(message) == 'table' and type(message.properties) == 'table'
                    and message.properties.delivery_tag then
                local tag = message.properties.delivery_tag
                local delivery = message.properties.delivery_info or {}
                -- kombu's own record of a delivered message: [message, exchange, routing key]
                local record = '[' .. raw .. ',' .. cjson.encode(delivery.exchange or '') .. ','
                    .. cjson.encode(delivery.routing_key or '') .. ']'
                redis.call('HSET', KEYS[1], tag, record)
                redis.call('ZADD', KEYS[2], stamp, tag)
            end
            taken[#taken + 1] = raw
        end
    end
end
return taken
"""


@dataclass(frozen=True)
class Taken:
    """A window taken from the queue, and the tag that acknowledges its message once its batch is over."""

    request: WindowRequest
    delivery_tag: str


class Inbox:
    """The transcribe queue as one worker process reads it directly (connects on first use)."""

    def __init__(self, app: Celery) -> None:
        self._app = app
        self._connection: Connection | None = None
        self._errors: tuple[type[BaseException], ...] = ()

    def take(self, limit: int) -> list[Taken]:
        """Up to `limit` windows waiting now, finals first, oldest first; none when the broker fails
        (the task's own window goes on alone)."""
        if limit <= 0:
            return []
        try:
            channel: Any = self._connect().default_channel  # kombu.transport.redis.Channel
            # kombu's names of the queue's lists, one per priority step (private, but what its own
            # consumer reads; test_inbox.py takes from a queue Celery filled, so a change shows).
            lists = [channel._q_for_pri(names.TRANSCRIBE_QUEUE, step) for step in channel.priority_steps]
            with channel.conn_or_acquire() as client:
                raws = client.eval(
                    TAKE_SCRIPT, 2 + len(lists), channel.unacked_key, channel.unacked_index_key, *lists, limit
                )
        except self._errors as error:
            logger.warning("could not take waiting windows, the broker failed: %s", error)
            self.close()
            return []
        taken = []
        for raw in raws:
            window = self._read(channel, raw)
            if window is not None:
                taken.append(window)
        return taken

    def acknowledge(self, taken: list[Taken]) -> None:
        if not taken:
            return
        try:
            forget(self._connect().default_channel, [window.delivery_tag for window in taken])
        except self._errors as error:
            # They come back after the visibility timeout, copies that find their audio gone.
            ids = ", ".join(window.request.request_id for window in taken)
            logger.warning("windows %s: could not acknowledge them: %s", ids, error)
            self.close()

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
            # kombu raises OperationalError when it cannot (re)connect at all, the transport's own
            # errors when a connection it had fails.
            self._errors = (
                OperationalError,
                *self._connection.connection_errors,
                *self._connection.channel_errors,
            )
        return self._connection

    def _read(self, channel: Any, raw: bytes) -> Taken | None:
        """The window a Celery message carries. Anything else is dealt with as Celery would: another
        task's message goes back to the queue for Celery's consumer, an unreadable one is dropped."""
        try:
            payload = json.loads(raw)
            tag = payload["properties"]["delivery_tag"]
            headers: dict[str, Any] = payload.get("headers") or {}
        except (ValueError, TypeError, KeyError):
            logger.error("dropped an unreadable message from the transcribe queue")
            return None
        if headers.get("task") != names.TRANSCRIBE_TASK:
            # Not a transcribe_window message of Celery's protocol 2: Celery's own consumer runs it.
            logger.warning("left a message of task %r in the queue for Celery", headers.get("task"))
            self._settle(lambda: channel.qos.restore_by_tag(tag, leftmost=True))
            return None
        try:
            args, _kwargs, _embed = channel.Message(payload, channel=channel).decode()
            return Taken(WindowRequest.model_validate(args[0]), tag)
        except (ValueError, TypeError, IndexError, ValidationError):
            # Celery would fail such a task (and acknowledge it): nobody can transcribe it.
            logger.error("dropped an unreadable transcribe_window message %s", headers.get("id"))
            self._settle(lambda: forget(channel, [tag]))
            return None

    def _settle(self, step: Callable[[], object]) -> None:
        """Give back or drop a message that is not a window. When the broker fails meanwhile, the
        windows already taken go on: the message stays booked, and kombu's visibility timeout
        returns it to the queue, where Celery's consumer (or this, again) deals with it."""
        try:
            step()
        except self._errors as error:
            logger.warning("could not settle a message that is not a window: %s", error)
            self.close()


def forget(channel: Any, tags: list[str]) -> None:
    """Acknowledge messages: their records leave kombu's unacked hash and index, in one round trip."""
    with channel.conn_or_acquire() as client, client.pipeline(transaction=False) as pipe:
        for tag in tags:
            pipe.zrem(channel.unacked_index_key, tag)
            pipe.hdel(channel.unacked_key, tag)
        pipe.execute()
