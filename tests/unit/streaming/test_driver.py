"""The one driver loop (`streaming.driver.drive`) with a fake transcription: failed windows are
retried after a doubling pause, a permanent failure or one after the meeting ended lets the audio
go, the idle flush is the wait's deadline, and end-of-speech finals need no model call when the
last hypothesis heard all of the speech."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest

from service.contracts import WordTiming
from streaming.config import PolicyConfig
from streaming.driver import MAX_RETRY_DELAY_S, RETRY_DELAY_S, WindowFailed
from streaming.window import WindowPlan
from tests.unit.streaming.speaking import T0_MS, Model, Session, in_window, samples, say

pytestmark = pytest.mark.unit

JFK = "And so my fellow Americans. Ask not what your country can do for you."


def failing_on(session: Session, calls: set[int], permanent: bool = False) -> Model:
    """A perfect model of the session's words whose `calls` (counted from 0) fail."""
    counter = itertools.count()

    def model(plan: WindowPlan) -> Sequence[WordTiming]:
        if next(counter) in calls:
            raise WindowFailed("no worker answered", permanent=permanent)
        return in_window(plan, session.words)

    return model


def finals_text(session: Session) -> str:
    return " ".join(t.text for t in session.finals)


def test_a_failed_window_is_tried_again_after_a_pause_that_doubles_to_a_cap_and_starts_over() -> None:
    session = Session(words=say(JFK, start=0.5) + say(JFK, start=12.0))
    failed = {0, 1, 2, 3, 4, 7}  # the second sentence's second window fails after successes
    session.model = failing_on(session, failed)

    session.play(until_s=session.words[-1].end + 8.0)
    session.end()

    assert session.retry_pauses == [1.0, 2.0, 4.0, 4.0, 4.0, 1.0]
    assert (RETRY_DELAY_S, MAX_RETRY_DELAY_S) == (1.0, 4.0)
    assert [f.permanent for f in session.failures] == [False] * len(failed)
    for n in failed:  # the audio of a failed window is heard again by the next
        assert session.plans[n + 1].start <= session.plans[n].start
    assert finals_text(session) == f"{JFK} {JFK}"
    assert session.driver_done


def test_a_permanent_failure_lets_the_pending_audio_go_and_waits_for_new_speech() -> None:
    session = Session(words=say("Bonjour", 0.2) + say("hello again everyone", 4.0))
    session.model = failing_on(session, {0}, permanent=True)

    session.play(until_s=8.0)
    session.end()

    assert session.retry_pauses == []
    assert [f.permanent for f in session.failures] == [True]
    refused, *later = session.plans
    assert later and all(plan.start >= refused.end for plan in later)  # never heard again
    assert finals_text(session) == "hello again everyone"


def test_a_failure_after_the_meeting_ended_is_reported_once_and_the_driver_stops() -> None:
    session = Session(words=say("one two three four five six", 0.2))
    session.play(until_s=2.1)  # speaking on: the end needs a final window
    session.model = failing_on(session, set(range(100)))

    session.end()

    assert session.driver_done
    assert session.plans[-1].final
    assert len(session.failures) == 1 and session.retry_pauses == []
    assert not session.policy.has_pending_speech()


def test_the_driver_sleeps_until_the_idle_flush_and_a_step_at_that_time_makes_the_final() -> None:
    config = PolicyConfig()
    # The VAD hears speech to the end: only the client's silence (no more chunks) ends it.
    session = Session(words=say("ask not what your country", 0.2), speech=[(0.0, 10.0)], config=config)
    session.play(until_s=2.5)
    last_arrival = session.now_ms
    assert session.finals == []
    assert session.flush_waits[-1] == pytest.approx(config.flush_interval_s)

    assert session.step(now_ms=last_arrival + round(config.flush_interval_s * 1000) - 1) == []
    out = session.step(now_ms=last_arrival + round(config.flush_interval_s * 1000))

    assert [t.text for t in out if t.kind == "final"] == ["ask not what your country"]
    assert session.flush_waits[-1] is None  # nothing pending: no deadline


def test_the_end_of_speech_final_needs_no_model_call_when_the_last_hypothesis_heard_it_all() -> None:
    words = say(JFK, start=0.5)
    session = Session(words=words)

    session.play(until_s=words[-1].end + 2.0)

    assert finals_text(session) == JFK
    assert not any(plan.final for plan in session.plans)  # the last interim heard all the speech
    assert session.plans[-1].end >= samples(words[-1].end)


def test_a_window_answered_by_hand_waits_while_audio_arrives_and_nothing_else_is_planned() -> None:
    session = Session(words=say("one two three four five", 0.1), speech=[(0.0, 3.0)], answer_by_hand=True)
    session.feed(1.1)
    interim = session.window()
    assert interim is not None and not interim.final

    session.feed(6.0)  # speech, then end of speech: a final is due once the interim is back
    assert session.policy.advance(session.now_ms + 60_000) == ([], None)  # one window at a time
    assert session.answer(interim, in_window(interim, session.words)) == session.out[-1:]

    final = session.waiting_for
    assert final is not None and final.final and final.start == interim.start
    session.answer(final, in_window(final, session.words))
    assert finals_text(session) == "one two three four five"
    assert session.now_ms > T0_MS
