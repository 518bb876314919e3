"""The Celery app, configured from Settings. Both sides use it: the ingress to send tasks by name
(it never imports the task code or the model), the worker to run them."""

from __future__ import annotations

from celery import Celery

from service import names
from service.settings import Settings

VISIBILITY_TIMEOUT_S = 300
"""With the Redis transport, a task whose worker died before acknowledging it (late acks) comes back
only after this long. It must outlast the longest window on the slowest worker, or a live worker's
window would run twice, so it stays long: a backstop. Prompt recovery is the ingress's: it re-sends
a window whose worker stopped heart-beating (`ingress/dispatch.py`)."""


PRIORITY_STEPS = [names.FINAL_PRIORITY, names.INTERIM_PRIORITY]


def create_celery_app(settings: Settings) -> Celery:
    app = Celery("streaming_whisper", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,  # results travel on the ingress's reply stream, not the backend
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_default_queue=names.TRANSCRIBE_QUEUE,
        task_routes={names.TRANSCRIBE_TASK: {"queue": names.TRANSCRIBE_QUEUE}},
        worker_prefetch_multiplier=1,
        broker_transport_options={
            "visibility_timeout": VISIBILITY_TIMEOUT_S,
            # One Redis list per step, read in this order by workers (and by tasks/inbox.py).
            "priority_steps": PRIORITY_STEPS,
            "queue_order_strategy": "priority",
        },
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )
    return app
