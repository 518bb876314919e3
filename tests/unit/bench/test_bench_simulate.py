"""The simulator's pieces: its --offsets argument type and the messages it scores like `make bench`."""

from __future__ import annotations

import argparse

import pytest

from bench.metrics import Message
from bench.run import non_negative_seconds
from bench.simulate import Replay
from streaming.utterances import Transcript

pytestmark = pytest.mark.unit


def test_offsets_are_seconds_of_leading_silence() -> None:
    assert non_negative_seconds("0,0.15, 0.3") == [0.0, 0.15, 0.3]


@pytest.mark.parametrize("value", ["", "0,x", "-0.5", ","])
def test_offsets_refuse_what_is_not_a_list_of_non_negative_seconds(value: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        non_negative_seconds(value)


def test_a_replay_gives_its_transcripts_as_the_benchmark_s_messages_in_order() -> None:
    interim = Transcript("utt-1", "interim", "Ask not", 0, 0.9)
    final = Transcript("utt-1", "final", "Ask not what", 0, 0.9)
    replay = Replay(transcripts=[(2.2, interim), (3.2, final)])

    assert replay.messages() == [
        Message(2.2, "interim", "utt-1", "Ask not"),
        Message(3.2, "final", "utt-1", "Ask not what"),
    ]
    assert replay.text() == "Ask not what"
