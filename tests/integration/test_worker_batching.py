"""Cross-stream batching in the real worker: windows waiting in the queue together go through the
model in one batch, each answered on its own reply stream, each failing on its own. The windows are
queued while the worker is frozen (SIGSTOP), so they are all waiting when it takes the first."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

import psutil
import pytest
import redis

from bench.pipeline import stopped
from service import names
from service.audio import BYTES_PER_SECOND
from service.contracts import AudioPiece, WindowRequest, WindowResult
from service.settings import Settings
from tasks.celery_app import create_celery_app
from tests.integration.conftest import Service

pytestmark = pytest.mark.integration

ANSWER_TIMEOUT_S = 60.0


def queued(client: redis.Redis) -> int:
    """Messages waiting in the transcribe queue, every priority's list included."""
    return sum(int(client.llen(key)) for key in client.scan_iter(match=f"{names.TRANSCRIBE_QUEUE}*"))


@contextlib.contextmanager
def frozen_worker(service: Service) -> Iterator[None]:
    """The worker (main process and pool) stopped, then resumed; idle first, so nothing is in flight."""
    client = redis.Redis.from_url(service.stack.redis_url)
    deadline = time.monotonic() + ANSWER_TIMEOUT_S
    while queued(client) or list(client.scan_iter(match=names.claim_key("*"))):
        assert time.monotonic() < deadline, "the worker never became idle"
        time.sleep(0.05)
    with stopped(psutil.Process(service.stack.process("worker").pid)):
        yield


def send_together(
    service: Service,
    windows: Sequence[tuple[str, bytes | None, str]],
    priorities: list[int] | None = None,
    arrival: list[str] | None = None,
    abandoned: frozenset[int] = frozenset(),
) -> dict[str, WindowResult]:
    """Queue (language, audio or None for none kept, reply stream) windows at once; their results.
    `arrival`, when given, receives the request ids in the order their results came; `abandoned`:
    the windows (by index) no ingress awaits."""
    client = redis.Redis.from_url(service.stack.redis_url)
    app = create_celery_app(Settings(redis_url=service.stack.redis_url))
    requests = []
    for n, (language, pcm, reply_to) in enumerate(windows):
        request_id = uuid.uuid4().hex
        # Each window's audio in two stored stretches, as the ingress names a window with context;
        # a broken one whole, its stored bytes fewer than its piece names.
        keys = [names.audio_key(request_id, 1), names.audio_key(request_id, 2)]
        audio = pcm or bytes(4)
        if len(audio) % 2:
            stored, pieces = [audio], [AudioPiece(key=keys[0], start=0, end=len(audio) + 1)]
        else:
            half = len(audio) // 4 * 2
            stored = [audio[:half], b"\0\0" + audio[half:]]
            pieces = [
                AudioPiece(key=keys[0], start=0, end=half),
                AudioPiece(key=keys[1], start=2, end=2 + len(audio) - half),
            ]
        request = WindowRequest(request_id=request_id, audio=pieces, reply_to=reply_to, language=language)
        if pcm is not None:
            for key, value in zip(keys, stored, strict=False):
                client.set(key, value, ex=names.AUDIO_TTL_S)
        if n not in abandoned:
            client.set(names.window_key(request_id), 1, ex=names.AUDIO_TTL_S)
        requests.append(request)
    with frozen_worker(service):
        for n, request in enumerate(requests):
            app.send_task(
                names.TRANSCRIBE_TASK,
                args=[request.model_dump()],
                queue=names.TRANSCRIBE_QUEUE,
                priority=priorities[n] if priorities else names.FINAL_PRIORITY,
            )
    results: dict[str, WindowResult] = {}
    streams: dict[Any, Any] = {request.reply_to: "0-0" for request in requests}
    deadline = time.monotonic() + ANSWER_TIMEOUT_S
    while len(results) < len(requests):
        assert time.monotonic() < deadline, f"answered {len(results)} of {len(requests)} windows"
        replies = cast(list[Any], client.xread(streams, block=500) or [])  # RESP2: [[stream, entries], ...]
        for stream, entries in replies:
            for entry_id, fields in entries:
                streams[stream.decode()] = entry_id
                result = WindowResult.model_validate_json(fields[b"result"])
                results[result.request_id] = result
                if arrival is not None:
                    arrival.append(result.request_id)
                assert any(
                    r.request_id == result.request_id and r.reply_to == stream.decode() for r in requests
                )
    app.close()
    return {request.request_id: results[request.request_id] for request in requests}


def cut(pcm: bytes, start_s: float, length_s: float) -> bytes:
    first = int(start_s * BYTES_PER_SECOND) // 2 * 2
    return pcm[first : first + int(length_s * BYTES_PER_SECOND) // 2 * 2]


def test_windows_waiting_together_share_one_batch_and_each_is_answered_on_its_own_stream(
    service: Service, speech: Callable[[str], bytes]
) -> None:
    mine, theirs = f"test-batching:{uuid.uuid4().hex}", f"test-batching:{uuid.uuid4().hex}"
    results = list(
        send_together(
            service,
            [
                ("en", cut(speech("jfk_ask_not"), 0.0, 5.0), mine),
                ("en", cut(speech("synth_en_us"), 3.0, 6.0), theirs),
                ("fr", cut(speech("jfk_ask_not"), 5.0, 4.0), mine),  # tiny.en cannot serve it
                ("en", None, theirs),  # its audio is gone
                ("en", cut(speech("synth_en_us"), 3.0, 6.0), mine),  # nobody awaits it any more
            ],
            abandoned=frozenset({4}),
        ).values()
    )
    spoken = results[:2]
    assert all(result.error_code is None and len(result.words) >= 5 for result in spoken)
    assert "Americans" in "".join(word.text for word in spoken[0].words)
    assert spoken[0].compute_s == spoken[1].compute_s > 0  # one batch, its time shared
    assert results[2].error_code == "unsupported_language" and not results[2].words
    assert results[3].error_code == "audio_expired"
    assert results[4].error_code == "window_abandoned" and results[4].compute_s == 0


def test_a_window_that_breaks_its_batch_fails_alone(service: Service, speech: Callable[[str], bytes]) -> None:
    stream = f"test-batching:{uuid.uuid4().hex}"
    healthy, broken = send_together(
        service, [("en", cut(speech("jfk_ask_not"), 0.0, 5.0), stream), ("en", b"\x01\x02\x03", stream)]
    ).values()
    assert healthy.error_code is None and "Americans" in "".join(word.text for word in healthy.words)
    assert broken.error_code == "transcription_failed" and "ValueError" in (broken.error_message or "")


def test_finals_go_before_interims_queued_earlier(service: Service, speech: Callable[[str], bytes]) -> None:
    """Five windows wait (four interims, then a final) for a worker that takes four at a time: the
    final is in the first batch and one interim waits for the second."""
    stream = f"test-priority:{uuid.uuid4().hex}"
    windows = [("en", cut(speech("jfk_ask_not"), start, 3.0), stream) for start in (0.0, 1.0, 2.0, 3.0, 4.0)]
    priorities = [names.INTERIM_PRIORITY] * 4 + [names.FINAL_PRIORITY]
    arrival: list[str] = []

    results = send_together(service, windows, priorities, arrival)

    final_id = list(results)[-1]
    assert all(result.error_code is None for result in results.values())
    assert final_id in arrival[:4], arrival.index(final_id)
    assert arrival[-1] in list(results)[:4]  # an interim, left for the second batch
