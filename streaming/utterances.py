"""Committed words become utterances: where an utterance ends, its id and `ts`, and the interims
and finals a client receives for it."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from streaming.config import PolicyConfig
from streaming.words import Word, ends_phrase, ends_sentence, is_function_word, join_words, mean_probability


@dataclass(frozen=True)
class Transcript:
    utterance_id: str
    kind: Literal["interim", "final"]
    text: str
    ts_ms: int
    probability: float
    pcm: bytes | None = None
    start_s: float = 0.0
    """Stream time of the first word's start and the last word's end (for measurements)."""
    end_s: float = 0.0
    committed_words: int = 0
    """Leading words that no later interim or final of the utterance changes (all of a final's)."""
    words: tuple[Word, ...] = ()
    """The words `text` joins, with their stream times (`start_s` is the first one's start)."""


@dataclass(frozen=True)
class CommittedPiece:
    """Words committed (they will never change) but not yet sent: part of the open utterance."""

    words: list[Word]
    pcm: bytes | None
    """Their audio, for WHISPER_RETURN_TRANSCRIBED_AUDIO."""
    pause_after: float
    """Seconds of silence after the last word, as far as was known when it was committed."""


@dataclass(frozen=True)
class _Utterance:
    id: str
    ts_ms: int


@dataclass(frozen=True)
class UtterancesState:
    """All `Utterances` holds, to carry a participant's stream over a reconnect: the open
    utterance keeps its id and `ts`."""

    open: tuple[CommittedPiece, ...]
    utterance_id: str | None
    utterance_ts_ms: int
    last_interim: str
    last_ts_ms: int


def new_uuid7() -> str:
    """A UUIDv7: 48 bits of Unix milliseconds, then random bits; sorts by creation time."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return str(uuid.UUID(int=value))


def ends_utterance(last: Word, pause_after: float, config: PolicyConfig) -> bool:
    """Whether an utterance ends at `last`: a sentence end the speaker paused after, or any word
    but a function word followed by the VAD's end of speech (Whisper writes no full stop for
    some voices at all)."""
    if ends_sentence(last) and pause_after >= config.sentence_pause_s:
        return True
    return pause_after >= config.end_of_speech_s and not is_function_word(last)


class Utterances:
    """The open utterance: its committed pieces until its final goes out."""

    def __init__(
        self, config: PolicyConfig, new_id: Callable[[], str], spoken_at_ms: Callable[[float], int]
    ) -> None:
        self._config = config
        self._new_id = new_id
        self._spoken_at_ms = spoken_at_ms
        """Server time (ms) at which a stream time (s) was spoken."""
        self._open: list[CommittedPiece] = []
        self._utterance: _Utterance | None = None
        self._last_interim = ""
        self._last_ts_ms = 0

    @property
    def has_open(self) -> bool:
        return bool(self._open)

    def state(self) -> UtterancesState:
        utterance = self._utterance
        return UtterancesState(
            tuple(self._open),
            utterance.id if utterance else None,
            utterance.ts_ms if utterance else 0,
            self._last_interim,
            self._last_ts_ms,
        )

    def restore(self, state: UtterancesState) -> None:
        self._open = list(state.open)
        open_id = state.utterance_id
        self._utterance = None if open_id is None else _Utterance(open_id, state.utterance_ts_ms)
        self._last_interim = state.last_interim
        self._last_ts_ms = state.last_ts_ms

    def add(self, piece: CommittedPiece) -> None:
        self._current(piece.words[0])  # its ts: when its first word was spoken
        self._open.append(piece)

    def finals_due(self, end_of_speech: bool) -> list[Transcript]:
        """The finals the open pieces now make: each utterance up to a piece that ends one, all of
        it at the end of speech, and parts of one that grew past `max_utterance_s`."""
        out = self._send_ended()
        if end_of_speech:
            out += self.send_all()
        while self._open_seconds() > self._config.max_utterance_s:
            out += self._send(self._best_boundary())
        return out

    def send_all(self) -> list[Transcript]:
        return self._send(len(self._open))

    def interim(self, pending: list[Word]) -> Transcript | None:
        """The open utterance so far: its committed words, then the hypothesis after them (None
        when it reads as the last interim did)."""
        committed = [word for piece in self._open for word in piece.words]
        words = committed + pending
        text = join_words(words)
        if not text or text == self._last_interim:
            return None
        self._last_interim = text
        utterance = self._current(words[0])
        return Transcript(
            utterance.id,
            "interim",
            text,
            utterance.ts_ms,
            mean_probability(words),
            start_s=words[0].start,
            end_s=words[-1].end,
            committed_words=len(committed),
            words=tuple(words),
        )

    def _send_ended(self) -> list[Transcript]:
        """The finals of every utterance the open pieces end (a piece ends where an utterance may)."""
        out: list[Transcript] = []
        sent = 0
        for count, piece in enumerate(list(self._open), start=1):
            if ends_utterance(piece.words[-1], piece.pause_after, self._config):
                out += self._send(count - sent)
                sent = count
        return out

    def _open_seconds(self) -> float:
        if not self._open:
            return 0.0
        return self._open[-1].words[-1].end - self._open[0].words[0].start

    def _best_boundary(self) -> int:
        """How many open pieces a too-long utterance sends: up to its last sentence end, else its
        last comma, else its last pause of `sentence_pause_s`, not after a function word where
        anything else will do. The latest boundary wins, whatever the short pauses after earlier
        ones: an early cut leaves its last word waiting up to the whole utterance for its final
        (a held-out voice that Whisper wrote no full stops for got finals seconds late)."""

        def score(count: int) -> tuple[bool, int, bool, int]:
            last = self._open[count - 1]
            word = last.words[-1]
            mark = 2 if ends_sentence(word) else 1 if ends_phrase(word) else 0
            paused = mark == 0 and last.pause_after >= self._config.sentence_pause_s
            return not is_function_word(word), mark, paused, count

        return max(range(1, len(self._open) + 1), key=score)

    def _send(self, count: int) -> list[Transcript]:
        """The final of the open utterance's first `count` pieces; the rest starts the next one."""
        if count <= 0 or not self._open:
            return []
        pieces, self._open = self._open[:count], self._open[count:]
        words = [word for piece in pieces for word in piece.words]
        utterance = self._current(words[0])
        pcm = b"".join(piece.pcm or b"" for piece in pieces) if self._config.return_audio else None
        self._utterance = None
        self._last_interim = ""
        if self._open:
            self._current(self._open[0].words[0])
        return [
            Transcript(
                utterance.id,
                "final",
                join_words(words),
                utterance.ts_ms,
                mean_probability(words),
                pcm,
                words[0].start,
                words[-1].end,
                committed_words=len(words),
                words=tuple(words),
            )
        ]

    def _current(self, first_word: Word) -> _Utterance:
        if self._utterance is None:
            ts = max(self._spoken_at_ms(first_word.start), self._last_ts_ms)
            self._last_ts_ms = ts
            self._utterance = _Utterance(self._new_id(), ts)
        return self._utterance
