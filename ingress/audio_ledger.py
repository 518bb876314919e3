"""Which stretches of one participant's audio Redis holds, so that each second crosses Redis once.

A window hears committed audio again as context and its own audio grows chunk by chunk, so
consecutive windows overlap by seconds; sending each window's whole audio cost about ten times the
audio rate through Redis. Instead, the first window that needs a stretch of the stream uploads it
under its own key, and every window names its audio as pieces of stored stretches
(`AudioPiece`: key and byte range); the worker fetches the keys and joins the pieces.

Pure bookkeeping, no I/O: `place` says what one window's dispatch uploads, names and deletes, and
the dispatcher does it in one round trip. Stretches no later window can need (before the oldest
sample the policy keeps) are deleted. A stored stretch's time to live (`names.AUDIO_TTL_S`) is
renewed by the first window that names it once less than half of it is left, not by every window
(an EXPIRE per shared stretch in every window's pipeline, for what rarely outlives its first
TTL). After any failed window, nothing stored is trusted (`forget_all`: Redis may have restarted)
and the next window uploads its audio again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

from service import names
from service.audio import SAMPLE_WIDTH_BYTES
from service.contracts import AudioPiece


@dataclass(frozen=True)
class _Stored:
    start: int
    end: int
    """Stream samples [start, end) held under `key`."""
    key: str
    expires_s: float
    """When Redis drops it, by the caller's clock: its store or last renewal plus the TTL (Redis
    counts from a moment later, so this is never late)."""


RENEW_WHEN_LEFT_S = names.AUDIO_TTL_S / 2
"""A named stretch with less time to live than this has it renewed: more than a window waits for
its worker (TRANSCRIPTION_TIMEOUT_S, 60 s by default), so no window's audio expires while queued.
Were it to (a timeout set past this), the worker answers `audio_expired`, the window fails, and
the next one uploads its audio afresh (`forget_all`)."""


@dataclass(frozen=True)
class AudioPlan:
    """One window's audio in Redis: what to store first, how the worker finds it, what to drop."""

    pieces: list[AudioPiece]
    uploads: list[tuple[str, bytes]] = field(default_factory=list)
    """New keys and their PCM (set with `names.AUDIO_TTL_S`)."""
    renewed: list[str] = field(default_factory=list)
    """Keys stored before that this window names too and that have less than RENEW_WHEN_LEFT_S
    to live: their time to live starts again."""
    forgotten: list[str] = field(default_factory=list)
    """Keys no later window can name: deleted."""

    @property
    def bytes(self) -> int:
        """The window's audio, in bytes."""
        return sum(piece.end - piece.start for piece in self.pieces)

    @property
    def keys(self) -> list[str]:
        """Every key the window's audio needs, once each."""
        return list(dict.fromkeys(piece.key for piece in self.pieces))


class AudioLedger:
    def __init__(self, stream_id: str) -> None:
        self._stream_id = stream_id
        self._stored: list[_Stored] = []
        """Sorted by start, never overlapping."""
        self._uploads = 0

    @property
    def stored_keys(self) -> list[str]:
        return [stored.key for stored in self._stored]

    def place(
        self, spans: Sequence[tuple[int, int]], pcm: bytes, oldest_needed: int, now_s: float
    ) -> AudioPlan:
        """The plan for a window whose audio `pcm` is stream samples `spans`, one after another,
        dispatched at `now_s` (a monotonic clock's seconds).

        `oldest_needed`: no later window starts before this sample; stored stretches that end at or
        before it, and are not in this window, are forgotten."""
        expires_s = now_s + names.AUDIO_TTL_S
        spanned = sum(end - start for start, end in spans)
        if spanned * SAMPLE_WIDTH_BYTES != len(pcm):
            raise ValueError(
                f"the window's spans ({spanned} samples) do not add up to its audio "
                f"({len(pcm) // SAMPLE_WIDTH_BYTES} samples)"
            )
        pieces: list[AudioPiece] = []
        uploads: list[tuple[str, bytes]] = []
        named: set[str] = set()
        offset = 0  # where the current span's audio starts in `pcm`, in bytes
        for start, end in _joined(spans):
            cursor = start
            for stored in [s for s in self._stored if s.start < end and s.end > start]:
                if stored.start > cursor:
                    uploads.append(
                        self._upload(cursor, stored.start, pcm, offset + _bytes(cursor - start), expires_s)
                    )
                    pieces.append(_whole(uploads[-1]))
                lo, hi = max(cursor, stored.start), min(end, stored.end)
                pieces.append(
                    AudioPiece(key=stored.key, start=_bytes(lo - stored.start), end=_bytes(hi - stored.start))
                )
                named.add(stored.key)
                cursor = hi
            if cursor < end:
                uploads.append(self._upload(cursor, end, pcm, offset + _bytes(cursor - start), expires_s))
                pieces.append(_whole(uploads[-1]))
            offset += _bytes(end - start)
        in_window = named | {key for key, _ in uploads}
        forgotten = [s.key for s in self._stored if s.end <= oldest_needed and s.key not in in_window]
        kept: list[_Stored] = []
        renewed: list[str] = []
        for stored in self._stored:
            if stored.key in forgotten:
                continue
            if stored.key in named and stored.expires_s - now_s < RENEW_WHEN_LEFT_S:
                renewed.append(stored.key)
                stored = dataclasses.replace(stored, expires_s=expires_s)
            kept.append(stored)
        self._stored = kept
        return AudioPlan(pieces, uploads, renewed, forgotten)

    def forget_all(self) -> list[str]:
        """Trust nothing stored (a window failed; Redis may have lost it): the keys to delete."""
        keys, self._stored = self.stored_keys, []
        return keys

    def _upload(self, start: int, end: int, pcm: bytes, at: int, expires_s: float) -> tuple[str, bytes]:
        self._uploads += 1
        key = names.audio_key(self._stream_id, self._uploads)
        self._stored.append(_Stored(start, end, key, expires_s))
        self._stored.sort(key=lambda stored: stored.start)
        return key, pcm[at : at + _bytes(end - start)]


def _joined(spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """`spans` with each that starts where the one before it ends joined to it: a window's
    context is the audio of the finals just before it, most often one stretch of the stream with
    the window's own audio, and each span made a piece of its own (pieces to build here, to
    serialise, to fetch and join on the worker)."""
    joined: list[tuple[int, int]] = []
    for start, end in spans:
        if joined and joined[-1][1] == start:
            joined[-1] = (joined[-1][0], end)
        else:
            joined.append((start, end))
    return joined


def _bytes(samples: int) -> int:
    return samples * SAMPLE_WIDTH_BYTES


def _whole(upload: tuple[str, bytes]) -> AudioPiece:
    key, pcm = upload
    return AudioPiece(key=key, start=0, end=len(pcm))
