"""The opt-in extras a client asks for in the socket's query string (`?words=1`), and the words
they add to a transcript; without them a message is the seed's, byte for byte."""

from __future__ import annotations

import json

import pytest
from starlette import status

from ingress.protocol import (
    TEXT_FRAMES_REFUSED,
    ConfigMessage,
    ProtocolError,
    SocketOptions,
    TimedWord,
    encode_language_warning,
    encode_transcript,
    parse_socket_options,
    parse_text_message,
)
from ingress.session import timed_words
from streaming.language import Contradiction
from streaming.utterances import Transcript
from streaming.words import Word

pytestmark = pytest.mark.unit

FIELDS: dict[str, object] = {
    "utterance_id": "u1",
    "participant_id": "alice",
    "ts_ms": 1_732_450_000_123,
    "text": "Ask not.",
    "kind": "final",
    "variance": 0.9,
}


@pytest.mark.parametrize(
    ("query", "options"),
    [
        ({}, SocketOptions()),
        ({"auth_token": "x.y.z"}, SocketOptions()),
        ({"words": "1"}, SocketOptions(words=True)),
        ({"words": "true", "auth_token": "x.y.z"}, SocketOptions(words=True)),
        ({"words": "0"}, SocketOptions()),
        ({"keyterms": "Kraków, Zabbix ,Kraków"}, SocketOptions(keyterms=("Kraków", "Zabbix"))),
        ({"keyterms": ""}, SocketOptions()),
        ({"language": "auto"}, SocketOptions(detect_language=True)),
    ],
)
def test_the_query_string_names_the_extras(query: dict[str, str], options: SocketOptions) -> None:
    assert parse_socket_options(query) == options


@pytest.mark.parametrize(
    ("query", "complaint"),
    [
        (
            {"word": "1"},
            "unknown query parameter 'word': this server takes auth_token, words, keyterms, language",
        ),
        ({"keyterms": "Zabbix,,Hetzner"}, "?keyterms=: a keyterm is empty"),
        ({"keyterms": "x" * 51}, "?keyterms=: keyterm 'xxxxxxxxxxxxxxxxxxxx'... is over 50 characters"),
        ({"keyterms": ",".join(f"t{n}" for n in range(51))}, "?keyterms= holds 51 keyterms; at most 50"),
        ({"keyterms": ",".join(f"term number {n:03}" for n in range(40))}, "over 500 characters in all"),
        ({"keyterms": "Zab\nbix"}, "holds a comma or control characters"),
        ({"words": "yes"}, "?words= takes 1 or 0, not 'yes'"),
        ({"language": "de"}, "?language= takes only 'auto', not 'de'"),
        ({"token": "secret", "lang": "fr"}, "unknown query parameter 'lang', 'token'"),
    ],
)
def test_an_unknown_or_bad_extra_is_refused_with_1008_naming_it(
    query: dict[str, str], complaint: str
) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_socket_options(query)

    assert caught.value.close_code == status.WS_1008_POLICY_VIOLATION
    assert complaint in caught.value.message
    assert "secret" not in caught.value.message  # names, never values (a token may be among them)


def test_without_words_the_message_is_the_seed_s_byte_for_byte() -> None:
    seed = (
        '{"id": "u1", "participant_id": "alice", "ts": 1732450000123, "text": "Ask not.", '
        '"audio": "", "type": "final", "variance": 0.9}'
    )
    assert encode_transcript(**FIELDS) == seed  # type: ignore[arg-type]


def test_with_words_they_follow_the_seed_fields() -> None:
    words = [TimedWord("Ask", 0, 300, 0.91234), TimedWord("not.", 400, 820, 0.8)]

    message = json.loads(encode_transcript(**FIELDS, words=words))  # type: ignore[arg-type]

    assert list(message) == ["id", "participant_id", "ts", "text", "audio", "type", "variance", "words"]
    assert message["words"] == [
        {"word": "Ask", "start": 0, "end": 300, "probability": 0.9123},
        {"word": "not.", "start": 400, "end": 820, "probability": 0.8},
    ]


def test_a_transcript_s_word_times_count_from_its_first_word_in_ms() -> None:
    words = (Word(" Ask", 12.5, 12.8, 0.9), Word(" not.", 12.9, 13.32, 0.7), Word(" so", 12.4, 12.6, 0.5))
    transcript = Transcript("u1", "final", "Ask not. so", 1_000, 0.7, start_s=12.5, end_s=13.32, words=words)

    assert timed_words(transcript) == [
        TimedWord("Ask", 0, 300, 0.9),
        TimedWord("not.", 400, 820, 0.7),
        TimedWord("so", 0, 100, 0.5),  # a word timed before the first is held at 0, never negative
    ]


def test_a_config_message_sets_the_keyterms() -> None:
    message = json.dumps({"type": "config", "keyterms": ["Siobhan Przybylski", " Hetzner "]})

    assert parse_text_message(message) == ConfigMessage(("Siobhan Przybylski", "Hetzner"))
    assert parse_text_message('{"type": "config"}') == ConfigMessage(())


@pytest.mark.parametrize("text", ["hello", "", "[1, 2]", '{"type": "audio"}', '{"keyterms": ["a"]}'])
def test_any_other_text_frame_is_refused_as_before(text: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_text_message(text)

    assert caught.value.close_code == status.WS_1003_UNSUPPORTED_DATA
    assert caught.value.message == TEXT_FRAMES_REFUSED


@pytest.mark.parametrize(
    ("message", "complaint"),
    [
        ({"type": "config", "keyterms": "Zabbix"}, "config message: keyterms must be a list of strings"),
        ({"type": "config", "keyterms": [3]}, "config message: a keyterm must be text, not 3"),
        ({"type": "config", "keyterms": ["a,b"]}, "config message: keyterm 'a,b' holds a comma"),
        ({"type": "config", "words": True}, "config message: unknown field 'words'; it takes keyterms"),
    ],
)
def test_a_bad_config_message_is_refused_with_1007_naming_the_field(
    message: dict[str, object], complaint: str
) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_text_message(json.dumps(message))

    assert caught.value.close_code == status.WS_1007_INVALID_FRAME_PAYLOAD_DATA
    assert complaint in caught.value.message


def test_a_detected_language_goes_after_the_seed_s_fields_and_the_words() -> None:
    word = TimedWord("Ask", 0, 300, 0.9)
    message = json.loads(encode_transcript(**FIELDS, words=[word], language="de"))  # type: ignore[arg-type]

    assert list(message)[-2:] == ["words", "language"] and message["language"] == "de"


def test_a_language_contradiction_is_a_warning_naming_both_languages() -> None:
    warning = json.loads(encode_language_warning("alice", Contradiction("en", "pt", 0.97123)))

    assert warning == {
        "type": "warning",
        "code": "language_mismatch",
        "participant_id": "alice",
        "message": Contradiction("en", "pt", 0.97123).message,
        "declared": "en",
        "detected": "pt",
        "probability": 0.9712,
    }
