"""Whisper's known failure modes on near-silence and noise, as pure checks on its output."""

from __future__ import annotations

import re
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
