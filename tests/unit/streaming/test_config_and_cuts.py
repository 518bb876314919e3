"""The streaming package's small pieces on their own: the config built from Settings, the cut
decision, and the buffer's unit conversions."""

from __future__ import annotations

import pytest

from service.audio import SAMPLE_RATE, SAMPLE_WIDTH_BYTES
from service.settings import Settings
from streaming.buffer import StreamBuffer
from streaming.config import PolicyConfig
from streaming.cuts import Cut, choose_cut
from streaming.words import Word

pytestmark = pytest.mark.unit


def spoken(text: str, start: float = 0.0, gap_s: float = 0.1, probability: float = 0.9) -> list[Word]:
    words = []
    for token in text.split():
        words.append(Word(f" {token}", start, start + 0.3, probability))
        start += 0.3 + gap_s
    return words


def test_config_takes_the_users_settings_and_keeps_the_other_defaults() -> None:
    settings = Settings(
        whisper_flush_buffer_interval=1500,
        whisper_min_probability=0.4,
        whisper_max_finals_in_initial_prompt=5,
        whisper_return_transcribed_audio=True,
    )

    config = PolicyConfig.from_settings(settings)

    assert (config.flush_interval_s, config.min_probability) == (1.5, 0.4)
    assert (config.max_prompt_finals, config.return_audio) == (5, True)
    assert config.context_s == PolicyConfig().context_s


def test_a_stable_sentence_end_is_the_cut() -> None:
    words = spoken("Ask not. What your country")

    cut = choose_cut(words, stable=4, heard=[2] * 5, window_s=3.0, config=PolicyConfig())

    assert cut == Cut(last_word=1, trim=True)


def test_no_cut_in_a_short_window_of_unsure_words_just_heard() -> None:
    words = spoken("Ask not what your country", probability=0.3)

    assert choose_cut(words, stable=0, heard=[1] * 5, window_s=3.0, config=PolicyConfig()) is None
    assert choose_cut(words, stable=5, heard=[2] * 5, window_s=3.0, config=PolicyConfig()) is None


def test_past_the_hard_window_the_widest_gap_is_cut_even_without_agreement() -> None:
    words = spoken("one two three", probability=0.3) + spoken("four five", start=3.0, probability=0.3)
    config = PolicyConfig()

    cut = choose_cut(words, stable=0, heard=[1] * 5, window_s=config.hard_window_s, config=config)

    assert cut == Cut(last_word=2, trim=True)


def test_the_buffer_converts_units_and_lets_go_of_dropped_audio() -> None:
    config = PolicyConfig()
    buffer = StreamBuffer(config, SAMPLE_RATE)
    frames = 64
    buffer.add(bytes(frames * config.vad_frame_samples * SAMPLE_WIDTH_BYTES), [0.0] * 32 + [1.0] * 32, 5000)

    assert buffer.window_seconds == frames * config.vad_frame_samples / SAMPLE_RATE
    assert buffer.wall_ms(buffer.received) == 5000
    assert buffer.wall_ms(buffer.received - SAMPLE_RATE) == 4000
    assert buffer.last_speech_end(buffer.received) == buffer.received
    assert buffer.speech_seconds() == 32 * config.vad_frame_samples / SAMPLE_RATE

    buffer.drop_until(32 * config.vad_frame_samples)

    held = buffer.held()
    assert held.audio_bytes == 32 * config.vad_frame_samples * SAMPLE_WIDTH_BYTES
    # The frames within `word_vad_margin_s` before the window stay: they tell whether its first
    # word was heard as speech.
    margin_frames = -(-buffer.samples(config.word_vad_margin_s) // config.vad_frame_samples)
    assert held.vad_frames == 32 + margin_frames
