"""Stream the tracks of one meeting to the server over one websocket and record what comes back.

The pure part (`meeting_url`, `chunk_pcm`, `send_schedule`) says what is sent and when; the
`stream_meeting` coroutine does the I/O. The CLI, the tests and the benchmark all use it.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from ingress.protocol import END_OF_MEETING, build_header
from service.audio import SAMPLE_RATE, SAMPLE_WIDTH_BYTES

DEFAULT_CHUNK_SAMPLES = 16_384
"""What the browser client sends: 1.024 s per message."""
MEETING_PATH = "/streaming-whisper/ws"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""Finals may carry their audio as base64 WAV (WHISPER_RETURN_TRANSCRIBED_AUDIO): allow long ones."""

Track = tuple[str, bytes]
"""(participant id, PCM s16le mono 16 kHz bytes)."""


@dataclass(frozen=True)
class ScheduledMessage:
    """One binary message to send, `offset_s` seconds after the connection opened."""

    offset_s: float
    participant: str
    chunk_index: int
    message: bytes


@dataclass(frozen=True)
class ReceivedMessage:
    arrived_at: float
    """time.monotonic() when the frame was read."""
    raw: str
    payload: dict[str, Any] | None
    """The decoded JSON object; None when the frame was not a JSON object (a server bug)."""

    @property
    def type(self) -> str | None:
        return None if self.payload is None else self.payload.get("type")

    @property
    def participant(self) -> str | None:
        return None if self.payload is None else self.payload.get("participant_id")


@dataclass
class MeetingResult:
    url: str
    started_at: float
    """time.monotonic() when the websocket opened; send offsets count from here."""
    started_at_wall: float
    """time.time() at the same moment, to relate the server's `ts` (epoch ms) to the meeting."""
    messages: list[ReceivedMessage] = field(default_factory=list)
    sent_at: dict[str, list[float]] = field(default_factory=dict)
    """Per participant, time.monotonic() after each of its chunks was sent, in chunk order."""
    end_sent_at: float | None = None
    """When the end-of-meeting byte was sent; None if the server closed before that."""
    close_code: int | None = None
    close_reason: str = ""

    @property
    def closed_normally(self) -> bool:
        return self.close_code == CloseCode.NORMAL_CLOSURE

    def of_type(self, kind: str, participant: str | None = None) -> list[dict[str, Any]]:
        """Payloads of one `type`, in arrival order, optionally for one participant only."""
        return [
            message.payload
            for message in self.messages
            if message.payload is not None
            and message.type == kind
            and (participant is None or message.participant == participant)
        ]

    def finals(self, participant: str) -> list[dict[str, Any]]:
        return self.of_type("final", participant)

    def interims(self, participant: str) -> list[dict[str, Any]]:
        return self.of_type("interim", participant)

    def errors(self) -> list[dict[str, Any]]:
        return self.of_type("error")

    def transcript(self, participant: str) -> str:
        """The participant's finals in order, joined by single spaces."""
        texts = (str(final.get("text", "")).strip() for final in self.finals(participant))
        return " ".join(text for text in texts if text)


MessageCallback = Callable[[ReceivedMessage], None]


def meeting_url(url: str, meeting_id: str | None = None) -> str:
    """`url` when it already names a meeting, else `url` + `/streaming-whisper/ws/<meeting id>`.

    `meeting_id` defaults to a random one. The query (`?auth_token=...`) is kept.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise ValueError(f"URL must start with ws:// or wss://, got {url!r}")
    if not parts.netloc:
        raise ValueError(f"URL names no host: {url!r}")
    path = parts.path.rstrip("/")
    _, found, existing_id = path.rpartition(MEETING_PATH + "/")
    if found and existing_id and "/" not in existing_id:
        return url
    if not path.endswith(MEETING_PATH):
        path += MEETING_PATH
    path += "/" + (meeting_id or random_meeting_id())
    return urlunsplit(parts._replace(path=path))


def with_query(url: str, **parameters: str) -> str:
    """`url` with these query parameters set (an opt-in extra such as `words=1`), the others kept."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True)) | parameters
    return urlunsplit(parts._replace(query=urlencode(query)))


def random_meeting_id() -> str:
    return f"demo-{uuid.uuid4().hex[:12]}"


def chunk_pcm(pcm: bytes, chunk_samples: int = DEFAULT_CHUNK_SAMPLES) -> list[bytes]:
    """Split PCM into chunks of `chunk_samples` samples; the last one may be shorter."""
    if chunk_samples <= 0:
        raise ValueError(f"chunk_samples must be positive, got {chunk_samples}")
    if len(pcm) % SAMPLE_WIDTH_BYTES:
        raise ValueError(f"PCM of {len(pcm)} bytes is not whole 16-bit samples")
    step = chunk_samples * SAMPLE_WIDTH_BYTES
    return [pcm[start : start + step] for start in range(0, len(pcm), step)]


def send_schedule(
    tracks: Sequence[Track],
    *,
    lang: str = "en",
    speed: float | None = 1.0,
    chunk_samples: int = DEFAULT_CHUNK_SAMPLES,
) -> Iterator[ScheduledMessage]:
    """Every audio message of the meeting, in sending order.

    Chunk k of every participant (in track order) is due at k * chunk duration / speed;
    `speed=None` makes every offset 0 (as fast as possible, order kept). Arguments are checked
    here, before anything is sent; messages are built lazily so long files are not copied twice.
    """
    _check_tracks(tracks)
    if speed is not None and not (speed > 0 and math.isfinite(speed)):
        raise ValueError(f"speed must be a positive finite factor or None, got {speed}")
    chunked = [(participant, chunk_pcm(pcm, chunk_samples)) for participant, pcm in tracks]
    headers = {participant: build_header(participant, lang) for participant, _ in tracks}
    chunk_duration_s = chunk_samples / SAMPLE_RATE
    return _scheduled(chunked, headers, 0.0 if speed is None else chunk_duration_s / speed)


def _check_tracks(tracks: Sequence[Track]) -> None:
    if not tracks:
        raise ValueError("a meeting needs at least one track")
    participants = [participant for participant, _ in tracks]
    duplicates = sorted({name for name in participants if participants.count(name) > 1})
    if duplicates:
        raise ValueError(f"participant ids must be unique; repeated: {', '.join(duplicates)}")


def _scheduled(
    chunked: list[tuple[str, list[bytes]]], headers: dict[str, bytes], interval_s: float
) -> Iterator[ScheduledMessage]:
    longest = max(len(chunks) for _, chunks in chunked)
    for index in range(longest):
        for participant, chunks in chunked:
            if index < len(chunks):
                yield ScheduledMessage(
                    offset_s=index * interval_s,
                    participant=participant,
                    chunk_index=index,
                    message=headers[participant] + chunks[index],
                )


async def stream_meeting(
    url: str,
    tracks: Sequence[Track],
    *,
    lang: str = "en",
    token: str | None = None,
    speed: float | None = 1.0,
    chunk_samples: int = DEFAULT_CHUNK_SAMPLES,
    on_message: MessageCallback | None = None,
    prelude: Sequence[bytes | str] = (),
) -> MeetingResult:
    """Send the tracks as one meeting, then the end-of-meeting byte; read until the server closes.

    `prelude` holds raw messages sent before the audio (tests use it for malformed frames; a str
    goes as a text frame, such as a config message).
    `url` must name the meeting (see `meeting_url`). Bad arguments raise ValueError before
    connecting. An abnormal close is recorded in the result, not raised; a refused connection
    raises what `websockets.connect` raises (OSError, InvalidStatus for an HTTP 401/403, ...).
    """
    schedule = send_schedule(tracks, lang=lang, speed=speed, chunk_samples=chunk_samples)
    headers = {"Authorization": f"Bearer {token}"} if token else None
    async with connect(url, additional_headers=headers, max_size=MAX_MESSAGE_BYTES) as websocket:
        result = MeetingResult(
            url=url,
            started_at=time.monotonic(),
            started_at_wall=time.time(),
            sent_at={participant: [] for participant, _ in tracks},
        )
        for message in prelude:
            await websocket.send(message)
        sender = asyncio.create_task(_send_all(websocket, schedule, result))
        try:
            await _receive_all(websocket, result, on_message)
        finally:
            await _stop(sender)
        result.close_code = websocket.close_code
        result.close_reason = websocket.close_reason or ""
    return result


async def _send_all(
    websocket: ClientConnection, schedule: Iterator[ScheduledMessage], result: MeetingResult
) -> None:
    try:
        for scheduled in schedule:
            delay_s = result.started_at + scheduled.offset_s - time.monotonic()
            # sleep(0) when as fast as possible still lets the receiver print what arrives.
            await asyncio.sleep(max(0.0, delay_s))
            await websocket.send(scheduled.message)
            result.sent_at[scheduled.participant].append(time.monotonic())
        await websocket.send(END_OF_MEETING)
        result.end_sent_at = time.monotonic()
    except ConnectionClosed:
        # The server closed first (refused token, bad input, overload): the receiver records why.
        return


async def _receive_all(
    websocket: ClientConnection, result: MeetingResult, on_message: MessageCallback | None
) -> None:
    try:
        async for frame in websocket:
            message = _decode(frame)
            result.messages.append(message)
            if on_message is not None:
                on_message(message)
    except ConnectionClosed:
        # An abnormal close is data: its code and reason end up in the result.
        return


def _decode(frame: str | bytes) -> ReceivedMessage:
    arrived_at = time.monotonic()
    raw = frame if isinstance(frame, str) else frame.decode("utf-8", errors="replace")
    try:
        payload = json.loads(raw)
    except json.JSONDecodeError:
        payload = None
    return ReceivedMessage(
        arrived_at=arrived_at, raw=raw, payload=payload if isinstance(payload, dict) else None
    )


async def _stop(sender: asyncio.Task[None]) -> None:
    """Cancel the sender if it is still going; re-raise anything it failed with."""
    if not sender.done():
        sender.cancel()
        await asyncio.wait([sender])
    if not sender.cancelled():
        sender.result()
