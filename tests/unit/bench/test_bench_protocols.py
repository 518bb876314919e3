"""`make bench --protocol`: the protocols a run may name, and a Realtime session's events read as
the seed protocol's messages the measures count (an interim per delta with the item's text so
far, a final per completed item)."""

from __future__ import annotations

import argparse

import pytest

from bench.run import _protocols, as_meeting, parse_args
from demos.realtime_client import COMPLETED, DELTA, RealtimeEvent, RealtimeResult

pytestmark = pytest.mark.unit


def test_protocols_are_seed_openai_or_both_in_order() -> None:
    assert parse_args([]).protocol == ["seed"]
    assert parse_args(["--protocol", "openai,seed,openai"]).protocol == ["openai", "seed"]
    with pytest.raises(SystemExit):
        parse_args(["--protocol", "grpc"])
    with pytest.raises(argparse.ArgumentTypeError):
        _protocols("")


def test_realtime_events_become_interims_and_finals_of_their_track() -> None:
    events = [
        RealtimeEvent(1.0, {"type": "session.created"}),
        RealtimeEvent(2.0, {"type": DELTA, "item_id": "item_a", "delta": "And so"}),
        RealtimeEvent(2.5, {"type": DELTA, "item_id": "item_a", "delta": " my"}),
        RealtimeEvent(3.0, {"type": COMPLETED, "item_id": "item_a", "transcript": "And so my fellow."}),
        RealtimeEvent(3.5, {"type": "error", "error": {"code": "invalid_value", "message": "bad"}}),
    ]
    meeting = as_meeting(
        "ws://x", ["reader"], [RealtimeResult(events=events, started_at=0.5, sent_at=[0.6, 0.7])]
    )

    assert [message.type for message in meeting.messages] == ["interim", "interim", "final", "error"]
    assert [payload["text"] for payload in meeting.interims("reader")] == ["And so", "And so my"]
    assert meeting.transcript("reader") == "And so my fellow."
    assert meeting.finals("reader")[0]["id"] == "item_a"
    assert meeting.errors()[0]["message"] == "bad"
    assert meeting.sent_at == {"reader": [0.6, 0.7]} and meeting.started_at == 0.5
