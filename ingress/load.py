"""Whether the worker pool keeps up, judged by this ingress from its own windows' round trips.

The queue is shared by every replica, so when the pool falls behind every replica sees its windows
wait. Saturated means: the windows answered in the last `horizon_s` took a median of more than
`limit_s` from dispatch to result, or at least two windows are waiting and half of them have
waited longer than that already (a pool that answers nothing at all has no round trips to show).
New connections are then refused (1013) rather than slowing every meeting down. Pure bookkeeping:
the caller passes the clock (time.monotonic()).
"""

from __future__ import annotations

import statistics
from collections import deque


class LoadGauge:
    def __init__(self, limit_s: float, horizon_s: float = 10.0) -> None:
        """`limit_s` <= 0 turns the check off."""
        self.limit_s = limit_s
        self.horizon_s = horizon_s
        self._waiting: dict[str, float] = {}
        self._answered: deque[tuple[float, float]] = deque()  # (answered at, round trip)

    def sent(self, window_id: str, now: float) -> None:
        self._waiting[window_id] = now

    def answered(self, window_id: str, now: float) -> None:
        sent_at = self._waiting.pop(window_id, None)
        if sent_at is not None:
            self._answered.append((now, now - sent_at))

    def dropped(self, window_id: str) -> None:
        """The window failed (timeout, Redis down): it says nothing about the pool's speed."""
        self._waiting.pop(window_id, None)

    def saturated(self, now: float) -> bool:
        if self.limit_s <= 0:
            return False
        while self._answered and now - self._answered[0][0] > self.horizon_s:
            self._answered.popleft()
        if self._answered and statistics.median(trip for _, trip in self._answered) > self.limit_s:
            return True
        waits = [now - sent_at for sent_at in self._waiting.values()]
        return len(waits) >= 2 and statistics.median(waits) > self.limit_s

    def describe(self, now: float) -> str:
        """For the refusal reason and logs: what the gauge saw."""
        trips = [trip for answered_at, trip in self._answered if now - answered_at <= self.horizon_s]
        median = f"{statistics.median(trips):.1f} s" if trips else "none"
        return f"median round trip {median}, {len(self._waiting)} windows waiting"
