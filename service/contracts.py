"""Messages that cross the process boundary between the ingress and the workers (JSON, never pickle).

The audio itself never travels inside these messages: the ingress stores stretches of each
participant's PCM under Redis keys (`names.audio_key`, `ingress/audio_ledger.py`), and a request
names its window's audio as pieces of them.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ErrorCode(StrEnum):
    """Why a window got no words: the one spelling of every failure that crosses a process
    boundary (a worker's `WindowResult`, the ingress's `TranscriptionError`, the worker's metrics).
    A code this side does not know (a newer worker's, mid-upgrade) makes the result unreadable: it
    is logged, and its window times out and is sent again."""

    UNSUPPORTED_LANGUAGE = "unsupported_language"
    """The loaded model cannot serve the window's language (an English-only model)."""
    TRANSCRIPTION_FAILED = "transcription_failed"
    """The model or the worker's Redis failed on it."""
    AUDIO_EXPIRED = "audio_expired"
    """Its audio was gone from Redis when a worker took it."""
    WINDOW_ABANDONED = "window_abandoned"
    """No ingress awaited it any more; not transcribed."""
    TIMEOUT = "timeout"
    """No worker answered within TRANSCRIPTION_TIMEOUT_S."""
    BROKER_UNAVAILABLE = "broker_unavailable"
    """Redis (or the Celery publish to it) did not answer."""
    WINDOW_LOST = "window_lost"
    """Redis lost the window's audio or mark while it waited (restarted, failed over)."""


def prefix_head(prefix: str, tail: str) -> str:
    """The prefix without its tail; raises ValueError when the tail does not end the prefix."""
    prefix, tail = prefix.strip(), tail.strip()
    if not prefix.endswith(tail):
        raise ValueError(f"the prefix tail {tail!r} does not end the prefix {prefix!r}")
    return prefix[: len(prefix) - len(tail)].strip()


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AudioPiece(_Message):
    """Bytes [start, end) of the PCM (s16le mono 16 kHz) stored under a Redis key."""

    key: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)

    @model_validator(mode="after")
    def _whole_samples(self) -> AudioPiece:
        if self.end <= self.start or self.start % 2 or self.end % 2:
            raise ValueError(f"audio piece [{self.start}, {self.end}) is not a range of whole samples")
        return self


class DecoderHints(_Message):
    """What the decoder is told about a window besides its audio and language: the one declaration
    of these fields, from the streaming policy's plan (`streaming.window.WindowPlan`) through the
    request to the model (`models.transcriber.Window`). A field added here, filled by the policy
    and read by the model, touches those three files."""

    prompt: str = ""
    """Text of the participant's last finals, to condition the decoder."""
    prefix: str = ""
    """Text of the committed audio the window starts with: the decoder continues after it instead
    of transcribing that audio afresh, and its words are not returned."""
    prefix_tail: str = ""
    """The prefix's last words, whose audio starts `prefix_tail_s` into the window: the decoder
    starts there with them, the rest of the prefix its previous text, read in one pass. Empty:
    all of the prefix is forced after <|notimestamps|>, each of its tokens a decoder step."""
    prefix_tail_s: float = Field(default=0.0, ge=0.0)
    keyterms: tuple[str, ...] = ()
    """Words the client expects (names, jargon: `?keyterms=`): the decoder reads them before the
    previous text, as faster-whisper's `hotwords`, so it spells them as given when it hears them."""

    @model_validator(mode="after")
    def _tail_ends_prefix(self) -> DecoderHints:
        prefix_head(self.prefix, self.prefix_tail)
        return self


NO_HINTS = DecoderHints()


class WindowRequest(DecoderHints):
    """Transcribe one participant's window of audio: its hints (flat in the JSON), where its audio
    is, its language and where the result goes."""

    request_id: str
    audio: list[AudioPiece] = Field(min_length=1)
    """The window's audio: these pieces, one after another."""
    reply_to: str
    """Redis stream the result is appended to (one per ingress process)."""
    language: str
    """A language code, or `auto`: the worker detects the window's language and decodes in it."""
    detect_language: bool = False
    """Detect the window's language (and report it) even though `language` is a code: the ingress
    checks a declared language against the speech."""


class WordTiming(_Message):
    """One recognised word; times in seconds from the start of the window."""

    text: str
    start: float
    end: float
    probability: float


class WindowResult(_Message):
    request_id: str
    words: list[WordTiming] = []
    compute_s: float = 0.0
    language: str | None = None
    """The language the window's speech was heard as, when detection was asked for."""
    language_probability: float | None = Field(default=None, ge=0.0, le=1.0)
    """How sure the detection was; None when the model is English-only (it hears nothing else)."""
    error_code: ErrorCode | None = None
    """Set when the worker could not transcribe the window; `error_message` says why."""
    error_message: str | None = None
