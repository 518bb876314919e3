"""How one hypothesis relates to the words before it: the prefix two hypotheses agree on, the
earlier words a final hearing keeps, and the committed words a window hears again. Pure functions
of word lists."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from difflib import SequenceMatcher

from streaming.words import TRAILING_MARKS, Word, normalize_word

OVERLAP_TOLERANCE_S = 0.3
"""How far past the committed end a re-heard word may start (word times drift between calls)."""
SIMILAR_WORD = 0.6
"""difflib ratio above which a word re-heard at the cut is taken for the committed one."""
FUZZY_AGREEMENT = 0.75
FUZZY_MIN_LETTERS = 4


def agreed_prefix(previous: Sequence[Word], current: Sequence[Word], fuzzy: bool = False) -> int:
    """How many leading words two hypotheses share (compared without case or punctuation; with
    `fuzzy`, words of four letters or more that are spelt alike agree too)."""
    count = 0
    for before, now in zip(previous, current, strict=False):
        if not same_word(normalize_word(before.text), normalize_word(now.text), fuzzy):
            break
        count += 1
    return count


def same_word(before: str, now: str, fuzzy: bool) -> bool:
    """Whisper hesitates between spellings of a word it cannot place ("deadter's side" then
    "deadter site"): agreement stalled on them for the rest of the sentence."""
    if before == now:
        return True
    return (
        fuzzy
        and min(len(before), len(now)) >= FUZZY_MIN_LETTERS
        and SequenceMatcher(None, before, now).ratio() >= FUZZY_AGREEMENT
    )


def keep_surer_earlier_words(earlier: Sequence[Word], later: Sequence[Word]) -> list[Word]:
    """`later` with each word that replaces one word of `earlier` at the same place put back, where
    the earlier word was surer and heard whole: another word followed it (the last word of a
    hypothesis may be cut off at its window's edge, "r..." for "room"). Longer replacements (a
    word split in two, a phrase heard anew) stay."""
    kept = list(later)
    matcher = SequenceMatcher(
        None,
        [normalize_word(w.text) for w in earlier],
        [normalize_word(w.text) for w in later],
        autojunk=False,
    )
    for tag, a0, a1, b0, b1 in matcher.get_opcodes():
        if tag != "replace" or a1 - a0 != b1 - b0:
            continue
        for position, index in zip(range(a0, a1), range(b0, b1), strict=True):
            before, now = earlier[position], later[index]
            heard_whole = position < len(earlier) - 1
            same_place = before.start < now.end and now.start < before.end
            if heard_whole and same_place and before.probability > now.probability:
                kept[index] = replace(
                    now, text=_with_trailing_marks(before.text, now.text), probability=before.probability
                )
    return kept


def _with_trailing_marks(text: str, marks_from: str) -> str:
    """`text`'s word with the punctuation that ends `marks_from` (a final's sentence end stays)."""
    stripped = marks_from.rstrip()
    marks = stripped[len(stripped.rstrip(TRAILING_MARKS)) :]
    return text.rstrip().rstrip(TRAILING_MARKS) + marks


def without_overlap(words: list[Word], committed_tail: Sequence[str], committed_s: float) -> list[Word]:
    """`words` less the committed ones the window hears again (its overlap, and the context a
    phrase final leaves in the window); `committed_tail`: the last committed words, normalised.

    Word times drift by a few tenths of a second between calls, so time alone cannot say whether
    a word at the cut was committed: the last run of the hypothesis, at or before the cut, that
    repeats the end of the committed text marks where new words begin; and a word centred before
    the cut is never new."""
    tail = list(committed_tail)
    heard = [normalize_word(word.text) for word in words]
    aligned = False
    for count in range(min(len(tail), len(words)), 0, -1):
        ends = [
            end
            for end in range(count, len(words) + 1)
            if words[end - 1].start < committed_s + OVERLAP_TOLERANCE_S
            and heard[end - count : end] == tail[-count:]
        ]
        if ends:
            words, aligned = words[ends[-1] :], True
            break

    while words and words[0].end <= committed_s:
        words = words[1:]
    if (
        not aligned
        and words
        and tail
        and words[0].end < committed_s + OVERLAP_TOLERANCE_S / 2
        and SequenceMatcher(None, normalize_word(words[0].text), tail[-1]).ratio() >= SIMILAR_WORD
    ):
        words = words[1:]  # the last committed word heard differently ("renew", then "review")
    return words
