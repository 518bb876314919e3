"""What a participant hands over for a reconnect (`ingress/session.py`, `ingress/resume.py`): a
final sent after the socket had gone waits in its record and goes out first on the socket that
resumes the stream; records read back from their JSON, and one that cannot be read says why."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError

from ingress import session as session_module
from ingress.metrics import Metrics
from ingress.protocol import AudioMessage, SocketOptions
from ingress.resume import ParticipantRecord, ResumeStore, first_problem
from ingress.session import MeetingSession, Participant, SessionContext
from ingress.vad import SileroVad
from service.settings import Settings
from streaming.utterances import Transcript

pytestmark = pytest.mark.unit

FINAL = Transcript("utt-1", "final", "Ask not.", 1_732_450_000_000, 0.9)
INTERIM = Transcript("utt-2", "interim", "What your", 1_732_450_001_000, 0.8)


class Socket:
    def __init__(self, open_: bool) -> None:
        self.open = open_
        self.sent: list[str] = []

    async def send(self, text: str) -> bool:
        if self.open:
            self.sent.append(text)
        return self.open

    async def send_error(self, code: int, message: str, participant_id: str | None) -> None:
        raise AssertionError(f"no error expected: {code} {message}")


@pytest.fixture(scope="module")
def vad() -> SileroVad:
    return SileroVad()


class IdleDispatcher:
    """No audio is dispatched in these tests; a participant only lets go of what it stored."""

    def forget(self, keys: list[str]) -> None:
        assert keys == []


class BrokenStore:
    """A resume store whose Redis is down, or hangs."""

    def __init__(self, hang: bool = False) -> None:
        self.hang = hang
        self.saved: list[list[ParticipantRecord]] = []

    async def save(self, meeting_id: str, records: list[ParticipantRecord]) -> None:
        self.saved.append(records)
        if self.hang:
            await asyncio.sleep(3600)
        raise RedisConnectionError("Connection refused")

    async def claim(self, meeting_id: str) -> list[ParticipantRecord]:
        raise RedisConnectionError("Connection refused")


def context(socket: Socket, vad: SileroVad, store: BrokenStore | None = None) -> SessionContext:
    return SessionContext(
        meeting_id="m",
        settings=Settings(bypass_authorization=True),
        dispatcher=cast(Any, IdleDispatcher()),
        vad=vad,
        send=socket.send,
        send_error=socket.send_error,
        metrics=Metrics.create(),
        options=SocketOptions(),
        resume=cast(ResumeStore, store),
    )


async def stopped(participant: Participant) -> None:
    participant.task.cancel()
    await asyncio.gather(participant.task, return_exceptions=True)
    assert participant.task.cancelled()  # it waited for audio; it did not crash


def test_a_final_the_gone_socket_missed_goes_out_first_on_the_next(vad: SileroVad) -> None:
    async def run() -> tuple[ParticipantRecord, list[str]]:
        gone = Socket(open_=False)
        first = Participant(context(gone, vad), "jfk", "en", lambda: ())
        await first.emit(FINAL)
        await first.emit(INTERIM)  # the next interim repeats it: not kept
        await stopped(first)
        record = ParticipantRecord.model_validate_json(first.record().model_dump_json())

        socket = Socket(open_=True)
        second = Participant(context(socket, vad), "jfk", "en", lambda: (), record)
        await asyncio.sleep(0.05)  # its task sends what waited, then waits for audio
        await stopped(second)
        assert second.record().undelivered == ()
        return record, socket.sent

    record, sent = asyncio.run(run())

    assert len(record.undelivered) == 1 and '"Ask not."' in record.undelivered[0]
    assert sent == list(record.undelivered)


def test_a_record_that_cannot_be_read_names_what_is_wrong() -> None:
    with pytest.raises(ValidationError) as caught:
        ParticipantRecord.model_validate_json('{"version": 0}')

    assert first_problem(caught.value) == "participant_id: Field required"


@pytest.mark.parametrize("hang", [False, True], ids=["redis-down", "redis-hangs"])
def test_a_socket_whose_streams_cannot_be_kept_still_closes(
    vad: SileroVad, hang: bool, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(session_module, "SAVE_TIMEOUT_S", 0.2)
    store = BrokenStore(hang)

    async def run() -> None:
        meeting = MeetingSession(context(Socket(open_=True), vad, store))
        await meeting.add_audio(AudioMessage("jfk", "en", bytes(32_000)))
        async with asyncio.timeout(5):
            await meeting.close()

    asyncio.run(run())

    assert [[record.participant_id for record in records] for records in store.saved] == [["jfk"]]
    assert "cannot be kept for a reconnect" in caplog.text


def test_a_socket_that_cannot_look_for_a_stream_to_resume_starts_afresh(
    vad: SileroVad, caplog: pytest.LogCaptureFixture
) -> None:
    async def run() -> int:
        meeting = MeetingSession(context(Socket(open_=True), vad, BrokenStore()))
        await meeting.resume()
        return meeting.participant_count

    assert asyncio.run(run()) == 0
    assert "cannot look for a stream to resume" in caplog.text


def test_a_kept_stream_that_does_not_hold_together_starts_afresh(
    vad: SileroVad, caplog: pytest.LogCaptureFixture
) -> None:
    class TornStore(BrokenStore):
        def __init__(self, record: ParticipantRecord) -> None:
            super().__init__()
            self.record = record

        async def claim(self, meeting_id: str) -> list[ParticipantRecord]:
            return [self.record]

    async def run() -> int:
        first = Participant(context(Socket(open_=True), vad), "jfk", "en", lambda: ())
        await first.add_audio(AudioMessage("jfk", "en", bytes(32_000)))
        await stopped(first)
        kept = first.record()
        torn = kept.model_copy(update={"policy": kept.policy.model_copy(update={"heard": (1,) * 3})})
        meeting = MeetingSession(context(Socket(open_=True), vad, TornStore(torn)))
        await meeting.resume()
        return meeting.participant_count

    assert asyncio.run(run()) == 0
    assert "cannot resume, starting afresh" in caplog.text
