"""The wire format (SPEC §2, §3): what clients send us and what we send back, byte for byte."""

from __future__ import annotations

import base64
import io
import json
import wave

import pytest
from starlette import status

from ingress.protocol import (
    HEADER_BYTES,
    MAX_PARTICIPANT_ID_CHARS,
    AudioMessage,
    EndOfMeeting,
    ProtocolError,
    build_header,
    encode_error,
    encode_transcript,
    fit_close_reason,
    parse_client_message,
    parse_header,
    parse_language,
)
from service.audio import SAMPLE_RATE

pytestmark = pytest.mark.unit

PCM = b"\x01\x00\xff\xff" * 8  # 16 samples: 1, -1, 1, -1, ...


def padded(text: str, padding: bytes) -> bytes:
    raw = text.encode()
    return raw + padding * (HEADER_BYTES - len(raw))


def refusal(frame: bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        parse_client_message(frame)
    return caught.value


# ---- client → server: headers -------------------------------------------------------------------


def test_java_header_is_padded_with_nul() -> None:
    message = parse_client_message(padded("alice|en", b"\x00") + PCM)

    assert message == AudioMessage(participant_id="alice", language="en", pcm=PCM)


def test_browser_header_is_padded_with_spaces() -> None:
    message = parse_client_message(padded("bob-42|fr", b" ") + PCM)

    assert message == AudioMessage(participant_id="bob-42", language="fr", pcm=PCM)


def test_non_ascii_participant_id_survives() -> None:
    assert parse_header(padded("Zoë Ørsted|de", b"\x00")) == ("Zoë Ørsted", "de")


@pytest.mark.parametrize("raw", ["en", "EN", "en-US", "en_us", "En-gb", " en "])
def test_language_is_reduced_to_its_lowercase_iso_code(raw: str) -> None:
    assert parse_language(raw) == "en"


@pytest.mark.parametrize("raw", ["auto", "AUTO", " auto "])
def test_auto_asks_for_the_language_to_be_detected(raw: str) -> None:
    assert parse_language(raw) == "auto"


def test_header_language_is_normalised_too() -> None:
    assert parse_header(padded("carol|pt-BR", b" ")) == ("carol", "pt")


def test_only_the_first_pipe_separates_id_from_language() -> None:
    with pytest.raises(ProtocolError, match=r"'en\|x'"):
        parse_header(padded("dave|en|x", b"\x00"))


def test_header_without_separator_is_invalid_payload() -> None:
    error = refusal(padded("alice-en", b"\x00") + PCM)

    assert error.close_code == status.WS_1007_INVALID_FRAME_PAYLOAD_DATA
    assert "|" in error.message


def test_header_that_is_not_utf8_is_invalid_payload() -> None:
    error = refusal(b"\xff\xfe" + padded("alice|en", b"\x00")[2:] + PCM)

    assert error.close_code == status.WS_1007_INVALID_FRAME_PAYLOAD_DATA
    assert "UTF-8" in error.message


@pytest.mark.parametrize("participant", ["", "\u00a0", "\u3000 \u2003"])
def test_empty_or_blank_participant_id_is_refused(participant: str) -> None:
    error = refusal(padded(f"{participant}|en", b"\x00") + PCM)

    assert error.close_code == status.WS_1007_INVALID_FRAME_PAYLOAD_DATA
    assert "empty" in error.message


def test_longest_participant_id_that_fits_the_header_with_a_language() -> None:
    longest = "a" * MAX_PARTICIPANT_ID_CHARS

    assert parse_header(build_header(longest, "en")) == (longest, "en")


@pytest.mark.parametrize("header", [b"a" * 59 + b"|", b"a" * 58 + b"|e"])
def test_participant_id_too_long_is_refused_as_such(header: bytes) -> None:
    error = refusal(header + PCM)

    assert error.close_code == status.WS_1007_INVALID_FRAME_PAYLOAD_DATA
    assert "longer than" in error.message


@pytest.mark.parametrize("participant_id", ["al\x01ice", "bob\n", "eve\x7f", "nul\x00in-the-middle"])
def test_participant_id_with_control_characters_is_refused(participant_id: str) -> None:
    error = refusal(padded(f"{participant_id}|en", b" ") + PCM)

    assert error.close_code == status.WS_1007_INVALID_FRAME_PAYLOAD_DATA
    assert "control" in error.message


@pytest.mark.parametrize("language", ["xx", "klingon", "", "e"])
def test_unknown_language_is_refused_naming_the_participant(language: str) -> None:
    error = refusal(padded(f"alice|{language}", b"\x00") + PCM)

    assert error.close_code == status.WS_1007_INVALID_FRAME_PAYLOAD_DATA
    assert "language" in error.message
    assert error.participant_id == "alice"


# ---- client → server: bodies ----------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 2, 30, HEADER_BYTES - 1])
def test_message_shorter_than_the_header_is_refused(length: int) -> None:
    error = refusal(padded("alice|en", b"\x00")[:length])

    assert error.close_code == status.WS_1007_INVALID_FRAME_PAYLOAD_DATA
    assert "shorter" in error.message


def test_odd_length_body_is_refused() -> None:
    error = refusal(padded("alice|en", b"\x00") + PCM + b"\x00")

    assert error.close_code == status.WS_1007_INVALID_FRAME_PAYLOAD_DATA
    assert error.participant_id == "alice"


def test_header_without_audio_is_refused() -> None:
    error = refusal(padded("alice|en", b"\x00"))

    assert error.close_code == status.WS_1007_INVALID_FRAME_PAYLOAD_DATA
    assert error.participant_id == "alice"


def test_single_nul_byte_ends_the_meeting() -> None:
    assert parse_client_message(b"\x00") == EndOfMeeting()


def test_header_of_nul_padding_only_is_not_end_of_meeting() -> None:
    error = refusal(b"\x00" * HEADER_BYTES + PCM)

    assert error.close_code == status.WS_1007_INVALID_FRAME_PAYLOAD_DATA


def test_browser_sized_message_keeps_every_sample() -> None:
    pcm = bytes(range(256)) * 128  # 16384 samples, what the browser sends each 1.024 s

    message = parse_client_message(build_header("alice", "en", padding=" ") + pcm)

    assert isinstance(message, AudioMessage)
    assert message.pcm == pcm


# ---- build_header -------------------------------------------------------------------------------


@pytest.mark.parametrize("padding", ["\x00", " "])
def test_build_header_round_trips(padding: str) -> None:
    header = build_header("Zoë", "en-US", padding=padding)  # type: ignore[arg-type]

    assert len(header) == HEADER_BYTES
    assert header.endswith(padding.encode())
    assert parse_header(header) == ("Zoë", "en")


def test_build_header_refuses_what_does_not_fit() -> None:
    with pytest.raises(ValueError, match="longer than"):
        build_header("a" * HEADER_BYTES, "en")


# ---- server → client ----------------------------------------------------------------------------


def transcript(**overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "utterance_id": "0190d6f2-0000-7000-8000-000000000000",
        "participant_id": "alice",
        "ts_ms": 1_732_450_000_123,
        "text": "And so my fellow Americans",
        "kind": "interim",
        "variance": 0.83,
    }
    fields.update(overrides)
    return json.loads(encode_transcript(**fields))  # type: ignore[arg-type]


def test_transcript_has_exactly_the_spec_fields_in_order() -> None:
    message = transcript()

    assert list(message) == ["id", "participant_id", "ts", "text", "audio", "type", "variance"]
    assert message == {
        "id": "0190d6f2-0000-7000-8000-000000000000",
        "participant_id": "alice",
        "ts": 1_732_450_000_123,
        "text": "And so my fellow Americans",
        "audio": "",
        "type": "interim",
        "variance": 0.83,
    }


def test_transcript_text_is_sent_as_utf8_not_escapes() -> None:
    encoded = encode_transcript(
        utterance_id="u", participant_id="Zoë", ts_ms=0, text="Grüß Gott", kind="final", variance=1.0
    )

    assert "Grüß Gott" in encoded
    assert "Zoë" in encoded


def test_final_with_pcm_carries_a_base64_wav() -> None:
    message = transcript(kind="final", pcm=PCM)

    wav_bytes = base64.b64decode(str(message["audio"]), validate=True)
    assert wav_bytes[:4] == b"RIFF"
    assert wav_bytes[8:12] == b"WAVE"
    with wave.open(io.BytesIO(wav_bytes)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, SAMPLE_RATE)
        assert wav.readframes(wav.getnframes()) == PCM


def test_interim_never_carries_audio() -> None:
    assert transcript(kind="interim", pcm=PCM)["audio"] == ""


def test_final_without_pcm_has_empty_audio() -> None:
    assert transcript(kind="final", pcm=None)["audio"] == ""
    assert transcript(kind="final", pcm=b"")["audio"] == ""


@pytest.mark.parametrize(("variance", "sent"), [(-0.2, 0.0), (1.7, 1.0), (0.0, 0.0), (1.0, 1.0), (0.5, 0.5)])
def test_variance_is_clamped_to_the_unit_interval(variance: float, sent: float) -> None:
    assert transcript(variance=variance)["variance"] == sent


def test_error_message_shape() -> None:
    assert json.loads(encode_error(status.WS_1007_INVALID_FRAME_PAYLOAD_DATA, "bad header")) == {
        "type": "error",
        "code": 1007,
        "message": "bad header",
    }


def test_error_message_names_the_participant_when_known() -> None:
    message = json.loads(encode_error(status.WS_1007_INVALID_FRAME_PAYLOAD_DATA, "odd body", "alice"))

    assert list(message) == ["type", "code", "message", "participant_id"]
    assert message["participant_id"] == "alice"


def test_protocol_error_from_parsing_encodes_as_error_message() -> None:
    error = refusal(padded("alice|xx", b"\x00") + PCM)

    message = json.loads(encode_error(error.close_code, error.message, error.participant_id))

    assert message["code"] == status.WS_1007_INVALID_FRAME_PAYLOAD_DATA
    assert "'xx'" in message["message"]
    assert message["participant_id"] == "alice"


def test_close_reasons_are_cut_to_what_a_close_frame_carries() -> None:
    reason = "é" * 100  # 200 bytes of UTF-8

    fitted = fit_close_reason(reason)

    assert len(fitted.encode()) <= 123
    assert fitted == "é" * 61  # whole characters only
    assert fit_close_reason("short") == "short"
