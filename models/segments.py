"""Which words of decoded segments are kept: segments that look made up are dropped, a decoding
loop and words with no audio behind them are cut off (both transcription paths)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from models.hallucinations import SegmentStats, is_hallucination, loop_start, unheard_run_start
from service.contracts import WordTiming

logger = logging.getLogger(__name__)

Heard = tuple[str, float, float, float, list[WordTiming]]
"""One decoded segment: its text, no-speech probability, mean log probability, compression ratio
and timed words."""


def kept_words(segments: Iterable[Heard], whole_recording: bool) -> list[WordTiming]:
    """The words of the segments that do not look made up, a decoding loop cut off (both paths);
    in a streaming window, also the words from where the alignment found no audio for them."""
    from faster_whisper.transcribe import get_compression_ratio

    words: list[WordTiming] = []
    for text, no_speech_prob, avg_logprob, compression_ratio, segment_words in segments:
        # Judged with its loop, or with text no audio supports, a segment that heard words first
        # looked made up as a whole (its compression ratio), and those words were lost: "you can
        # do for your country. This quality and uncleanness. This quality and...", or "Ask what"
        # heard, then "you ask not what your country can do for you. Ask what you..." squeezed
        # into one instant. Each is cut off before the segment is judged.
        cut = loop_start([word.text for word in segment_words])
        if cut is not None:
            logger.debug("cut a decoding loop after %r", "".join(w.text for w in segment_words[:cut]))
        unheard = None if whole_recording else unheard_run_start([(w.start, w.end) for w in segment_words])
        if unheard is not None and (cut is None or unheard < cut):
            logger.debug(
                "cut words with no audio behind them after %r",
                "".join(w.text for w in segment_words[:unheard]),
            )
            cut = unheard
        if cut is not None:
            segment_words = segment_words[:cut]
            text = "".join(word.text for word in segment_words)
            compression_ratio = get_compression_ratio(text.strip())
        stats = SegmentStats(
            text=text,
            no_speech_prob=no_speech_prob,
            avg_logprob=avg_logprob,
            compression_ratio=compression_ratio,
            mean_word_probability=(
                sum(w.probability for w in segment_words) / len(segment_words) if segment_words else 0.0
            ),
        )
        if is_hallucination(stats):
            logger.debug("dropped a segment that looks made up: %r", text)
            continue
        words += segment_words
    loop = loop_start([word.text for word in words])
    if loop is not None:
        logger.debug("cut a decoding loop after %r", "".join(w.text for w in words[:loop]))
        words = words[:loop]
    # A whole recording's segments are cut by Whisper's own timestamps, and the offline limit
    # stays Whisper's own; a window's text runs on past its audio.
    unheard = None if whole_recording else unheard_run_start([(w.start, w.end) for w in words])
    if unheard is not None:
        logger.debug("cut words with no audio behind them: %r", "".join(w.text for w in words[unheard:]))
        words = words[:unheard]
    return words
