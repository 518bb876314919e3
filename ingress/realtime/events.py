"""The OpenAI Realtime API's transcription events, as this service reads and writes them (pure: no
I/O). Client events are parsed into the commands below or refused with a `RealtimeError`, which
the socket sends as the API's `error` event and goes on; server events are written by `event()`.

Both spellings of the session are read: the API's current one (`session.update` with
`{"type": "transcription", "audio": {"input": {...}}}`) and the beta one the older SDKs send
(`transcription_session.update` with `input_audio_format` / `input_audio_transcription`); each is
answered in its own (`session.updated` / `transcription_session.updated`).
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ingress.protocol import ProtocolError, parse_language
from service.languages import AUTO

API_RATE = 24_000
"""The API's PCM16 rate; 16 kHz (the service's own) when the session's format says so."""
RATES = (24_000, 16_000)
DEFAULT_MODEL = "whisper-1"
"""What a session reports when the client names no model (any name is accepted and echoed: the
model the workers loaded serves every session)."""
DEFAULT_TURN_DETECTION: Mapping[str, Any] = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
}
TURN_DETECTION_TYPES = ("server_vad", "semantic_vad")
CLIENT_EVENTS = (
    "session.update",
    "transcription_session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
)


class RealtimeError(Exception):
    """A client event refused: the API's `error` event says why; the session goes on."""

    def __init__(
        self,
        message: str,
        code: str = "invalid_value",
        param: str | None = None,
        event_id: str | None = None,
        kind: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.event_id = event_id
        self.kind = kind


@dataclass(frozen=True)
class SessionConfig:
    """What the client set, echoed back in every session event."""

    rate: int = API_RATE
    language: str = AUTO
    """`auto` when the client names none: the worker hears which."""
    model: str = DEFAULT_MODEL
    prompt: str = ""
    turn_detection: Mapping[str, Any] | None = field(default_factory=lambda: dict(DEFAULT_TURN_DETECTION))
    """Echoed; the service's own VAD and streaming policy end items either way (README)."""
    noise_reduction: Mapping[str, Any] | None = None
    include: tuple[str, ...] = ()


@dataclass(frozen=True)
class SessionUpdate:
    config: SessionConfig
    beta: bool
    """Sent as `transcription_session.update`: answered in the beta shape."""
    event_id: str | None


@dataclass(frozen=True)
class AppendAudio:
    pcm: bytes
    """PCM s16le at the session's rate."""
    event_id: str | None


@dataclass(frozen=True)
class CommitAudio:
    event_id: str | None


@dataclass(frozen=True)
class ClearAudio:
    event_id: str | None


ClientEvent = SessionUpdate | AppendAudio | CommitAudio | ClearAudio


def new_id(prefix: str) -> str:
    """An id of the API's form: a prefix, an underscore, random letters and digits (32 at most)."""
    return f"{prefix}_{secrets.token_hex(12)}"


def parse_client_event(text: str, config: SessionConfig) -> ClientEvent:
    """One text frame; `config`: the session as it is (an update changes only what it names)."""
    try:
        payload = json.loads(text)
    except ValueError as error:
        raise RealtimeError(f"the event is not JSON: {error}", code="invalid_json") from None
    if not isinstance(payload, dict):
        raise RealtimeError("an event is a JSON object", code="invalid_json")
    event_id = payload.get("event_id")
    if event_id is not None and not isinstance(event_id, str):
        raise RealtimeError("event_id must be a string", param="event_id")
    kind = payload.get("type")
    if kind is None:
        raise RealtimeError(
            "the event has no type", code="missing_required_parameter", param="type", event_id=event_id
        )
    if kind not in CLIENT_EVENTS:
        supported = ", ".join(repr(name) for name in CLIENT_EVENTS)
        raise RealtimeError(
            f"Invalid value: {str(kind)[:64]!r}. A transcription session supports {supported}.",
            param="type",
            event_id=event_id,
        )
    try:
        if kind == "input_audio_buffer.append":
            return AppendAudio(_audio(payload.get("audio")), event_id)
        if kind == "input_audio_buffer.commit":
            return CommitAudio(event_id)
        if kind == "input_audio_buffer.clear":
            return ClearAudio(event_id)
        session = payload.get("session")
        if not isinstance(session, dict):
            raise RealtimeError(
                "session must be an object", code="missing_required_parameter", param="session"
            )
        beta = kind == "transcription_session.update"
        updated = _beta_session(session, config) if beta else _session(session, config)
        return SessionUpdate(updated, beta, event_id)
    except RealtimeError as error:
        error.event_id = event_id
        raise


def _audio(value: object) -> bytes:
    if not isinstance(value, str):
        raise RealtimeError(
            "audio must be base64-encoded PCM16", code="missing_required_parameter", param="audio"
        )
    try:
        pcm = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise RealtimeError("audio is not valid base64", param="audio") from None
    if len(pcm) % 2:
        raise RealtimeError(f"audio is PCM16: an even number of bytes, not {len(pcm)}", param="audio")
    return pcm


def _session(session: Mapping[str, Any], config: SessionConfig) -> SessionConfig:
    """The current shape: {"type": "transcription", "audio": {"input": {...}}, "include": [...]}."""
    kind = session.get("type", "transcription")
    if kind != "transcription":
        raise RealtimeError(
            f"this endpoint serves transcription sessions (type 'transcription'), not {str(kind)[:32]!r}",
            param="session.type",
        )
    audio = _object(session, "audio", "session")
    given = _object(audio, "input", "session.audio") if audio is not None else None
    if given is not None:
        if "format" in given:
            config = replace(config, rate=_format(given["format"], "session.audio.input.format"))
        if "transcription" in given:
            config = _transcription(given["transcription"], config, "session.audio.input.transcription")
        if "turn_detection" in given:
            config = replace(
                config, turn_detection=_turn_detection(given["turn_detection"], "session.audio.input")
            )
        if "noise_reduction" in given:
            config = replace(config, noise_reduction=_object(given, "noise_reduction", "session.audio.input"))
    return _include(session, config)


def _beta_session(session: Mapping[str, Any], config: SessionConfig) -> SessionConfig:
    """The beta shape: {"input_audio_format": "pcm16", "input_audio_transcription": {...}, ...}."""
    if "input_audio_format" in session:
        value = session["input_audio_format"]
        if value != "pcm16":
            raise RealtimeError(
                f"unsupported input_audio_format {str(value)[:32]!r}: this service takes 'pcm16'",
                param="session.input_audio_format",
            )
        config = replace(config, rate=API_RATE)
    if "input_audio_transcription" in session:
        config = _transcription(
            session["input_audio_transcription"], config, "session.input_audio_transcription"
        )
    if "turn_detection" in session:
        config = replace(config, turn_detection=_turn_detection(session["turn_detection"], "session"))
    if "input_audio_noise_reduction" in session:
        config = replace(config, noise_reduction=_object(session, "input_audio_noise_reduction", "session"))
    return _include(session, config)


def _format(value: object, where: str) -> int:
    if not isinstance(value, dict):
        raise RealtimeError(f"{where} must be an object", param=where)
    kind = value.get("type", "audio/pcm")
    if kind != "audio/pcm":
        raise RealtimeError(
            f"unsupported audio format {str(kind)[:32]!r}: this service takes 'audio/pcm' (PCM16)",
            param=f"{where}.type",
        )
    rate = value.get("rate", API_RATE)
    if rate not in RATES:
        raise RealtimeError(
            f"unsupported rate {str(rate)[:16]}: PCM16 at 24000 Hz (or 16000 Hz)", param=f"{where}.rate"
        )
    return int(rate)


def _transcription(value: object, config: SessionConfig, where: str) -> SessionConfig:
    if value is None:
        return replace(config, language=AUTO, model=DEFAULT_MODEL, prompt="")
    if not isinstance(value, dict):
        raise RealtimeError(f"{where} must be an object or null", param=where)
    language = value.get("language", None)
    if language in (None, ""):
        parsed = AUTO
    elif isinstance(language, str):
        try:
            parsed = parse_language(language)
        except ProtocolError as error:
            raise RealtimeError(error.message, param=f"{where}.language") from None
    else:
        raise RealtimeError("language must be a string", param=f"{where}.language")
    model = value.get("model", config.model)
    prompt = value.get("prompt", config.prompt)
    for name, given in (("model", model), ("prompt", prompt)):
        if not isinstance(given, str):
            raise RealtimeError(f"{name} must be a string", param=f"{where}.{name}")
    return replace(config, language=parsed, model=model or DEFAULT_MODEL, prompt=prompt)


def _turn_detection(value: object, where: str) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise RealtimeError("turn_detection must be an object or null", param=f"{where}.turn_detection")
    kind = value.get("type", "server_vad")
    if kind not in TURN_DETECTION_TYPES:
        raise RealtimeError(
            f"unsupported turn_detection type {str(kind)[:32]!r}: 'server_vad' or 'semantic_vad'",
            param=f"{where}.turn_detection.type",
        )
    return {**(DEFAULT_TURN_DETECTION if kind == "server_vad" else {}), **value, "type": kind}


def _include(session: Mapping[str, Any], config: SessionConfig) -> SessionConfig:
    if "include" not in session:
        return config
    include = session["include"]
    if include is None:
        return replace(config, include=())
    if not isinstance(include, list) or not all(isinstance(item, str) for item in include):
        raise RealtimeError("include must be a list of strings", param="session.include")
    return replace(config, include=tuple(include))


def _object(parent: Mapping[str, Any], name: str, where: str) -> Mapping[str, Any] | None:
    value = parent.get(name)
    if value is not None and not isinstance(value, dict):
        raise RealtimeError(f"{where}.{name} must be an object", param=f"{where}.{name}")
    return value


# ---- server events ---------------------------------------------------------------------------


def event(kind: str, **fields: object) -> str:
    return json.dumps({"type": kind, "event_id": new_id("event"), **fields})


def error_event(error: RealtimeError) -> str:
    return event(
        "error",
        error={
            "type": error.kind,
            "code": error.code,
            "message": error.message,
            "param": error.param,
            "event_id": error.event_id,
        },
    )


def session_event(kind: str, session_id: str, config: SessionConfig, beta: bool) -> str:
    """`session.created` / `session.updated` (or the beta `transcription_session.updated`)."""
    transcription = {
        "model": config.model,
        "language": "" if config.language == AUTO else config.language,
        "prompt": config.prompt,
    }
    if beta:
        session: dict[str, object] = {
            "id": session_id,
            "object": "realtime.transcription_session",
            "input_audio_format": "pcm16",
            "input_audio_transcription": transcription,
            "turn_detection": config.turn_detection,
            "input_audio_noise_reduction": config.noise_reduction,
            "include": list(config.include),
        }
    else:
        session = {
            "type": "transcription",
            "id": session_id,
            "object": "realtime.transcription_session",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": config.rate},
                    "transcription": transcription,
                    "turn_detection": config.turn_detection,
                    "noise_reduction": config.noise_reduction,
                }
            },
            "include": list(config.include),
        }
    return event(kind, session=session)
