"""Which language a participant speaks, from what the model hears (pure: no I/O, no model).

A participant whose header says `auto` (or whose socket asked `?language=auto`) has its windows
detected until one of at least `SETTLE_MIN_S` of audio is heard as a language with probability
`SETTLE_PROBABILITY` (or one of `SETTLE_ANYWAY_S` as anything): that language is then kept, its
windows decoded in it. Afterwards each final window is checked again, and the language switches
only on strong evidence: `SWITCH_AFTER` final windows in a row heard as one other language with
probability `STRONG`. Until it settles, each window is decoded in what it is heard as.

A declared language is checked once, on the first window of `SETTLE_MIN_S`: speech heard as
another language with probability `STRONG` is reported (once), and the declared language is
kept: the client decides, by sending the language heard (or `auto`) in its next headers. With an
English-only model nothing is detected: `auto` is English, and nothing contradicts a declaration.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.languages import AUTO

SETTLE_MIN_S = 2.0
"""Windows shorter than this are not trusted with the language (one second of Spanish was heard
as Arabic, 0.29; at two seconds German, Spanish and French came out at 0.98-0.99)."""
SETTLE_PROBABILITY = 0.8
SETTLE_ANYWAY_S = 5.0
STRONG = 0.9
SWITCH_AFTER = 2


@dataclass(frozen=True)
class Contradiction:
    """The declared language is not what the participant speaks, by the model's ear."""

    declared: str
    heard: str
    probability: float

    @property
    def message(self) -> str:
        return (
            f"the header says {self.declared!r} but the speech sounds like {self.heard!r} "
            f"(probability {self.probability:.2f}); it is transcribed as {self.declared!r} still: send "
            f"{self.heard!r} or 'auto' in the next headers to transcribe it as spoken"
        )


@dataclass
class SpokenLanguage:
    """One participant's language, as asked for and as heard (carried over a reconnect as is)."""

    requested: str
    """A language code from the header, or `auto`."""
    current: str | None = None
    """`auto`: the language heard (the last window's until it settles). Else None."""
    settled: bool = False
    """`auto`: the language is kept. A declared one: it has been checked against the speech."""
    other: str | None = None
    other_count: int = 0
    """`auto`, settled: the other language the last final windows in a row were heard as, and how many."""

    @property
    def auto(self) -> bool:
        return self.requested == AUTO

    def window_language(self) -> str:
        """What a window is sent with: the code to decode in, or `auto` to decode in what it is heard as."""
        if self.auto:
            return self.current if self.settled and self.current else AUTO
        return self.requested

    def wants_detection(self, final: bool) -> bool:
        """Whether a window is to be detected (an `auto` one always is, until the language settles)."""
        if self.auto:
            return not self.settled or final
        return not self.settled

    def heard(
        self, language: str | None, probability: float | None, window_s: float, final: bool
    ) -> Contradiction | None:
        """What a detected window said (`probability` None: an English-only model)."""
        if language is None:
            return None
        if probability is None:  # no other language can be heard
            self.current, self.settled = (language if self.auto else None), True
            return None
        if self.auto:
            self._heard_auto(language, probability, window_s, final)
            return None
        if self.settled or window_s < SETTLE_MIN_S:
            return None
        self.settled = True
        if language != self.requested and probability >= STRONG:
            return Contradiction(self.requested, language, probability)
        return None

    def _heard_auto(self, language: str, probability: float, window_s: float, final: bool) -> None:
        if not self.settled:
            self.current = language
            sure = window_s >= SETTLE_MIN_S and probability >= SETTLE_PROBABILITY
            self.settled = sure or window_s >= SETTLE_ANYWAY_S
            return
        if not final:
            return
        if language == self.current or probability < STRONG:
            self.other, self.other_count = None, 0
            return
        self.other_count = self.other_count + 1 if language == self.other else 1
        self.other = language
        if self.other_count >= SWITCH_AFTER:
            self.current, self.other, self.other_count = language, None, 0
