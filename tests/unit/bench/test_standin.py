"""The pipeline benchmark's stand-in finds a window's audio among its clips and answers with the
offline words there, in window time."""

from __future__ import annotations

import numpy as np
import pytest

from bench.standin import AudioIndex, FixedCostTranscriber, StandinClip
from models.transcriber import UnsupportedLanguageError, Window
from service.audio import SAMPLE_RATE
from service.contracts import WordTiming


def noise(seconds: float, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return rng.integers(-3000, 3000, int(seconds * SAMPLE_RATE)).astype("<i2").tobytes()


def word(text: str, start: float, end: float) -> WordTiming:
    return WordTiming(text=text, start=start, end=end, probability=0.9)


FIRST = StandinClip(noise(4.0, 1), [word(" one", 0.5, 0.9), word(" two", 1.5, 1.9), word(" three", 3.0, 3.4)])
SECOND = StandinClip(noise(3.0, 2), [word(" four", 0.2, 0.6), word(" five", 2.0, 2.5)])


def cut(pcm: bytes, start_s: float, end_s: float) -> bytes:
    return pcm[int(start_s * SAMPLE_RATE) * 2 : int(end_s * SAMPLE_RATE) * 2]


def test_a_window_cut_anywhere_in_a_clip_gets_the_words_there_in_window_time() -> None:
    index = AudioIndex([FIRST, SECOND])

    words = index.words_in(cut(FIRST.pcm, 1.2345, 3.9))

    assert [w.text for w in words] == [" two", " three"]
    assert words[0].start == pytest.approx(1.5 - 1.2345, abs=1e-3)
    assert words[1].end == pytest.approx(3.4 - 1.2345, abs=1e-3)


def test_a_window_spanning_two_clips_and_silence_gets_the_words_of_both() -> None:
    index = AudioIndex([FIRST, SECOND])
    silence = bytes(int(0.2 * SAMPLE_RATE) * 2)

    words = index.words_in(cut(FIRST.pcm, 2.5, 4.0) + silence + cut(SECOND.pcm, 0.0, 1.0))

    assert [w.text for w in words] == [" three", " four"]
    assert words[1].start == pytest.approx(1.5 + 0.2 + 0.2, abs=1e-3)


def test_audio_it_does_not_know_has_no_words_and_a_word_cut_off_at_the_end_is_left_out() -> None:
    index = AudioIndex([FIRST])

    assert index.words_in(noise(2.0, 3)) == []
    assert [w.text for w in index.words_in(cut(FIRST.pcm, 0.0, 1.7))] == [" one"]


def test_a_batch_costs_one_call_shared_by_its_windows_and_other_languages_are_refused() -> None:
    standin = FixedCostTranscriber(AudioIndex([FIRST]), call_ms=0.0)

    results = standin.transcribe_batch([Window(FIRST.pcm, "en"), Window(cut(FIRST.pcm, 1.0, 2.0), "en")])

    assert [[w.text for w in r.words] for r in results] == [[" one", " two", " three"], [" two"]]
    with pytest.raises(UnsupportedLanguageError):
        standin.transcribe_batch([Window(FIRST.pcm, "de")])
