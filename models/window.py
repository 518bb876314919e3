"""What the model is given for one window."""

from __future__ import annotations

from dataclasses import dataclass

from service.contracts import NO_HINTS, DecoderHints
from service.languages import AUTO


@dataclass(frozen=True)
class Window:
    """One streaming window: PCM s16le mono 16 kHz (its first 30 s are heard), its language, and
    what the decoder is told besides (the participant's last finals as prompt, the committed
    text its audio starts with as prefix: `DecoderHints`)."""

    pcm: bytes
    language: str
    """A language code, or `auto` (decoded in the language it is heard as)."""
    hints: DecoderHints = NO_HINTS
    detect_language: bool = False
    """Report the language it is heard as (always done for `auto`)."""

    @property
    def needs_detection(self) -> bool:
        return self.detect_language or self.language == AUTO
