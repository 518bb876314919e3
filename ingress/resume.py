"""Resume after reconnect: what of a meeting's participants outlives a dropped socket.

When a socket goes without the end-of-meeting byte, each participant still streaming leaves a
`ParticipantRecord` (its policy's snapshot, its VAD's state, the finals the gone socket never got)
in one Redis hash per meeting, for RESUME_TTL_S. The next socket of that meeting, on this replica
or another, claims the whole hash at once (read and delete in one transaction, so two sockets never
both go on with a participant) and its participants carry on: the utterance in progress keeps its
id, no final goes out twice, the audio the server had is neither lost nor heard twice.

One socket per meeting is the protocol's model: the socket that reconnects first takes every
participant the meeting left.
"""

from __future__ import annotations

import logging

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, ValidationError

from ingress.vad import VadState
from service import names
from streaming.language import SpokenLanguage
from streaming.snapshot import PolicySnapshot

logger = logging.getLogger(__name__)


class ParticipantRecord(BaseModel):
    """One participant between a dropped socket and the reconnect (JSON in Redis)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    participant_id: str
    spoken: SpokenLanguage
    """Its language as asked for and as heard so far."""
    refused_language: str | None
    """The language the model could not serve, if it was told so (its audio stays dropped)."""
    policy: PolicySnapshot
    vad: VadState
    undelivered: tuple[str, ...] = ()
    """Finals (as sent) whose socket was gone: the next socket gets them first."""


class ResumeStore:
    def __init__(self, redis_client: aioredis.Redis, ttl_s: float) -> None:
        self._redis = redis_client
        self._ttl_ms = max(1, round(ttl_s * 1000))

    async def save(self, meeting_id: str, records: list[ParticipantRecord]) -> None:
        """Keep `records` for the meeting's next socket; the hash expires RESUME_TTL_S after."""
        if not records:
            return
        key = names.resume_key(meeting_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={record.participant_id: record.model_dump_json() for record in records})
            pipe.pexpire(key, self._ttl_ms)
            await pipe.execute()

    async def claim(self, meeting_id: str) -> list[ParticipantRecord]:
        """The records the meeting's last socket left, taken (nobody else gets them). One that
        cannot be read (another version's, damaged) is logged and left out: that participant
        starts afresh."""
        key = names.resume_key(meeting_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(key)
            pipe.delete(key)
            stored, _deleted = await pipe.execute()
        records: list[ParticipantRecord] = []
        for participant_id, text in stored.items():
            try:
                records.append(ParticipantRecord.model_validate_json(text))
            except ValidationError as error:
                logger.warning(
                    "meeting %s participant %s: its stream cannot be resumed, starting afresh: %s",
                    meeting_id,
                    participant_id.decode("utf-8", errors="replace"),
                    first_problem(error),
                )
        return records


def first_problem(error: ValidationError) -> str:
    """Where the first thing wrong is and what: enough for a log line."""
    problems = error.errors(include_url=False)
    if not problems:
        return str(error)
    where = ".".join(str(part) for part in problems[0]["loc"])
    return f"{where}: {problems[0]['msg']}" if where else problems[0]["msg"]
