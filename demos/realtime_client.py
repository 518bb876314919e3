"""Stream one track through the OpenAI Realtime API's transcription session, with the official
`openai` SDK (a dev dependency), and record every event that comes back. The tests and
`make bench --protocol openai` use it; it is also the shortest example of such a client.

The audio goes as the API defines it (PCM16 at 24 kHz, base64, `PIECE_S` an append), at `speed`
times real time; after the last piece a commit makes the speech still open final, and a
`session.update` that changes nothing follows it: the server answers events in order, so its
`session.updated` says every item of the commit has come back.
"""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass, field
from typing import Any

from ingress.realtime.events import API_RATE
from service.audio import SAMPLE_RATE
from service.resample import Resampler

PIECE_S = 0.1
"""Audio per append, as voice-agent clients send it (20-100 ms)."""
COMPLETED = "conversation.item.input_audio_transcription.completed"
DELTA = "conversation.item.input_audio_transcription.delta"


@dataclass(frozen=True)
class RealtimeEvent:
    arrived_at: float
    """time.monotonic() when it was read."""
    payload: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.payload.get("type"))


@dataclass
class RealtimeResult:
    events: list[RealtimeEvent] = field(default_factory=list)
    started_at: float = 0.0
    sent_at: list[float] = field(default_factory=list)
    """time.monotonic() after each append (`PIECE_S` of audio each), in order."""

    @property
    def last_audio_at(self) -> float:
        """When the last append went out."""
        return self.sent_at[-1] if self.sent_at else self.started_at

    def of_type(self, kind: str) -> list[RealtimeEvent]:
        return [event for event in self.events if event.type == kind]

    def transcript(self) -> str:
        return " ".join(
            str(event.payload.get("transcript", "")).strip() for event in self.of_type(COMPLETED)
        ).strip()

    def errors(self) -> list[dict[str, Any]]:
        return [event.payload["error"] for event in self.of_type("error")]


def to_api_rate(pcm_16k: bytes) -> bytes:
    """The service's 16 kHz PCM as the API's 24 kHz."""
    return Resampler(SAMPLE_RATE, API_RATE).process(pcm_16k)


async def stream_realtime(
    base_url: str,
    pcm_16k: bytes,
    speed: float = 1.0,
    language: str | None = "en",
    token: str = "no-key",
    session_id: str | None = None,
) -> RealtimeResult:
    """`base_url`: the service's http(s) or ws(s) root, e.g. http://127.0.0.1:8000."""
    from openai import AsyncOpenAI

    websocket_base = base_url.replace("http://", "ws://").replace("https://", "wss://").rstrip("/") + "/v1"
    client = AsyncOpenAI(api_key=token, websocket_base_url=websocket_base)
    query = {"intent": "transcription", **({"session_id": session_id} if session_id else {})}
    session = {
        "type": "transcription",
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": API_RATE},
                "transcription": {"model": "whisper-1", "language": language or ""},
            }
        },
    }
    result = RealtimeResult(started_at=time.monotonic())
    async with client.realtime.connect(extra_query=query) as connection:
        done = asyncio.Event()

        async def receive() -> None:
            updates = 0
            async for event in connection:
                payload = event.model_dump(mode="json", exclude_unset=True)
                result.events.append(RealtimeEvent(time.monotonic(), payload))
                if payload.get("type") == "session.updated":
                    updates += 1
                    if updates == 2:  # the marker after the commit
                        done.set()
                        return

        receiver = asyncio.create_task(receive())
        await connection.session.update(session=session)  # type: ignore[arg-type]
        audio = to_api_rate(pcm_16k)
        piece = int(PIECE_S * API_RATE) * 2
        start = time.monotonic()
        for index, offset in enumerate(range(0, len(audio), piece)):
            delay = start + index * PIECE_S / speed - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await connection.input_audio_buffer.append(
                audio=base64.b64encode(audio[offset : offset + piece]).decode()
            )
            result.sent_at.append(time.monotonic())
        await connection.input_audio_buffer.commit()
        await connection.session.update(session=session)  # type: ignore[arg-type]
        await asyncio.wait_for(done.wait(), timeout=120)
        await receiver
    return result
