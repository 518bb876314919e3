"""How a worker's batch fails: one bad window fails alone (a stand-in model, no Redis)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import pytest

from models.transcriber import Transcriber, Transcription, Window
from service.contracts import WordTiming
from tasks.transcribe import transcribe_windows

pytestmark = pytest.mark.unit

BAD = b"\x01"


class StandIn:
    """Transcribes a window as one word, its bytes' length; a batch holding a BAD window raises."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def transcribe_batch(self, windows: Sequence[Window]) -> list[Transcription]:
        self.calls.append(len(windows))
        if any(window.pcm == BAD for window in windows):
            raise ValueError("buffer size must be a multiple of element size")
        word = [WordTiming(text=" hi", start=0.0, end=0.1, probability=1.0)]
        return [Transcription(words=word * len(window.pcm), compute_s=0.5) for window in windows]


def run(model: StandIn, *pcms: bytes) -> list[Any]:
    return transcribe_windows(cast(Transcriber, model), [Window(pcm=pcm, language="en") for pcm in pcms])


def test_a_healthy_batch_runs_once() -> None:
    model = StandIn()
    outcomes = run(model, b"ab", b"abcd")
    assert model.calls == [2]
    assert [len(o.words) for o in outcomes] == [2, 4]


def test_a_bad_window_fails_alone_and_the_others_are_transcribed_on_their_own() -> None:
    model = StandIn()
    outcomes = run(model, b"ab", BAD, b"abcd")
    assert model.calls == [3, 1, 1, 1]
    assert isinstance(outcomes[1], ValueError)
    assert [len(o.words) for o in (outcomes[0], outcomes[2])] == [2, 4]


def test_a_lone_window_that_fails_is_not_tried_again() -> None:
    model = StandIn()
    outcomes = run(model, BAD)
    assert model.calls == [1]
    assert isinstance(outcomes[0], ValueError)
    assert run(model) == []
