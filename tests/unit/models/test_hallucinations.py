"""What the workers drop as made up: pure checks on Whisper's output."""

from __future__ import annotations

import pytest

from models.hallucinations import SegmentStats, is_hallucination, loop_start, unheard_run_start

pytestmark = pytest.mark.unit


def stats(text: str, **overrides: float) -> SegmentStats:
    values = {
        "no_speech_prob": 0.01,
        "avg_logprob": -0.2,
        "compression_ratio": 1.3,
        "mean_word_probability": 0.9,
    }
    values.update(overrides)
    return SegmentStats(text=text, **values)


def test_a_decoding_loop_is_cut_after_the_first_occurrence_of_its_phrase() -> None:
    words = "among the debtors was not unfrequent a little bit of a little bit of a little bit of a".split()

    cut = loop_start(words)

    assert cut is not None
    assert words[:cut] == "among the debtors was not unfrequent a little bit of".split()


def test_a_loop_of_a_whole_clause_is_cut_after_its_first_occurrence() -> None:
    clause = "ask not what your country can do for you ask what you "
    words = ("And so my fellow Americans " + clause * 3 + "ask not").split()

    cut = loop_start(words)

    assert cut is not None
    assert words[:cut] == ("And so my fellow Americans " + clause).split()


def test_words_squeezed_into_one_instant_are_cut_where_the_squeeze_begins() -> None:
    # "Ask what you" heard, then a loop's first round at the window's end (real tiny.en times).
    spans = [(6.60, 6.94), (6.94, 7.20), (7.20, 7.46), (7.46, 7.46), (7.46, 7.46), (7.46, 7.46)]

    assert unheard_run_start(spans) == 3


@pytest.mark.parametrize(
    "spans",
    [
        [(4.66, 4.86), (4.86, 4.86)],  # a last word cut off at the window's edge
        [(1.0, 1.0), (1.0, 1.0), (1.0, 1.3), (1.3, 1.3)],  # short words, never three in a row
        [],
    ],
)
def test_a_word_or_two_without_duration_is_kept(spans: list[tuple[float, float]]) -> None:
    assert unheard_run_start(spans) is None


def test_punctuation_and_case_do_not_hide_a_loop() -> None:
    assert loop_start(["Go!", "go,", "GO.", "go", "go"]) == 1


@pytest.mark.parametrize(
    "text",
    [
        "no no no",  # emphasis, not a loop
        "the cat sat on the mat and the cat sat",  # a phrase twice is speech
        "ask not what your country can do for you ask what you can do for your country",
        "",
    ],
)
def test_ordinary_speech_has_no_loop(text: str) -> None:
    assert loop_start(text.split()) is None


def test_confident_speech_is_kept() -> None:
    assert not is_hallucination(stats(" And so my fellow Americans."))


def test_a_segment_whisper_itself_thinks_is_no_speech_is_dropped() -> None:
    assert is_hallucination(stats(" I'm going to go.", no_speech_prob=0.8, avg_logprob=-1.2))


def test_unlikely_but_speech_like_segment_is_kept_when_whisper_hears_speech() -> None:
    assert not is_hallucination(stats(" Turnips and carrots.", no_speech_prob=0.1, avg_logprob=-1.2))


def test_repetitive_segment_is_dropped() -> None:
    assert is_hallucination(stats(" the the the the the the", compression_ratio=3.1))


@pytest.mark.parametrize("text", [" Thank you.", " Thanks for watching!", " you"])
def test_stock_phrases_are_dropped_when_whisper_is_unsure(text: str) -> None:
    assert is_hallucination(stats(text, no_speech_prob=0.4))
    assert is_hallucination(stats(text, mean_word_probability=0.3))


def test_a_stock_phrase_said_clearly_is_kept() -> None:
    assert not is_hallucination(stats(" Thank you.", no_speech_prob=0.02, mean_word_probability=0.95))
