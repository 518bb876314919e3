"""The recent finals of one participant: their text prompts the decoder, their audio goes before
a window's new audio as context, and their last words recognise the committed text when a window
hears it again."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace

from streaming.words import Word, normalize_word

COMMITTED_TAIL_WORDS = 8


@dataclass(frozen=True)
class PastFinal:
    text: str
    start: int
    end: int
    """Samples of the stream its audio spans."""
    pcm: bytes
    """Its audio, kept while windows may take it as context."""
    tail: str = ""
    tail_offset: int = 0
    """Its last `context_tail_words` words, and where the first of them starts in its audio."""


@dataclass(frozen=True)
class HistoryState:
    """All a `FinalsHistory` holds, to carry a participant's stream over a reconnect."""

    finals: tuple[PastFinal, ...]
    committed_tail: tuple[str, ...]


class FinalsHistory:
    def __init__(self, max_prompt_finals: int) -> None:
        self._max_prompt_finals = max_prompt_finals
        self._finals: deque[PastFinal] = deque(maxlen=max(max_prompt_finals, 1) + 16)
        self.committed_tail: list[str] = []
        """The last few committed words (normalised), to recognise them when re-heard."""

    def state(self) -> HistoryState:
        return HistoryState(tuple(self._finals), tuple(self.committed_tail))

    def restore(self, state: HistoryState) -> None:
        self._finals.clear()
        self._finals.extend(state.finals)  # the newest, as many as fit
        self.committed_tail = list(state.committed_tail)

    def add(self, final: PastFinal) -> None:
        self._finals.append(final)

    def remember_words(self, words: list[Word]) -> None:
        tail = self.committed_tail + [normalize_word(word.text) for word in words]
        self.committed_tail = tail[-COMMITTED_TAIL_WORDS:]

    @property
    def oldest_audio(self) -> int | None:
        """The first sample of the audio kept as context, if any."""
        return min((final.start for final in self._finals if final.pcm), default=None)

    def prompt(self, before_sample: int, context_finals: int) -> str:
        """The text of the last finals before the window's context whose audio ends by
        `before_sample` (both the context and the window are heard, not prompted: Whisper would
        otherwise skip the words it hears again)."""
        if not self._max_prompt_finals:
            return ""
        earlier = list(self._finals)[: len(self._finals) - context_finals]
        before_window = [f.text for f in earlier if f.end <= before_sample]
        return " ".join(before_window[-self._max_prompt_finals :])

    def context(self, budget_samples: int) -> list[PastFinal]:
        """The last finals whose audio, back to back, fits in `budget_samples`."""
        chosen: list[PastFinal] = []
        for final in reversed(self._finals):
            budget_samples -= final.end - final.start
            if not final.pcm or budget_samples < 0:
                break
            chosen.insert(0, final)
        return chosen

    def forget_old_audio(self, budget_samples: int) -> None:
        """Let go of the audio of finals that no longer fit in a window's context."""
        for index in range(len(self._finals) - 1, -1, -1):
            final = self._finals[index]
            budget_samples -= final.end - final.start
            if budget_samples < 0 and final.pcm:
                self._finals[index] = replace(final, pcm=b"")
