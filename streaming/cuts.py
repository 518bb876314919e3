"""Where an interim hypothesis may be cut: the words up to the cut become committed for good.
`choose_cut` decides from the words alone; `cut_sample` places the cut in the audio."""

from __future__ import annotations

from dataclasses import dataclass

from streaming.buffer import StreamBuffer
from streaming.config import PolicyConfig
from streaming.words import Word, ends_phrase, ends_sentence, mean_probability


@dataclass(frozen=True)
class Cut:
    last_word: int
    """Index of the hypothesis' last committed word (another word always follows it)."""
    trim: bool
    """Whether the window's audio is trimmed at the cut (else it stays as context)."""


def choose_cut(
    words: list[Word], stable: int, heard: list[int], window_s: float, config: PolicyConfig
) -> Cut | None:
    """Where to end the committed words inside a hypothesis of a `window_s` window, if anywhere:
    `stable` leading words agree with the previous hypothesis, `heard[i]` consecutive hypotheses
    have held word i."""

    def gap_after(i: int) -> float:
        return words[i + 1].start - words[i].end

    # Only cut before a word we have already heard the start of: the next word bounds the cut.
    candidates = range(min(stable, len(words) - 1))
    # Early cuts only where the words up to the cut are confident enough (else: end of speech).
    settled = config.settled_hypotheses
    confident = [
        i
        for i in candidates
        if mean_probability(words[: i + 1]) >= config.min_probability or (settled and heard[i] >= settled)
    ]
    sentence_ends = [i for i in confident if ends_sentence(words[i])]
    phrase_ends: list[int] = []
    if config.phrase_finals:
        long_enough = [i for i in confident if i + 1 >= config.phrase_min_words]
        phrase_ends = [
            i for i in long_enough if ends_phrase(words[i]) or gap_after(i) >= config.phrase_pause_s
        ]
        if config.phrase_without_boundary:
            last_boundary = max([-1, *phrase_ends, *sentence_ends])
            end = _phrase_end_without_boundary(words, long_enough, last_boundary, config.phrase_min_words)
            if end is not None:
                phrase_ends.append(end)
    if sentence_ends and (not phrase_ends or sentence_ends[-1] >= phrase_ends[-1]):
        return Cut(sentence_ends[-1], trim=True)
    if phrase_ends:
        # With context, the phrase's audio comes back as such: the window need not keep it.
        return Cut(phrase_ends[-1], trim=bool(config.context_s) or window_s >= config.max_window_s)
    if window_s >= config.max_window_s and len(candidates):
        return Cut(max(candidates, key=gap_after), trim=True)
    if window_s >= config.hard_window_s and len(words) > 1:
        return Cut(max(range(len(words) - 1), key=gap_after), trim=True)
    return None


def _phrase_end_without_boundary(
    words: list[Word], long_enough: list[int], last_boundary: int, size: int
) -> int | None:
    """The last stable word that ends a phrase of `size` words after the last boundary, unless the
    words heard after it (not stable yet) reach a punctuation mark too soon: "And so my fellow"
    then "Americans." read worse than waiting one result for "And so my fellow Americans."."""
    marks = [j for j, word in enumerate(words) if ends_sentence(word) or ends_phrase(word)]
    for i in reversed(long_enough):
        if i - last_boundary < size:
            return None
        if not any(i < j < i + size for j in marks):
            return i
    return None


def cut_sample(buffer: StreamBuffer, last: Word, following: Word, config: PolicyConfig) -> int:
    """The cut after `last`: the middle of the gap before `following`, unless the VAD heard
    `unheard_speech_s` of speech in that gap. Whisper skipped that speech (a hypothesis of a
    window whose result came late jumped from "left a" to "She told him", 12 s on), so the cut
    goes in the silence right after `last` and the skipped speech stays pending."""
    last_end = buffer.samples(last.end)
    following_start = max(buffer.samples(following.start), last_end)
    skipped = buffer.speech_starts(last_end, following_start)
    if buffer.speech_seconds_in(skipped) < config.unheard_speech_s:
        return (last_end + following_start) // 2
    return (last_end + skipped[0]) // 2
