"""What an operator watches: /readyz against the real Redis and worker heartbeats, and /metrics
after a real meeting."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from commands.launcher import free_port
from service import names
from tasks.transcribe import announce
from tests.integration.conftest import Service

pytestmark = pytest.mark.integration

EMPTY_DB = 5
"""A Redis database no worker uses: heartbeat keys live per database, so none are seen there."""


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode()


def ready(base: str) -> dict[str, Any]:
    code, body = get(base + "/readyz")
    assert code == 200, body
    return dict(json.loads(body))


def sample(text: str, name: str, labels: dict[str, str] | None = None) -> float:
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == (labels or {}):
                return float(found.value)
    raise AssertionError(f"no sample {name}{labels or ''} in /metrics")


def with_replica(service: Service, name: str, redis_url: str) -> tuple[int, dict[str, Any]]:
    base = service.stack.start_ingress(name, free_port(), {"REDIS_URL": redis_url})
    try:
        code, body = get(base + "/readyz")
        assert get(base + "/healthz")[0] == 200  # up, though not ready
    finally:
        service.stack.stop_process(name)
    return code, json.loads(body)


def test_ready_with_the_session_worker(service: Service) -> None:
    code, body = get(service.stack.base_http_url + "/readyz")

    assert code == 200
    assert json.loads(body) == {"status": "ready", "workers": 1}


def test_not_ready_where_no_worker_beats(service: Service) -> None:
    empty_db_url = service.stack.redis_url.rsplit("/", 1)[0] + f"/{EMPTY_DB}"

    code, body = with_replica(service, "ingress-no-workers", empty_db_url)

    assert code == 503
    assert body == {"status": "unavailable", "reason": "no worker alive"}


def test_a_worker_whose_heartbeat_stops_is_no_longer_counted(service: Service) -> None:
    db_url = service.stack.redis_url.rsplit("/", 1)[0] + f"/{EMPTY_DB + 1}"
    client = redis.Redis.from_url(db_url)
    client.flushdb()
    base = service.stack.start_ingress("ingress-heartbeats", free_port(), {"REDIS_URL": db_url})
    try:
        announce(client, "still-here", ttl_s=60)
        announce(client, "gone-soon", ttl_s=2)  # a shorter beat after it must not cut the set short
        assert ready(base) == {"status": "ready", "workers": 2}
        time.sleep(3.1)  # past the first one's heartbeat, in Redis's whole seconds
        assert ready(base) == {"status": "ready", "workers": 1}
        announce(client, "still-here", ttl_s=60)  # a beat prunes the set: expired members leave it
        assert client.zrange(names.READY_WORKERS, 0, -1) == [b"still-here"]
    finally:
        service.stack.stop_process("ingress-heartbeats")
        client.flushdb()


def test_not_ready_without_redis(service: Service) -> None:
    code, body = with_replica(service, "ingress-no-redis", f"redis://127.0.0.1:{free_port()}/0")

    assert code == 503
    assert body["reason"].startswith("redis unreachable: ")


def test_metrics_after_a_meeting(service: Service, speech: Any) -> None:
    result = service.stream("metrics", [("jfk", speech("jfk_ask_not"))])
    assert result.finals("jfk")

    code, text = get(service.stack.base_http_url + "/metrics")

    assert code == 200
    assert sample(text, "streaming_whisper_transcripts_sent_total", {"type": "final"}) > 0
    assert sample(text, "streaming_whisper_audio_seconds_received_total") >= 10
    assert sample(text, "streaming_whisper_windows_dispatched_total", {"kind": "interim"}) > 0
    assert sample(text, "streaming_whisper_window_round_trip_seconds_count") > 0
    assert sample(text, "streaming_whisper_model_compute_seconds_sum") > 0
    assert gauges_settle_to_zero(service.stack.base_http_url + "/metrics")


def gauges_settle_to_zero(url: str) -> bool:
    """The server's side of the socket ends just after the client sees the close."""
    deadline = time.monotonic() + 5
    while True:
        text = get(url)[1]
        gauges = [sample(text, f"streaming_whisper_{name}") for name in ("open_websockets", "participants")]
        if gauges == [0, 0] or time.monotonic() > deadline:
            return gauges == [0, 0]
        time.sleep(0.1)


def test_worker_metrics_after_a_meeting(service: Service, speech: Any) -> None:
    """A worker with WORKER_METRICS_PORT serves what its pool processes recorded (multiprocess)."""
    own_db = service.stack.redis_url.rsplit("/", 1)[0] + "/7"  # this worker alone serves it
    port = free_port()
    service.stack.start_worker("worker-metrics", {"REDIS_URL": own_db, "WORKER_METRICS_PORT": str(port)})
    try:
        base = service.stack.start_ingress("ingress-worker-metrics", free_port(), {"REDIS_URL": own_db})
        deadline = time.monotonic() + 120
        while get(base + "/readyz")[0] != 200:  # the worker has loaded its model
            assert time.monotonic() < deadline, "the worker never became ready"
            time.sleep(0.5)
        result = service.stream("worker-metrics", [("jfk", speech("jfk_ask_not"))], base=base)
        assert result.closed_normally and result.transcript("jfk")

        code, text = get(f"http://127.0.0.1:{port}/metrics")
    finally:
        service.stack.stop_process("ingress-worker-metrics")
        service.stack.stop_process("worker-metrics")

    assert code == 200
    windows = sample(text, "streaming_whisper_worker_windows_total", {"outcome": "ok"})
    assert windows >= 2  # interims and finals of an 11 s speech
    assert sample(text, "streaming_whisper_worker_batch_size_count") >= 1
    # One participant: every window is a batch of its own, and each makes a decoder call at least.
    assert sample(text, "streaming_whisper_worker_decoder_calls_total") >= windows
    assert sample(text, "streaming_whisper_worker_window_seconds_count") == windows
    assert sample(text, "streaming_whisper_worker_window_seconds_sum") > 0
    assert sample(text, "streaming_whisper_worker_model_load_seconds") > 0
    assert sample(text, "streaming_whisper_worker_warm_up_seconds") > 0  # a call before it was ready


def test_each_second_of_audio_crosses_redis_once_and_none_is_left_after_the_meeting(
    service: Service, speech: Any
) -> None:
    own_db = service.stack.redis_url.rsplit("/", 1)[0] + "/8"  # its keys alone are there
    service.stack.start_worker("worker-audio-once", {"REDIS_URL": own_db})
    try:
        base = service.stack.start_ingress("ingress-audio-once", free_port(), {"REDIS_URL": own_db})
        deadline = time.monotonic() + 120
        while get(base + "/readyz")[0] != 200:
            assert time.monotonic() < deadline, "the worker never became ready"
            time.sleep(0.5)
        result = service.stream("audio-once", [("spk1", speech("meeting_3spk_dev.spk1"))], base=base)
        assert result.closed_normally and len(result.finals("spk1")) >= 2
        text = get(base + "/metrics")[1]
        client = redis.Redis.from_url(own_db)
        left: list[bytes] = []
        deadline = time.monotonic() + 5  # deleted in the background once the participant ends
        while (left := list(client.scan_iter(match=names.audio_pattern()))) and time.monotonic() < deadline:
            time.sleep(0.1)
        client.close()
    finally:
        service.stack.stop_process("ingress-audio-once")
        service.stack.stop_process("worker-audio-once")

    received = sample(text, "streaming_whisper_audio_seconds_received_total")
    stored = sample(text, "streaming_whisper_audio_stored_seconds_total")
    heard = sample(text, "streaming_whisper_window_audio_seconds_total")
    assert 0 < stored <= received  # silence no window needs is never stored
    assert heard >= 3 * stored  # windows hear each second again and again; Redis carries it once
    assert left == []
