"""A participant's whole streaming state as one value that survives its socket: written when the
socket drops, read back when the client reconnects (maybe to another ingress replica, so it
crosses processes as JSON; audio as base64). The policy's parts each say what they hold
(`BufferState`, `HistoryState`, `UtterancesState`); this puts them together and checks the whole
when it is read back."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from streaming.buffer import BufferState
from streaming.history import HistoryState
from streaming.utterances import UtterancesState
from streaming.words import Word

SNAPSHOT_VERSION: Literal[1] = 1
"""Bumped whenever the policy's state changes shape: a replica never reads another's older state
as if it were its own (it starts that participant afresh, and says so)."""


class PolicySnapshot(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_bytes="base64", val_json_bytes="base64")

    version: Literal[1] = SNAPSHOT_VERSION
    buffer: BufferState
    history: HistoryState
    utterances: UtterancesState
    hypothesis: tuple[Word, ...]
    heard: tuple[int, ...]
    """Per hypothesis word, how many hypotheses in a row agreed on it."""
    planned_until: int
    hypothesis_heard_until: int
    context_paused: bool
