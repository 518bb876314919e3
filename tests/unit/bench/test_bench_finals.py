"""The finals' shapes as a reader meets them, on synthetic finals against offline words."""

from __future__ import annotations

import pytest

from bench.finals import DroppedPhrase, dropped_phrases, final_shapes
from bench.metrics import Message, TimedWord

pytestmark = pytest.mark.unit

CHUNK = 16_000
SENT_AT = [100.0 + index for index in range(20)]
"""Chunk k (audio k..k+1 s) was sent at 100 + k."""

REFERENCE = "ask not what your country can do for you ask what you can do for your country"
OFFLINE = [
    TimedWord(f" {text}", start, end)
    for text, start, end in [
        ("Ask", 0.2, 0.5),
        ("not", 0.6, 0.9),
        ("what", 1.0, 1.2),
        ("your", 1.3, 1.5),
        ("country", 1.6, 2.0),
        ("can", 2.1, 2.3),
        ("do", 2.4, 2.5),
        ("for", 2.6, 2.8),
        ("you.", 2.9, 3.2),
        ("Ask", 4.0, 4.3),  # 0.8 s pause before it
        ("what", 4.4, 4.6),
        ("you", 4.7, 4.8),
        ("can", 4.9, 5.1),
        ("do", 5.2, 5.3),
        ("for", 5.4, 5.5),
        ("your", 5.6, 5.8),
        ("country.", 5.9, 6.5),
    ]
]


def final(at: float, text: str) -> Message:
    return Message(arrived_at=at, kind="final", utterance_id=text, text=text)


def shapes(*messages: Message):
    return final_shapes(REFERENCE, OFFLINE, messages, SENT_AT, CHUNK, "en")


def test_utterance_finals_end_at_sentences_and_arrive_after_their_last_word() -> None:
    measured = shapes(
        final(103.5, "Ask not what your country can do for you."),
        final(107.2, "Ask what you can do for your country."),
    )
    assert measured.words_per_final == [9, 8]
    assert measured.at_boundary == 2
    assert measured.on_function_word == 0
    # "you." ends at 3.2 s (chunk 3, sent at 103); "country." at 6.5 s (chunk 6, sent at 106).
    assert measured.end_latencies == pytest.approx([0.5, 1.2])
    assert measured.dropped == []


def test_a_final_cut_mid_phrase_on_a_function_word_is_counted_and_a_pause_excuses_one() -> None:
    measured = shapes(
        final(102.0, "Ask not what your country can do for"),  # "for" then "you" at once
        final(104.0, "you"),  # no mark, but the speaker paused 0.8 s after it
        final(107.0, "Ask what you can do for your country"),  # no mark, end of the track
    )
    assert measured.at_boundary == 2
    assert measured.on_function_word == 1


def test_a_phrase_no_final_carries_is_dropped_with_its_time() -> None:
    measured = shapes(final(104.0, "Ask not what your country can do for you. Ask"))
    assert measured.dropped == [DroppedPhrase(4.4, "what you can do for your country")]


def test_a_word_or_two_lost_or_a_phrase_the_offline_pass_missed_too_is_not_a_dropped_phrase() -> None:
    two_lost = "ask not what your country can do for you ask what you can do for"
    assert dropped_phrases(REFERENCE, OFFLINE, two_lost.split(), "en") == []
    offline_missed = [word for word in OFFLINE if word.start < 4.0]
    assert dropped_phrases(REFERENCE, offline_missed, two_lost.split()[:9], "en") == []


def test_a_final_that_matches_no_offline_word_still_counts_but_has_no_latency() -> None:
    measured = shapes(final(103.0, "Ask not what your country can do for you."), final(104.0, "Hmm"))
    assert measured.words_per_final == [9, 1]
    assert len(measured.end_latencies) == 1
