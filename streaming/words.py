"""Words as the streaming policy sees them, and the text rules it applies to them: how words
compare, join and split into phrase-sized pieces."""

from __future__ import annotations

import functools
import re
from collections.abc import Container, Sequence
from dataclasses import dataclass

SENTENCE_END = (".", "?", "!", "。", "？", "！")
PHRASE_END = (",", ";", ":", "，", "、")
TRAILING_MARKS = "".join(SENTENCE_END + PHRASE_END)
_NOT_WORD = re.compile(r"[^\w']+")

FUNCTION_WORDS = frozenset(
    """a an the of to in on at for from by with into onto upon about as than and or but nor
    because if that which who whose whom my your his her our their its i we they he she is are
    was were am be been have has had do does did will would shall should can could may might
    must""".split()
)
"""Words a phrase rarely ends on: an utterance sent for its length never ends on one when another
boundary will do."""


@dataclass(frozen=True)
class Word:
    """A recognised word with times in seconds on the participant's own stream clock."""

    text: str
    start: float
    end: float
    probability: float


@functools.lru_cache(maxsize=8192)
def normalize_word(text: str) -> str:
    # Cached: the policy compares each word of every window against others many times.
    return _NOT_WORD.sub("", text.lower())


def ends_sentence(word: Word) -> bool:
    return word.text.rstrip().endswith(SENTENCE_END)


def ends_phrase(word: Word) -> bool:
    return word.text.rstrip().endswith(PHRASE_END)


def is_function_word(word: Word) -> bool:
    return normalize_word(word.text) in FUNCTION_WORDS


def join_words(words: Sequence[Word]) -> str:
    return "".join(word.text for word in words).strip()


def mean_probability(words: Sequence[Word]) -> float:
    return sum(word.probability for word in words) / len(words) if words else 0.0


def split_sentences(words: Sequence[Word], breaks: Container[int] = ()) -> list[list[Word]]:
    """Phrase-sized pieces: a new piece after every word that ends a sentence, and after the
    words whose indices are in `breaks`."""
    pieces: list[list[Word]] = [[]]
    for index, word in enumerate(words):
        pieces[-1].append(word)
        if ends_sentence(word) or index in breaks:
            pieces.append([])
    return [piece for piece in pieces if piece]
