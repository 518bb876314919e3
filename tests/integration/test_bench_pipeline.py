"""`make bench-pipeline --quick` end to end: the real ingress, Redis and Celery worker with the
fixed-cost stand-in as the model. Structure and sanity of what it measures, never its timings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import pipeline

pytestmark = pytest.mark.integration


def test_a_quick_pipeline_run_transcribes_windows_in_batches_and_prints_its_ceiling(tmp_path: Path) -> None:
    args = pipeline.parse_args(["--quick"])

    markdown, steps, queued = pipeline.run(args, tmp_path)

    assert (tmp_path / "results.md").read_text(encoding="utf-8") == markdown + "\n"
    assert "pipeline ceiling: " in markdown and " windows/s (model call 5 ms" in markdown
    [step] = steps
    assert step.errors == 0
    assert step.windows >= step.talkers * 3  # interims of 8 s of speech each, and finals
    assert 1.0 <= step.batch_fill <= args.batch_size
    assert step.worker_cpu_s > 0 and step.ingress_cpu_s > 0
    assert 0 < step.ingress_loop_cpu_s < step.ingress_cpu_s  # the VAD's threads took the rest
    assert 0 < step.round_trip_p50_s <= step.round_trip_p90_s
    saved = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert saved["steps"][0]["windows"] == step.windows
    # The worker alone: every queued window answered, in batches as full as they could be.
    [alone] = queued
    assert alone.windows == args.queued == saved["queued"][0]["windows"]
    assert alone.batch_fill > args.batch_size / 2
    assert alone.worker_cpu_s > 0
    assert "| 5 ms | 64 |" in markdown
