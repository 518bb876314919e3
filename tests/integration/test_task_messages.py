"""The ingress's own task messages against those Celery's client pushes, in a real Redis: the same
list per priority, the same envelope and headers, the same arguments once decoded, and a worker's
inbox reads them as the windows they carry (every test with a worker runs its windows on them)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import redis
from celery import Celery

from commands.launcher import EmbeddedRedis
from ingress.task_messages import args_repr, build_task_message, queue_list
from service import names
from service.contracts import AudioPiece, WindowRequest
from tasks.inbox import Inbox

pytestmark = pytest.mark.integration


def window() -> WindowRequest:
    request_id = uuid.uuid4().hex
    return WindowRequest(
        request_id=request_id,
        audio=[AudioPiece(key=names.audio_key(request_id, 1), start=0, end=32000)],
        reply_to="test-task-messages",
        language="en",
        prompt="And so, my fellow Americans",
    )


def pushed(client: redis.Redis) -> dict[str, list[dict[str, Any]]]:
    """Every message in the transcribe queue's lists, by list."""
    return {
        key.decode(): [json.loads(raw) for raw in client.lrange(key, 0, -1)]
        for key in client.scan_iter(match=f"{names.TRANSCRIBE_QUEUE}*")
        if client.type(key) == b"list"
    }


def arguments(app: Celery, envelope: dict[str, Any]) -> Any:
    with app.connection_for_read() as connection:
        channel: Any = connection.default_channel
        args, kwargs, _embed = channel.Message(envelope, channel=channel).decode()
    return args, kwargs


@pytest.mark.parametrize("final", [True, False], ids=["final", "interim"])
def test_a_built_message_is_what_celery_pushes(broker: EmbeddedRedis, app: Celery, final: bool) -> None:
    request = window()
    client = redis.Redis.from_url(broker.url)
    priority = names.FINAL_PRIORITY if final else names.INTERIM_PRIORITY
    app.send_task(
        names.TRANSCRIBE_TASK,
        args=[request.model_dump()],
        queue=names.TRANSCRIBE_QUEUE,
        priority=priority,
    )
    [(celery_list, [celery_message])] = pushed(client).items()
    client.delete(celery_list)

    message = build_task_message(app, request, final)
    client.lpush(message.queue_list, message.raw)
    [(our_list, [our_message])] = pushed(client).items()

    assert our_list == celery_list == queue_list(priority)
    assert our_message.keys() == celery_message.keys()
    assert our_message["properties"].keys() == celery_message["properties"].keys()
    assert our_message["headers"].keys() == celery_message["headers"].keys()
    for same in ("content-type", "content-encoding"):
        assert our_message[same] == celery_message[same]
    for same in ("delivery_info", "priority", "body_encoding", "delivery_mode"):
        assert our_message["properties"][same] == celery_message["properties"][same]
    assert our_message["headers"]["task"] == names.TRANSCRIBE_TASK
    assert our_message["headers"]["id"] == our_message["properties"]["correlation_id"]
    assert our_message["headers"]["argsrepr"] == args_repr(request)
    assert request.prompt not in json.dumps(our_message["headers"])  # no transcript text in them
    assert our_message["properties"]["delivery_tag"] != celery_message["properties"]["delivery_tag"]
    assert arguments(app, our_message) == arguments(app, celery_message)
    (decoded,), _kwargs = arguments(app, our_message)
    assert WindowRequest.model_validate(decoded) == request


def test_a_worker_inbox_takes_built_messages_finals_first(broker: EmbeddedRedis, app: Celery) -> None:
    interim, final = window(), window()
    client = redis.Redis.from_url(broker.url)
    for request, is_final in ((interim, False), (final, True)):
        message = build_task_message(app, request, is_final)
        client.lpush(message.queue_list, message.raw)
    inbox = Inbox(app)
    try:
        taken = inbox.take(10)
        assert [window.request for window in taken] == [final, interim]
        assert int(client.hlen("unacked")) == 2  # booked as kombu books what it delivers
        inbox.acknowledge(taken)
        assert int(client.hlen("unacked")) == 0
    finally:
        inbox.close()
