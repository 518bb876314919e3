"""Opt-in extras over a real websocket, with the real worker and model: `?words=1` adds each
word's times to every interim and final; an unknown query parameter is refused with 1008."""

from __future__ import annotations

from typing import Any

import pytest

from bench.scoring import error_rate
from tests.integration.conftest import Service
from tests.integration.test_meeting import TRANSCRIPT_FIELDS, check_schema

pytestmark = pytest.mark.integration


def test_with_words_each_interim_and_final_carries_its_words_timed_from_ts(
    service: Service, speech: Any, reference: Any
) -> None:
    result = service.stream("words-on", [("jfk", speech("jfk_ask_not"))], query="?words=1")

    assert result.closed_normally, (result.close_code, result.close_reason)
    transcripts = [m.payload for m in result.messages if m.payload and m.payload["type"] != "error"]
    assert not result.errors()
    assert result.interims("jfk") and result.finals("jfk")
    for message in transcripts:
        assert list(message) == [*TRANSCRIPT_FIELDS, "words"]
        words = message["words"]
        assert [list(w) for w in words] == [["word", "start", "end", "probability"]] * len(words)
        assert "".join(w["word"] for w in words) == message["text"].replace(" ", "")
        assert words[0]["start"] == 0
        assert all(0 <= w["start"] <= w["end"] and 0.0 <= w["probability"] <= 1.0 for w in words)
        # Within the utterance's audio: an 11 s recording holds no utterance much longer.
        assert words[-1]["end"] < 12_000
    for final in result.finals("jfk"):
        starts = [w["start"] for w in final["words"]]
        assert starts == sorted(starts), final
    assert error_rate(reference("jfk_ask_not"), result.transcript("jfk")) <= 0.10


def test_without_extras_a_message_holds_exactly_the_seed_fields(service: Service, speech: Any) -> None:
    result = service.stream("words-off", [("jfk", speech("jfk_ask_not"))], query="?words=0")

    assert result.closed_normally, (result.close_code, result.close_reason)
    check_schema(result, {"jfk"})  # exactly the SPEC §3 fields, in order


def test_an_unknown_query_parameter_is_refused_with_1008_naming_it(service: Service, speech: Any) -> None:
    result = service.stream("words-typo", [("jfk", speech("jfk_ask_not")[:32_000])], query="?wrods=1")

    assert result.close_code == 1008
    (error,) = result.errors()
    assert error["code"] == 1008
    assert (
        error["message"]
        == "unknown query parameter 'wrods': this server takes auth_token, words, keyterms, language"
    )
    assert not result.interims("jfk") and not result.finals("jfk")


@pytest.mark.parametrize(("lang", "query"), [("auto", ""), ("en", "?language=auto")], ids=["header", "query"])
def test_with_an_english_only_model_auto_is_english_and_every_message_says_so(
    service: Service, speech: Any, reference: Any, lang: str, query: str
) -> None:
    result = service.stream(f"auto-{lang}", [("jfk", speech("jfk_ask_not"))], query=query, lang=lang)

    assert result.closed_normally, (result.close_code, result.close_reason)
    assert not result.errors() and not result.of_type("warning")
    transcripts = result.interims("jfk") + result.finals("jfk")
    assert transcripts and all(list(m) == [*TRANSCRIPT_FIELDS, "language"] for m in transcripts)
    assert {m["language"] for m in transcripts} == {"en"}
    assert error_rate(reference("jfk_ask_not"), result.transcript("jfk")) <= 0.10
