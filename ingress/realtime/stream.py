"""One Realtime API socket's input audio buffer: its events applied to a `MeetingSession` of one
participant (the API's model: one speaker a socket).

Appended audio is converted to 16 kHz and handed on in pieces of at least `PIECE_S` (clients
append every 20-100 ms; the VAD runs per piece). A commit ends the participant's stream, so its
pending speech becomes final items at once, and the next audio starts a new one; a clear drops
what was not yet transcribed. Either way the next stream's times count on from the session's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ingress.protocol import AudioMessage
from ingress.realtime.events import (
    AppendAudio,
    ClearAudio,
    ClientEvent,
    CommitAudio,
    RealtimeError,
    SessionConfig,
    SessionUpdate,
    event,
    session_event,
)
from ingress.realtime.transcripts import RealtimeTranscripts
from ingress.session import MeetingSession
from service.audio import BYTES_PER_SECOND, SAMPLE_RATE, SAMPLE_WIDTH_BYTES
from service.resample import Resampler

PARTICIPANT = "input"
"""The one participant of a Realtime socket."""
PIECE_S = 0.1
MIN_COMMIT_S = 0.1
"""The API refuses to commit less than 100 ms of audio."""


class InputAudioBuffer:
    def __init__(
        self,
        session_id: str,
        session: MeetingSession,
        transcripts: RealtimeTranscripts,
        send: Callable[[str], Awaitable[bool]],
        flush_timeout_s: float,
    ) -> None:
        self.session_id = session_id
        self.config = SessionConfig()
        self._session = session
        self._transcripts = transcripts
        self._send = send
        self._flush_timeout_s = flush_timeout_s
        self._resampler = Resampler(self.config.rate, SAMPLE_RATE)
        self._piece = bytearray()
        """16 kHz audio not yet handed to the session."""
        self._uncommitted_s = 0.0
        """Audio appended since the last commit or clear."""
        self._handed_s = 0.0
        """Audio handed to the session so far: where the next stream starts."""
        self._completed_before = 0
        """Items completed before the last commit or clear."""

    async def apply(self, client_event: ClientEvent) -> None:
        """Act on one event; raises RealtimeError for what the session cannot do (it goes on)."""
        if isinstance(client_event, AppendAudio):
            await self._append(client_event.pcm)
        elif isinstance(client_event, CommitAudio):
            await self._commit(client_event.event_id)
        elif isinstance(client_event, ClearAudio):
            await self._clear()
        elif isinstance(client_event, SessionUpdate):
            await self._update(client_event)

    async def _append(self, pcm: bytes) -> None:
        self._uncommitted_s += len(pcm) / (SAMPLE_WIDTH_BYTES * self.config.rate)
        self._piece += self._resampler.process(pcm)
        if len(self._piece) >= PIECE_S * BYTES_PER_SECOND:
            await self.hand_on()

    async def hand_on(self) -> None:
        """Whatever audio waits for a whole piece, to the session now."""
        if not self._piece:
            return
        pcm, self._piece = bytes(self._piece), bytearray()
        self._handed_s += len(pcm) / BYTES_PER_SECOND
        await self._session.add_audio(AudioMessage(PARTICIPANT, self.config.language, pcm))

    async def _commit(self, event_id: str | None) -> None:
        if self._uncommitted_s < MIN_COMMIT_S:
            raise RealtimeError(
                "Error committing input audio buffer: buffer too small. Expected at least 100ms of "
                f"audio, but buffer only has {self._uncommitted_s * 1000:.2f}ms of audio.",
                code="input_audio_buffer_commit_empty",
                event_id=event_id,
            )
        await self.hand_on()
        await self._session.finish_participant(PARTICIPANT, self._flush_timeout_s)
        if self._transcripts.completed == self._completed_before:
            # Nothing was heard since the last commit: an empty item all the same, which is what
            # a client awaiting the result of its commit waits for.
            for frame in self._transcripts.empty_item():
                await self._send(frame)
        self._transcripts.offset_s = self._handed_s
        self._uncommitted_s = 0.0
        self._completed_before = self._transcripts.completed

    async def _clear(self) -> None:
        self._piece = bytearray()
        self._uncommitted_s = 0.0
        await self._session.drop_participant(PARTICIPANT)
        self._transcripts.abandon()
        self._transcripts.offset_s = self._handed_s
        self._completed_before = self._transcripts.completed
        await self._send(event("input_audio_buffer.cleared"))

    async def _update(self, update: SessionUpdate) -> None:
        if update.config.rate != self.config.rate:
            await self.hand_on()
            self._resampler = Resampler(update.config.rate, SAMPLE_RATE)
        self.config = update.config
        kind = "transcription_session.updated" if update.beta else "session.updated"
        await self._send(session_event(kind, self.session_id, self.config, update.beta))
