"""The ingress's Prometheus metrics, served at /metrics.

One `Metrics` per app, on its own `CollectorRegistry` built in `create_app()`: nothing registers
at import time, so tests and several apps in one process never collide on the global registry.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

PREFIX = "streaming_whisper"
CONTENT_TYPE = CONTENT_TYPE_LATEST

ROUND_TRIP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 8.0, 15.0, 30.0, 60.0)
"""Dispatch → result: a window's whole trip (queue wait included); 60 s is the default timeout."""
COMPUTE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
"""Model seconds per window as the worker reports them."""


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    open_websockets: Gauge
    participants: Gauge
    participants_resumed: Counter
    """Participants a reconnect took over from a dropped socket (RESUME_TTL_S)."""
    audio_seconds: Counter
    audio_stored_seconds: Counter
    """Audio put in Redis for the workers: each stretch once, however many windows hear it."""
    window_audio_seconds: Counter
    """Audio the dispatched windows hear, context included (stored over heard: the Redis saving)."""
    windows_dispatched: Counter
    """Label kind: interim | final."""
    transcripts_sent: Counter
    """Label type: interim | final."""
    errors_sent: Counter
    """Label code: the close code carried by the error message."""
    window_round_trip: Histogram
    model_compute: Histogram

    @classmethod
    def create(cls) -> Metrics:
        registry = CollectorRegistry()
        return cls(
            registry=registry,
            open_websockets=Gauge(
                f"{PREFIX}_open_websockets", "Meeting websockets open now", registry=registry
            ),
            participants=Gauge(
                f"{PREFIX}_participants", "Participants of the open meetings", registry=registry
            ),
            participants_resumed=Counter(
                f"{PREFIX}_participants_resumed",
                "Participants whose stream a reconnect went on with",
                registry=registry,
            ),
            audio_seconds=Counter(
                f"{PREFIX}_audio_seconds_received",
                "Seconds of participant audio accepted",
                registry=registry,
            ),
            audio_stored_seconds=Counter(
                f"{PREFIX}_audio_stored_seconds",
                "Seconds of audio stored in Redis for the workers (each stretch once)",
                registry=registry,
            ),
            window_audio_seconds=Counter(
                f"{PREFIX}_window_audio_seconds",
                "Seconds of audio the dispatched windows hear, context included",
                registry=registry,
            ),
            windows_dispatched=Counter(
                f"{PREFIX}_windows_dispatched",
                "Windows sent to the workers",
                ["kind"],
                registry=registry,
            ),
            transcripts_sent=Counter(
                f"{PREFIX}_transcripts_sent", "Transcript messages sent", ["type"], registry=registry
            ),
            errors_sent=Counter(
                f"{PREFIX}_errors_sent", "Error messages sent, by close code", ["code"], registry=registry
            ),
            window_round_trip=Histogram(
                f"{PREFIX}_window_round_trip_seconds",
                "From dispatching a window to its result",
                buckets=ROUND_TRIP_BUCKETS,
                registry=registry,
            ),
            model_compute=Histogram(
                f"{PREFIX}_model_compute_seconds",
                "Model compute per window, as reported by the workers",
                buckets=COMPUTE_BUCKETS,
                registry=registry,
            ),
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
