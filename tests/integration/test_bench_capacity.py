"""`make bench-capacity --quick` end to end against the session's real stack: structure and sanity
of what it writes, never its timings (the machine may be busy)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench import capacity
from bench.capacity_report import TALKERS, TURNS
from tests.integration.conftest import Service

pytestmark = pytest.mark.integration

SANE_WER = 0.5
"""tiny.en scores about 0.2 on the quick clips; above 0.5 the streams lost or garbled speech."""


def test_quick_capacity_run_writes_both_tables_with_sane_single_stream_numbers(
    service: Service, tmp_path: Path
) -> None:
    settings = service.stack.settings
    args = capacity.parse_args(
        [
            "--quick",
            "--url",
            f"ws://{settings.host}:{settings.port}",
            "--redis-url",
            service.stack.redis_url,
        ]
    )

    markdown = capacity.run(args, tmp_path)

    assert (tmp_path / "results.md").read_text(encoding="utf-8") == markdown + "\n"
    for scenario in (TALKERS, TURNS):
        assert f"## {scenario.title}" in markdown
        assert f"| {scenario.key} | meetings |" in markdown
        assert f"target ≥ {scenario.target}:" in markdown
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    talkers = results["scenarios"]["talkers"]["steps"]
    meetings = results["scenarios"]["participants"]["steps"]
    assert [step["n"] for step in talkers][:1] == [1]
    assert [step["n"] for step in meetings] == [5]
    for single, participants in ((talkers[0], 1), (meetings[0], 5)):
        measures = single["measures"]
        assert single["meetings"] == 1 and single["refused"] == 0
        assert len(measures["transcripts"]) == participants
        assert measures["finals"]["reference_words"] > 0
        assert math.isfinite(measures["wer_finals"]) and 0 <= measures["wer_finals"] <= SANE_WER
        assert measures["final_latencies"], "no final word was matched to the offline words"
        assert measures["stream_compute"]["windows"] > 0
        assert measures["stream_compute"]["compute_s"] > 0
