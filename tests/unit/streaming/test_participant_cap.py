"""The policy's bound on untranscribed audio (MAX_PENDING_AUDIO_S): when no result comes back,
the window keeps its newest audio only, whatever arrives."""

from __future__ import annotations

import numpy as np
import pytest

from service.audio import SAMPLE_RATE, SAMPLE_WIDTH_BYTES
from service.contracts import WordTiming
from streaming.config import PolicyConfig
from streaming.participant import ParticipantPolicy

pytestmark = pytest.mark.unit

FRAME = 512
CHUNK_SAMPLES = 32 * FRAME  # what the browser sends: 1.024 s
CHUNK_S = CHUNK_SAMPLES / SAMPLE_RATE
T0_MS = 1_732_450_000_000


def numbered_chunk(index: int) -> bytes:
    """A chunk whose every sample holds its chunk's index, to see which audio a window holds."""
    return np.full(CHUNK_SAMPLES, index, dtype="<i2").tobytes()


def feed(policy: ParticipantPolicy, first: int, count: int) -> None:
    """`count` chunks of speech (by VAD), each arriving as it is spoken."""
    for index in range(first, first + count):
        arrival = T0_MS + round((index + 1) * CHUNK_S * 1000)
        policy.add_audio(numbered_chunk(index), [0.9] * (CHUNK_SAMPLES // FRAME), arrival)


def chunks_in(pcm: bytes) -> list[int]:
    return sorted({int(v) for v in np.frombuffer(pcm, dtype="<i2")})


def test_under_the_cap_nothing_is_dropped() -> None:
    policy = ParticipantPolicy(PolicyConfig())
    feed(policy, 0, 10)

    assert policy.cap_pending(30.0) == 0.0
    assert policy.window_seconds == pytest.approx(10 * CHUNK_S)


def test_with_no_result_coming_back_the_window_keeps_only_the_newest_audio() -> None:
    policy = ParticipantPolicy(PolicyConfig())
    feed(policy, 0, 2)
    stuck = policy.advance(T0_MS + 2100)[1]  # a window goes out and never comes back
    assert stuck is not None

    dropped = 0.0
    for index in range(2, 200):
        feed(policy, index, 1)
        dropped += policy.cap_pending(30.0)

    assert policy.window_seconds == pytest.approx(30.0, abs=1 / SAMPLE_RATE)
    assert dropped == pytest.approx(200 * CHUNK_S - 30.0, abs=1 / SAMPLE_RATE)
    assert policy.advance(T0_MS + 300_000)[1] is None  # still one in flight: nothing more planned


def test_after_a_cap_the_next_window_holds_the_newest_audio_and_the_dropped_words_are_gone() -> None:
    policy = ParticipantPolicy(PolicyConfig())
    feed(policy, 0, 2)
    first = policy.advance(T0_MS + 2100)[1]
    assert first is not None
    interims = policy.apply(first, [WordTiming(text=" early", start=0.5, end=0.9, probability=0.9)])
    assert [t.text for t in interims] == ["early"]
    feed(policy, 2, 1)
    stuck = policy.advance(T0_MS + 3200)[1]  # this one never comes back
    assert stuck is not None and not stuck.final
    feed(policy, 3, 47)

    dropped = policy.cap_pending(30.0)
    policy.abandon(stuck)  # it timed out: its audio is covered again by the next window
    policy.end()
    plan = policy.advance(T0_MS + 60_000)[1]

    assert dropped == pytest.approx(50 * CHUNK_S - 30.0, abs=1 / SAMPLE_RATE)
    assert plan is not None and plan.final
    assert len(plan.pcm) // SAMPLE_WIDTH_BYTES <= 30 * SAMPLE_RATE
    assert chunks_in(plan.pcm)[0] >= 19  # the oldest 19 chunks (and a bit) are gone
    assert chunks_in(plan.pcm)[-1] == 49
    later = WordTiming(text=" kept", start=1.0, end=1.4, probability=0.9)
    out = policy.apply(plan, [later])
    # The speech after "kept" that the model did not hear is transcribed again before the
    # utterance goes out (it hears nothing more here).
    for _ in range(5):
        settled, again = policy.advance(T0_MS + 60_000)
        out += settled
        if again is None:
            break
        out += policy.apply(again, [])
    assert [t.text for t in out if t.kind == "final"] == ["kept"]  # "early" never final, its audio gone
    assert not policy.has_pending_speech()
