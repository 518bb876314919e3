"""`parse_client_message` on whatever a client can send: it returns a well-formed message or raises
ProtocolError with a close code the SPEC lists, never anything else, and never lets a bad id through."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from starlette import status

from ingress.protocol import (
    END_OF_MEETING,
    HEADER_BYTES,
    MAX_PARTICIPANT_ID_CHARS,
    UNPRINTABLE,
    AudioMessage,
    EndOfMeeting,
    ProtocolError,
    parse_client_message,
)
from service.languages import WHISPER_LANGUAGES

pytestmark = pytest.mark.unit

SPEC_CLOSE_CODES = {
    status.WS_1003_UNSUPPORTED_DATA,
    status.WS_1007_INVALID_FRAME_PAYLOAD_DATA,
    status.WS_1008_POLICY_VIOLATION,
    status.WS_1009_MESSAGE_TOO_BIG,
    status.WS_1013_TRY_AGAIN_LATER,
}
FUZZ = settings(max_examples=2000, deadline=None, database=None)

languages = st.sampled_from(sorted(WHISPER_LANGUAGES)).flatmap(
    lambda code: st.sampled_from([code, code.upper(), f"{code}-US", f"{code}_gb", code + "  "])
)
any_text = st.text(min_size=0, max_size=70)


@st.composite
def headered_frames(draw: st.DrawFn) -> bytes:
    """Frames that look like the real thing: a text header (right or wrong) padded to 60 bytes, a body."""
    participant = draw(any_text)
    language = draw(st.one_of(languages, any_text))
    separator = draw(st.sampled_from(["|", "|", "||", "", "/"]))
    raw = f"{participant}{separator}{language}".encode()[:HEADER_BYTES]
    padding = draw(st.sampled_from([b"\x00", b" ", b"\xff"]))
    header = raw + padding * (HEADER_BYTES - len(raw))
    return header + draw(st.binary(max_size=64))


frames = st.one_of(st.binary(max_size=200), headered_frames())


def check_audio_message(frame: bytes, message: AudioMessage) -> None:
    participant = message.participant_id
    assert participant, "empty participant id"
    assert len(participant) <= MAX_PARTICIPANT_ID_CHARS
    assert not any(unicodedata.category(char) in UNPRINTABLE for char in participant), repr(participant)
    assert "|" not in participant
    assert participant == participant.lstrip("\x00 ")
    assert message.language in WHISPER_LANGUAGES
    assert message.pcm == frame[HEADER_BYTES:]
    assert message.pcm and len(message.pcm) % 2 == 0


@FUZZ
@given(frame=frames)
@example(frame=END_OF_MEETING)
@example(frame=b"x" * 58 + b"|e" + b"\x00\x00")
@example(frame="bob\u2028|en".encode().ljust(HEADER_BYTES, b" ") + b"\x00\x00")
@example(frame=b"alice|en".ljust(HEADER_BYTES, b"\x00") + b"\x00\x00")
@example(frame="\u00a0|en".encode().ljust(HEADER_BYTES, b"\x00") + b"\x00\x00")
def test_any_frame_parses_to_a_sound_message_or_a_protocol_error(frame: bytes) -> None:
    try:
        message = parse_client_message(frame)
    except ProtocolError as error:
        assert error.close_code in SPEC_CLOSE_CODES
        assert error.message.strip()
        assert error.participant_id is None or error.participant_id.strip()
        return
    if isinstance(message, EndOfMeeting):
        assert frame == END_OF_MEETING
    else:
        check_audio_message(frame, message)


@FUZZ
@given(participant=st.text(min_size=1, max_size=20), language=languages, body=st.binary(max_size=64))
def test_a_well_formed_frame_is_accepted_exactly_when_its_id_is(
    participant: str, language: str, body: bytes
) -> None:
    raw = f"{participant}|{language}".encode()
    frame = raw.ljust(HEADER_BYTES, b"\x00") + body
    expected_id = participant.lstrip("\x00 ")  # leading NUL or space is padding, as on the wire
    id_ok = (
        bool(expected_id.strip())
        and "|" not in expected_id
        and not any(unicodedata.category(char) in UNPRINTABLE for char in expected_id)
    )
    fits = len(raw) <= HEADER_BYTES
    body_ok = bool(body) and len(body) % 2 == 0

    try:
        message = parse_client_message(frame)
    except ProtocolError:
        assert not (id_ok and fits and body_ok)
        return
    assert id_ok and fits and body_ok
    assert isinstance(message, AudioMessage)
    assert message.participant_id == expected_id
    assert message.language == language.strip().replace("_", "-").split("-")[0].lower()
