"""Thin handlers: the meeting websocket, health and readiness checks, and the metrics."""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Coroutine
from typing import Any

from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import JSONResponse, Response
from redis.exceptions import RedisError
from starlette import status
from starlette.types import Message
from starlette.websockets import WebSocketDisconnect, WebSocketState

from ingress.auth import AccessRefused, check_access
from ingress.metrics import CONTENT_TYPE, Metrics
from ingress.protocol import (
    EndOfMeeting,
    ProtocolError,
    SocketOptions,
    encode_error,
    fit_close_reason,
    parse_client_message,
    parse_socket_options,
    parse_text_message,
)
from ingress.resume import ResumeStore
from ingress.services import Services
from ingress.session import MeetingSession, SessionContext, TranscriptEncoder

logger = logging.getLogger(__name__)

router = APIRouter()

END_OF_MEETING_TIMEOUT_S = 120.0
"""How long the end-of-meeting flush may take before the socket is closed regardless."""
READY_TIMEOUT_S = 2.0
"""A readiness probe answers within this even when Redis hangs (a probe that hangs is no answer)."""
SHUTTING_DOWN = "server is shutting down; reconnect to go on"


class NoFrame(enum.Enum):
    IDLE = "idle"
    """No message for WS_IDLE_TIMEOUT_S."""
    STOPPING = "stopping"
    """The server is shutting down (SIGTERM)."""


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up; says nothing about Redis or workers (that is /readyz)."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Ready to transcribe: Redis answers and at least one worker's heartbeat is alive."""
    services: Services = request.app.state.services
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            workers = await services.dispatcher.live_workers()
    except (RedisError, OSError, TimeoutError) as error:
        reason = f"redis unreachable: {error or type(error).__name__}"
        return JSONResponse({"status": "unavailable", "reason": reason}, status.HTTP_503_SERVICE_UNAVAILABLE)
    if workers == 0:
        return JSONResponse(
            {"status": "unavailable", "reason": "no worker alive"}, status.HTTP_503_SERVICE_UNAVAILABLE
        )
    return JSONResponse({"status": "ready", "workers": workers})


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    services: Services = request.app.state.services
    return Response(services.metrics.render(), media_type=CONTENT_TYPE)


class Outbox:
    """Serialises sends from the participants' tasks; a vanished peer makes later sends no-ops."""

    def __init__(self, websocket: WebSocket, meeting_id: str, metrics: Metrics) -> None:
        self._websocket = websocket
        self._meeting_id = meeting_id
        self._metrics = metrics
        self._lock = asyncio.Lock()  # one frame at a time, whichever participant's task sends it
        self.open = True

    async def send_error(self, code: int, message: str, participant_id: str | None = None) -> None:
        """Every error message to a client goes through here, so the errors metric sees them all."""
        self._metrics.errors_sent.labels(code=str(code)).inc()
        await self.send(encode_error(code, message, participant_id))

    async def send(self, text: str) -> bool:
        """Whether the frame went out (False once the peer is gone)."""
        if not self.open:
            return False
        try:
            async with self._lock:
                await self._websocket.send_text(text)
        except (WebSocketDisconnect, RuntimeError):
            self.open = False
            logger.info("meeting %s: peer gone, dropping what is left to send", self._meeting_id)
            return False
        return True


@router.websocket("/streaming-whisper/ws/{meeting_id}")
async def meeting_socket(websocket: WebSocket, meeting_id: str) -> None:
    services: Services = websocket.app.state.services
    await websocket.accept()
    outbox = Outbox(websocket, meeting_id, services.metrics)
    refusal = await admission_refusal(services, websocket, meeting_id)
    if refusal is not None:
        await refuse(websocket, outbox, *refusal)
        return
    try:
        options = parse_socket_options(websocket.query_params)
    except ProtocolError as error:
        logger.warning("meeting %s: connection refused: %s", meeting_id, error.message)
        await refuse(websocket, outbox, error.close_code, error.message)
        return
    session = new_session(services, meeting_id, outbox, options, services.resume)

    async def serve() -> None:
        await session.resume()
        await _serve(websocket, session, outbox, meeting_id, services)

    await hold_socket(websocket, outbox, services, session, f"meeting {meeting_id}", serve())


def new_session(
    services: Services,
    meeting_id: str,
    outbox: Outbox,
    options: SocketOptions,
    resume: ResumeStore | None,
    encoder: TranscriptEncoder | None = None,
) -> MeetingSession:
    """A socket's session on the process's shared services, writing to `outbox`."""
    return MeetingSession(
        SessionContext(
            meeting_id,
            services.settings,
            services.dispatcher,
            services.vad,
            outbox.send,
            outbox.send_error,
            services.metrics,
            options,
            resume,
            encoder,
        )
    )


async def hold_socket(
    websocket: WebSocket,
    outbox: Outbox,
    services: Services,
    session: MeetingSession,
    label: str,
    serve: Coroutine[Any, Any, None],
) -> None:
    """An admitted socket's life, whichever protocol it speaks: counted while open, its one
    catch-all (log with its id, tell the client, close 1011), its session closed however it ends."""
    services.open_connections += 1
    services.metrics.open_websockets.inc()
    logger.info("%s: connected", label)
    try:
        await serve
    except Exception:
        logger.exception("%s: failed", label)
        if websocket.client_state is WebSocketState.CONNECTED:
            await outbox.send_error(status.WS_1011_INTERNAL_ERROR, "internal error; see server logs")
            await websocket.close(status.WS_1011_INTERNAL_ERROR, "internal error")
    finally:
        services.open_connections -= 1
        services.metrics.open_websockets.dec()
        await session.close()
        logger.info("%s: closed", label)


async def admission_refusal(
    services: Services, websocket: WebSocket, meeting_id: str
) -> tuple[int, str] | None:
    """Why this socket may not open now (close code, reason), whichever protocol it speaks: the
    server is stopping, the token is refused, the connection limit is reached or the workers are
    saturated. None: it may."""
    if services.stopping.is_set():
        return status.WS_1001_GOING_AWAY, SHUTTING_DOWN
    try:
        await check_access(
            services.settings, services.keys, meeting_id, websocket.headers, websocket.query_params
        )
    except AccessRefused as refusal:
        logger.warning("meeting %s: connection refused: %s", meeting_id, refusal.reason)
        return refusal.close_code, refusal.reason
    if services.open_connections >= services.settings.whisper_max_connections:
        reason = "server is at its connection limit (WHISPER_MAX_CONNECTIONS); try again later"
        return status.WS_1013_TRY_AGAIN_LATER, reason
    now = time.monotonic()
    if services.dispatcher.load.saturated(now):
        load = services.dispatcher.load.describe(now)
        reason = f"the transcription workers are saturated ({load}); try again later"
        logger.warning("meeting %s: connection refused: %s", meeting_id, reason)
        return status.WS_1013_TRY_AGAIN_LATER, reason
    return None


async def refuse(websocket: WebSocket, outbox: Outbox, code: int, reason: str) -> None:
    """The whole reason as an error message, then a close carrying as much of it as fits."""
    await outbox.send_error(code, reason)
    if outbox.open:
        await websocket.close(code, fit_close_reason(reason))


async def _serve(
    websocket: WebSocket, session: MeetingSession, outbox: Outbox, meeting_id: str, services: Services
) -> None:
    settings = services.settings
    stopping = asyncio.ensure_future(services.stopping.wait())
    try:
        while True:
            frame = await next_frame(websocket, stopping, settings.ws_idle_timeout_s)
            if frame is NoFrame.IDLE:
                logger.info(
                    "meeting %s: idle for %.0f s, flushing %d",
                    meeting_id,
                    settings.ws_idle_timeout_s,
                    session.participant_count,
                )
                reason = f"no message for {settings.ws_idle_timeout_s:g} s (WS_IDLE_TIMEOUT_S); closing"
                await go_away(websocket, session, outbox, reason, END_OF_MEETING_TIMEOUT_S)
                return
            if frame is NoFrame.STOPPING:
                logger.info("meeting %s: shutting down, flushing %d", meeting_id, session.participant_count)
                await go_away(websocket, session, outbox, SHUTTING_DOWN, settings.shutdown_flush_timeout_s)
                return
            if not await _handle(websocket, session, outbox, meeting_id, frame):
                return
    finally:
        stopping.cancel()


async def next_frame(
    websocket: WebSocket, stopping: asyncio.Future[Any], idle_timeout_s: float
) -> Message | NoFrame:
    """The client's next frame, unless the server starts shutting down or `idle_timeout_s` passes first."""
    receiving = asyncio.ensure_future(websocket.receive())
    either: set[asyncio.Future[Any]] = {receiving, stopping}
    try:
        await asyncio.wait(either, timeout=idle_timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        receiving.cancel()  # nothing when it is done; a frame not yet taken stays queued
    if receiving.done() and not receiving.cancelled():
        return receiving.result()
    return NoFrame.STOPPING if stopping.done() else NoFrame.IDLE


async def _handle(
    websocket: WebSocket, session: MeetingSession, outbox: Outbox, meeting_id: str, frame: Message
) -> bool:
    """Act on one frame; False once the socket is done with."""
    if frame["type"] == "websocket.disconnect":
        # The code says why (1009: the websocket layer refused a frame over WS_MAX_SIZE_BYTES); the
        # reason may be the peer's own text, hence %r.
        logger.info("meeting %s: socket closed (%s %r)", meeting_id, frame.get("code"), frame.get("reason"))
        return False
    data = frame.get("bytes")
    if data is None:
        try:
            config = parse_text_message(frame.get("text") or "")
        except ProtocolError as error:
            await outbox.send_error(error.close_code, error.message)
            return True
        logger.info("meeting %s: keyterms set (%d)", meeting_id, len(config.keyterms))
        session.keyterms = config.keyterms
        return True
    try:
        message = parse_client_message(data)
    except ProtocolError as error:
        logger.info("meeting %s: rejected a message: %s", meeting_id, error.message)
        await outbox.send_error(error.close_code, error.message, error.participant_id)
        return True
    if isinstance(message, EndOfMeeting):
        logger.info("meeting %s: end of meeting, flushing %d", meeting_id, session.participant_count)
        await session.finish(END_OF_MEETING_TIMEOUT_S)
        await websocket.close(status.WS_1000_NORMAL_CLOSURE)
        return False
    await session.add_audio(message)
    return True


async def go_away(
    websocket: WebSocket, session: MeetingSession, outbox: Outbox, reason: str, flush_timeout_s: float
) -> None:
    """Pending speech goes out as finals (as at the end marker), then the client hears why, and the
    socket closes with 1001 (going away: the client may reconnect, here or to another replica)."""
    await session.finish(flush_timeout_s)
    await outbox.send_error(status.WS_1001_GOING_AWAY, reason)
    if outbox.open:
        await websocket.close(status.WS_1001_GOING_AWAY, fit_close_reason(reason))
