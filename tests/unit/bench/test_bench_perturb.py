"""The perturbed corpus: speed change and noise mixing on plain arrays, and a tiny corpus on disk."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.corpus import load_corpus
from bench.perturb import add_noise, change_speed, perturb_corpus, read_samples, speech_power, write_samples
from service.audio import SAMPLE_RATE

pytestmark = pytest.mark.unit


def tone(seconds: float, amplitude: float = 8000.0, hz: float = 440.0) -> np.ndarray:
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return amplitude * np.sin(2 * np.pi * hz * t)


def test_faster_speech_is_shorter_and_higher() -> None:
    fast = change_speed(tone(2.0), 1.25)
    assert len(fast) == round(2.0 * SAMPLE_RATE / 1.25)
    spectrum = np.abs(np.fft.rfft(fast))
    assert np.fft.rfftfreq(len(fast), 1 / SAMPLE_RATE)[spectrum.argmax()] == pytest.approx(550.0, abs=2.0)


def test_a_speed_of_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        change_speed(tone(1.0), 0.0)


def test_silence_between_turns_does_not_dilute_the_speech_power() -> None:
    speech = tone(1.0)
    with_pauses = np.concatenate([np.zeros(3 * SAMPLE_RATE), speech, np.zeros(3 * SAMPLE_RATE)])
    assert speech_power(with_pauses) == pytest.approx(speech_power(speech), rel=0.05)
    assert speech_power(np.zeros(SAMPLE_RATE)) == 0.0


def test_noise_is_mixed_in_at_the_ratio_asked_for() -> None:
    speech = tone(2.0)
    noise = np.random.default_rng(1).normal(0.0, 1000.0, SAMPLE_RATE // 2)  # looped four times
    mixed = add_noise(speech, noise, snr_db=10.0)
    added = mixed - speech
    assert len(mixed) == len(speech)
    assert 10 * np.log10(speech_power(speech) / np.mean(added**2)) == pytest.approx(10.0, abs=0.01)


def test_silent_noise_is_refused() -> None:
    with pytest.raises(ValueError, match="silent"):
        add_noise(tone(1.0), np.zeros(100), 10.0)


def test_a_perturbed_corpus_loads_with_its_times_scaled_and_silence_untouched(tmp_path: Path) -> None:
    source, out = tmp_path / "source", tmp_path / "out"
    source.mkdir()
    write_samples(source / "talk.wav", tone(2.0))
    (source / "talk.txt").write_text("hello there", encoding="utf-8")
    write_samples(source / "quiet.wav", np.zeros(SAMPLE_RATE))
    (source / "quiet.txt").write_text("", encoding="utf-8")
    items = [
        {
            "name": "talk",
            "language": "en",
            "duration_s": 2.0,
            "files": {"audio": "talk.wav", "reference": "talk.txt"},
            "segments": [{"start": 0.5, "end": 1.5, "text": "hello there"}],
        },
        {
            "name": "quiet",
            "language": "none",
            "duration_s": 1.0,
            "files": {"audio": "quiet.wav", "reference": "quiet.txt"},
        },
    ]
    (source / "manifest.json").write_text(json.dumps({"corpus": "tiny", "items": items}), encoding="utf-8")

    perturb_corpus(source, out, speed=2.0, snr_db=20.0, noise=tone(0.5, 100.0, 3000.0))

    talk, quiet = load_corpus(out)
    assert talk.duration_s == 1.0 and (talk.segments[0].start, talk.segments[0].end) == (0.25, 0.75)
    assert talk.tracks[0].reference == "hello there"
    assert len(read_samples(talk.tracks[0].audio)) == SAMPLE_RATE
    assert not np.array_equal(read_samples(talk.tracks[0].audio), change_speed(tone(2.0), 2.0).astype("<i2"))
    assert quiet.duration_s == 1.0 and not np.any(read_samples(quiet.tracks[0].audio))
    assert "speed 2.0, noise at 20.0 dB SNR" in json.loads((out / "manifest.json").read_text())["corpus"]
