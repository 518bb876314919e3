"""Streaming sample-rate conversion: tones keep their pitch and level, what would fold back is
filtered out, and the chunking of the input never changes the output."""

from __future__ import annotations

import numpy as np
import pytest

from service.resample import Resampler

pytestmark = pytest.mark.unit


def tone(hertz: float, rate: int, seconds: float = 1.0, amplitude: float = 10_000) -> bytes:
    times = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * hertz * times)).astype("<i2").tobytes()


def level_and_pitch(pcm: bytes, rate: int) -> tuple[float, float]:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)[500:-500]
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    rms = float(np.sqrt(np.mean(samples**2)))
    return 20 * np.log10(rms / (10_000 / np.sqrt(2))), float(np.argmax(spectrum)) * rate / len(samples)


@pytest.mark.parametrize("hertz", [200, 1000, 4000, 6000])
def test_speech_frequencies_keep_their_pitch_and_level(hertz: int) -> None:
    out = Resampler(24_000, 16_000).process(tone(hertz, 24_000))
    assert len(out) == 2 * 16_000
    level_db, pitch = level_and_pitch(out, 16_000)
    assert abs(level_db) < 0.5
    assert abs(pitch - hertz) < 2


@pytest.mark.parametrize("hertz", [9000, 11000])
def test_what_would_fold_below_8_khz_is_filtered_out(hertz: int) -> None:
    level_db, _pitch = level_and_pitch(Resampler(24_000, 16_000).process(tone(hertz, 24_000)), 16_000)
    assert level_db < -50


def test_chunks_of_any_size_give_the_same_samples_as_one_call() -> None:
    pcm = tone(440, 24_000, 2.0) + tone(3000, 24_000, 1.0)
    whole = Resampler(24_000, 16_000).process(pcm)
    resampler = Resampler(24_000, 16_000)
    rng = np.random.default_rng(7)
    pieces, start = [], 0
    while start < len(pcm):
        end = min(len(pcm), start + 2 * int(rng.integers(0, 1500)))
        pieces.append(resampler.process(pcm[start:end]))
        start = end
    assert b"".join(pieces) == whole


def test_up_from_16_khz_and_the_same_rate() -> None:
    level_db, pitch = level_and_pitch(Resampler(16_000, 24_000).process(tone(1000, 16_000)), 24_000)
    assert abs(level_db) < 0.5 and abs(pitch - 1000) < 2
    same = tone(1000, 16_000)
    assert Resampler(16_000, 16_000).process(same) == same
    with pytest.raises(ValueError):
        Resampler(0, 16_000)
