"""Every byte of the wire format (SPEC §2 and §3), both directions.

Client → server: binary frames of a 60-byte header ("participant_id|lang", padded with NUL or
spaces) followed by PCM s16le mono 16 kHz, or a single NUL byte meaning "meeting over".
Server → client: JSON text frames, transcripts or errors.
"""

from __future__ import annotations

import base64
import json
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from starlette import status

from service.audio import SAMPLE_WIDTH_BYTES, pcm_to_wav
from service.languages import AUTO, WHISPER_LANGUAGES
from streaming.language import Contradiction

HEADER_BYTES = 60
END_OF_MEETING = b"\x00"
HEADER_PADDING = "\x00 "
MAX_PARTICIPANT_ID_CHARS = HEADER_BYTES - len("|xx")
"""The whole header is 60 bytes and holds at least "|xx", so ids are no longer than the rest (57)."""
UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
"""Unicode categories refused in participant ids: controls, invisible formatting, unassigned code
points, and the line and paragraph separators (U+2028/9), which would split a log line as \n does."""


class ProtocolError(Exception):
    """A client message that breaks the contract; `close_code` says how a websocket would close."""

    def __init__(self, close_code: int, message: str, participant_id: str | None = None) -> None:
        super().__init__(message)
        self.close_code = close_code
        self.message = message
        self.participant_id = participant_id


@dataclass(frozen=True)
class AudioMessage:
    participant_id: str
    language: str
    pcm: bytes


@dataclass(frozen=True)
class EndOfMeeting:
    pass


ClientMessage = AudioMessage | EndOfMeeting


def parse_client_message(frame: bytes) -> ClientMessage:
    """Parse one binary frame; raises ProtocolError with the close code for anything malformed."""
    if frame == END_OF_MEETING:
        return EndOfMeeting()
    if len(frame) < HEADER_BYTES:
        raise ProtocolError(
            status.WS_1007_INVALID_FRAME_PAYLOAD_DATA,
            f"message of {len(frame)} bytes is shorter than the {HEADER_BYTES}-byte header",
        )
    participant_id, language = parse_header(frame[:HEADER_BYTES])
    pcm = frame[HEADER_BYTES:]
    if not pcm:
        raise ProtocolError(
            status.WS_1007_INVALID_FRAME_PAYLOAD_DATA, "message holds a header but no audio", participant_id
        )
    if len(pcm) % SAMPLE_WIDTH_BYTES:
        raise ProtocolError(
            status.WS_1007_INVALID_FRAME_PAYLOAD_DATA,
            f"audio of {len(pcm)} bytes is not whole 16-bit samples",
            participant_id,
        )
    return AudioMessage(participant_id=participant_id, language=language, pcm=pcm)


def parse_header(header: bytes) -> tuple[str, str]:
    """`participant_id|lang` with NUL (Java) or space (browser) padding; returns (id, short lang)."""
    try:
        text = header.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(status.WS_1007_INVALID_FRAME_PAYLOAD_DATA, "header is not valid UTF-8") from None
    text = text.strip(HEADER_PADDING)
    if "|" not in text:
        raise ProtocolError(
            status.WS_1007_INVALID_FRAME_PAYLOAD_DATA, "header must be 'participant_id|lang'; no '|' found"
        )
    participant_id, raw_language = text.split("|", 1)
    _check_participant_id(participant_id)
    return participant_id, parse_language(raw_language, participant_id)


def _check_participant_id(participant_id: str) -> None:
    if not participant_id.strip():
        # Unicode spaces alone (U+00A0, U+3000...) name nobody a person could tell apart.
        raise ProtocolError(status.WS_1007_INVALID_FRAME_PAYLOAD_DATA, "participant id is empty")
    if len(participant_id) > MAX_PARTICIPANT_ID_CHARS:
        raise ProtocolError(
            status.WS_1007_INVALID_FRAME_PAYLOAD_DATA,
            f"participant id is longer than {MAX_PARTICIPANT_ID_CHARS} characters",
        )
    if any(unicodedata.category(char) in UNPRINTABLE for char in participant_id):
        raise ProtocolError(
            status.WS_1007_INVALID_FRAME_PAYLOAD_DATA,
            "participant id holds control characters or line breaks",
        )


def parse_language(raw: str, participant_id: str | None = None) -> str:
    """`en`, `EN`, `en-US`, `en_us` → `en`; `auto` (detect it); anything Whisper does not know is refused."""
    code = raw.strip(HEADER_PADDING).replace("_", "-").split("-", 1)[0].lower()
    if code not in WHISPER_LANGUAGES and code != AUTO:
        raise ProtocolError(
            status.WS_1007_INVALID_FRAME_PAYLOAD_DATA,
            f"language {raw.strip(HEADER_PADDING)!r} is not a language code Whisper knows",
            participant_id,
        )
    return code


def build_header(participant_id: str, language: str, padding: Literal["\x00", " "] = "\x00") -> bytes:
    """The client side of `parse_header` (used by our clients and tests)."""
    raw = f"{participant_id}|{language}".encode()
    if len(raw) > HEADER_BYTES:
        raise ValueError(f"header {raw!r} is longer than {HEADER_BYTES} bytes")
    return raw + padding.encode() * (HEADER_BYTES - len(raw))


TranscriptType = Literal["interim", "final"]

QUERY_PARAMETERS = ("auth_token", "words", "keyterms", "language")
"""What a socket's query string may hold: the token, then the opt-in extras. An unknown name is
refused (1008), so a client learns at once that an extra it asked for is not served here."""

MAX_KEYTERMS = 50
MAX_KEYTERM_CHARS = 50
MAX_KEYTERMS_CHARS = 500
"""A socket's keyterms, joined by ", ", stay well inside the half of Whisper's 448 decoder tokens
that a prompt may take (about four characters a token in English)."""


@dataclass(frozen=True)
class SocketOptions:
    """The extras a client asked for when it opened the socket; none: the seed's messages exactly."""

    words: bool = False
    """`?words=1`: each interim and final carries its words with their times (`encode_transcript`)."""
    keyterms: tuple[str, ...] = ()
    """`?keyterms=a,b`: words the decoder is told to expect (also set by a config message)."""
    detect_language: bool = False
    """`?language=auto`: every participant's language is detected, whatever its headers say."""


def parse_socket_options(query: Mapping[str, str]) -> SocketOptions:
    unknown = sorted(set(query) - set(QUERY_PARAMETERS))
    if unknown:
        raise ProtocolError(
            status.WS_1008_POLICY_VIOLATION,
            f"unknown query parameter {', '.join(map(repr, unknown))}: this server takes "
            + ", ".join(QUERY_PARAMETERS),
        )
    terms = query.get("keyterms", "")
    language = query.get("language")
    if language not in (None, AUTO):
        raise ProtocolError(
            status.WS_1008_POLICY_VIOLATION,
            f"?language= takes only 'auto', not {language!r} (each audio header names its language)",
        )
    return SocketOptions(
        detect_language=language == AUTO,
        words=_flag(query, "words"),
        keyterms=parse_keyterms(
            terms.split(",") if terms else [], "?keyterms=", status.WS_1008_POLICY_VIOLATION
        ),
    )


def _flag(query: Mapping[str, str], name: str) -> bool:
    value = query.get(name)
    if value is None or value in ("0", "false"):
        return False
    if value in ("1", "true"):
        return True
    raise ProtocolError(status.WS_1008_POLICY_VIOLATION, f"?{name}= takes 1 or 0, not {value!r}")


def parse_keyterms(terms: Sequence[object], where: str, close_code: int) -> tuple[str, ...]:
    """Keyterms as given (spaces around each trimmed, repeats dropped), or a ProtocolError that
    says which one is wrong and why."""
    if len(terms) > MAX_KEYTERMS:
        raise ProtocolError(close_code, f"{where} holds {len(terms)} keyterms; at most {MAX_KEYTERMS}")
    kept: list[str] = []
    for term in terms:
        if not isinstance(term, str):
            raise ProtocolError(close_code, f"{where}: a keyterm must be text, not {term!r}")
        text = term.strip()
        if not text:
            raise ProtocolError(close_code, f"{where}: a keyterm is empty")
        if len(text) > MAX_KEYTERM_CHARS:
            raise ProtocolError(
                close_code, f"{where}: keyterm {text[:20]!r}... is over {MAX_KEYTERM_CHARS} characters"
            )
        if "," in text or any(unicodedata.category(char) in UNPRINTABLE for char in text):
            raise ProtocolError(close_code, f"{where}: keyterm {text!r} holds a comma or control characters")
        if text not in kept:
            kept.append(text)
    if len(", ".join(kept)) > MAX_KEYTERMS_CHARS:
        raise ProtocolError(
            close_code, f"{where}: the keyterms are over {MAX_KEYTERMS_CHARS} characters in all"
        )
    return tuple(kept)


TEXT_FRAMES_REFUSED = "text frames are not accepted: send binary audio messages (SPEC §2)"


@dataclass(frozen=True)
class ConfigMessage:
    """`{"type": "config", "keyterms": [...]}`: the socket's keyterms from its next window on."""

    keyterms: tuple[str, ...]


def parse_text_message(text: str) -> ConfigMessage:
    """The one text frame a client may send; anything else is refused as text frames were before
    (1003), a config message with a bad field with 1007 naming it."""
    try:
        message = json.loads(text)
    except ValueError:
        message = None
    if not isinstance(message, dict) or message.get("type") != "config":
        raise ProtocolError(status.WS_1003_UNSUPPORTED_DATA, TEXT_FRAMES_REFUSED)
    invalid = status.WS_1007_INVALID_FRAME_PAYLOAD_DATA
    unknown = sorted(set(message) - {"type", "keyterms"})
    if unknown:
        raise ProtocolError(
            invalid, f"config message: unknown field {', '.join(map(repr, unknown))}; it takes keyterms"
        )
    terms = message.get("keyterms", [])
    if not isinstance(terms, list):
        raise ProtocolError(invalid, "config message: keyterms must be a list of strings")
    return ConfigMessage(parse_keyterms(terms, "config message", invalid))


@dataclass(frozen=True)
class TimedWord:
    """A word of a transcript for `?words=1`: ms from the utterance's `ts`."""

    word: str
    start_ms: int
    end_ms: int
    probability: float


def encode_transcript(
    *,
    utterance_id: str,
    participant_id: str,
    ts_ms: int,
    text: str,
    kind: TranscriptType,
    variance: float,
    pcm: bytes | None = None,
    words: Sequence[TimedWord] | None = None,
    language: str | None = None,
) -> str:
    """The SPEC §3 result message, exactly these fields in this order; `words` (asked for with
    `?words=1`) and `language` (for a participant whose language is detected) after them."""
    audio = base64.b64encode(pcm_to_wav(pcm)).decode("ascii") if pcm and kind == "final" else ""
    message: dict[str, object] = {
        "id": utterance_id,
        "participant_id": participant_id,
        "ts": ts_ms,
        "text": text,
        "audio": audio,
        "type": kind,
        "variance": round(min(1.0, max(0.0, variance)), 4),
    }
    if words is not None:
        message["words"] = [
            {"word": w.word, "start": w.start_ms, "end": w.end_ms, "probability": round(w.probability, 4)}
            for w in words
        ]
    if language is not None:
        message["language"] = language
    return json.dumps(message, ensure_ascii=False)


LANGUAGE_MISMATCH = "language_mismatch"


def encode_language_warning(participant_id: str, contradiction: Contradiction) -> str:
    """Told once per participant: its declared language is not what the model hears (a warning,
    not an error: nothing was refused, the stream goes on)."""
    return json.dumps(
        {
            "type": "warning",
            "code": LANGUAGE_MISMATCH,
            "participant_id": participant_id,
            "message": contradiction.message,
            "declared": contradiction.declared,
            "detected": contradiction.heard,
            "probability": round(contradiction.probability, 4),
        },
        ensure_ascii=False,
    )


MAX_CLOSE_REASON_BYTES = 123
"""A close frame's payload is at most 125 bytes, 2 of them the code (RFC 6455 §5.5)."""


def fit_close_reason(reason: str) -> str:
    """The reason cut to what a close frame can carry, never splitting a UTF-8 character."""
    return reason.encode("utf-8")[:MAX_CLOSE_REASON_BYTES].decode("utf-8", errors="ignore")


def encode_error(code: int, message: str, participant_id: str | None = None) -> str:
    payload: dict[str, object] = {"type": "error", "code": code, "message": message}
    if participant_id is not None:
        payload["participant_id"] = participant_id
    return json.dumps(payload, ensure_ascii=False)
