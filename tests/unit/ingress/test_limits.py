"""Per-participant limits with a clock we choose: the audio token bucket and the complaint cooldown."""

from __future__ import annotations

import pytest

from ingress.limits import Cooldown, TokenBucket

pytestmark = pytest.mark.unit

CHUNK_S = 1.024
"""What the browser sends per message."""


def accepted(bucket: TokenBucket, sends: list[tuple[float, float]]) -> list[bool]:
    """Offer (time, seconds of audio) pairs in order; which were granted."""
    return [bucket.take(seconds, now) for now, seconds in sends]


def test_a_real_time_speaker_is_never_refused() -> None:
    bucket = TokenBucket(rate=1.0, capacity=2.0)

    sends = [(k * CHUNK_S, CHUNK_S) for k in range(3600)]  # an hour, one chunk as each is spoken

    assert all(accepted(bucket, sends))


def test_the_burst_is_granted_at_once_then_refused() -> None:
    bucket = TokenBucket(rate=2.0, capacity=10.0)

    granted = accepted(bucket, [(0.0, CHUNK_S)] * 12)

    assert granted == [True] * 9 + [False] * 3  # 9 chunks = 9.2 s fit in 10 s; the 10th does not


def test_refused_audio_costs_nothing_and_the_bucket_refills_at_the_rate() -> None:
    bucket = TokenBucket(rate=2.0, capacity=4.0)
    assert bucket.take(4.0, now=0.0)

    assert not bucket.take(1.0, now=0.25)  # 0.5 s earned: not enough
    assert not bucket.take(1.0, now=0.4)  # refusals did not spend the 0.8 s earned so far
    assert bucket.take(1.0, now=0.5)  # 1.0 s earned by now
    assert bucket.tokens(0.5) == pytest.approx(0.0)
    assert bucket.tokens(100.0) == 4.0  # never more than the burst


@pytest.mark.parametrize("speed", [2.0, 3.0, 4.0])
def test_sustained_speed_at_or_under_the_rate_is_never_refused(speed: float) -> None:
    bucket = TokenBucket(rate=4.0, capacity=60.0)

    sends = [(k * CHUNK_S / speed, CHUNK_S) for k in range(1000)]

    assert all(accepted(bucket, sends))


def test_sustained_speed_over_the_rate_is_held_to_the_rate() -> None:
    rate, speed, duration_s = 2.0, 8.0, 60.0
    bucket = TokenBucket(rate=rate, capacity=10.0)
    sends = [(k * CHUNK_S / speed, CHUNK_S) for k in range(round(duration_s * speed / CHUNK_S))]

    granted_s = sum(seconds for (now, seconds), ok in zip(sends, accepted(bucket, sends), strict=True) if ok)

    assert granted_s == pytest.approx(10.0 + rate * duration_s, abs=2 * CHUNK_S)


def test_a_message_longer_than_the_burst_passes_when_full_and_leaves_a_debt() -> None:
    bucket = TokenBucket(rate=1.0, capacity=4.0)

    assert bucket.take(10.0, now=0.0)
    assert bucket.tokens(0.0) == pytest.approx(-6.0)
    assert not bucket.take(1.0, now=6.5)  # 0.5 s of credit: still not a whole chunk
    assert bucket.take(1.0, now=7.0)


def test_a_clock_going_back_earns_nothing() -> None:
    bucket = TokenBucket(rate=1.0, capacity=2.0)
    assert bucket.take(2.0, now=10.0)

    assert not bucket.take(1.0, now=5.0)
    assert bucket.take(1.0, now=11.0)


@pytest.mark.parametrize(("rate", "capacity"), [(0.0, 1.0), (1.0, 0.0), (-1.0, 1.0)])
def test_bucket_needs_positive_numbers(rate: float, capacity: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(rate, capacity)


def test_cooldown_is_ready_once_per_interval() -> None:
    cooldown = Cooldown(5.0)

    ready = [cooldown.ready(now) for now in (0.0, 1.0, 4.9, 5.0, 5.1, 9.9, 10.0)]

    assert ready == [True, False, False, True, False, False, True]
