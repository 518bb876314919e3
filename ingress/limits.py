"""Per-participant limits: pure bookkeeping with the clock passed in (callers use time.monotonic()).

- `TokenBucket` meters audio seconds against wall seconds: a participant may send `rate` times
  real time for ever and `burst_s` seconds of audio ahead of that; audio beyond it is refused.
- `Cooldown` keeps a repeated complaint to one message per interval.
"""

from __future__ import annotations


class TokenBucket:
    """Holds up to `capacity` tokens (seconds of audio) and gains `rate` of them per wall second.

    It starts full. A take that fits is granted and paid for; one that does not fit is refused
    and costs nothing, so the refused audio is dropped, never queued for later. A take larger than
    the whole bucket is granted only when the bucket is full, and then leaves it in debt: a client
    whose messages are each longer than the burst is still held to `rate` on average.
    """

    def __init__(self, rate: float, capacity: float) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError(f"rate and capacity must be positive, got {rate} and {capacity}")
        self.rate = rate
        self.capacity = capacity
        self._tokens = capacity
        self._last: float | None = None

    def tokens(self, now: float) -> float:
        """Tokens available at `now` (negative while in debt)."""
        if self._last is None or now <= self._last:
            return self._tokens
        return min(self.capacity, self._tokens + (now - self._last) * self.rate)

    def take(self, amount: float, now: float) -> bool:
        """Grant `amount` tokens at `now` (and pay for them), or refuse and change nothing."""
        available = self.tokens(now)
        self._tokens = available
        self._last = now if self._last is None else max(self._last, now)
        if available < min(amount, self.capacity):
            return False
        self._tokens = available - amount
        return True


class Cooldown:
    """`ready(now)` is true at most once per `interval_s`: the first time, then once the interval passed."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._last: float | None = None

    def ready(self, now: float) -> bool:
        if self._last is not None and now - self._last < self.interval_s:
            return False
        self._last = now
        return True
