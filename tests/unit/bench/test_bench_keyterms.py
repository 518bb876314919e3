"""How `bench.keyterms` splits errors between the words of the keyterms and the rest."""

from __future__ import annotations

import pytest

from bench.corpus import REPO_CORPUS
from bench.keyterms import TermScore, manifest_keyterms, score_terms, term_positions

pytestmark = pytest.mark.unit

REFERENCE = "Siobhan Przybylski joins us from the Kraków office today."
TERMS = ["Siobhan Przybylski", "Kraków"]


def test_the_words_of_each_keyterm_are_found_in_the_reference() -> None:
    words = "siobhan przybylski joins us from the kraków office today".split()

    assert term_positions(words, TERMS) == {0, 1, 6}
    assert term_positions(words, ["Zabbix"]) == set()


def test_a_perfect_transcript_has_no_errors_of_either_kind() -> None:
    assert score_terms(
        REFERENCE, "siobhan przybylski, joins us from the Kraków office today", TERMS
    ) == TermScore(3, 0, 6, 0)


def test_a_misspelt_name_counts_against_the_keyterms_and_the_rest_stays_clean() -> None:
    score = score_terms(REFERENCE, "Shevonne Prisbilski joins us from the Cracker office today.", TERMS)

    assert score == TermScore(term_words=3, term_errors=3, other_words=6, other_errors=0)
    assert score.term_error_rate == 1.0
    assert score.other_wer == 0.0


def test_words_dropped_or_added_outside_the_names_count_against_the_rest() -> None:
    score = score_terms(
        REFERENCE, "Siobhan Przybylski joins us from the Kraków office, yes, today. Thanks", TERMS
    )

    assert score == TermScore(term_words=3, term_errors=0, other_words=6, other_errors=2)
    assert score_terms(REFERENCE, "", TERMS) == TermScore(3, 3, 6, 6)


def test_the_keyterms_corpus_lists_keyterms_for_its_item() -> None:
    terms = manifest_keyterms(REPO_CORPUS / "keyterms")

    assert "Siobhan Przybylski" in terms["synth_en_names"]
