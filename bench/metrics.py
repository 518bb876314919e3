"""Pure measures of one participant's stream: error counts, word alignment, latencies, percentiles.

No I/O and no clock: messages carry the time they arrived, chunks the time they were sent (both
time.monotonic() of the client), and offline words their end in seconds from the start of the file.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

from bench.scoring import CHARACTER_SCORED_LANGUAGES, error_rate, normalize_text
from service.audio import SAMPLE_RATE

INTERIM = "interim"
FINAL = "final"
SPEECH_GAP_S = 1.0
"""Pauses shorter than this between offline words count as speech (breaths, commas)."""


@dataclass(frozen=True)
class TimedWord:
    """A word of the offline transcript; times in seconds from the start of the track."""

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Message:
    """A transcript message of one participant as the benchmark sees it."""

    arrived_at: float
    kind: str
    utterance_id: str
    text: str


@dataclass(frozen=True)
class ErrorCount:
    """Word (or character) errors against a reference, kept as counts so they add up across tracks."""

    errors: int
    reference_words: int

    @property
    def rate(self) -> float | None:
        return self.errors / self.reference_words if self.reference_words else None

    def __add__(self, other: ErrorCount) -> ErrorCount:
        return ErrorCount(self.errors + other.errors, self.reference_words + other.reference_words)


NO_ERRORS = ErrorCount(0, 0)


@dataclass(frozen=True)
class WordLatencies:
    """Seconds from the send of the chunk holding each offline word's end to its showing up."""

    latencies: list[float]
    unmatched: int
    """Offline words never matched (for finals: "lost words", approximate)."""


# --- text --------------------------------------------------------------------------------------


def tokens(text: str, language: str) -> list[str]:
    """Scoring units as `error_rate` counts them: normalised words, or characters for zh/ja."""
    normalized = normalize_text(text)
    if language in CHARACTER_SCORED_LANGUAGES:
        return list(normalized.replace(" ", ""))
    return normalized.split()


def count_errors(reference: str, hypothesis: str, language: str) -> ErrorCount:
    """Errors as counts; with an empty reference every hypothesis word is an error."""
    reference_words = len(tokens(reference, language))
    rate = error_rate(reference, hypothesis, language)
    return ErrorCount(round(rate * reference_words) if reference_words else round(rate), reference_words)


def sum_errors(counts: Iterable[ErrorCount]) -> ErrorCount:
    return sum(counts, NO_ERRORS)


def word_tokens(words: Sequence[TimedWord], language: str) -> list[tuple[str, int]]:
    """Each scoring token of the words with the index of the word it came from."""
    return [(token, index) for index, word in enumerate(words) for token in tokens(word.text, language)]


def align(reference: Sequence[str], hypothesis: Sequence[str]) -> dict[int, int]:
    """Reference token index -> hypothesis token index, for tokens in matching runs."""
    matcher = SequenceMatcher(None, reference, hypothesis, autojunk=False)
    return {
        block.a + offset: block.b + offset
        for block in matcher.get_matching_blocks()
        for offset in range(block.size)
    }


# --- what a client shows -----------------------------------------------------------------------


def finals_text(messages: Sequence[Message]) -> str:
    """The participant's finals in arrival order: its transcript."""
    return " ".join(m.text.strip() for m in messages if m.kind == FINAL and m.text.strip())


def finals_with_trailing_interim(messages: Sequence[Message]) -> str:
    """The finals plus the last interim that arrived after the last final, if any."""
    ordered = sorted(messages, key=lambda m: m.arrived_at)
    last_final = max((i for i, m in enumerate(ordered) if m.kind == FINAL), default=-1)
    trailing = [m for m in ordered[last_final + 1 :] if m.kind == INTERIM]
    texts = [finals_text(ordered), trailing[-1].text.strip() if trailing else ""]
    return " ".join(text for text in texts if text)


def words_emitted(messages: Sequence[Message], language: str) -> int:
    """Every word of every interim and final: on silence each one is made up."""
    return sum(len(tokens(m.text, language)) for m in messages)


# --- latency -----------------------------------------------------------------------------------


def chunk_index(end_s: float, chunk_samples: int) -> int:
    return math.floor(end_s * SAMPLE_RATE / chunk_samples)


def audio_sent_at(end_s: float, sent_at: Sequence[float], chunk_samples: int) -> float:
    """When the chunk holding `end_s` was sent; past the last chunk, the last one."""
    return sent_at[min(chunk_index(end_s, chunk_samples), len(sent_at) - 1)]


def audio_sent_by(moment: float, sent_at: Sequence[float], chunk_samples: int) -> float:
    """Seconds of audio whose chunks had been sent at `moment`."""
    return bisect.bisect_right(sent_at, moment) * chunk_samples / SAMPLE_RATE


def final_word_latencies(
    offline: Sequence[TimedWord],
    messages: Sequence[Message],
    sent_at: Sequence[float],
    chunk_samples: int,
    language: str,
) -> WordLatencies:
    """For each offline word aligned to a final word: arrival of that final minus its audio's send."""
    reference = word_tokens(offline, language)
    finals = sorted((m for m in messages if m.kind == FINAL), key=lambda m: m.arrived_at)
    hypothesis = [(token, m.arrived_at) for m in finals for token in tokens(m.text, language)]
    shown_at: dict[int, float] = {}
    for ref_index, hyp_index in align([t for t, _ in reference], [t for t, _ in hypothesis]).items():
        word = reference[ref_index][1]
        # A word split into several tokens ("well-known") is final once its last token is.
        shown_at[word] = max(shown_at.get(word, -math.inf), hypothesis[hyp_index][1])
    return _latencies(offline, shown_at, sent_at, chunk_samples)


def first_appearance_latencies(
    offline: Sequence[TimedWord],
    messages: Sequence[Message],
    sent_at: Sequence[float],
    chunk_samples: int,
    language: str,
) -> WordLatencies:
    """For each offline word, the first message after which the client's text shows it.

    The client's text is the finals so far plus the pending interims (one per utterance id, each
    replaced by the next interim or final of the same id), re-aligned after every message to the
    offline words whose audio had begun to be sent: a short interim would otherwise match common
    words minutes ahead ("the", "and") and show them "before" they were spoken.
    """
    reference = word_tokens(offline, language)
    finals: list[str] = []
    interims: dict[str, list[str]] = {}
    shown_at: dict[int, float] = {}
    for message in sorted(messages, key=lambda m: m.arrived_at):
        if message.kind == FINAL:
            interims.pop(message.utterance_id, None)
            finals += tokens(message.text, language)
        else:
            interims[message.utterance_id] = tokens(message.text, language)
        shown = finals + [token for pending in interims.values() for token in pending]
        heard_s = audio_sent_by(message.arrived_at, sent_at, chunk_samples)
        heard = [(token, word) for token, word in reference if offline[word].start < heard_s]
        for ref_index in align([token for token, _ in heard], shown):
            shown_at.setdefault(heard[ref_index][1], message.arrived_at)
    return _latencies(offline, shown_at, sent_at, chunk_samples)


def _latencies(
    offline: Sequence[TimedWord], shown_at: dict[int, float], sent_at: Sequence[float], chunk_samples: int
) -> WordLatencies:
    if not sent_at:
        return WordLatencies(latencies=[], unmatched=len(offline))
    latencies = [
        shown_at[index] - audio_sent_at(word.end, sent_at, chunk_samples)
        for index, word in enumerate(offline)
        if index in shown_at
    ]
    return WordLatencies(latencies=latencies, unmatched=len(offline) - len(latencies))


# --- statistics --------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation between ranks; None for no values."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def speech_seconds(words: Sequence[TimedWord], max_gap_s: float = SPEECH_GAP_S) -> float:
    """Length of the spans the offline words cover, pauses under `max_gap_s` included."""
    total = 0.0
    span: tuple[float, float] | None = None
    for word in sorted(words, key=lambda w: w.start):
        if span is not None and word.start - span[1] <= max_gap_s:
            span = (span[0], max(span[1], word.end))
            continue
        if span is not None:
            total += span[1] - span[0]
        span = (word.start, word.end)
    return total + (span[1] - span[0] if span is not None else 0.0)
