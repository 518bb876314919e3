"""A participant speaking to the streaming policy through the one driver loop
(`streaming.driver.drive`), in plain numbers: audio of the right length, one VAD probability per
512-sample frame, arrival times we choose, and word lists standing in for the model."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Coroutine, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.audio import SAMPLE_RATE
from service.contracts import WordTiming
from streaming.config import PolicyConfig
from streaming.driver import WindowFailed, drive
from streaming.participant import ParticipantPolicy
from streaming.utterances import Transcript
from streaming.window import WindowPlan

FRAME = 512
BROWSER_CHUNK_FRAMES = 32  # 16384 samples, 1.024 s: what the browser sends
T0_MS = 1_732_450_000_000
"""Server clock when the participant's first sample was spoken."""
VAD_MERGE_GAP_S = 0.5
"""Pauses between words shorter than this are speech to our fake VAD, as they are to Silero."""


def counting_ids() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"utt-{next(counter)}"


def samples(seconds: float) -> int:
    return round(seconds * SAMPLE_RATE)


RAMP_PERIOD = 8 * 32768


def ramp_pcm(start: int, end: int) -> bytes:
    """Audio whose every sample tells where it is in the stream: index // 8, wrapping every 16.4 s."""
    return (np.arange(start, end) % RAMP_PERIOD // 8).astype("<i2").tobytes()


def starts_at(pcm: bytes, sample: int) -> bool:
    """Whether a slice of `ramp_pcm` audio starts at `sample` of the stream (to within 8 samples)."""
    return abs(int(np.frombuffer(pcm[:2], dtype="<i2")[0]) * 8 - sample % RAMP_PERIOD) <= 8


@dataclass(frozen=True)
class Spoken:
    """A word as it was really said: seconds on the participant's stream."""

    text: str
    start: float
    end: float
    probability: float = 0.9


def say(
    text: str, start: float, word_s: float = 0.3, gap_s: float = 0.1, probability: float = 0.9
) -> list[Spoken]:
    words = []
    for token in text.split():
        words.append(Spoken(f" {token}", round(start, 3), round(start + word_s, 3), probability))
        start += word_s + gap_s
    return words


def window_clock(plan: WindowPlan) -> float:
    """Stream time of the window's first sample, had its context been heard just before its new
    audio (the model's times count from the start of the context)."""
    return (plan.start - plan.context_samples) / SAMPLE_RATE


def in_window(plan: WindowPlan, words: Sequence[Spoken]) -> list[WordTiming]:
    """What a perfect model hears in `plan`: the words wholly inside its audio that end in its new
    audio (those of its context are its prefix, and a cut never falls inside them), in window time."""
    offset = window_clock(plan)
    return [
        WordTiming(text=w.text, start=w.start - offset, end=w.end - offset, probability=w.probability)
        for w in words
        if w.start >= offset - 1e-6 and plan.start / SAMPLE_RATE < w.end <= plan.end / SAMPLE_RATE + 1e-6
    ]


def timings(
    plan: WindowPlan, *words: tuple[str, float, float], probabilities: Sequence[float] = ()
) -> list[WordTiming]:
    """Hand-written model output with stream times, converted to the window's clock (each word's
    probability 0.9 unless `probabilities` gives them)."""
    offset = window_clock(plan)
    sure = probabilities or [0.9] * len(words)
    return [
        WordTiming(text=t, start=s - offset, end=e - offset, probability=p)
        for (t, s, e), p in zip(words, sure, strict=True)
    ]


Model = Callable[[WindowPlan], Sequence[WordTiming]]
"""A fake transcription: the words of a window (may raise WindowFailed)."""


class _Pause:
    """Where the driver hands control back to the test: `Session.step` resumes it, with the
    words of the window it waits for when the test answers by hand."""

    def __await__(self) -> Generator[None, Any, Any]:
        return (yield)


@dataclass
class Session:
    """One participant speaking `words` in real time, chunk by chunk, to a policy driven by
    `streaming.driver.drive` as the ingress drives it, with `model` as its transcription.

    The VAD says speech wherever words are (pauses under VAD_MERGE_GAP_S included), unless `speech`
    lists the speech intervals itself. Each chunk arrives `lag_ms` after its last sample was spoken.
    The driver runs whenever the test steps it (after each chunk in `play`), until it waits for
    news; time passes only as the test says (`now_ms`), so the idle flush fires when a step says
    it is late enough. With `answer_by_hand`, the driver stops at each window and `answer()` gives
    its words.
    """

    words: list[Spoken] = field(default_factory=list)
    config: PolicyConfig = field(default_factory=PolicyConfig)
    speech: list[tuple[float, float]] | None = None
    chunk_frames: int = BROWSER_CHUNK_FRAMES
    lag_ms: int = 0
    model: Model | None = None
    answer_by_hand: bool = False
    received: int = 0
    plans: list[WindowPlan] = field(default_factory=list)
    out: list[Transcript] = field(default_factory=list)
    early_finals: int = 0
    """Finals cut while the speaker was still talking (from interim windows)."""
    failures: list[WindowFailed] = field(default_factory=list)
    """What the driver reported, in order."""
    retry_pauses: list[float] = field(default_factory=list)
    """The driver's pauses before trying a failed window's audio again, in order."""
    flush_waits: list[float | None] = field(default_factory=list)
    """The deadline the driver gave each wait for news (None: none)."""

    def __post_init__(self) -> None:
        self.policy = ParticipantPolicy(self.config, new_id=counting_ids())
        if self.speech is None:
            self.speech = []
            for word in sorted(self.words, key=lambda w: w.start):
                if self.speech and word.start - self.speech[-1][1] < VAD_MERGE_GAP_S:
                    self.speech[-1] = (self.speech[-1][0], max(self.speech[-1][1], word.end))
                else:
                    self.speech.append((word.start, word.end))
        if self.model is None:
            self.model = lambda plan: in_window(plan, self.words)
        self._driver: Coroutine[Any, Any, None] | None = None
        """Started at the first step (a session some tests never step must not leave it unawaited)."""
        self.driver_done = False
        self.waiting_for: WindowPlan | None = None
        """The window the driver waits for `answer()` on (`answer_by_hand`)."""
        self._step_now_ms: int | None = None
        self.applying_interim = False

    # ---- the test's side ---------------------------------------------------------------------

    @property
    def now_ms(self) -> int:
        if self._step_now_ms is not None:
            return self._step_now_ms
        return T0_MS + round(self.received * 1000 / SAMPLE_RATE) + self.lag_ms

    def vad(self, frame: int) -> float:
        middle = (frame + 0.5) * FRAME / SAMPLE_RATE
        assert self.speech is not None
        return 1.0 if any(start <= middle < end for start, end in self.speech) else 0.0

    def send_chunk(self, frames: int, arrival_ms: int | None = None) -> None:
        first = self.received // FRAME
        end = self.received + frames * FRAME
        pcm = ramp_pcm(self.received, end)
        self.received = end
        probs = [self.vad(frame) for frame in range(first, first + frames)]
        self.policy.add_audio(pcm, probs, self.now_ms if arrival_ms is None else arrival_ms)

    def feed(self, until_s: float) -> None:
        """Send chunks until the stream reaches `until_s`, without stepping the driver."""
        while (frames := self._frames_until(until_s)) > 0:
            self.send_chunk(min(self.chunk_frames, frames))

    def play(self, until_s: float) -> list[Transcript]:
        """Send chunks until `until_s`, stepping the driver after each, as the ingress wakes it."""
        before = len(self.out)
        while (frames := self._frames_until(until_s)) > 0:
            self.send_chunk(min(self.chunk_frames, frames))
            self.step()
        return self.out[before:]

    def _frames_until(self, until_s: float) -> int:
        return -(-(samples(until_s) - self.received) // FRAME)

    def step(self, now_ms: int | None = None) -> list[Transcript]:
        """Wake the driver (news: audio, the end, or time passing up to `now_ms`) and let it run
        until it waits again; returns what it sent meanwhile."""
        assert self.waiting_for is None, "the driver waits for answer()"
        return self._resume(None, now_ms)

    def window(self, now_ms: int | None = None) -> WindowPlan | None:
        """Step the driver; the window it now waits for an answer to, if it planned one."""
        assert self.answer_by_hand, "answer_by_hand=True makes the driver wait for answer()"
        if self.waiting_for is None:  # else it planned one right after the last answer
            self.step(now_ms)
        return self.waiting_for

    def answer(
        self, plan: WindowPlan | None, words: Sequence[WordTiming], now_ms: int | None = None
    ) -> list[Transcript]:
        """The words of `plan`, the window the driver waits for; it then runs until it waits
        again (and may plan the next window at once)."""
        assert plan is not None and plan == self.waiting_for, "answer() takes the window waited for"
        self.waiting_for = None
        return self._resume(words, now_ms)

    def fail(self, plan: WindowPlan | None, failure: WindowFailed) -> list[Transcript]:
        """`plan`, the window the driver waits for, failed: the driver reports it and pauses
        before trying its audio again (or lets it go, as the failure says)."""
        assert plan is not None and plan == self.waiting_for, "fail() takes the window waited for"
        self.waiting_for = None
        return self._resume(failure, None)

    def end(self, now_ms: int | None = None) -> list[Transcript]:
        """The meeting is over: the driver finishes what is pending (unless it waits for an
        answer) and stops."""
        self.policy.end()
        return [] if self.waiting_for is not None else self.step(now_ms)

    def _resume(
        self, value: Sequence[WordTiming] | WindowFailed | None, now_ms: int | None
    ) -> list[Transcript]:
        before = len(self.out)
        if self.driver_done:
            return []
        self._step_now_ms = now_ms
        try:
            if self._driver is None:
                self._driver = drive(self.policy, _DriverSide(self))
            if isinstance(value, WindowFailed):
                self._driver.throw(value)  # raised where the driver awaits the transcription
            else:
                self._driver.send(value)
        except StopIteration:
            self.driver_done = True
        finally:
            self._step_now_ms = None
        return self.out[before:]

    # ---- what it said ------------------------------------------------------------------------

    @property
    def finals(self) -> list[Transcript]:
        return [t for t in self.out if t.kind == "final"]

    @property
    def commits(self) -> list[str]:
        """Each run of words committed at once, in order, as the interims and finals show them."""
        runs: list[str] = []
        utterance, done = "", 0
        for t in self.out:
            if t.utterance_id != utterance:
                utterance, done = t.utterance_id, 0
            words = t.text.split()[: t.committed_words]
            if len(words) > done:
                runs.append(" ".join(words[done:]))
                done = len(words)
        return runs

    @property
    def committed(self) -> str:
        """The words committed so far: the finals' and those the last interim says will stay."""
        last = self.out[-1] if self.out else None
        open_words = last.text.split()[: last.committed_words] if last and last.kind == "interim" else []
        return " ".join([t.text for t in self.finals] + open_words)

    @property
    def interims(self) -> list[Transcript]:
        return [t for t in self.out if t.kind == "interim"]


class _DriverSide:
    """A Session as the driver sees it (`streaming.driver.WindowIO`)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def now_ms(self) -> int:
        return self.session.now_ms

    def forget_news(self) -> None:
        self.session.applying_interim = False

    async def wait_for_news(self, timeout_s: float | None) -> None:
        self.session.flush_waits.append(timeout_s)
        await _Pause()

    async def sleep(self, seconds: float) -> None:
        self.session.retry_pauses.append(seconds)
        await _Pause()

    async def transcribe(self, plan: WindowPlan) -> Sequence[WordTiming]:
        self.session.plans.append(plan)
        self.session.applying_interim = not plan.final
        if self.session.answer_by_hand:
            self.session.waiting_for = plan
            words: Sequence[WordTiming] = await _Pause()
            return words
        assert self.session.model is not None
        return self.session.model(plan)

    async def emit(self, transcript: Transcript) -> None:
        self.session.out.append(transcript)
        if self.session.applying_interim and transcript.kind == "final":
            self.session.early_finals += 1

    async def report(self, failure: WindowFailed) -> None:
        self.session.failures.append(failure)
