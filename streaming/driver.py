"""The one loop that drives a participant's policy: send the finals that need no model call, have
the window transcribed, apply its words, and sleep until new audio or the idle flush is due. The
ingress runs it against Redis and a real clock, `bench.simulate` against the model and a simulated
clock, the tests against a fake model; what differs between them is the `WindowIO` they pass in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from service.contracts import WordTiming
from streaming.participant import ParticipantPolicy
from streaming.utterances import Transcript
from streaming.window import WindowPlan

RETRY_DELAY_S = 1.0
"""After a failed window, wait this long before trying the (still kept) audio again; the wait
doubles with each failure in a row, up to `MAX_RETRY_DELAY_S`, so an outage (Redis down, every
worker gone) costs each participant a few error messages, not one a second."""
MAX_RETRY_DELAY_S = 4.0


class WindowFailed(Exception):
    """A window could not be transcribed. `permanent`: trying again cannot help (the model cannot
    serve the participant's language), so its pending audio is let go instead of retried."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent


class WindowIO(Protocol):
    """What the loop needs from the world around it."""

    def now_ms(self) -> int:
        """The clock arrival times are on (ms)."""
        ...

    def forget_news(self) -> None:
        """The loop is about to look at the policy: what arrived so far is no news any more."""
        ...

    async def wait_for_news(self, timeout_s: float | None) -> None:
        """Return when audio arrived or the meeting ended since `forget_news`, or after
        `timeout_s` (None: no deadline)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """The pause before a failed window's audio is tried again."""
        ...

    async def transcribe(self, plan: WindowPlan) -> Sequence[WordTiming]:
        """The window's words, times relative to its audio; raises WindowFailed."""
        ...

    async def emit(self, transcript: Transcript) -> None: ...

    async def report(self, failure: WindowFailed) -> None:
        """Tell the client a window failed (its audio is retried unless the failure is permanent
        or the meeting is over)."""
        ...


async def drive(policy: ParticipantPolicy, io: WindowIO) -> None:
    """Run until the meeting has ended and nothing is left to transcribe."""
    retry_delay_s = RETRY_DELAY_S
    while True:
        io.forget_news()
        settled, plan = policy.advance(io.now_ms())
        for transcript in settled:
            await io.emit(transcript)
        if plan is None:
            if policy.ended:
                return
            # At the flush deadline, advance() plans a final.
            await io.wait_for_news(policy.seconds_until_flush(io.now_ms()))
            continue
        try:
            words = await io.transcribe(plan)
        except WindowFailed as failure:
            policy.abandon(plan)
            # Nothing to retry for: the client is told, and a meeting that is over must close
            # instead of retrying until the end-of-meeting timeout.
            gave_up = failure.permanent or policy.ended
            if gave_up:
                policy.discard_pending()
            await io.report(failure)
            if not gave_up:
                await io.sleep(retry_delay_s)
                retry_delay_s = min(retry_delay_s * 2, MAX_RETRY_DELAY_S)
            continue
        retry_delay_s = RETRY_DELAY_S
        for transcript in policy.apply(plan, words):
            await io.emit(transcript)
