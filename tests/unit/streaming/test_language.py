"""A participant's language as the model hears it (`streaming/language.py`): `auto` settles on
the first window long and sure enough and switches only on strong evidence; a declared language
is checked once and a strong contradiction reported once; an English-only model makes `auto`
English."""

from __future__ import annotations

import pytest

from streaming.language import SETTLE_ANYWAY_S, SETTLE_MIN_S, STRONG, Contradiction, SpokenLanguage

pytestmark = pytest.mark.unit


def test_auto_decodes_each_window_as_heard_until_a_long_sure_one_settles_it() -> None:
    spoken = SpokenLanguage("auto")
    assert spoken.window_language() == "auto" and spoken.wants_detection(final=False)

    spoken.heard("ja", 0.39, 1.0, final=False)  # one second: not trusted
    assert spoken.current == "ja" and not spoken.settled and spoken.window_language() == "auto"
    spoken.heard("es", 0.6, SETTLE_MIN_S, final=False)  # long enough, not sure enough
    assert not spoken.settled
    spoken.heard("es", 0.98, SETTLE_MIN_S, final=False)

    assert spoken.settled and spoken.window_language() == "es"
    assert not spoken.wants_detection(final=False) and spoken.wants_detection(final=True)


def test_auto_settles_on_a_long_window_however_unsure() -> None:
    spoken = SpokenLanguage("auto")
    spoken.heard("cy", 0.4, SETTLE_ANYWAY_S, final=False)
    assert spoken.settled and spoken.window_language() == "cy"


def test_a_settled_language_switches_only_on_strong_evidence_in_a_row() -> None:
    spoken = SpokenLanguage("auto")
    spoken.heard("de", 0.99, 3.0, final=False)

    spoken.heard("nl", 0.95, 3.0, final=False)  # interims never switch it
    spoken.heard("nl", STRONG - 0.01, 3.0, final=True)  # not strong
    spoken.heard("nl", 0.97, 3.0, final=True)
    spoken.heard("de", 0.99, 3.0, final=True)  # the run is broken
    spoken.heard("nl", 0.97, 3.0, final=True)
    assert spoken.current == "de"
    spoken.heard("nl", 0.97, 3.0, final=True)

    assert spoken.current == "nl" and spoken.window_language() == "nl"


def test_a_declared_language_the_speech_contradicts_is_reported_once_and_kept() -> None:
    spoken = SpokenLanguage("en")
    assert spoken.wants_detection(final=False) and spoken.window_language() == "en"

    assert spoken.heard("pt", 0.99, 1.0, final=False) is None  # too short to tell
    contradiction = spoken.heard("pt", 0.97, SETTLE_MIN_S, final=False)

    assert contradiction == Contradiction("en", "pt", 0.97)
    assert "'pt' or 'auto'" in contradiction.message
    assert spoken.window_language() == "en" and not spoken.wants_detection(final=True)
    assert spoken.heard("pt", 0.99, 5.0, final=True) is None  # once


@pytest.mark.parametrize(("heard", "probability"), [("en", 0.99), ("de", 0.7)])
def test_a_declared_language_the_speech_agrees_with_or_barely_doubts_is_not_reported(
    heard: str, probability: float
) -> None:
    spoken = SpokenLanguage("en")
    assert spoken.heard(heard, probability, SETTLE_MIN_S, final=False) is None
    assert spoken.settled and not spoken.wants_detection(final=False)


def test_with_an_english_only_model_auto_is_english_and_nothing_is_detected_again() -> None:
    spoken = SpokenLanguage("auto")
    spoken.heard("en", None, 1.0, final=False)
    assert spoken.current == "en" and spoken.window_language() == "en"
    assert not spoken.wants_detection(final=False)

    declared = SpokenLanguage("en")
    assert declared.heard("en", None, 1.0, final=False) is None and declared.settled


def test_a_window_that_was_not_detected_changes_nothing() -> None:
    spoken = SpokenLanguage("auto")
    assert spoken.heard(None, None, 5.0, final=True) is None
    assert spoken == SpokenLanguage("auto")
