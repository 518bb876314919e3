"""Streaming Silero VAD on the corpus: speech is heard, silence and noise are not, and how the audio
is chunked does not matter. (The small ONNX file faster-whisper ships, not the speech model.)"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from bench.corpus import audio_file
from ingress.vad import FRAME_SAMPLES, SILENCE_RESETS_AFTER, SileroVad, VadState
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


class CountingVad(SileroVad):
    """The real model, counting the frames it is asked to score."""

    frames_scored = 0

    def score(
        self, frames: np.ndarray, h: np.ndarray, c: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self.frames_scored += len(frames)
        return super().score(frames, h, c)


def test_long_digital_silence_is_not_run_through_the_model(corpus_dir: Path) -> None:
    vad = CountingVad()
    speech = samples_of(corpus_dir, "jfk_ask_not")[16_000 : 16_000 + 96 * FRAME_SAMPLES]  # sound throughout
    muted = np.zeros(300 * FRAME_SAMPLES, dtype=np.float32)
    muted[::7] = 1 / 32768  # one step of 16-bit PCM is still digital silence

    probs = stream(vad, np.concatenate([muted, speech]), BROWSER_CHUNK)

    silent_frames = len(muted) // FRAME_SAMPLES
    assert (probs[:silent_frames] < SPEECH).all()
    assert (probs[SILENCE_RESETS_AFTER:silent_frames] == 0).all()
    # Only the first half second of the silence is scored, then the speech.
    assert vad.frames_scored == SILENCE_RESETS_AFTER + len(probs) - silent_frames
    # After it, speech is heard as a fresh stream hears it.
    fresh = stream(vad, speech, BROWSER_CHUNK)
    assert (fresh > SPEECH).sum() >= 20
    np.testing.assert_allclose(probs[silent_frames:], fresh, atol=1e-5)


def test_short_digital_silences_and_quiet_noise_are_scored_by_the_model(corpus_dir: Path) -> None:
    vad = CountingVad()
    gap = np.zeros((SILENCE_RESETS_AFTER - 1) * FRAME_SAMPLES, dtype=np.float32)
    hiss = samples_of(corpus_dir, "noise_20s")[:16_000] * 0.01  # quiet, but not digital silence
    audio = np.concatenate([gap, hiss, gap, hiss])

    probs = stream(vad, audio, BROWSER_CHUNK)

    assert vad.frames_scored == len(probs) == len(audio) // FRAME_SAMPLES


@pytest.mark.parametrize("chunk", [777, BROWSER_CHUNK, 16_000])
def test_how_a_meeting_track_is_chunked_does_not_change_which_silence_is_skipped(
    vad: SileroVad, corpus_dir: Path, chunk: int
) -> None:
    # Half of this track is digital silence between the speaker's turns.
    audio = samples_of(corpus_dir, "meeting_3spk_dev.spk1")

    probs = stream(vad, audio, chunk)

    np.testing.assert_allclose(probs, stream(vad, audio, 4 * FRAME_SAMPLES), atol=1e-5)
    assert (probs > SPEECH).sum() > 200


def test_a_stream_restored_from_its_state_goes_on_as_if_never_stopped(
    vad: SileroVad, corpus_dir: Path
) -> None:
    audio = samples_of(corpus_dir, "jfk_ask_not")
    split = 5 * 16_000 + 100  # mid-speech, mid-frame
    uninterrupted = stream(vad, audio, 1000)

    first = vad.new_stream()
    before = np.concatenate([first.process(audio[i : min(i + 1000, split)]) for i in range(0, split, 1000)])
    state = VadState(**json.loads(json.dumps(dataclasses.asdict(first.state()))))  # as Redis holds it
    second = vad.new_stream()
    second.restore(state)
    after = np.concatenate([second.process(audio[i : i + 1000]) for i in range(split, len(audio), 1000)])

    np.testing.assert_array_equal(np.concatenate([before, after]), uninterrupted)


def test_a_state_of_another_shape_is_refused(vad: SileroVad) -> None:
    state = vad.new_stream().state()

    with pytest.raises(ValueError, match="another shape"):
        vad.new_stream().restore(dataclasses.replace(state, h=state.h[:-1]))
    with pytest.raises(ValueError, match="pending samples"):
        vad.new_stream().restore(dataclasses.replace(state, pending=(0.0,) * FRAME_SAMPLES))
