"""Thin handlers: the meeting websocket and the health check."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, WebSocket
from starlette import status
from starlette.websockets import WebSocketDisconnect, WebSocketState

from ingress.auth import AccessRefused, check_access
from ingress.protocol import (
    EndOfMeeting,
    ProtocolError,
    encode_error,
    fit_close_reason,
    parse_client_message,
)
from ingress.services import Services
from ingress.session import MeetingSession, SessionContext

logger = logging.getLogger(__name__)

router = APIRouter()

END_OF_MEETING_TIMEOUT_S = 120.0
"""How long the end-of-meeting flush may take before the socket is closed regardless."""


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


class Outbox:
    """Serialises sends from the participants' tasks; a vanished peer makes later sends no-ops."""

    def __init__(self, websocket: WebSocket, meeting_id: str) -> None:
        self._websocket = websocket
        self._meeting_id = meeting_id
        self.open = True

    async def send(self, text: str) -> None:
        if not self.open:
            return
        try:
            await self._websocket.send_text(text)
        except (WebSocketDisconnect, RuntimeError):
            self.open = False
            logger.info("meeting %s: peer gone, dropping what is left to send", self._meeting_id)


@router.websocket("/streaming-whisper/ws/{meeting_id}")
async def meeting_socket(websocket: WebSocket, meeting_id: str) -> None:
    services: Services = websocket.app.state.services
    await websocket.accept()
    try:
        await check_access(
            services.settings, services.keys, meeting_id, websocket.headers, websocket.query_params
        )
    except AccessRefused as refusal:
        logger.warning("meeting %s: connection refused: %s", meeting_id, refusal.reason)
        await _refuse(websocket, refusal.close_code, refusal.reason)
        return
    if services.open_connections >= services.settings.whisper_max_connections:
        reason = "server is at its connection limit (WHISPER_MAX_CONNECTIONS); try again later"
        await _refuse(websocket, status.WS_1013_TRY_AGAIN_LATER, reason)
        return
    services.open_connections += 1
    outbox = Outbox(websocket, meeting_id)
    session = MeetingSession(
        SessionContext(meeting_id, services.settings, services.dispatcher, services.vad, outbox.send)
    )
    logger.info("meeting %s: connected", meeting_id)
    try:
        await _serve(websocket, session, outbox, meeting_id, services.settings.ws_idle_timeout_s)
    except Exception:
        # The one catch-all of the socket: log with the meeting id, tell the client, close 1011.
        logger.exception("meeting %s: failed", meeting_id)
        if websocket.client_state is WebSocketState.CONNECTED:
            await outbox.send(encode_error(status.WS_1011_INTERNAL_ERROR, "internal error; see server logs"))
            await websocket.close(status.WS_1011_INTERNAL_ERROR, "internal error")
    finally:
        services.open_connections -= 1
        await session.close()
        logger.info("meeting %s: closed", meeting_id)


async def _refuse(websocket: WebSocket, code: int, reason: str) -> None:
    """The whole reason as an error message, then a close carrying as much of it as fits."""
    await websocket.send_text(encode_error(code, reason))
    await websocket.close(code, fit_close_reason(reason))


async def _serve(
    websocket: WebSocket, session: MeetingSession, outbox: Outbox, meeting_id: str, idle_timeout_s: float
) -> None:
    while True:
        try:
            async with asyncio.timeout(idle_timeout_s):
                frame = await websocket.receive()
        except TimeoutError:
            await _close_idle(websocket, session, outbox, meeting_id, idle_timeout_s)
            return
        if frame["type"] == "websocket.disconnect":
            # The code says why (1009: the websocket layer refused a frame over WS_MAX_SIZE_BYTES); the
            # reason may be the peer's own text, hence %r.
            logger.info(
                "meeting %s: socket closed (%s %r)", meeting_id, frame.get("code"), frame.get("reason")
            )
            return
        data = frame.get("bytes")
        if data is None:
            await outbox.send(
                encode_error(
                    status.WS_1003_UNSUPPORTED_DATA,
                    "text frames are not accepted: send binary audio messages (SPEC §2)",
                )
            )
            continue
        try:
            message = parse_client_message(data)
        except ProtocolError as error:
            logger.info("meeting %s: rejected a message: %s", meeting_id, error.message)
            await outbox.send(encode_error(error.close_code, error.message, error.participant_id))
            continue
        if isinstance(message, EndOfMeeting):
            logger.info("meeting %s: end of meeting, flushing %d", meeting_id, session.participant_count)
            await session.finish(END_OF_MEETING_TIMEOUT_S)
            await websocket.close(status.WS_1000_NORMAL_CLOSURE)
            return
        await session.add_audio(message)


async def _close_idle(
    websocket: WebSocket, session: MeetingSession, outbox: Outbox, meeting_id: str, idle_timeout_s: float
) -> None:
    """No message for `idle_timeout_s`: pending speech goes out as finals (as at the end marker),
    then the client hears why, and the socket closes with 1001 (going away: the client may reconnect)."""
    logger.info(
        "meeting %s: idle for %.0f s, flushing %d", meeting_id, idle_timeout_s, session.participant_count
    )
    await session.finish(END_OF_MEETING_TIMEOUT_S)
    reason = f"no message for {idle_timeout_s:g} s (WS_IDLE_TIMEOUT_S); closing"
    await outbox.send(encode_error(status.WS_1001_GOING_AWAY, reason))
    if outbox.open:
        await websocket.close(status.WS_1001_GOING_AWAY, fit_close_reason(reason))
