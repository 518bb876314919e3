"""The benchmark's offline limit with the real tiny.en: its words, and a compute figure that one
slow pass on a shared machine does not decide alone."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from bench.corpus import load_corpus
from bench.run import OFFLINE_REPEATS, transcribe_offline
from bench.scoring import error_rate
from service.settings import Settings

pytestmark = pytest.mark.integration


def test_the_offline_limit_transcribes_each_track_and_takes_the_median_compute_of_its_passes(
    corpus_dir: Path,
) -> None:
    jfk = [item for item in load_corpus(corpus_dir) if item.name == "jfk_ask_not"]

    offline = transcribe_offline(jfk, "en", Settings())

    transcript = offline["jfk_ask_not", jfk[0].tracks[0].participant]
    reference = (corpus_dir / "jfk_ask_not.txt").read_text(encoding="utf-8")
    assert error_rate(reference, " ".join(word.text for word in transcript.words), "en") < 0.1
    assert len(transcript.pass_compute_s) == OFFLINE_REPEATS
    assert min(transcript.pass_compute_s) > 0
    assert transcript.compute_s == statistics.median(transcript.pass_compute_s)
