"""The batch path: windows of one language through the model together (one encoder pass, one
decoder call per group of alike prompts, one alignment pass), each window's prefix read or forced
as its hints say."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.decoding import (
    FRAMES_PER_SECOND,
    MAX_FRAMES,
    batch_frames,
    decoded_token_cap,
    decoder_max_length,
    prompt_groups,
    start_timestamp,
    token_budget,
)
from models.engine import WhisperEngine
from models.hallucinations import LOW_LOGPROB, NO_SPEECH_PROB
from models.segments import kept_words
from models.window import Window
from models.word_timings import timed_words
from service.audio import SAMPLE_RATE, pcm_to_float32
from service.contracts import DecoderHints, WordTiming, prefix_head


def transcribe_together(
    engine: WhisperEngine, windows: Sequence[Window], language: str
) -> list[list[WordTiming]]:
    """Words of windows of one language, together (the alignment pass takes one start sequence)."""
    import ctranslate2
    from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens

    model = engine.model
    tokenizer = engine.tokenizer(language)
    audios = [pcm_to_float32(window.pcm) for window in windows]
    # As faster-whisper cuts a window's first segment: the mel frames of its audio, at most 30 s.
    mels = [model.feature_extractor(audio)[:, :-1][:, :MAX_FRAMES] for audio in audios]
    heard: list[list[WordTiming]] = [[] for _ in windows]
    live = [index for index, mel in enumerate(mels) if mel.shape[-1] > 0]
    if not live:
        return heard
    seconds = [len(audios[index]) / SAMPLE_RATE for index in live]
    frames = [mels[index].shape[-1] for index in live]
    features = np.zeros((len(live), mels[live[0]].shape[0], batch_frames(seconds)), dtype=np.float32)
    for row, index in enumerate(live):
        features[row, :, : frames[row]] = mels[index]
    starts = [decoder_start(engine, tokenizer, windows[index].hints) for index in live]
    prompts = [start.prompt for start in starts]
    budgets = [
        decoder_max_length(len(start.prompt), token_budget(duration - start.decoded_from_s))
        for start, duration in zip(starts, seconds, strict=True)
    ]
    suppress = list(get_suppressed_tokens(tokenizer, [-1]))
    groups = prompt_groups(prompts, tokenizer.sot, tokenizer.no_timestamps)
    encoder_output = model.model.encode(
        ctranslate2.StorageView.from_array(features),
        # Each decoder call takes some rows of the encoder output, sliced in host memory.
        to_cpu=len(groups) > 1 or (model.model.device == "cuda" and len(model.model.device_index) > 1),
    )
    results: list[Any] = [None] * len(live)
    for group in groups:
        rows = encoder_output if len(groups) == 1 else rows_of(encoder_output, group)
        group_budget = max(budgets[row] for row in group)
        outputs = engine.generate(rows, [prompts[row] for row in group], group_budget, suppress)
        for row, output in zip(group, outputs, strict=True):
            if budgets[row] < group_budget and len(output.sequences_ids[0]) >= decoded_token_cap(
                len(prompts[row]), budgets[row]
            ):
                # Alone, this window would have stopped at its own budget (a loop, mostly):
                # decoded again, score included, it gets what it would have got alone.
                mel = ctranslate2.StorageView.from_array(np.ascontiguousarray(features[row : row + 1]))
                output = engine.generate(mel, [prompts[row]], budgets[row], suppress)[0]
            results[row] = output
    # The whole prefix is aligned with the new tokens (CTranslate2 returns the forced part
    # with them), so the new words' times fall after the prefix's audio; only the new ones are
    # scored and kept. Timestamp tokens are not text.
    text_tokens = [
        start.read_prefix + [token for token in result.sequences_ids[0] if token < tokenizer.eot]
        for start, result in zip(starts, results, strict=True)
    ]
    alignments = model.find_alignment(tokenizer, text_tokens, encoder_output, frames)
    for row, index in enumerate(live):
        result = results[row]
        prefix_length = starts[row].prefix_length
        text = tokenizer.decode(text_tokens[row][prefix_length:])
        length = len(result.sequences_ids[0])
        avg_logprob = result.scores[0] * length / (length + 1)
        if (result.no_speech_prob > NO_SPEECH_PROB and avg_logprob <= LOW_LOGPROB) or not text.strip():
            continue  # what faster-whisper skips: silence, or nothing said
        segment = (
            text,
            result.no_speech_prob,
            avg_logprob,
            get_compression_ratio(text.strip()),
            timed_words(alignments[row], frames[row] / FRAMES_PER_SECOND, prefix_length),
        )
        heard[index] = kept_words([segment], whole_recording=False)
    return heard


def decoder_start(engine: WhisperEngine, tokenizer: Any, hints: DecoderHints) -> DecoderStart:
    """How the decoder starts on a window: its prompt, and where its prefix went."""
    prefix = prefix_tokens(tokenizer, hints.prefix)
    if not prefix or not hints.prefix_tail.strip():
        prompt = engine.prompt(tokenizer, hints.prompt, keyterms=hints.keyterms)
        return DecoderStart(prompt + prefix, [], len(prefix), 0.0)
    head_text = prefix_head(hints.prefix, hints.prefix_tail)
    head = prefix_tokens(tokenizer, head_text)
    tail = prefix_tokens(tokenizer, hints.prefix_tail)
    previous = " ".join(text for text in (hints.prompt.strip(), head_text) if text)
    # Started at the tail's timestamp, Whisper transcribes the audio from there on; the tail's
    # words, forced, make it go on after them rather than skip or repeat words at the seam (with
    # the timestamp alone it did both: long-form WER 12% -> 16% in `bench.simulate`).
    prompt = engine.prompt(tokenizer, previous, without_timestamps=False, keyterms=hints.keyterms)
    prompt += [start_timestamp(tokenizer.timestamp_begin, hints.prefix_tail_s), *tail]
    return DecoderStart(prompt, head, len(head) + len(tail), hints.prefix_tail_s)


@dataclass(frozen=True)
class DecoderStart:
    prompt: list[int]
    """What the decoder is given: previous text, task tokens, and the text it must start with."""
    read_prefix: list[int]
    """Prefix tokens given as previous text, which CTranslate2 does not return: they go before
    the returned ones in the alignment, which needs the text of all the window's audio."""
    prefix_length: int
    """Tokens of the prefix in the aligned text: words that begin within are not the window's."""
    decoded_from_s: float
    """Where in the window the decoder starts transcribing."""


def rows_of(encoder_output: Any, rows: list[int]) -> Any:
    """Some rows of an encoder output held in host memory, as a StorageView of their own."""
    import ctranslate2

    return ctranslate2.StorageView.from_array(np.ascontiguousarray(np.asarray(encoder_output)[rows]))


def prefix_tokens(tokenizer: Any, prefix: str) -> list[int]:
    return list(tokenizer.encode(" " + prefix.strip())) if prefix.strip() else []
