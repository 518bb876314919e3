"""The worker's inbox against a real Redis filled by Celery's own client: windows taken in one
round trip, finals first and oldest first, booked as delivered the way kombu books them (so its
visibility timeout gives back what a dead worker held), acknowledged together; other tasks' messages
left for Celery, unreadable ones dropped, a broker that fails costs only the waiting windows' batch."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis
from celery import Celery
from kombu import Connection

from commands.launcher import EmbeddedRedis
from service import names
from service.contracts import AudioPiece, WindowRequest
from tasks.inbox import Inbox

pytestmark = pytest.mark.integration


def queue_window(app: Celery, priority: int) -> str:
    request_id = uuid.uuid4().hex
    request = WindowRequest(
        request_id=request_id,
        audio=[AudioPiece(key=names.audio_key(request_id, 1), start=0, end=32000)],
        reply_to="test-inbox",
        language="en",
    )
    app.send_task(
        names.TRANSCRIBE_TASK, args=[request.model_dump()], queue=names.TRANSCRIBE_QUEUE, priority=priority
    )
    return request_id


def waiting(client: redis.Redis) -> int:
    return sum(int(client.llen(key)) for key in client.scan_iter(match=f"{names.TRANSCRIBE_QUEUE}*"))


def booked(client: redis.Redis) -> tuple[int, int]:
    """Records in kombu's unacked hash and its index."""
    return int(client.hlen("unacked")), int(client.zcard("unacked_index"))


def test_windows_are_taken_finals_first_then_oldest_first_and_booked_until_acknowledged(
    broker: EmbeddedRedis, app: Celery
) -> None:
    interims = [queue_window(app, names.INTERIM_PRIORITY) for _ in range(3)]
    finals = [queue_window(app, names.FINAL_PRIORITY) for _ in range(2)]
    client = redis.Redis.from_url(broker.url)
    inbox = Inbox(app)

    first = inbox.take(4)
    rest = inbox.take(10)

    assert [window.request.request_id for window in first] == [*finals, *interims[:2]]
    assert [window.request.request_id for window in rest] == interims[2:]
    assert waiting(client) == 0
    assert booked(client) == (5, 5)
    inbox.acknowledge([*first, *rest])
    assert booked(client) == (0, 0)
    assert inbox.take(10) == []
    inbox.close()


def test_what_a_dead_worker_took_comes_back_after_the_visibility_timeout(
    broker: EmbeddedRedis, app: Celery
) -> None:
    queued = [queue_window(app, names.FINAL_PRIORITY) for _ in range(3)]
    inbox = Inbox(app)
    assert len(inbox.take(10)) == 3  # then the worker dies: nothing acknowledged
    options: dict[str, Any] = {**app.conf.broker_transport_options, "visibility_timeout": 0}
    with Connection(broker.url, transport_options=options) as survivor:
        survivor.default_channel.qos.restore_visible(num=10)  # what kombu's consumer does at start

    again = inbox.take(10)

    assert sorted(window.request.request_id for window in again) == sorted(queued)
    inbox.acknowledge(again)
    assert booked(redis.Redis.from_url(broker.url)) == (0, 0)
    inbox.close()


def test_another_tasks_message_stays_for_celery_and_an_unreadable_window_is_dropped(
    broker: EmbeddedRedis, app: Celery
) -> None:
    app.send_task("some.other_task", args=[1], queue=names.TRANSCRIBE_QUEUE, priority=names.FINAL_PRIORITY)
    app.send_task(names.TRANSCRIBE_TASK, args=[{"request_id": "no audio"}], queue=names.TRANSCRIBE_QUEUE)
    readable = queue_window(app, names.FINAL_PRIORITY)
    client = redis.Redis.from_url(broker.url)
    client.lpush(names.TRANSCRIBE_QUEUE, b"not json at all")
    inbox = Inbox(app)

    taken = inbox.take(10)

    assert [window.request.request_id for window in taken] == [readable]
    assert waiting(client) == 1  # the other task's message, back in the queue
    (left,) = client.lrange(names.TRANSCRIBE_QUEUE, 0, -1)
    assert b"some.other_task" in left
    assert booked(client) == (1, 1)  # only the window taken: the others are not delivered twice
    inbox.acknowledge(taken)
    inbox.close()


def test_a_broker_that_fails_gives_no_waiting_windows_and_the_inbox_reconnects(
    broker: EmbeddedRedis, app: Celery, caplog: pytest.LogCaptureFixture
) -> None:
    queue_window(app, names.FINAL_PRIORITY)
    inbox = Inbox(app)
    held = inbox.take(10)
    port = broker.port
    broker.stop()

    assert inbox.take(10) == []
    assert "could not take waiting windows" in caplog.text
    inbox.acknowledge(held)  # logged, not raised: the batch's answers are already out
    assert "could not acknowledge them" in caplog.text

    restarted = EmbeddedRedis(port=port)
    try:
        queued = queue_window(app, names.FINAL_PRIORITY)
        assert [window.request.request_id for window in inbox.take(10)] == [queued]
    finally:
        inbox.close()
        restarted.stop()
