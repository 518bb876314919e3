"""Prometheus metrics of a worker: window durations, batch sizes, model load time.

A Celery worker is a main process and a pool of child processes, and the children do the work. The
metrics are kept in prometheus_client's multiprocess mode: every process writes its values to files
in one folder (PROMETHEUS_MULTIPROC_DIR), and the main process serves their sum on
WORKER_METRICS_PORT. The folder must be set before prometheus_client is first imported, which is
why `serve_worker_metrics()` runs in the main process before the pool starts and this module
imports prometheus_client only inside functions.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
DURATION_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def serve_worker_metrics(port: int, host: str) -> str:
    """In the worker's main process, before the pool forks: choose the metrics folder and serve it.
    Returns the folder."""
    folder = os.environ.get(MULTIPROC_DIR_VARIABLE) or tempfile.mkdtemp(prefix="streaming-whisper-metrics-")
    os.environ[MULTIPROC_DIR_VARIABLE] = folder
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=folder)
    start_http_server(port, addr=host, registry=registry)
    logger.info("worker metrics on http://%s:%d/metrics", host, port)
    return folder


@dataclass
class WorkerMetrics:
    window_seconds: Any
    batch_size: Any
    decoder_calls: Any
    windows: Any
    model_load_seconds: Any
    warm_up_seconds: Any

    @classmethod
    def create(cls) -> WorkerMetrics:
        """Once in each process that records (the pool children, after the fork). With
        WORKER_METRICS_PORT unset there is no multiprocess folder: the values then stay in the
        process's own registry, which nothing serves."""
        from prometheus_client import Counter, Gauge, Histogram

        return cls(
            window_seconds=Histogram(
                "streaming_whisper_worker_window_seconds",
                "Model time per window (its share of its batch)",
                buckets=DURATION_BUCKETS,
            ),
            batch_size=Histogram(
                "streaming_whisper_worker_batch_size",
                "Windows run through the model together",
                buckets=BATCH_BUCKETS,
            ),
            decoder_calls=Counter(
                "streaming_whisper_worker_decoder_calls",
                "Decoder calls the model made: windows over these is the batch fill",
            ),
            windows=Counter("streaming_whisper_worker_windows", "Windows answered, by outcome", ["outcome"]),
            model_load_seconds=Gauge(
                "streaming_whisper_worker_model_load_seconds",
                "Seconds the process took to load its model",
                multiprocess_mode="max",
            ),
            warm_up_seconds=Gauge(
                "streaming_whisper_worker_warm_up_seconds",
                "Seconds the process's first model call took, made before it reported ready",
                multiprocess_mode="max",
            ),
        )
