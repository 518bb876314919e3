"""A participant's stream carried over a reconnect: the policy's snapshot, through the JSON it
crosses Redis as, restored into a fresh policy, goes on exactly as the stream would have."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import ValidationError

from streaming.config import PolicyConfig
from streaming.participant import ParticipantPolicy
from streaming.snapshot import PolicySnapshot
from streaming.utterances import Transcript
from tests.unit.streaming.speaking import Session, counting_ids, say

pytestmark = pytest.mark.unit

WORDS = say("And so my fellow Americans.", 0.5) + say("Ask not what your country can do for you.", 3.5)
DROP_S = 5.0
"""Mid-way through the second sentence: its interims are out, its final is not."""
END_S = 10.0


def speaker(**options: object) -> Session:
    session = Session(words=WORDS, **options)  # type: ignore[arg-type]
    session.policy = ParticipantPolicy(session.config, new_id=counting_ids())
    return session


def carried_over(before: Session, gap_ms: int = 0, **options: object) -> Session:
    """A session going on from `before`'s state, the client back `gap_ms` after it dropped."""
    snapshot = PolicySnapshot.model_validate_json(before.policy.snapshot().model_dump_json())
    after = Session(words=WORDS, config=before.config, lag_ms=before.lag_ms + gap_ms, **options)  # type: ignore[arg-type]
    after.received = before.received
    # Ids go on from the same counter (a UUIDv7 never repeats; the counter must not either).
    after.policy = ParticipantPolicy(before.config, new_id=before.policy._utterances._new_id)
    after.policy.restore(snapshot, after.now_ms)
    return after


def uninterrupted() -> list[Transcript]:
    """The same stream, chunked the same way (the chunk that reaches DROP_S is a short one)."""
    session = speaker()
    session.play(DROP_S)
    return finish(session)


def finish(session: Session) -> list[Transcript]:
    session.play(END_S)
    session.end(session.now_ms)
    return session.out


def spoken(transcripts: list[Transcript]) -> list[tuple[str, str, str]]:
    return [(t.utterance_id, t.kind, t.text) for t in transcripts]


def test_a_stream_carried_over_at_once_sends_exactly_what_it_would_have() -> None:
    whole = uninterrupted()
    before = speaker()
    before.play(DROP_S)
    assert before.out[-1].kind == "interim"  # an utterance is open where the socket drops

    after = carried_over(before)

    assert before.out + finish(after) == whole


def test_after_a_gap_the_open_utterance_goes_on_under_its_id_and_nothing_is_sent_twice() -> None:
    whole = uninterrupted()
    before = speaker()
    before.play(DROP_S)
    open_id = before.out[-1].utterance_id

    after = carried_over(before, gap_ms=20_000)
    assert after.step(after.now_ms) == []  # the 20 s away do not make an idle flush at once
    finish(after)

    assert after.out[0].utterance_id == open_id
    finals = [t for t in before.out + after.out if t.kind == "final"]
    assert spoken(finals) == spoken([t for t in whole if t.kind == "final"])
    assert len({t.utterance_id for t in finals}) == len(finals)


def test_a_window_in_flight_when_the_socket_dropped_is_planned_again() -> None:
    whole = uninterrupted()
    before = speaker(answer_by_hand=True)
    before.feed(2.0)
    lost = before.window(before.now_ms)
    assert lost is not None and before.policy.in_flight

    after = carried_over(before)
    finish(after)

    assert after.plans[0].start == lost.start and after.plans[0].end >= lost.end
    finals = [t for t in after.out if t.kind == "final"]
    assert spoken(finals) == spoken([t for t in whole if t.kind == "final"])


def test_an_ended_stream_has_no_snapshot() -> None:
    session = speaker()
    session.play(DROP_S)
    session.policy.end()
    with pytest.raises(ValueError, match="ended"):
        session.policy.snapshot()


def test_a_snapshot_that_does_not_hold_together_is_refused() -> None:
    session = speaker()
    session.play(DROP_S)
    snapshot = session.policy.snapshot()
    short_audio = dataclasses.replace(snapshot.buffer, audio=snapshot.buffer.audio[:-2])
    fresh = ParticipantPolicy(PolicyConfig())

    with pytest.raises(ValueError, match="bytes of audio"):
        fresh.restore(snapshot.model_copy(update={"buffer": short_audio}), 0)
    with pytest.raises(ValueError, match="agreement counts"):
        fresh.restore(snapshot.model_copy(update={"heard": (*snapshot.heard, 1)}), 0)


def test_a_snapshot_of_another_version_or_shape_is_not_read() -> None:
    session = speaker()
    session.play(DROP_S)
    text = session.policy.snapshot().model_dump_json()

    with pytest.raises(ValidationError):
        PolicySnapshot.model_validate_json(text.replace('"version":1', '"version":2'))
    with pytest.raises(ValidationError):
        PolicySnapshot.model_validate_json(text.replace('"planned_until"', '"planned_from"'))
