"""A window the policy asks a worker to transcribe."""

from __future__ import annotations

from dataclasses import dataclass

from service.contracts import NO_HINTS, DecoderHints


@dataclass(frozen=True)
class WindowPlan:
    """A window to transcribe: samples [start, end) of the participant's stream, after
    `context_samples` of committed audio heard again as its left context."""

    start: int
    end: int
    final: bool
    pcm: bytes
    """The window's audio: `context_samples` of committed audio, then samples [start, end)."""
    hints: DecoderHints = NO_HINTS
    """Prompt and prefix (the context's text, and where its last words start in `pcm`)."""
    context_samples: int = 0
    spans: tuple[tuple[int, int], ...] = ()
    """Samples of the stream `pcm` holds, one stretch after another: each context final's, then
    [start, end)."""

    @property
    def heard_with_context(self) -> bool:
        """Whether the window goes with earlier audio or text: a window that stalls or stops early
        with them is heard again without."""
        return bool(self.context_samples or self.hints.prompt)
