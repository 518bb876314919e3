"""`GET /v1/realtime?intent=transcription`: the OpenAI Realtime API's transcription sessions, so a
client written for that API (the `openai` SDKs, LiveKit agents, Pipecat) works here by changing
only its base URL. Same admission as the seed route (token, limits, draining), same workers.

The session id is the meeting id (for the token's `room` claim): `?session_id=` when the client
names one, else a new `sess_...`.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, WebSocket
from starlette import status

from ingress.protocol import SocketOptions
from ingress.realtime.events import RealtimeError, error_event, new_id, parse_client_event, session_event
from ingress.realtime.stream import InputAudioBuffer
from ingress.realtime.transcripts import RealtimeTranscripts
from ingress.routes import (
    END_OF_MEETING_TIMEOUT_S,
    SHUTTING_DOWN,
    NoFrame,
    Outbox,
    admission_refusal,
    go_away,
    hold_socket,
    new_session,
    next_frame,
    refuse,
)
from ingress.services import Services
from ingress.session import MeetingSession

logger = logging.getLogger(__name__)

router = APIRouter()

MAX_SESSION_ID = 128
ERROR_CODES = {
    status.WS_1001_GOING_AWAY: ("server_error", "going_away"),
    status.WS_1007_INVALID_FRAME_PAYLOAD_DATA: ("invalid_request_error", "invalid_value"),
    status.WS_1008_POLICY_VIOLATION: ("invalid_request_error", "policy_violation"),
    status.WS_1011_INTERNAL_ERROR: ("server_error", "server_error"),
    status.WS_1013_TRY_AGAIN_LATER: ("server_error", "try_again_later"),
}
"""The seed's close codes of what went wrong, as the API's error types and codes."""


class RealtimeOutbox(Outbox):
    """The seed's outbox, its errors written as the API's `error` events."""

    async def send_error(self, code: int, message: str, participant_id: str | None = None) -> None:
        self._metrics.errors_sent.labels(code=str(code)).inc()
        kind, name = ERROR_CODES.get(code, ("server_error", "server_error"))
        await self.send(error_event(RealtimeError(message, code=name, kind=kind)))

    async def send_refusal(self, error: RealtimeError) -> None:
        """A client event refused (the session goes on)."""
        self._metrics.errors_sent.labels(code=str(status.WS_1007_INVALID_FRAME_PAYLOAD_DATA)).inc()
        await self.send(error_event(error))


@router.websocket("/v1/realtime")
async def realtime_socket(websocket: WebSocket) -> None:
    services: Services = websocket.app.state.services
    await websocket.accept()
    session_id = websocket.query_params.get("session_id") or new_id("sess")
    outbox = RealtimeOutbox(websocket, session_id, services.metrics)
    if websocket.query_params.get("intent") != "transcription":
        reason = "this server serves transcription sessions only: connect with ?intent=transcription"
        await refuse(websocket, outbox, status.WS_1008_POLICY_VIOLATION, reason)
        return
    if len(session_id) > MAX_SESSION_ID or not session_id.isprintable():
        reason = f"session_id must be printable, at most {MAX_SESSION_ID} characters"
        await refuse(websocket, outbox, status.WS_1008_POLICY_VIOLATION, reason)
        return
    refusal = await admission_refusal(services, websocket, session_id)
    if refusal is not None:
        await refuse(websocket, outbox, *refusal)
        return
    transcripts = RealtimeTranscripts()
    # A Realtime client starts a new session when it reconnects: nothing is kept to resume.
    session = new_session(services, session_id, outbox, SocketOptions(), resume=None, encoder=transcripts)
    buffer = InputAudioBuffer(session_id, session, transcripts, outbox.send, END_OF_MEETING_TIMEOUT_S)

    async def serve() -> None:
        await outbox.send(session_event("session.created", session_id, buffer.config, beta=False))
        await _serve(websocket, session, buffer, outbox, services)

    await hold_socket(websocket, outbox, services, session, f"realtime session {session_id}", serve())


async def _serve(
    websocket: WebSocket,
    session: MeetingSession,
    buffer: InputAudioBuffer,
    outbox: RealtimeOutbox,
    services: Services,
) -> None:
    settings = services.settings
    stopping = asyncio.ensure_future(services.stopping.wait())
    try:
        while True:
            frame = await next_frame(websocket, stopping, settings.ws_idle_timeout_s)
            if frame is NoFrame.IDLE or frame is NoFrame.STOPPING:
                idle = frame is NoFrame.IDLE
                reason = (
                    f"no event for {settings.ws_idle_timeout_s:g} s (WS_IDLE_TIMEOUT_S); closing"
                    if idle
                    else SHUTTING_DOWN
                )
                logger.info("realtime session %s: %s", buffer.session_id, reason)
                await buffer.hand_on()
                flush_s = END_OF_MEETING_TIMEOUT_S if idle else settings.shutdown_flush_timeout_s
                await go_away(websocket, session, outbox, reason, flush_s)
                return
            if frame["type"] == "websocket.disconnect":
                logger.info(
                    "realtime session %s: socket closed (%s %r)",
                    buffer.session_id,
                    frame.get("code"),
                    frame.get("reason"),
                )
                return
            text = frame.get("text")
            try:
                if text is None:
                    raise RealtimeError(
                        "the Realtime API's events are JSON text frames; this frame was binary",
                        code="invalid_json",
                    )
                await buffer.apply(parse_client_event(text, buffer.config))
            except RealtimeError as error:
                logger.info("realtime session %s: refused an event: %s", buffer.session_id, error.message)
                await outbox.send_refusal(error)
    finally:
        stopping.cancel()
