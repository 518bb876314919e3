"""The pipeline benchmark's arithmetic: quantiles from the ingress's cumulative histogram, and the
ceiling (the most windows a second within the round-trip bound)."""

from __future__ import annotations

import math

import pytest

from bench.pipeline import PipelineStep, ceiling, quantile_from_buckets


def test_a_quantile_is_interpolated_within_its_bucket() -> None:
    buckets = {0.1: 10.0, 0.5: 50.0, 1.0: 90.0, 2.0: 100.0, math.inf: 100.0}

    assert quantile_from_buckets(buckets, 0.5) == pytest.approx(0.5)
    assert quantile_from_buckets(buckets, 0.9) == pytest.approx(1.0)
    assert quantile_from_buckets(buckets, 0.3) == pytest.approx(0.1 + 0.4 * 20 / 40)
    assert quantile_from_buckets(buckets, 0.05) == pytest.approx(0.05)


def test_a_quantile_past_the_last_bound_is_infinite_and_an_empty_histogram_has_none() -> None:
    assert quantile_from_buckets({1.0: 5.0, math.inf: 10.0}, 0.9) == math.inf
    assert math.isnan(quantile_from_buckets({1.0: 0.0, math.inf: 0.0}, 0.5))
    assert math.isnan(quantile_from_buckets({}, 0.5))


def step(talkers: int, windows: int, p90_s: float, errors: int = 0) -> PipelineStep:
    return PipelineStep(
        call_ms=5.0,
        talkers=talkers,
        seconds=10.0,
        audio_s=10.0 * talkers,
        windows=windows,
        batches=windows // 4,
        round_trip_p50_s=p90_s / 2,
        round_trip_p90_s=p90_s,
        ingress_cpu_s=1.0,
        ingress_loop_cpu_s=0.25,
        worker_cpu_s=2.0,
        errors=errors,
    )


def test_the_ceiling_is_the_busiest_step_that_kept_its_round_trip_within_a_second_without_errors() -> None:
    steps = [step(8, 100, 0.3), step(16, 200, 0.9), step(32, 350, 1.4), step(64, 300, 0.5, errors=2)]

    assert ceiling(steps) == pytest.approx(20.0)
    assert ceiling([step(8, 100, 1.2)]) == 0.0
    assert steps[1].batch_fill == pytest.approx(4.0)
    assert steps[1].worker_cpu_ms_per_window == pytest.approx(10.0)
    assert steps[1].ingress_cpu_ms_per_talker_s == pytest.approx(1000 / 160)
    assert steps[1].ingress_loop_ms_per_talker_s == pytest.approx(250 / 160)
    assert steps[1].ingress_vad_ms_per_talker_s == pytest.approx(750 / 160)
