"""Word times from a window's alignment, by faster-whisper's rules (ported: its own
`add_word_timestamps` works on segments of a whole recording; `tests/unit/models/test_faster_whisper_api.py`
fails when those rules change), and the punctuation both transcription paths join to words."""

from __future__ import annotations

from typing import Any

import numpy as np

from service.contracts import WordTiming

PREPEND_PUNCTUATION = "\"'“¿([{-"
APPEND_PUNCTUATION = "\"'.。,，!！?？:：”)]}、"
"""Punctuation joined to the next or previous word (faster-whisper's defaults, given to both paths)."""
SENTENCE_END = ".。!！?？"


def timed_words(
    alignment: list[dict[str, Any]], duration_s: float, prefix_tokens: int = 0
) -> list[WordTiming]:
    """Words with times from a window's alignment, by faster-whisper's rules for a segment that
    starts its window (`WhisperModel.add_word_timestamps`, no speech before it): words at sentence
    ends and a first word after silence held to twice the median word length, punctuation joined
    to its word, the last word kept within half a second past the segment's end. The words that
    begin within the first `prefix_tokens` tokens (the window's prefix) are left out."""
    from faster_whisper.transcribe import merge_punctuations

    first_token = 0
    for word in alignment:
        word["in_prefix"] = first_token < prefix_tokens
        first_token += len(word["tokens"])

    lengths = [word["end"] - word["start"] for word in alignment]
    spoken = [length for length in lengths if length != 0]
    median = min(0.7, float(np.median(spoken))) if spoken else 0.0
    longest = median * 2
    if spoken:
        for index in range(1, len(alignment)):
            word, before = alignment[index], alignment[index - 1]
            if word["end"] - word["start"] > longest:
                if word["word"] in SENTENCE_END:
                    word["end"] = word["start"] + longest
                elif before["word"] in SENTENCE_END:
                    word["start"] = word["end"] - longest
    merge_punctuations(alignment, PREPEND_PUNCTUATION, APPEND_PUNCTUATION)
    times = [
        {
            "word": w["word"],
            "start": round(w["start"], 2),
            "end": round(w["end"], 2),
            "probability": w["probability"],
            "in_prefix": w["in_prefix"],
        }
        for w in alignment
        if w["word"]
    ]
    if times:
        first, last = times[0], times[-1]
        second = times[1] if len(times) > 1 else None
        if first["end"] > median * 4 and (
            first["end"] - first["start"] > longest
            or (second is not None and second["end"] - first["start"] > longest * 2)
        ):
            if second is not None and second["end"] - second["start"] > longest:
                first["end"] = second["start"] = max(second["end"] / 2, second["end"] - longest)
            first["start"] = max(0, first["end"] - longest)
        if duration_s > last["start"] and duration_s + 0.5 < last["end"]:
            last["end"] = max(last["start"] + median, duration_s)
    return [
        WordTiming(text=t["word"], start=t["start"], end=t["end"], probability=t["probability"])
        for t in times
        if not t["in_prefix"]
    ]
