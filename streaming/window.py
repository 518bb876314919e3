"""A window the policy asks a worker to transcribe."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WindowPlan:
    """A window to transcribe: samples [start, end) of the participant's stream."""

    start: int
    end: int
    final: bool
    prompt: str
    pcm: bytes
    """The window's audio: `context_samples` of committed audio, then samples [start, end)."""
    prefix: str = ""
    """Text of the committed audio the window starts with."""
    context_samples: int = 0
    prefix_tail: str = ""
    """The prefix's last words (`context_tail_words`), whose audio starts `prefix_tail_samples`
    into the window's."""
    prefix_tail_samples: int = 0
    spans: tuple[tuple[int, int], ...] = ()
    """Samples of the stream `pcm` holds, one stretch after another: each context final's, then
    [start, end)."""
