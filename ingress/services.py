"""What every connection of one ingress process shares, built once in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from ingress.dispatch import Dispatcher
from ingress.keys import KeyStore
from ingress.vad import SileroVad
from service.settings import Settings


@dataclass
class Services:
    settings: Settings
    dispatcher: Dispatcher
    vad: SileroVad
    keys: KeyStore | None
    """Token signing keys; None when no key repository is configured (ASAP_PUB_KEYS_REPO_URL)."""
    open_connections: int = 0
