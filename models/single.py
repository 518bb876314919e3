"""The single path: one window, or a whole recording, through faster-whisper's own `transcribe`
(the benchmarks' one-by-one baseline and offline limit; the workers use the batch path). A window
is prompted and budgeted as the batch path does it, so both hear it alike."""

from __future__ import annotations

import contextlib
import itertools

from models.decoding import TEMPERATURE, decoder_max_length, encoder_frames, token_budget
from models.engine import WhisperEngine
from models.hallucinations import LOW_LOGPROB, NO_SPEECH_PROB
from models.segments import kept_words
from models.word_timings import APPEND_PUNCTUATION, PREPEND_PUNCTUATION
from service.audio import SAMPLE_RATE, pcm_to_float32
from service.contracts import WordTiming


def transcribe_single(
    engine: WhisperEngine, pcm: bytes, language: str, prompt: str, whole_recording: bool
) -> list[WordTiming]:
    """A window's words (at most 30 s, one encoder pass) or, `whole_recording`, those of every 30 s
    segment of a recording of any length, timestamps deciding where the next begins."""
    audio = pcm_to_float32(pcm)
    seconds = len(audio) / SAMPLE_RATE
    segments, _info = engine.model.transcribe(
        audio,
        language=language,
        beam_size=engine.beam_size,
        temperature=TEMPERATURE,
        word_timestamps=True,
        # The previous text as the batch path cuts it, so the two paths hear a window alike.
        initial_prompt=engine.previous_tokens(engine.tokenizer(language), prompt),
        condition_on_previous_text=False,
        # A window is one segment without timestamp tokens. With them, faster-whisper ends its
        # pass at the last complete segment and encodes the window again (padded to 30 s) to
        # decode the tail alone, which doubled the compute and mostly made things up.
        without_timestamps=not whole_recording,
        vad_filter=False,
        # A loop would otherwise run to Whisper's 448-token limit at every fallback temperature.
        max_new_tokens=_max_new_tokens(engine, language, prompt, seconds, whole_recording),
        no_speech_threshold=NO_SPEECH_PROB,
        log_prob_threshold=LOW_LOGPROB,
        prepend_punctuations=PREPEND_PUNCTUATION,
        append_punctuations=APPEND_PUNCTUATION,
    )
    trimmed: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if not whole_recording:
        # Asked for more, the generator would encode the audio after the last word once more.
        segments = itertools.islice(segments, 1)
        trimmed = engine.encoder_input(encoder_frames(seconds))
    with trimmed:
        decoded = list(segments)
    heard = [
        (
            segment.text,
            segment.no_speech_prob,
            segment.avg_logprob,
            segment.compression_ratio,
            [
                WordTiming(text=w.word, start=w.start, end=w.end, probability=w.probability)
                for w in segment.words or []
            ],
        )
        for segment in decoded
    ]
    return kept_words(heard, whole_recording=whole_recording)


def _max_new_tokens(
    engine: WhisperEngine, language: str, prompt: str, seconds: float, whole_recording: bool
) -> int:
    """faster-whisper's `max_new_tokens` for the single path: it passes prompt + this as
    `max_length`, and we want the window's whole `token_budget` decodable."""
    tokenizer = engine.tokenizer(language)
    prompt_length = len(engine.prompt(tokenizer, prompt, without_timestamps=not whole_recording))
    return decoder_max_length(prompt_length, token_budget(seconds)) - prompt_length
