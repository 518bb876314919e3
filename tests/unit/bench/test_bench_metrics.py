"""The benchmark's measures on synthetic messages, send times and offline words."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bench.corpus import CorpusItem, Track, select_items
from bench.finals import DroppedPhrase
from bench.measures import (
    Measures,
    ParticipantRun,
    StreamCompute,
    check_targets,
    combine,
    measure_item,
)
from bench.metrics import (
    ErrorCount,
    Message,
    TimedWord,
    align,
    audio_sent_at,
    audio_sent_by,
    chunk_index,
    count_errors,
    final_word_latencies,
    finals_text,
    finals_with_trailing_interim,
    first_appearance_latencies,
    percentile,
    speech_seconds,
    sum_errors,
    tokens,
    words_emitted,
)
from bench.report import ItemReport, Report, to_markdown

pytestmark = pytest.mark.unit

CHUNK = 16_000
"""One second per chunk keeps the arithmetic readable."""
SENT_AT = [100.0 + index for index in range(10)]
"""Chunk k (audio k..k+1 s) was sent at 100 + k."""


def words(*spec: tuple[str, float, float]) -> list[TimedWord]:
    return [TimedWord(text, start, end) for text, start, end in spec]


def final(at: float, text: str, utterance: str = "u1") -> Message:
    return Message(arrived_at=at, kind="final", utterance_id=utterance, text=text)


def interim(at: float, text: str, utterance: str = "u1") -> Message:
    return Message(arrived_at=at, kind="interim", utterance_id=utterance, text=text)


OFFLINE = words((" Ask", 0.2, 0.5), (" not", 0.6, 1.4), (" what", 2.1, 2.5))


# --- text and errors ---------------------------------------------------------------------------


def test_tokens_are_normalised_words_or_characters_for_chinese() -> None:
    assert tokens(" And so, my fellow-Americans!", "en") == ["and", "so", "my", "fellow", "americans"]
    assert tokens("甚至 出现交易", "zh") == ["甚", "至", "出", "现", "交", "易"]


def test_count_errors_counts_substitutions_deletions_and_insertions() -> None:
    assert count_errors("ask not what your country", "ask what their country can", "en") == ErrorCount(3, 5)


def test_count_errors_on_an_empty_reference_counts_every_word_as_an_error() -> None:
    count = count_errors("", "Thank you.", "en")
    assert count == ErrorCount(2, 0)
    assert count.rate is None


def test_error_counts_add_up_to_total_errors_over_total_words() -> None:
    total = sum_errors([ErrorCount(1, 10), ErrorCount(3, 30)])
    assert total == ErrorCount(4, 40)
    assert total.rate == pytest.approx(0.1)


def test_align_maps_matching_tokens_across_an_insertion_and_a_deletion() -> None:
    reference = ["ask", "not", "what", "your", "country"]
    hypothesis = ["ask", "um", "not", "what", "country"]
    assert align(reference, hypothesis) == {0: 0, 1: 2, 2: 3, 4: 4}


# --- what a client shows -----------------------------------------------------------------------


def test_finals_text_joins_finals_in_arrival_order_and_ignores_interims() -> None:
    messages = [
        interim(1.0, "ask"),
        final(2.0, "Ask not."),
        interim(3.0, "what", "u2"),
        final(4.0, " what ", "u2"),
    ]
    assert finals_text(messages) == "Ask not. what"


def test_trailing_interim_is_added_only_when_it_came_after_the_last_final() -> None:
    before = [interim(1.0, "ask"), final(2.0, "Ask not.")]
    after = [*before, interim(3.0, "what", "u2"), interim(3.5, "what your", "u2")]
    assert finals_with_trailing_interim(before) == "Ask not."
    assert finals_with_trailing_interim(after) == "Ask not. what your"


def test_words_emitted_counts_interims_and_finals() -> None:
    assert words_emitted([interim(1.0, "Thank"), final(2.0, "Thank you.")], "en") == 3


# --- latency -----------------------------------------------------------------------------------


def test_chunk_index_is_the_chunk_holding_the_end_and_send_time_clamps_to_the_last_chunk() -> None:
    assert chunk_index(0.99, CHUNK) == 0
    assert chunk_index(1.0, CHUNK) == 1
    assert chunk_index(2.5, 16_384) == 2
    assert audio_sent_at(1.4, SENT_AT, CHUNK) == 101.0
    assert audio_sent_at(99.0, SENT_AT, CHUNK) == SENT_AT[-1]


def test_final_word_latency_is_final_arrival_minus_send_of_the_chunk_holding_the_word_end() -> None:
    messages = [interim(100.5, "ask"), final(102.0, "Ask not"), final(104.5, "what", "u2")]
    result = final_word_latencies(OFFLINE, messages, SENT_AT, CHUNK, "en")
    # "ask" ends in chunk 0 (sent 100), "not" in chunk 1 (101), "what" in chunk 2 (102).
    assert result.latencies == pytest.approx([2.0, 1.0, 2.5])
    assert result.unmatched == 0


def test_offline_words_missing_from_the_finals_are_lost() -> None:
    result = final_word_latencies(OFFLINE, [final(102.0, "Ask what")], SENT_AT, CHUNK, "en")
    assert result.latencies == pytest.approx([2.0, 0.0])
    assert result.unmatched == 1


def test_a_word_split_into_tokens_is_final_when_its_last_token_is() -> None:
    offline = words((" well-known", 0.0, 0.8))
    messages = [final(101.0, "well"), final(103.0, "known", "u2")]
    assert final_word_latencies(offline, messages, SENT_AT, CHUNK, "en").latencies == [3.0]


def test_first_appearance_is_the_first_message_whose_text_shows_the_word() -> None:
    messages = [
        interim(100.5, "Ask"),
        interim(101.5, "Ask nut"),  # a wrong guess does not count
        interim(102.2, "Ask not what"),
        final(102.8, "Ask not what"),
    ]
    result = first_appearance_latencies(OFFLINE, messages, SENT_AT, CHUNK, "en")
    assert result.latencies == pytest.approx([0.5, 1.2, 0.2])
    assert result.unmatched == 0


def test_an_interim_replaced_by_its_final_no_longer_shows_its_words() -> None:
    offline = words((" ask", 0.2, 0.5), (" not", 0.6, 0.9), (" what", 1.1, 1.5))
    messages = [
        interim(100.5, "ask nod"),
        final(101.0, "ask"),  # the final drops the interim's "nod"
        interim(101.5, "not what", "u2"),
    ]
    result = first_appearance_latencies(offline, messages, SENT_AT, CHUNK, "en")
    assert result.latencies == pytest.approx([0.5, 1.5, 0.5])


def test_no_chunks_sent_means_every_word_is_unmatched() -> None:
    result = final_word_latencies(OFFLINE, [], [], CHUNK, "en")
    assert result.latencies == []
    assert result.unmatched == len(OFFLINE)


# --- statistics --------------------------------------------------------------------------------


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([float(v) for v in range(11)], 90) == pytest.approx(9.0)
    assert percentile([1.0, 2.0], 90) == pytest.approx(1.9)
    assert percentile([], 50) is None
    with pytest.raises(ValueError, match="percentile"):
        percentile([1.0], 101)


def test_speech_seconds_merges_short_pauses_only() -> None:
    spoken = words(("a", 0.0, 1.0), ("b", 1.5, 2.0), ("c", 5.0, 5.5))
    assert speech_seconds(spoken) == pytest.approx(2.5)
    assert speech_seconds([]) == 0.0


# --- items, totals and targets -----------------------------------------------------------------


def run_of(participant: str, reference: str, said: str, offline_compute_s: float = 1.0) -> ParticipantRun:
    offline = [TimedWord(f" {word}", float(i), i + 0.5) for i, word in enumerate(reference.split())]
    return ParticipantRun(
        participant=participant,
        reference=reference,
        offline_words=offline,
        offline_compute_s=offline_compute_s,
        messages=[final(102.0, said)] if said else [],
        sent_at=SENT_AT,
    )


def test_item_wer_is_total_errors_over_total_reference_words_of_its_participants() -> None:
    item, participants = measure_item(
        "meeting",
        [run_of("spk1", "one two three four", "one two three four"), run_of("spk2", "five six", "five")],
        language="en",
        duration_s=10.0,
        chunk_samples=CHUNK,
        stream_compute=StreamCompute(3.0, 6),
    )
    assert [p.finals.rate for p in participants] == [0.0, 0.5]
    assert item.finals == ErrorCount(1, 6)
    assert item.lost_words == 1
    assert item.audio_s == 20.0
    assert item.compute_ratio == pytest.approx(1.5)
    assert participants[0].stream_compute is None


def item_measures(name: str, reference: str, said: str, compute_s: float | None = 0.0) -> Measures:
    item, _ = measure_item(
        name,
        [run_of("spk1", reference, said)],
        language="en",
        duration_s=20.0,
        chunk_samples=CHUNK,
        stream_compute=None if compute_s is None else StreamCompute(compute_s, 1),
    )
    return item


def test_total_wer_leaves_out_empty_references_and_counts_their_words_apart() -> None:
    speech = item_measures("jfk", "ask not", "ask")
    silence = item_measures("silence_20s", "", "Thank you.")
    total = combine("total", [speech, silence])
    assert total.finals == ErrorCount(1, 2)
    assert total.hallucinated_words == 2
    assert combine("silence", [silence]).finals == ErrorCount(2, 0)


def test_total_compute_is_unavailable_when_any_item_lacks_it() -> None:
    known = item_measures("a", "ask not", "ask not", compute_s=1.0)
    unknown = item_measures("b", "ask not", "ask not", compute_s=None)
    assert combine("total", [known, known]).stream_compute == StreamCompute(2.0, 2)
    assert combine("total", [known, unknown]).stream_compute is None


def test_targets_pass_and_fail_on_the_measured_numbers() -> None:
    meeting = item_measures("meeting_x", "one two three four", "one two three", compute_s=1.0)
    silence = item_measures("noise_20s", "", "", compute_s=0.0)
    checks = {check.target: check.passed for check in check_targets([meeting, silence])}
    assert checks["meeting_x: finals WER ≤ 1.0 × offline WER"] is False  # 25% against 0
    assert checks["noise_20s: words emitted ≤ 0"] is True
    assert checks["meeting_x: dropped phrases = 0"] is True
    assert checks["meeting_x: finals ending on a function word ≤ 2"] is True
    assert checks["worker compute per second of silence ≤ 0.05 × offline"] is True
    assert checks["worker compute per second of speech ≤ 4 × offline"] is True


def test_latency_targets_fail_on_slow_finals_and_are_not_checked_without_data() -> None:
    slow = replace(item_measures("jfk", "ask", "ask"), end_latencies=[1.5, 1.5, 4.0])
    checks = {check.target: check.passed for check in check_targets([slow])}
    assert checks["end-of-final latency median (s) ≤ 1.2"] is False
    assert checks["end-of-final latency p90 (s) ≤ 2.5"] is False
    silent = {check.target: check.passed for check in check_targets([item_measures("silence_20s", "", "")])}
    assert silent["end-of-final latency median (s) ≤ 1.2"] is None


def test_shape_targets_fail_on_fragment_finals_and_dropped_phrases() -> None:
    fragments = replace(
        item_measures("longform_x", "ask not what", "ask not what"),
        words_per_final=[4, 3, 5],
        finals_at_boundary=1,
        finals_on_function_word=3,
        dropped_phrases=[DroppedPhrase(4.4, "what you can", "spk1")],
    )
    checks = {check.target: check for check in check_targets([fragments])}
    assert checks["longform_x: words per final, median ≥ 10"].passed is False
    assert checks["finals ending at a sentence end or a pause ≥ 85%"].passed is False
    assert checks["longform_x: finals ending on a function word ≤ 2"].passed is False
    dropped = checks["longform_x: dropped phrases = 0"]
    assert dropped.passed is False
    assert "spk1 4.4 s 'what you can'" in dropped.measured


def test_markdown_has_a_row_per_item_and_participant_and_a_verdict_per_target() -> None:
    item = item_measures("jfk", "ask not", "ask not")
    entry = ItemReport(item=item, participants=[replace(item, name="spk1")])
    report = Report({"speed": 1.0}, [entry], combine("total", [item]), check_targets([item]))
    markdown = to_markdown(report)
    assert "| jfk | 20.0 | 0.0% |" in markdown
    assert "| ↳ spk1 |" in markdown
    assert "| **total** |" in markdown
    assert "**PASS** jfk: dropped phrases = 0" in markdown


# --- corpus ------------------------------------------------------------------------------------


def corpus_item(name: str, language: str) -> CorpusItem:
    return CorpusItem(name, language, 1.0, [Track("spk1", Path(f"{name}.wav"), "")])


def test_default_selection_is_the_language_plus_silence_and_named_items_keep_their_order() -> None:
    corpus = [corpus_item("jfk", "en"), corpus_item("de", "de"), corpus_item("silence", "none")]
    assert [i.name for i in select_items(corpus, [], ["en"])] == ["jfk", "silence"]
    assert [i.name for i in select_items(corpus, ["silence", "de"], ["en"])] == ["silence", "de"]
    with pytest.raises(ValueError, match="not in the corpus: nope"):
        select_items(corpus, ["nope"], ["en"])


def test_markdown_lists_server_errors_and_abnormal_closes() -> None:
    item = item_measures("jfk", "ask not", "ask not")
    entries = [
        ItemReport(item=item, participants=[], close_code=1000),
        ItemReport(item=item, participants=[], server_errors=["window failed"], close_code=1012),
    ]
    markdown = to_markdown(Report({}, entries, combine("total", [item, item]), []))
    assert "- jfk: window failed" in markdown
    assert "- jfk: closed with 1012 ''" in markdown
    assert markdown.count("- jfk:") == 2


def test_audio_sent_by_counts_the_chunks_sent_so_far() -> None:
    assert audio_sent_by(99.0, SENT_AT, CHUNK) == 0.0
    assert audio_sent_by(101.0, SENT_AT, CHUNK) == 2.0
    assert audio_sent_by(101.5, SENT_AT, 16_384) == pytest.approx(2.048)


def test_a_word_is_not_shown_before_its_audio_began_to_be_sent() -> None:
    offline = words((" the", 0.1, 0.4), (" cat", 0.5, 0.9), (" sat", 1.2, 1.6), (" the", 6.0, 6.3))
    # At 100.5 only chunk 0 was sent: its guess "sat" (spoken at 1.2 s) does not count yet, and
    # "the" is the first one, not the one 6 s ahead.
    messages = [interim(100.5, "the sat"), interim(101.5, "the cat sat")]
    result = first_appearance_latencies(offline, messages, SENT_AT, CHUNK, "en")
    assert result.latencies == pytest.approx([0.5, 1.5, 0.5])
    assert result.unmatched == 1
