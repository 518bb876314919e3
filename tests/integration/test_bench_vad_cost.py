"""bench.vad_cost with the ingress's real Silero model: a second of speech costs the VAD CPU, most
of it inside the model's call, and digital silence past half a second is not scored."""

from __future__ import annotations

from typing import Any

import pytest

from bench.vad_cost import measure, report
from ingress.vad import SILENCE_RESETS_AFTER
from service.audio import BYTES_PER_SECOND

pytestmark = pytest.mark.integration


def test_speech_is_scored_whole_and_a_long_digital_silence_is_mostly_skipped(speech: Any) -> None:
    jfk = speech("jfk_ask_not")
    silence = bytes(10 * BYTES_PER_SECOND)

    spoken = measure(jfk, repeats=1)
    padded = measure(jfk + silence, repeats=1)

    assert spoken.scored_share > 0.95  # the clip's own pauses are a microphone's, not zeros
    # Of the 10 s of zeros (312 frames) only the first half second is scored.
    assert padded.frames - spoken.frames >= 312
    assert 0 < padded.frames_scored - spoken.frames_scored <= SILENCE_RESETS_AFTER + 1
    assert spoken.cpu_ms_per_audio_s > 0 and 0.5 < spoken.model_share <= 1.0
    assert padded.audio_s == pytest.approx(spoken.audio_s + 10.0)
    table = report([("jfk", spoken), ("jfk and silence", padded)])
    assert "| jfk | " in table and "VAD: " in table
