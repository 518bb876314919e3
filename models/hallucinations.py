"""Whisper's known failure modes on near-silence and noise, as pure checks on its output."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# Whisper's stock phrases when it hears nothing it can transcribe (from its YouTube-subtitle training).
FILLER_PHRASES = frozenset(
    {
        "thank you",
        "thanks for watching",
        "thank you for watching",
        "thank you so much for watching",
        "please subscribe",
        "you",
        "bye",
        "so",
        "okay",
        "subtitles by the amaraorg community",
    }
)
NO_SPEECH_PROB = 0.6
LOW_LOGPROB = -1.0
MAX_COMPRESSION_RATIO = 2.4
FILLER_NO_SPEECH_PROB = 0.2
FILLER_MIN_PROBABILITY = 0.6


@dataclass(frozen=True)
class SegmentStats:
    text: str
    no_speech_prob: float
    avg_logprob: float
    compression_ratio: float
    mean_word_probability: float


def _normalized(text: str) -> str:
    return re.sub(r"[^\w ]+", "", text.lower()).strip()


LOOP_MAX_NGRAM = 16
"""Longest phrase a loop is looked for in. Whisper loops on whole clauses too: JFK's first 9.2 s
decoded as "ask not what your country can do for you ask what you" (12 words) over and over; with
8, the loop went unseen and the segment was dropped as made up, real words and all."""
LOOP_MIN_REPEATS = 3
"""A phrase said three times in a row is a decoding loop..."""
LOOP_MIN_REPEATS_ONE_WORD = 5
"""...but "no, no, no" is speech: a single word needs five."""


def loop_start(words: list[str]) -> int | None:
    """Where a decoding loop begins ("a little bit of a little bit of a little bit of"): the end of
    the phrase's first occurrence, so the loop can be cut off there; None when there is none."""
    tokens = [_normalized(word) for word in words]
    for start in range(len(tokens)):
        for n in range(1, LOOP_MAX_NGRAM + 1):
            repeats = LOOP_MIN_REPEATS_ONE_WORD if n == 1 else LOOP_MIN_REPEATS
            if start + n * repeats > len(tokens):
                break
            gram = tokens[start : start + n]
            if all(tokens[start + k * n : start + (k + 1) * n] == gram for k in range(1, repeats)):
                return start + n
    return None


UNHEARD_RUN = 3
"""Consecutive words the alignment gives no duration that mark text with no audio behind it."""
ZERO_DURATION_S = 0.005
"""Word times are rounded to 10 ms; a word shorter than this has none."""


def unheard_run_start(spans: Sequence[tuple[float, float]]) -> int | None:
    """Where the first run of `UNHEARD_RUN` consecutive words of no duration begins (spans are
    word (start, end) times), or None. The alignment squeezes text that no audio supports into one
    instant: a window's prefix decoded again ("What your country can do for you." after the prefix
    "ask not what your country can do for you."), or a loop's first round past the end of the
    speech ("Ask what you" heard, then "ask not what your country can do for you" at one instant)."""
    run = 0
    for index, (start, end) in enumerate(spans):
        run = run + 1 if end - start < ZERO_DURATION_S else 0
        if run == UNHEARD_RUN:
            return index - UNHEARD_RUN + 1
    return None


def is_hallucination(segment: SegmentStats) -> bool:
    """True for a segment Whisper most likely made up rather than heard."""
    if segment.no_speech_prob > NO_SPEECH_PROB and segment.avg_logprob < LOW_LOGPROB:
        return True
    if segment.compression_ratio > MAX_COMPRESSION_RATIO:
        return True  # loops such as "the the the the"
    return _normalized(segment.text) in FILLER_PHRASES and (
        segment.no_speech_prob > FILLER_NO_SPEECH_PROB
        or segment.mean_word_probability < FILLER_MIN_PROBABILITY
    )
