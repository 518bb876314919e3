"""Ending or dropping one participant of a session (what a Realtime commit and clear do): its
pending speech goes to the workers and out as finals, or, when they do not answer in time, the
client hears what was lost; a dropped participant's audio is let go without a word."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest

from ingress.metrics import Metrics
from ingress.protocol import AudioMessage, SocketOptions
from ingress.session import MeetingSession, SessionContext
from ingress.vad import SileroVad
from service.pcm_files import read_pcm
from service.settings import Settings

pytestmark = pytest.mark.unit


class HangingDispatcher:
    """Workers that never answer."""

    def __init__(self) -> None:
        self.windows = 0

    async def transcribe(self, *args: Any, **kwargs: Any) -> Any:
        self.windows += 1
        await asyncio.sleep(3600)

    def forget(self, keys: list[str]) -> None:
        pass


class Client:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.errors: list[tuple[int, str, str | None]] = []

    async def send(self, text: str) -> bool:
        self.sent.append(text)
        return True

    async def send_error(self, code: int, message: str, participant_id: str | None) -> None:
        self.errors.append((code, message, participant_id))


def session(client: Client, dispatcher: HangingDispatcher) -> MeetingSession:
    return MeetingSession(
        SessionContext(
            meeting_id="m",
            settings=Settings(bypass_authorization=True),
            dispatcher=cast(Any, dispatcher),
            vad=SileroVad(),
            send=client.send,
            send_error=client.send_error,
            metrics=Metrics.create(),
            options=SocketOptions(),
            resume=None,
        )
    )


def test_an_ended_participant_whose_speech_is_not_transcribed_in_time_is_told_so(
    corpus_audio: Callable[[str], Path],
) -> None:
    speech = read_pcm(corpus_audio("jfk_ask_not"))[: 3 * 32000]

    async def run() -> tuple[Client, HangingDispatcher, bool, bool, int]:
        client, dispatcher = Client(), HangingDispatcher()
        meeting = session(client, dispatcher)
        await meeting.add_audio(AudioMessage("input", "en", speech))
        ended = await meeting.finish_participant("input", timeout_s=0.5)
        unknown = await meeting.finish_participant("nobody", timeout_s=0.5)
        return client, dispatcher, ended, unknown, meeting.participant_count

    client, dispatcher, ended, unknown, left = asyncio.run(run())

    assert ended and not unknown and left == 0
    assert dispatcher.windows >= 1
    assert client.errors == [(1011, "speech not yet transcribed after 0.5 s is lost", "input")]
    assert client.sent == []


def test_a_dropped_participant_goes_without_a_word_and_the_next_audio_starts_afresh(
    corpus_audio: Callable[[str], Path],
) -> None:
    speech = read_pcm(corpus_audio("jfk_ask_not"))[: 3 * 32000]

    async def run() -> tuple[Client, int, int]:
        client, dispatcher = Client(), HangingDispatcher()
        meeting = session(client, dispatcher)
        await meeting.add_audio(AudioMessage("input", "en", speech))
        await meeting.drop_participant("input")
        await meeting.drop_participant("input")  # already gone: nothing happens
        dropped = meeting.participant_count
        await meeting.add_audio(AudioMessage("input", "en", speech))
        again = meeting.participant_count
        await meeting.close()
        return client, dropped, again

    client, dropped, again = asyncio.run(run())

    assert (dropped, again) == (0, 1)
    assert client.errors == [] and client.sent == []
