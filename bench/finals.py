"""What a reader of the stored transcript sees in the finals: how long each is, where it ends,
how soon it arrives once its speech is over, and which phrases no final carries.

Pure, like `bench.metrics`: messages carry their arrival time, chunks their send time, offline
words their times in seconds from the start of the track. A final is placed on the track by its
words that align with the offline transcript (the same model on the whole file).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.metrics import FINAL, Message, TimedWord, align, audio_sent_at, tokens, word_tokens

SENTENCE_MARKS = (".", "?", "!", "。", "？", "！")
PAUSE_S = 0.5
"""Silence after a word (between offline words) that counts as the speaker pausing there."""
MIN_DROPPED_WORDS = 3
"""A dropped phrase: at least this many reference words in a row that the offline pass hears
and no final carries (a word or two lost is a word error; a phrase is what a reader misses)."""
FUNCTION_WORDS = frozenset(
    """a an the of to in on at for from by with into onto upon about as than and or but nor
    because if that which who whose whom my your his her our their its i we they he she is are
    was were am be been have has had do does did will would shall should can could may might
    must""".split()
)
"""Words a phrase rarely ends on (articles, prepositions, conjunctions, determiners, subject
pronouns, auxiliaries): a final ending on one cut the speaker mid-phrase, unless they paused."""


@dataclass(frozen=True)
class DroppedPhrase:
    at_s: float
    """Where the phrase starts on the track (its first word's offline time)."""
    text: str
    participant: str = ""


@dataclass(frozen=True)
class FinalShapes:
    """The finals of one participant's stream, as a reader of the transcript meets them."""

    words_per_final: list[int]
    at_boundary: int
    """Finals ending at a sentence mark or where the speaker paused (`PAUSE_S`)."""
    on_function_word: int
    """Finals ending on a function word the speaker did not pause after."""
    end_latencies: list[float]
    """Per final placed on the track: its arrival minus the send of the chunk holding its last word's end."""
    dropped: list[DroppedPhrase]


def final_shapes(
    reference: str,
    offline: Sequence[TimedWord],
    messages: Sequence[Message],
    sent_at: Sequence[float],
    chunk_samples: int,
    language: str,
) -> FinalShapes:
    finals = sorted((m for m in messages if m.kind == FINAL and m.text.strip()), key=lambda m: m.arrived_at)
    offline_tokens = word_tokens(offline, language)
    final_tokens = [(token, n) for n, m in enumerate(finals) for token in tokens(m.text, language)]
    last_word = _last_offline_word(offline_tokens, final_tokens, len(finals))
    at_boundary = on_function_word = 0
    latencies = []
    for n, final in enumerate(finals):
        words = tokens(final.text, language)
        index = last_word[n]
        paused = index is not None and _paused_after(offline, index)
        if final.text.rstrip().endswith(SENTENCE_MARKS) or paused:
            at_boundary += 1
        elif words and words[-1] in FUNCTION_WORDS:
            on_function_word += 1
        if index is not None and sent_at:
            latencies.append(final.arrived_at - audio_sent_at(offline[index].end, sent_at, chunk_samples))
    return FinalShapes(
        words_per_final=[len(tokens(m.text, language)) for m in finals],
        at_boundary=at_boundary,
        on_function_word=on_function_word,
        end_latencies=latencies,
        dropped=dropped_phrases(reference, offline, [token for token, _ in final_tokens], language),
    )


def _last_offline_word(
    offline_tokens: Sequence[tuple[str, int]], final_tokens: Sequence[tuple[str, int]], count: int
) -> list[int | None]:
    """For each final, the last offline word one of its tokens aligns with (None: none does)."""
    last: list[int | None] = [None] * count
    pairs = align([token for token, _ in offline_tokens], [token for token, _ in final_tokens])
    for offline_index, final_index in sorted(pairs.items()):
        last[final_tokens[final_index][1]] = offline_tokens[offline_index][1]
    return last


def _paused_after(offline: Sequence[TimedWord], index: int) -> bool:
    """Whether the speaker stopped after offline word `index` (the track's last word counts)."""
    return index + 1 >= len(offline) or offline[index + 1].start - offline[index].end >= PAUSE_S


def dropped_phrases(
    reference: str, offline: Sequence[TimedWord], final_tokens: Sequence[str], language: str
) -> list[DroppedPhrase]:
    """Runs of `MIN_DROPPED_WORDS` or more reference words that the offline pass of the same track
    heard (aligned) and that no final carries: speech lost on the way, not misheard."""
    reference_tokens = tokens(reference, language)
    offline_tokens = word_tokens(offline, language)
    heard = align(reference_tokens, [token for token, _ in offline_tokens])
    carried = align(reference_tokens, final_tokens)
    missing = [index for index in range(len(reference_tokens)) if index in heard and index not in carried]
    runs: list[list[int]] = []
    for index in missing:
        if runs and runs[-1][-1] == index - 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    return [
        DroppedPhrase(
            at_s=offline[offline_tokens[heard[run[0]]][1]].start,
            text=" ".join(reference_tokens[index] for index in run),
        )
        for run in runs
        if len(run) >= MIN_DROPPED_WORDS
    ]
