"""One meeting's websocket: its participants, each driven by its own task so a slow one never
stalls the others. The streaming decisions live in `streaming/`; this module does the I/O around
them (VAD in a thread, windows to the dispatcher, transcripts to the socket)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from redis.exceptions import RedisError
from starlette import status

from ingress.audio_ledger import AudioLedger
from ingress.dispatch import Dispatcher, TranscriptionError
from ingress.limits import Cooldown, TokenBucket
from ingress.metrics import Metrics
from ingress.protocol import (
    AudioMessage,
    SocketOptions,
    TimedWord,
    encode_language_warning,
    encode_transcript,
)
from ingress.resume import ParticipantRecord, ResumeStore
from ingress.vad import SileroVad, VadStream
from service.audio import SAMPLE_RATE, SAMPLE_WIDTH_BYTES
from service.contracts import WordTiming
from service.languages import AUTO
from service.settings import Settings
from streaming.config import PolicyConfig
from streaming.driver import WindowFailed, drive
from streaming.language import Contradiction, SpokenLanguage
from streaming.participant import ParticipantPolicy
from streaming.utterances import Transcript
from streaming.window import WindowPlan

logger = logging.getLogger(__name__)

COMPLAINT_INTERVAL_S = 5.0
"""A participant hears about refused audio at most this often, not once per message."""
DROP_STEP_S = 10.0
"""Past MAX_PENDING_AUDIO_S, this much more of the oldest audio goes at once: few error messages
(one per step), each telling exactly how much was lost."""
REMEMBERED_REFUSALS = 1000
"""Refused participant ids remembered (each told once); bounded so made-up ids cost no memory."""

SAVE_TIMEOUT_S = 5.0
"""A dropped socket's participants are saved for a reconnect within this, or not at all (Redis
hangs): closing a socket never waits on Redis for long."""

Send = Callable[[str], Awaitable[bool]]
"""A message to the client; False when the socket was gone."""
SendError = Callable[[int, str, str | None], Awaitable[None]]
"""(close code, message, participant id): an error message to the client, counted."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class TranscriptEncoder(Protocol):
    """How a socket's protocol writes what its participants say: the seed's messages
    (`SeedEncoder`), or the OpenAI Realtime API's events (`ingress/realtime/`)."""

    def transcript(self, participant_id: str, transcript: Transcript, language: str | None) -> list[str]:
        """The text frames of one interim or final (`language`: the one heard, for `auto`)."""
        ...

    def language_warning(self, participant_id: str, contradiction: Contradiction) -> str: ...


class SeedEncoder:
    """The seed protocol's transcript messages, with the extras the socket asked for."""

    def __init__(self, options: SocketOptions) -> None:
        self._words = options.words

    def transcript(self, participant_id: str, transcript: Transcript, language: str | None) -> list[str]:
        return [
            encode_transcript(
                utterance_id=transcript.utterance_id,
                participant_id=participant_id,
                ts_ms=transcript.ts_ms,
                text=transcript.text,
                kind=transcript.kind,
                variance=transcript.probability,
                pcm=transcript.pcm,
                words=timed_words(transcript) if self._words else None,
                language=language,
            )
        ]

    def language_warning(self, participant_id: str, contradiction: Contradiction) -> str:
        return encode_language_warning(participant_id, contradiction)


@dataclass(frozen=True)
class SessionContext:
    meeting_id: str
    settings: Settings
    dispatcher: Dispatcher
    vad: SileroVad
    send: Send
    send_error: SendError
    metrics: Metrics
    options: SocketOptions
    resume: ResumeStore | None
    """Where a dropped socket's participants wait for a reconnect; None when RESUME_TTL_S is 0."""
    encoder: TranscriptEncoder | None = None
    """None: the seed protocol's messages."""

    def transcript_encoder(self) -> TranscriptEncoder:
        return self.encoder or SeedEncoder(self.options)

    async def complain_softly(self, participant_id: str, warning: str) -> None:
        """A warning message to the client (nothing refused), and the log."""
        logger.warning("meeting %s participant %s: %s", self.meeting_id, participant_id, warning)
        await self.send(warning)

    async def complain(self, code: int, reason: str, participant_id: str) -> None:
        """Tell the client (an error message) and the log (with the meeting and participant)."""
        logger.warning("meeting %s participant %s: %s", self.meeting_id, participant_id, reason)
        await self.send_error(code, reason, participant_id)


class Participant:
    def __init__(
        self,
        context: SessionContext,
        participant_id: str,
        language: str,
        keyterms: Callable[[], tuple[str, ...]],
        resumed: ParticipantRecord | None = None,
    ) -> None:
        """`resumed`: the state a dropped socket left, to go on from."""
        self.id = participant_id
        self._spoken = SpokenLanguage(AUTO if context.options.detect_language else language)
        self.refused_language: str | None = None
        self._context = context
        self._encoder = context.transcript_encoder()
        self._keyterms = keyterms
        """The socket's keyterms as they are when a window is sent (a config message may set them)."""
        self._policy = ParticipantPolicy(PolicyConfig.from_settings(context.settings))
        self._vad: VadStream = context.vad.new_stream()
        self._ledger = AudioLedger(uuid.uuid4().hex)
        """What of this participant's audio Redis holds for its windows."""
        self._bucket = TokenBucket(context.settings.audio_rate_limit, context.settings.audio_burst_s)
        self._rate_complaints = Cooldown(COMPLAINT_INTERVAL_S)
        self._undelivered: list[str] = []
        """Finals sent after the socket was gone, for the socket that resumes this stream."""
        if resumed is not None:
            self._policy.restore(resumed.policy, now_ms())
            self._vad.restore(resumed.vad)
            self._spoken = dataclasses.replace(resumed.spoken)
            self.refused_language = resumed.refused_language
            self._undelivered = list(resumed.undelivered)
        self._wake = asyncio.Event()
        self.task = asyncio.create_task(self._drive(), name=f"participant-{participant_id}")
        self.task.add_done_callback(self._log_crash)

    def _log_crash(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "meeting %s participant %s: stopped by an error",
                self._context.meeting_id,
                self.id,
                exc_info=task.exception(),
            )

    async def add_audio(self, message: AudioMessage) -> None:
        seconds = len(message.pcm) / (SAMPLE_WIDTH_BYTES * SAMPLE_RATE)
        self._context.metrics.audio_seconds.inc(seconds)
        # Metered before any work is spent on it: refused audio is dropped, never queued.
        if not self._bucket.take(seconds, time.monotonic()):
            await self._refuse_fast_audio()
            return
        if message.language != self.language and not self._context.options.detect_language:
            self._spoken = SpokenLanguage(message.language)
            self.refused_language = None
        if self.refused_language == self.language:
            return  # told once already; the model cannot serve this language
        arrival_ms = now_ms()
        probs = await self._vad.hear(message.pcm)
        if self.refused_language == self.language:
            return  # refused while the VAD ran
        self._policy.add_audio(message.pcm, probs, arrival_ms)
        await self._cap_pending()
        self._wake.set()

    async def _refuse_fast_audio(self) -> None:
        if not self._rate_complaints.ready(time.monotonic()):
            return
        settings = self._context.settings
        reason = (
            f"audio arrives faster than real time (over {settings.audio_rate_limit:g} x sustained, "
            f"{settings.audio_burst_s:g} s ahead); the excess was dropped: send audio as it is spoken"
        )
        await self._context.complain(status.WS_1008_POLICY_VIOLATION, reason, self.id)

    async def _cap_pending(self) -> None:
        """Bounded memory whatever happens downstream: the oldest untranscribed audio goes first."""
        limit_s = self._context.settings.max_pending_audio_s
        if self._policy.window_seconds <= limit_s:
            return
        dropped_s = self._policy.cap_pending(limit_s - DROP_STEP_S)  # settings keep limit_s >= 30
        reason = f"transcription is behind; {dropped_s:.1f} s of audio dropped"
        await self._context.complain(status.WS_1013_TRY_AGAIN_LATER, reason, self.id)

    def end(self) -> None:
        self._policy.end()
        self._wake.set()

    @property
    def ended(self) -> bool:
        return self._policy.ended

    def record(self) -> ParticipantRecord:
        """What a reconnect needs to go on with this stream (its task stopped, the stream not ended)."""
        return ParticipantRecord(
            participant_id=self.id,
            spoken=self._spoken,
            refused_language=self.refused_language,
            policy=self._policy.snapshot(),
            vad=self._vad.state(),
            undelivered=tuple(self._undelivered),
        )

    @property
    def language(self) -> str:
        """The language its headers say (`auto`: detected)."""
        return self._spoken.requested

    async def _drive(self) -> None:
        try:
            undelivered, self._undelivered = self._undelivered, []
            for text in undelivered:
                await self._send(text, final=True)
            await drive(self._policy, self)
        finally:
            # Ended, closed or crashed: no window of this participant needs its stored audio.
            self._context.dispatcher.forget(self._ledger.forget_all())

    # ---- the driver's surroundings (streaming.driver.WindowIO) -------------------------------

    def now_ms(self) -> int:
        return now_ms()

    def forget_news(self) -> None:
        self._wake.clear()

    async def wait_for_news(self, timeout_s: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout_s)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def transcribe(self, plan: WindowPlan) -> Sequence[WordTiming]:
        audio = self._ledger.place(plan.spans, plan.pcm, self._policy.oldest_needed, time.monotonic())
        spoken = self._spoken  # a header naming another language meanwhile starts a new one
        try:
            hints = plan.hints.model_copy(update={"keyterms": self._keyterms()})
            result = await self._context.dispatcher.transcribe(
                audio,
                spoken.window_language(),
                hints,
                self._context.settings.transcription_timeout_s,
                plan.final,
                detect_language=spoken.wants_detection(plan.final),
            )
        except TranscriptionError as error:
            # Redis may have lost what was stored (restarted, failed over): store it again.
            self._context.dispatcher.forget(self._ledger.forget_all())
            if error.permanent:
                # Before any await: audio arriving meanwhile is dropped, not planned.
                self.refused_language = self.language
            raise
        new_audio_s = (plan.end - plan.start) / SAMPLE_RATE
        contradiction = spoken.heard(result.language, result.language_probability, new_audio_s, plan.final)
        if contradiction is not None:
            await self._context.complain_softly(
                self.id, self._encoder.language_warning(self.id, contradiction)
            )
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "meeting %s participant %s: %s window %.2f-%.2f s (context %.2f s, prefix %r): %r",
                self._context.meeting_id,
                self.id,
                "final" if plan.final else "interim",
                plan.start / SAMPLE_RATE,
                plan.end / SAMPLE_RATE,
                plan.context_samples / SAMPLE_RATE,
                plan.hints.prefix,
                "".join(word.text for word in result.words),
            )
        return result.words

    async def report(self, failure: WindowFailed) -> None:
        permanent = failure.permanent  # the model cannot serve the language: the audio is at fault
        code = status.WS_1007_INVALID_FRAME_PAYLOAD_DATA if permanent else status.WS_1011_INTERNAL_ERROR
        await self._context.complain(code, failure.message, self.id)

    async def emit(self, transcript: Transcript) -> None:
        self._context.metrics.transcripts_sent.labels(type=transcript.kind).inc()
        language = (self._spoken.current or AUTO) if self._spoken.auto else None
        for text in self._encoder.transcript(self.id, transcript, language):
            await self._send(text, final=transcript.kind == "final")

    async def _send(self, text: str, final: bool) -> None:
        # A final the gone socket could not take waits for the socket that resumes the stream;
        # an interim need not (the next one repeats it).
        if not await self._context.send(text) and final:
            self._undelivered.append(text)


def timed_words(transcript: Transcript) -> list[TimedWord]:
    """A transcript's words for `?words=1`: times in ms after its first word's start, which its
    `ts` stamps with the server's clock."""

    def ms(seconds: float) -> int:
        return max(0, round((seconds - transcript.start_s) * 1000))

    return [
        TimedWord(word.text.strip(), ms(word.start), ms(word.end), word.probability)
        for word in transcript.words
    ]


class MeetingSession:
    def __init__(self, context: SessionContext) -> None:
        self._context = context
        self._participants: dict[str, Participant] = {}
        self._refused: set[str] = set()
        self.keyterms = context.options.keyterms
        """`?keyterms=`, then what the socket's last config message said."""

    @property
    def participant_count(self) -> int:
        return len(self._participants)

    async def resume(self) -> None:
        """Take over the participants the meeting's dropped socket left (RESUME_TTL_S), if any."""
        if self._context.resume is None:
            return
        meeting_id = self._context.meeting_id
        try:
            records = await self._context.resume.claim(meeting_id)
        except (RedisError, OSError) as error:
            logger.warning("meeting %s: cannot look for a stream to resume: %s", meeting_id, error)
            return
        for record in records:
            try:
                participant = Participant(
                    self._context,
                    record.participant_id,
                    record.spoken.requested,
                    lambda: self.keyterms,
                    record,
                )
            except ValueError as error:
                logger.warning(
                    "meeting %s participant %s: cannot resume, starting afresh: %s",
                    meeting_id,
                    record.participant_id,
                    error,
                )
                continue
            self._participants[record.participant_id] = participant
            self._context.metrics.participants.inc()
            self._context.metrics.participants_resumed.inc()
            logger.info("meeting %s: participant %s resumed", meeting_id, record.participant_id)

    async def add_audio(self, message: AudioMessage) -> None:
        participant = self._participants.get(message.participant_id)
        if participant is None:
            if len(self._participants) >= self._context.settings.whisper_max_participants_per_meeting:
                await self._refuse_participant(message.participant_id)
                return
            participant = Participant(
                self._context, message.participant_id, message.language, lambda: self.keyterms
            )
            self._participants[message.participant_id] = participant
            self._context.metrics.participants.inc()
            logger.info("meeting %s: participant %s joined", self._context.meeting_id, participant.id)
        await participant.add_audio(message)

    async def _refuse_participant(self, participant_id: str) -> None:
        """One error per refused participant; its later messages are dropped without a word."""
        if participant_id in self._refused:
            return
        if len(self._refused) < REMEMBERED_REFUSALS:
            self._refused.add(participant_id)
        limit = self._context.settings.whisper_max_participants_per_meeting
        reason = (
            f"meeting is full: at most {limit} participants per meeting "
            "(WHISPER_MAX_PARTICIPANTS_PER_MEETING); this participant's audio is ignored"
        )
        await self._context.complain(status.WS_1008_POLICY_VIOLATION, reason, participant_id)

    async def finish_participant(self, participant_id: str, timeout_s: float) -> bool:
        """End one participant's stream: its pending speech goes out as finals, then it is gone (its
        next audio starts a new stream). False when it had no stream."""
        participant = self._participants.pop(participant_id, None)
        if participant is None:
            return False
        self._context.metrics.participants.dec()
        participant.end()
        try:
            await asyncio.wait_for(participant.task, timeout_s)
        except TimeoutError:
            reason = f"speech not yet transcribed after {timeout_s:g} s is lost"
            await self._context.complain(status.WS_1011_INTERNAL_ERROR, reason, participant_id)
        return True

    async def drop_participant(self, participant_id: str) -> None:
        """Forget one participant's stream, its audio not yet transcribed unheard."""
        participant = self._participants.pop(participant_id, None)
        if participant is None:
            return
        self._context.metrics.participants.dec()
        participant.task.cancel()
        await asyncio.gather(participant.task, return_exceptions=True)

    async def finish(self, timeout_s: float) -> None:
        """End of meeting: every participant's pending speech goes out as finals, then we return."""
        for participant in self._participants.values():
            participant.end()
        tasks = [participant.task for participant in self._participants.values()]
        if not tasks:
            return
        done, pending = await asyncio.wait(tasks, timeout=timeout_s)
        for task in pending:
            task.cancel()
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        unfinished = [
            participant for participant in self._participants.values() if participant.task in pending
        ]
        for participant in unfinished:
            reason = f"closing: speech not yet transcribed after {timeout_s:g} s is lost"
            await self._context.complain(status.WS_1011_INTERNAL_ERROR, reason, participant.id)

    async def close(self) -> None:
        """The socket is gone: stop every participant's work, and keep the state of those still
        streaming (no end of meeting) for a reconnect."""
        tasks = [participant.task for participant in self._participants.values()]
        self._context.metrics.participants.dec(len(tasks))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        streaming = [
            participant
            for participant in self._participants.values()
            # A task that crashed leaves a state nobody should go on from.
            if not participant.ended and (participant.task.cancelled() or not participant.task.exception())
        ]
        if self._context.resume is not None and streaming:
            await self._keep_for_reconnect(self._context.resume, streaming)

    async def _keep_for_reconnect(self, store: ResumeStore, streaming: list[Participant]) -> None:
        meeting_id = self._context.meeting_id
        try:
            async with asyncio.timeout(SAVE_TIMEOUT_S):
                await store.save(meeting_id, [participant.record() for participant in streaming])
        except (RedisError, OSError, TimeoutError) as error:
            logger.warning(
                "meeting %s: the streams of %d participants cannot be kept for a reconnect: %s",
                meeting_id,
                len(streaming),
                error or type(error).__name__,
            )
            return
        logger.info("meeting %s: %d participants kept for a reconnect", meeting_id, len(streaming))
