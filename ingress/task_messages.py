"""The Celery task message of a window, built here so that it is pushed in the ingress's own Redis
pipeline, beside the window's audio, instead of by Celery's client.

Celery's client publishes each task on a blocking connection of its own, so the ingress ran it in a
thread, one more round trip per window. Pushed in the pipeline the window needs anyway, the same
message raised `make bench-pipeline`'s ceiling by about 30% (README, Capacity). The message is still
Celery's: its headers and body come from Celery's own factory of protocol-2 task messages
(`app.amqp.create_task_message`). Only the envelope that kombu's Redis transport pushes around it
is written here (the body base64-encoded, a delivery tag, the priority step's list), the part
`tasks/inbox.py` reads back on the worker's side; tests/integration/test_task_messages.py checks it
against what Celery's own `send_task` pushes.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass

from celery import Celery
from kombu.serialization import dumps
from kombu.transport.redis import Channel as RedisChannel

from service import names
from service.contracts import WindowRequest

SERIALIZER = "json"
"""The tasks' serializer (`task_serializer` of tasks/celery_app.py)."""
PERSISTENT = 2
"""kombu's delivery mode of a message to keep: what Celery's producer sets."""


@dataclass(frozen=True)
class TaskMessage:
    """One window's task: the Redis list it goes to and the message to LPUSH there."""

    queue_list: str
    raw: str


def queue_list(priority: int) -> str:
    """The Redis list of the transcribe queue that holds messages of `priority` (one of its steps):
    kombu's Redis transport keeps one list per priority step, the first under the queue's own name."""
    return f"{names.TRANSCRIBE_QUEUE}{RedisChannel.sep}{priority}" if priority else names.TRANSCRIBE_QUEUE


def args_repr(request: WindowRequest) -> str:
    """What the task's headers show of its arguments (Celery's `argsrepr`)."""
    return f"[window {request.request_id}]"


def build_task_message(app: Celery, request: WindowRequest, final: bool) -> TaskMessage:
    """The transcribe_window task of `request`, finals at the first priority step."""
    priority = names.FINAL_PRIORITY if final else names.INTERIM_PRIORITY
    task_id = str(uuid.uuid4())
    # Celery would write the arguments' repr into the headers (for its logs and events): a walk
    # of every field of the request on the event loop for each window, and the prompt's
    # transcript text in every header. The window's id says which window it is.
    message = app.amqp.create_task_message(
        task_id,
        names.TRANSCRIBE_TASK,
        [request.model_dump()],
        {},
        argsrepr=args_repr(request),
        kwargsrepr="{}",
    )
    content_type, content_encoding, body = dumps(message.body, serializer=SERIALIZER)
    encoded = body.encode(content_encoding) if isinstance(body, str) else body
    properties = {
        **message.properties,
        "delivery_mode": PERSISTENT,
        "delivery_info": {"exchange": "", "routing_key": names.TRANSCRIBE_QUEUE},
        "priority": priority,
        "body_encoding": "base64",
        "delivery_tag": str(uuid.uuid4()),
    }
    envelope = {
        "body": base64.b64encode(encoded).decode("ascii"),
        "content-encoding": content_encoding,
        "content-type": content_type,
        "headers": message.headers,
        "properties": properties,
    }
    return TaskMessage(queue_list(priority), json.dumps(envelope))
