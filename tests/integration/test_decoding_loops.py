"""A decoding loop after real words, with the real tiny.en: the words before the loop are kept.

The window is the one that lost a whole sentence in the capacity benchmark's talking scenario
(the first talker's track, 28.94-35.84 s): the end of JFK's "ask what you can do for your
country", 0.2 s of silence, then the start of "The squalor and uncleanness of the debtors' side".
With JFK's earlier words as its prompt, tiny.en decodes the words, then "This quality and
uncleanness." over and over; the whole segment was dropped as made up (its compression ratio),
and the words before the loop with it.

The second is JFK's first nine chunks (9.216 s), which tiny.en decodes as a loop of a whole
clause ("ask not what your country can do for you ask what you", twelve words). The third is
the same audio from "Americans" on, its first words as the prefix, as a window with context is
sent: tiny.en hears "Ask what you", then decodes the prefix's clause again at one instant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.capacity_tracks import MAX_CLIP_S, corpus_clips, pick, talker_tracks
from bench.corpus import load_corpus
from bench.scoring import normalize_text
from demos.client import DEFAULT_CHUNK_SAMPLES
from models.hallucinations import loop_start
from models.transcriber import Transcriber, Window
from service.audio import SAMPLE_RATE, SAMPLE_WIDTH_BYTES
from service.contracts import DecoderHints
from service.settings import Settings

pytestmark = pytest.mark.integration

PROMPT = "Americans ask not what your country can do for"


@pytest.fixture(scope="module")
def window(corpus_dir: Path) -> bytes:
    clips = corpus_clips(load_corpus(corpus_dir), "en", MAX_CLIP_S)
    track = talker_tracks(pick(clips, 45.0), 1)[0].pcm()
    return track[
        int(28.94 * SAMPLE_RATE) * SAMPLE_WIDTH_BYTES : int(35.84 * SAMPLE_RATE) * SAMPLE_WIDTH_BYTES
    ]


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    return Transcriber.from_settings(Settings())


def test_words_before_a_loop_survive_on_both_paths(window: bytes) -> None:
    # The prompt reaches the model whole: at WHISPER_PROMPT_TOKENS=32 this short one is dropped and
    # tiny.en, unprompted, hears only the loop's sentence (no loop), which is not what is tested here.
    whole_prompts = Transcriber.from_settings(Settings(whisper_prompt_tokens=0))
    single = whole_prompts.transcribe(window, "en", PROMPT).words
    batched = whole_prompts.transcribe_batch([Window(window, "en", DecoderHints(prompt=PROMPT))])[0].words
    for words in (single, batched):
        text = "".join(word.text for word in words)
        assert "can do for your country" in text, text
        assert loop_start([word.text for word in words]) is None, text


def test_words_before_a_loop_of_a_whole_clause_survive(transcriber: Transcriber, speech: Any) -> None:
    jfk = speech("jfk_ask_not")
    nine_chunks = jfk[: 9 * DEFAULT_CHUNK_SAMPLES * SAMPLE_WIDTH_BYTES]
    single = transcriber.transcribe(nine_chunks, "en").words
    batched = transcriber.transcribe_batch([Window(nine_chunks, "en")])[0].words
    for words in (single, batched):
        text = "".join(word.text for word in words)
        assert "ask not what your country can do for you" in text.lower(), text
        assert loop_start([word.text for word in words]) is None, text


def test_a_prefix_decoded_again_past_the_speech_is_not_kept(transcriber: Transcriber, speech: Any) -> None:
    jfk = speech("jfk_ask_not")
    americans = int(1.74 * SAMPLE_RATE) * SAMPLE_WIDTH_BYTES
    from_americans = jfk[americans : 9 * DEFAULT_CHUNK_SAMPLES * SAMPLE_WIDTH_BYTES]
    window = Window(
        from_americans, "en", DecoderHints(prefix="Americans ask not what your country can do for you.")
    )
    words = transcriber.transcribe_batch([window])[0].words
    heard = normalize_text("".join(word.text for word in words))
    assert heard, "the window's new words are lost"
    assert "ask what you can do for your country".startswith(heard), heard
