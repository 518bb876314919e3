"""When the ingress calls the worker pool saturated (pure bookkeeping, clock passed in)."""

from __future__ import annotations

import pytest

from ingress.load import LoadGauge

pytestmark = pytest.mark.unit


def test_quick_round_trips_are_not_saturation() -> None:
    gauge = LoadGauge(limit_s=4.0)
    for n in range(20):
        gauge.sent(f"w{n}", now=n)
        gauge.answered(f"w{n}", now=n + 0.8)

    assert not gauge.saturated(now=20.0)


def test_slow_round_trips_are_saturation_until_they_age_out_of_the_horizon() -> None:
    gauge = LoadGauge(limit_s=4.0, horizon_s=10.0)
    for n in range(3):
        gauge.sent(f"w{n}", now=n)
        gauge.answered(f"w{n}", now=n + 6.0)

    assert gauge.saturated(now=9.0)
    assert "median round trip 6.0 s" in gauge.describe(now=9.0)
    assert not gauge.saturated(now=20.0)  # nothing answered lately, nothing waiting


def test_windows_waiting_long_with_no_answers_are_saturation() -> None:
    gauge = LoadGauge(limit_s=4.0)
    gauge.sent("a", now=0.0)
    gauge.sent("b", now=1.0)

    assert not gauge.saturated(now=4.5)  # half of them not yet over the limit
    assert gauge.saturated(now=5.5)
    assert "2 windows waiting" in gauge.describe(now=5.5)


def test_one_stuck_window_alone_is_not_saturation() -> None:
    """A single window whose worker died waits for its re-send; the pool is not full for that."""
    gauge = LoadGauge(limit_s=4.0)
    gauge.sent("stuck", now=0.0)

    assert not gauge.saturated(now=30.0)


def test_failed_windows_say_nothing_about_speed() -> None:
    gauge = LoadGauge(limit_s=4.0)
    gauge.sent("a", now=0.0)
    gauge.sent("b", now=0.0)
    gauge.dropped("a")
    gauge.dropped("b")

    assert not gauge.saturated(now=60.0)
    gauge.answered("a", now=61.0)  # a late answer to a dropped window is ignored
    assert not gauge.saturated(now=61.0)


def test_a_limit_of_zero_turns_the_check_off() -> None:
    gauge = LoadGauge(limit_s=0.0)
    gauge.sent("a", now=0.0)
    gauge.sent("b", now=0.0)

    assert not gauge.saturated(now=1000.0)
