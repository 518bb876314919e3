"""What every connection of one ingress process shares, built once in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from ingress.dispatch import Dispatcher
from ingress.vad import SileroVad
from service.settings import Settings


@dataclass
class Services:
    settings: Settings
    dispatcher: Dispatcher
    vad: SileroVad
    open_connections: int = 0
