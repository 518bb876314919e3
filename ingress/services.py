"""What every connection of one ingress process shares, built once in the app's lifespan."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from ingress.dispatch import Dispatcher
from ingress.keys import KeyStore
from ingress.metrics import Metrics
from ingress.resume import ResumeStore
from ingress.vad import SileroVad
from service.settings import Settings


@dataclass
class Services:
    settings: Settings
    dispatcher: Dispatcher
    vad: SileroVad
    keys: KeyStore | None
    """Token signing keys; None when no key repository is configured (ASAP_PUB_KEYS_REPO_URL)."""
    redis: aioredis.Redis
    """The process's pooled async client (the dispatcher's), for readiness checks."""
    metrics: Metrics
    resume: ResumeStore | None = None
    """Where dropped sockets' participants wait for a reconnect; None when RESUME_TTL_S is 0."""
    open_connections: int = 0
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    """Set on SIGTERM: every meeting flushes its pending speech and closes with 1001; no new ones."""
