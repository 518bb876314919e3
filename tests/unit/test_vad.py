"""Streaming Silero VAD on the corpus: speech is heard, silence and noise are not, and how the audio
is chunked does not matter. (The small ONNX file faster-whisper ships, not the speech model.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.corpus import audio_file
from ingress.vad import FRAME_SAMPLES, SileroVad
from service.audio import pcm_to_float32
from service.pcm_files import read_pcm

pytestmark = pytest.mark.unit

BROWSER_CHUNK = 16384
SPEECH = 0.5


@pytest.fixture(scope="module")
def vad() -> SileroVad:
    return SileroVad()


def samples_of(corpus_dir: Path, name: str) -> np.ndarray:
    return pcm_to_float32(read_pcm(audio_file(corpus_dir, name)))


def stream(vad: SileroVad, audio: np.ndarray, chunk: int) -> np.ndarray:
    """Feed `audio` to a fresh stream `chunk` samples at a time, as messages would arrive."""
    vad_stream = vad.new_stream()
    return np.concatenate([vad_stream.process(audio[i : i + chunk]) for i in range(0, len(audio), chunk)])


def test_speech_is_heard(vad: SileroVad, corpus_dir: Path) -> None:
    audio = samples_of(corpus_dir, "jfk_ask_not")

    probs = stream(vad, audio, BROWSER_CHUNK)

    assert len(probs) == len(audio) // FRAME_SAMPLES
    speech_s = (probs > SPEECH).sum() * FRAME_SAMPLES / 16_000
    assert speech_s > 5.0  # of 11 s, with pauses between the phrases
    assert (probs <= SPEECH).sum() > 20  # ...which are heard as pauses


@pytest.mark.parametrize("name", ["silence_20s", "noise_20s"])
def test_silence_and_noise_are_not_speech(vad: SileroVad, corpus_dir: Path, name: str) -> None:
    probs = stream(vad, samples_of(corpus_dir, name), BROWSER_CHUNK)

    assert len(probs) == 20 * 16_000 // FRAME_SAMPLES
    assert (probs > SPEECH).sum() == 0


@pytest.mark.parametrize("chunk", [1000, 511, 513, 7 * FRAME_SAMPLES])
def test_chunk_size_does_not_change_the_result(vad: SileroVad, corpus_dir: Path, chunk: int) -> None:
    audio = samples_of(corpus_dir, "jfk_ask_not")

    odd = stream(vad, audio, chunk)
    browser = stream(vad, audio, BROWSER_CHUNK)

    assert len(odd) == len(browser)
    np.testing.assert_allclose(odd, browser, atol=1e-4)


def test_a_chunk_shorter_than_a_frame_waits_for_the_rest(vad: SileroVad) -> None:
    vad_stream = vad.new_stream()

    assert len(vad_stream.process(np.zeros(FRAME_SAMPLES - 1, dtype=np.float32))) == 0
    assert len(vad_stream.process(np.zeros(1, dtype=np.float32))) == 1


def test_participants_streams_do_not_share_state(vad: SileroVad, corpus_dir: Path) -> None:
    speech = samples_of(corpus_dir, "jfk_ask_not")
    silence = samples_of(corpus_dir, "silence_20s")[: len(speech)]
    alice, bob = vad.new_stream(), vad.new_stream()

    interleaved = []
    for i in range(0, len(speech), BROWSER_CHUNK):
        interleaved.append(alice.process(speech[i : i + BROWSER_CHUNK]))
        bob.process(silence[i : i + BROWSER_CHUNK])

    np.testing.assert_allclose(np.concatenate(interleaved), stream(vad, speech, BROWSER_CHUNK), atol=1e-5)
