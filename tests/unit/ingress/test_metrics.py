"""The ingress's metrics registry and its two probe routes, with a stand-in dispatcher (no Redis)."""

from __future__ import annotations

from typing import Any, cast

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from redis.exceptions import ConnectionError as RedisConnectionError

from ingress.app import create_app
from ingress.metrics import Metrics
from ingress.services import Services
from service.settings import Settings

pytestmark = pytest.mark.unit


class FakeDispatcher:
    def __init__(self, workers: int | Exception) -> None:
        self._workers = workers

    async def live_workers(self) -> int:
        if isinstance(self._workers, Exception):
            raise self._workers
        return self._workers


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def client_with(workers: int | Exception, metrics: Metrics | None = None) -> TestClient:
    """The app's routes over stand-in services; the lifespan (Redis, VAD) is not run."""
    app = create_app(Settings(bypass_authorization=True))
    app.state.services = Services(
        settings=Settings(bypass_authorization=True),
        dispatcher=cast(Any, FakeDispatcher(workers)),
        vad=cast(Any, None),
        keys=None,
        redis=cast(Any, None),
        metrics=metrics or Metrics.create(),
    )
    return TestClient(app)


def test_each_metrics_has_its_own_registry() -> None:
    first, second = Metrics.create(), Metrics.create()  # the global registry would refuse the second
    first.transcripts_sent.labels(type="final").inc(3)

    finals = ("streaming_whisper_transcripts_sent_total", (("type", "final"),))
    assert samples(first.render().decode())[finals] == 3
    assert finals not in samples(second.render().decode())


def test_metrics_route_serves_the_apps_registry() -> None:
    metrics = Metrics.create()
    metrics.audio_seconds.inc(2.5)
    metrics.errors_sent.labels(code="1007").inc()
    metrics.windows_dispatched.labels(kind="interim").inc()
    metrics.window_round_trip.observe(0.3)
    metrics.open_websockets.inc()

    response = client_with(1, metrics).get("/metrics")

    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    values = samples(response.text)
    assert values[("streaming_whisper_audio_seconds_received_total", ())] == 2.5
    assert values[("streaming_whisper_errors_sent_total", (("code", "1007"),))] == 1
    assert values[("streaming_whisper_windows_dispatched_total", (("kind", "interim"),))] == 1
    assert values[("streaming_whisper_window_round_trip_seconds_count", ())] == 1
    assert values[("streaming_whisper_open_websockets", ())] == 1
    assert values[("streaming_whisper_model_compute_seconds_count", ())] == 0


def test_ready_with_a_live_worker() -> None:
    response = client_with(2).get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "workers": 2}


def test_not_ready_without_workers() -> None:
    response = client_with(0).get("/readyz")

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "reason": "no worker alive"}


def test_not_ready_when_redis_does_not_answer() -> None:
    response = client_with(RedisConnectionError("Connection refused")).get("/readyz")

    assert response.status_code == 503
    assert response.json()["reason"] == "redis unreachable: Connection refused"


def test_healthz_only_says_the_process_is_up() -> None:
    assert client_with(RedisConnectionError("down")).get("/healthz").json() == {"status": "ok"}
