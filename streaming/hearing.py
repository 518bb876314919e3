"""A hypothesis held against what the VAD heard: which of its words are real, whether it stopped
short of the speech or skipped some, and how long the speaker paused between two words. Reads the
buffer, changes nothing."""

from __future__ import annotations

from collections.abc import Sequence

from service.contracts import WordTiming
from streaming.agreement import without_overlap
from streaming.buffer import StreamBuffer
from streaming.config import PolicyConfig
from streaming.history import FinalsHistory
from streaming.words import Word, normalize_word


class Hearing:
    def __init__(self, buffer: StreamBuffer, history: FinalsHistory, config: PolicyConfig) -> None:
        self._buffer = buffer
        self._history = history
        self._config = config

    def stream_words(
        self, window_words: Sequence[WordTiming], start: int, end: int, context_samples: int, final: bool
    ) -> list[Word]:
        """A window's words (times relative to its audio, which holds `context_samples` of context
        before samples [start, end)) in stream time, without those of the overlap already
        committed and those the VAD heard no speech near."""
        buffer = self._buffer
        offset = buffer.seconds(start - context_samples)
        limit = buffer.seconds(end)
        # In a final window nothing real starts after the speech the VAD heard: a word there is
        # Whisper continuing into the silence ("... analogous duties. Thanks.").
        speech_end_s = buffer.seconds(buffer.last_speech_end(end)) if final else limit
        words = []
        for word in window_words:
            if not normalize_word(word.text):
                continue  # a lone "." or "...": nothing a reader needs, and it made ". ." finals
            word_start = min(offset + max(word.start, 0.0), limit)
            word_end = min(max(offset + word.end, word_start), limit)
            if word_start < speech_end_s and buffer.heard_speech(word_start, word_end):
                words.append(Word(word.text, word_start, word_end, word.probability))
        return without_overlap(words, self._history.committed_tail, buffer.seconds(buffer.committed_until))

    def stalled(self, words: Sequence[Word], window_end: int) -> bool:
        """Whether a window came back with far fewer words than the speech the VAD heard in it."""
        config = self._config
        if not config.stalled_words_per_s:
            return False
        speech_s = self._buffer.speech_seconds_between(0, window_end)
        if speech_s < config.stalled_min_speech_s:
            return False
        return len(words) < config.stalled_words_per_s * speech_s

    def speech_after(self, words: Sequence[Word], end: int) -> float:
        """Seconds of pending speech (by the VAD) after the last of `words` and before `end`: all
        of it when there are no words."""
        last_end = self._buffer.samples(words[-1].end) if words else 0
        return self._buffer.speech_seconds_between(last_end, end)

    def stopped_early(self, words: Sequence[Word], end: int) -> bool:
        """Whether the VAD heard `unheard_speech_s` of speech after the last of `words`."""
        return self.speech_after(words, end) >= self._config.unheard_speech_s

    def skipped_start(self, words: Sequence[Word]) -> bool:
        """Whether the VAD heard `unheard_speech_s` of pending speech before the first word."""
        if not words:
            return False
        buffer = self._buffer
        before = buffer.speech_seconds_between(buffer.pending_start, buffer.samples(words[0].start))
        return before >= self._config.unheard_speech_s

    def final_cut(self, words: list[Word], end: int) -> int:
        """Where a final window's commit ends: at its end, unless the VAD heard a long stretch of
        speech after its last word (Whisper stopped early, or a decoding loop was cut off there):
        that audio stays pending, and the next final window transcribes it."""
        if not words or not self.stopped_early(words, end):
            return end
        return min(end, self._buffer.samples(words[-1].end) + self._buffer.samples(self._config.final_tail_s))

    def pause_between(self, last: Word, following: Word | None) -> float:
        """Silence between two words: the gap between their times, or the longest run of frames
        the VAD scored as non-speech between their middles (Whisper often stretches a word over
        the pause after it). No word heard after `last` yet (a final window's last word): 0, as
        the end of speech sends the utterance anyway."""
        if following is None:
            return 0.0
        gap = max(0.0, following.start - last.end)
        middles = ((last.start + last.end) / 2, (following.start + following.end) / 2)
        return max(gap, self._buffer.longest_quiet_seconds(*middles))
