"""How a batch of windows is put together and how word times come out of an alignment (pure
arithmetic on plain numbers, no model)."""

from __future__ import annotations

from typing import Any

import pytest

from models.decoding import (
    batch_frames,
    decoded_token_cap,
    parallel_parts,
    previous_text,
    prompt_groups,
    start_timestamp,
)
from models.segments import kept_words
from models.word_timings import timed_words
from service.contracts import WordTiming

pytestmark = pytest.mark.unit


def aligned(*words: tuple[str, float, float]) -> list[dict[str, Any]]:
    """An alignment as faster-whisper's `find_alignment` returns it, one token per word."""
    return [
        {"word": text, "tokens": [index], "start": start, "end": end, "probability": 0.9}
        for index, (text, start, end) in enumerate(words)
    ]


@pytest.mark.parametrize(
    ("seconds", "frames"),
    [
        ([5.0], 1000),
        ([5.0, 8.9, 0.3], 1000),
        ([5.0, 9.2], 1020),
        ([3.0, 12.0, 7.0], 1300),
        ([2.0, 40.0], 3000),
    ],
)
def test_a_batch_is_padded_to_what_its_longest_window_needs(seconds: list[float], frames: int) -> None:
    assert batch_frames(seconds) == frames


SOT, NO_TIMESTAMPS, FIRST_TIMESTAMP = 100, 104, 105
"""Token ids as Whisper orders them: <|startoftranscript|>, language and task tokens, then
<|notimestamps|> and the timestamps; text tokens are below SOT, <|startofprev|> is 99."""


def test_windows_share_a_decoder_call_when_their_start_and_task_tokens_line_up_in_batch_order() -> None:
    plain = [SOT, NO_TIMESTAMPS]
    prompts = [
        plain,
        [99, 7, 8, SOT, NO_TIMESTAMPS],  # previous text: <|startoftranscript|> comes later
        [*plain, 7, 8, 9],  # a forced prefix: longer, still decoded with the plain ones
        [99, 7, 8, SOT, FIRST_TIMESTAMP + 150, 9],  # started at a timestamp: one task token fewer
        [99, 5, 6, SOT, FIRST_TIMESTAMP + 20, 9, 10],
        [99, 5, 6, SOT, NO_TIMESTAMPS, 3],
    ]
    assert prompt_groups(prompts, SOT, NO_TIMESTAMPS) == [[0, 2], [1, 5], [3, 4]]
    assert prompt_groups([plain], SOT, NO_TIMESTAMPS) == [[0]]


@pytest.mark.parametrize(("seconds", "index"), [(0.0, 0), (3.0, 150), (3.011, 151), (-1.0, 0), (45.0, 1500)])
def test_a_window_is_started_at_the_nearest_timestamp_token_within_whisper_s_30_s(
    seconds: float, index: int
) -> None:
    assert start_timestamp(FIRST_TIMESTAMP, seconds) == FIRST_TIMESTAMP + index


@pytest.mark.parametrize(
    ("languages", "parts", "split"),
    [
        (["en"] * 4, 2, [[0, 1], [2, 3]]),
        (["en"] * 5, 2, [[0, 1, 2], [3, 4]]),
        (["en"] * 4, 1, [[0, 1, 2, 3]]),
        (["en"] * 3, 8, [[0], [1], [2]]),
        (["en", "de", "en", "en"], 1, [[0, 2, 3], [1]]),
        (["en", "de", "en", "en"], 3, [[0, 2], [1], [3]]),
        (["en"], 2, [[0]]),
    ],
)
def test_a_batch_splits_into_calls_of_one_language_each_as_even_as_can_be(
    languages: list[str], parts: int, split: list[list[int]]
) -> None:
    assert parallel_parts(languages, parts) == split


@pytest.mark.parametrize(
    ("prompt_length", "max_length", "tokens"),
    # As measured with CTranslate2 4.8 and tiny.en: with no previous text (a 2-token prompt), half.
    [(2, 7, 3), (2, 12, 6), (2, 60, 30), (13, 18, 6), (13, 23, 11)],
)
def test_the_decoder_stops_where_ctranslate2_does(prompt_length: int, max_length: int, tokens: int) -> None:
    assert decoded_token_cap(prompt_length, max_length) == tokens


def test_words_get_rounded_times_and_their_punctuation() -> None:
    words = timed_words(
        aligned(
            (' "', 0.0, 0.0),
            ("Hello", 0.001, 0.404),
            (",", 0.404, 0.42),
            (" world", 0.5, 0.9),
            (".", 0.9, 1.0),
        ),
        2.0,
    )
    assert [(w.text, w.start, w.end) for w in words] == [(' "Hello,', 0.0, 0.4), (" world.", 0.5, 0.9)]
    assert all(w.probability == 0.9 for w in words)


def test_the_words_of_the_prefix_are_left_out_and_the_new_ones_keep_their_times() -> None:
    alignment = aligned(
        (" The", 0.0, 0.3),
        (" ward", 0.3, 0.7),
        (".", 0.7, 0.75),
        (" Bad", 1.2, 1.5),
        (" cases", 1.5, 1.9),
    )
    words = timed_words(alignment, 3.0, prefix_tokens=3)
    assert [(w.text, w.start, w.end) for w in words] == [(" Bad", 1.2, 1.5), (" cases", 1.5, 1.9)]


def test_punctuation_the_decoder_adds_after_the_prefix_goes_with_the_prefix_word() -> None:
    """The comma belongs to a word already final: nothing new is made of it."""
    alignment = aligned((" fellow", 0.0, 0.3), (" Americans", 0.3, 0.9), (",", 0.9, 0.95), (" ask", 1.2, 1.4))
    words = timed_words(alignment, 3.0, prefix_tokens=2)
    assert [w.text for w in words] == [" ask"]


def test_a_word_after_a_sentence_end_is_held_to_twice_the_median_word() -> None:
    alignment = aligned((" One", 0.0, 0.3), (".", 0.3, 0.35), (" Two", 0.35, 3.0), (" three", 3.0, 3.3))
    words = timed_words(alignment, 4.0)
    assert [w.text for w in words] == [" One.", " Two", " three"]
    assert [t for w in words for t in (w.start, w.end)] == pytest.approx([0.0, 0.3, 2.4, 3.0, 3.0, 3.3])


def test_a_long_first_word_after_silence_starts_late() -> None:
    words = timed_words(aligned((" Well", 0.0, 3.0), (" yes", 3.0, 3.3), (" sure", 3.3, 3.6)), 4.0)
    assert [t for w in words for t in (w.start, w.end)] == pytest.approx([2.4, 3.0, 3.0, 3.3, 3.3, 3.6])


def test_the_last_word_ends_with_the_audio_when_it_runs_on_past_it() -> None:
    words = timed_words(aligned((" so", 0.2, 0.5), (" far", 0.5, 0.8), (" away", 2.8, 4.0)), 3.0)
    assert (words[-1].start, words[-1].end) == pytest.approx((2.8, 3.1))  # a median word at least
    assert timed_words(aligned((" so", 0.2, 0.5), (" far", 0.5, 3.4)), 3.0)[-1].end == 3.4  # within 0.5 s


def test_no_alignment_no_words() -> None:
    assert timed_words([], 5.0) == []


def test_words_heard_before_a_decoding_loop_are_kept_though_the_loop_looked_made_up() -> None:
    # What tiny.en gave for a window of JFK followed by "The squalor and uncleanness...": the loop
    # alone pushed the segment's compression ratio past the hallucination limit.
    heard = [" you", " ask", " what", " you", " can", " do", " for", " your", " country."]
    loop = [" This", " quality", " and", " uncleanness."] * 6
    words = [
        WordTiming(text=t, start=0.3 * i, end=0.3 * i + 0.25, probability=0.9)
        for i, t in enumerate(heard + loop)
    ]
    text = "".join(word.text for word in words)

    kept = kept_words([(text, 0.01, -0.22, 3.8, words)], whole_recording=False)

    assert "".join(word.text for word in kept) == "".join(heard + loop[:4])


def squeezed_after(heard: list[str], unheard: list[str]) -> list[WordTiming]:
    """Words heard 0.3 s apart, then text the alignment squeezes into the instant after them."""
    words = [
        WordTiming(text=t, start=0.3 * i, end=0.3 * i + 0.25, probability=0.9) for i, t in enumerate(heard)
    ]
    end = words[-1].end
    return words + [WordTiming(text=t, start=end, end=end, probability=0.9) for t in unheard]


def test_words_heard_before_text_with_no_audio_are_kept_though_that_text_looked_made_up() -> None:
    # What tiny.en gave (AMD EPYC, int8) for JFK from "Americans" with that clause as the prefix:
    # "Ask what" heard, then the prefix decoded again and again, squeezed into one instant. Cut at
    # its loop only, it still read as made up, and "Ask what" was lost with it.
    again = "you ask not what your country can do for you. Ask what you ask not what your country can do "
    again += "for you. Ask what you ask what you ask not what your country can do for you. Ask what you "
    again += "ask what you ask what you ask what you ask what you ask"
    words = squeezed_after([" Ask", " what"], [" " + word for word in again.split()])
    text = "".join(word.text for word in words)

    kept = kept_words([(text, 0.41, -0.17, 4.1, words)], whole_recording=False)

    assert "".join(word.text for word in kept) == " Ask what"


def test_only_a_streaming_window_loses_words_the_alignment_squeezed() -> None:
    words = squeezed_after([" Ask", " what"], [" you", " can", " do", " for"])
    segment = ("".join(word.text for word in words), 0.01, -0.2, 1.2, words)

    assert [w.text for w in kept_words([segment], whole_recording=False)] == [" Ask", " what"]
    assert kept_words([segment], whole_recording=True) == words  # Whisper's own segments stay


def test_a_segment_that_is_all_loop_of_stock_phrases_is_still_dropped() -> None:
    words = [WordTiming(text=" Thank you.", start=float(i), end=i + 0.5, probability=0.3) for i in range(6)]
    kept = kept_words([(" Thank you." * 6, 0.7, -1.2, 4.0, words)], whole_recording=False)
    assert kept == []


def test_previous_text_is_its_newest_tokens_at_one_length_or_none() -> None:
    assert previous_text([1, 2, 3, 4, 5], 3) == [3, 4, 5]
    assert previous_text([1, 2, 3], 3) == [1, 2, 3]
    assert previous_text([4, 5], 3) == []  # never padded: Whisper dropped sentences after padding
    assert previous_text([1, 2, 3], 0) == [1, 2, 3]  # 0: as it is


def test_prompts_of_any_previous_text_fall_into_two_decoder_calls_at_most() -> None:
    sot, no_timestamps, sot_prev = 100, 103, 99
    task = [sot, 101, 102, no_timestamps]
    texts = [[], [7], [7, 8, 9, 10, 11], [5, 6, 7], [1, 2, 3, 4, 5, 6]]

    def prompts(length: int) -> list[list[int]]:
        kept = [previous_text(text, length) for text in texts]
        return [([sot_prev, *text] if text else []) + task for text in kept]

    assert len(prompt_groups(prompts(0), sot, no_timestamps)) == 5  # as they are: each alone
    assert prompt_groups(prompts(3), sot, no_timestamps) == [[0, 1], [2, 3, 4]]
