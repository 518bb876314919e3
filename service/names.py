"""Every name this service uses in Redis and Celery, built in one place."""

from __future__ import annotations

PREFIX = "streaming-whisper"
TRANSCRIBE_TASK = "streaming_whisper.transcribe_window"
TRANSCRIBE_QUEUE = "transcribe"
AUDIO_TTL_S = 300
"""Stored audio outlives any sane queue wait (each window that names it starts the time again),
then expires on its own if nobody deletes it."""
REPLY_STREAM_TTL_S = 3600
REPLY_STREAM_MAXLEN = 10_000
FINAL_PRIORITY = 0
INTERIM_PRIORITY = 9
"""Celery priorities of the transcribe queue's messages. With the Redis transport 0 is served first:
when workers fall behind, windows that make finals (end of speech, flushes, the end of a meeting)
go before interims, which only refresh a preview."""


def audio_key(stream_id: str, number: int) -> str:
    """A stretch of one participant's audio, the `number`th its ingress stored (`ingress/audio_ledger.py`)."""
    return f"{PREFIX}:audio:{stream_id}:{number}"


def audio_pattern() -> str:
    """Every stored stretch of audio (for SCAN)."""
    return f"{PREFIX}:audio:*"


def resume_key(meeting_id: str) -> str:
    """The streaming state of a meeting's participants after its socket dropped (a hash: one field
    per participant), until a reconnect claims it or RESUME_TTL_S passes (`ingress/resume.py`)."""
    return f"{PREFIX}:resume:{meeting_id}"


def window_key(request_id: str) -> str:
    """Present while the ingress that sent a window awaits its result: a copy of the task run
    later (re-sent, or redelivered) finds it gone and is not transcribed for nobody."""
    return f"{PREFIX}:windows:{request_id}"


def claim_key(request_id: str) -> str:
    """Which worker process is transcribing a window right now (its heartbeat id); gone once answered."""
    return f"{PREFIX}:claims:{request_id}"


def reply_stream(ingress_id: str) -> str:
    """Results for one ingress process; its id is random, so replicas never read each other's."""
    return f"{PREFIX}:replies:{ingress_id}"


COMPUTE_SECONDS = f"{PREFIX}:stats:compute-seconds"
"""Model seconds spent by all workers since Redis started (benchmarks read it before and after)."""
WINDOWS_TRANSCRIBED = f"{PREFIX}:stats:windows"
BATCHES_TRANSCRIBED = f"{PREFIX}:stats:batches"
"""Batches the workers took (a task and the windows waiting beside it, transcribed together):
windows per batch is the batch fill."""

WORKER_HEARTBEAT_TTL_S = 15
WORKER_HEARTBEAT_EVERY_S = 5


def worker_heartbeat_key(worker_id: str) -> str:
    """Present while a worker process with a loaded model is alive."""
    return f"{PREFIX}:workers:{worker_id}"


READY_WORKERS = f"{PREFIX}:ready-workers"
"""Sorted set of the worker processes whose model is loaded, each scored with the Redis time (in
seconds) its heartbeat expires at: /readyz and the launcher count the members still alive instead of
scanning the keyspace for heartbeat keys."""
