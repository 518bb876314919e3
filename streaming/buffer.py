"""One participant's pending audio and what the VAD said about it: the only place that converts
between samples, seconds, milliseconds and VAD frames.

Positions are samples of the participant's stream (sample 0 is the first it sent); the buffer
holds samples [window_start, received). Words before `committed_until` are final already, so the
speech still to transcribe starts at `pending_start`."""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from service.audio import SAMPLE_WIDTH_BYTES
from streaming.config import PolicyConfig


@dataclass(frozen=True)
class BufferState:
    """All a `StreamBuffer` holds, to carry a participant's stream over a reconnect."""

    audio: bytes
    window_start: int
    received: int
    committed_until: int
    arrivals: tuple[tuple[int, int], ...]
    first_frame: int
    frame_probs: tuple[float, ...]
    last_audio_ms: int | None


@dataclass(frozen=True)
class HeldBookkeeping:
    audio_bytes: int
    vad_frames: int
    chunk_arrivals: int


class StreamBuffer:
    def __init__(self, config: PolicyConfig, sample_rate: int) -> None:
        self._config = config
        self.rate = sample_rate
        self._frame = config.vad_frame_samples
        self._audio = bytearray()
        self.window_start = 0
        self.received = 0
        self.committed_until = 0
        """Words centred before this sample are final already."""
        self._arrivals: deque[tuple[int, int]] = deque()  # (chunk end sample, arrival ms)
        self._first_frame = 0
        self._frame_probs: list[float] = []
        self._speech_index: list[int] = []
        """Absolute indices of the kept frames scored as speech, in order: kept beside the
        probabilities as they come and go (`add`, `drop_until`, `restore`), because the policy asks
        which frames are speech several times for each chunk and for every word of each window:
        bisections here instead of walks over the probabilities."""
        self.last_audio_ms: int | None = None

    def state(self) -> BufferState:
        return BufferState(
            bytes(self._audio),
            self.window_start,
            self.received,
            self.committed_until,
            tuple(self._arrivals),
            self._first_frame,
            tuple(self._frame_probs),
            self.last_audio_ms,
        )

    def restore(self, state: BufferState) -> None:
        """Hold what `state` says; raises ValueError when it does not hold together."""
        if len(state.audio) != (state.received - state.window_start) * SAMPLE_WIDTH_BYTES:
            raise ValueError(
                f"{len(state.audio)} bytes of audio for samples [{state.window_start}, {state.received})"
            )
        if not 0 <= state.window_start <= state.received or state.first_frame < 0:
            raise ValueError(f"window [{state.window_start}, {state.received}) is not a stretch of a stream")
        self._audio = bytearray(state.audio)
        self.window_start = state.window_start
        self.received = state.received
        self.committed_until = state.committed_until
        self._arrivals = deque(state.arrivals)
        self._first_frame = state.first_frame
        self._frame_probs = list(state.frame_probs)
        self._speech_index = self._speech_among(self._first_frame, self._frame_probs)
        self.last_audio_ms = state.last_audio_ms

    # ---- units -------------------------------------------------------------------------------

    def samples(self, seconds: float) -> int:
        return int(seconds * self.rate)

    def seconds(self, samples: int) -> float:
        return samples / self.rate

    def wall_ms(self, sample: int) -> int:
        """When a sample was spoken, by the server clock: its chunk's arrival minus what followed it."""
        for chunk_end, arrival_ms in self._arrivals:
            if chunk_end > sample:
                return arrival_ms - round((chunk_end - sample) * 1000 / self.rate)
        return self.last_audio_ms or 0

    # ---- audio -------------------------------------------------------------------------------

    def add(self, pcm: bytes, speech_probs: Iterable[float], arrival_ms: int) -> None:
        """Append a chunk and the VAD probabilities of the frames it completed."""
        self._audio += pcm
        self.received += len(pcm) // SAMPLE_WIDTH_BYTES
        self._arrivals.append((self.received, arrival_ms))
        probs = [float(p) for p in speech_probs]
        self._speech_index += self._speech_among(self._first_frame + len(self._frame_probs), probs)
        self._frame_probs += probs
        self.last_audio_ms = arrival_ms

    def _speech_among(self, first_frame: int, probs: Sequence[float]) -> list[int]:
        threshold = self._config.speech_threshold
        return [first_frame + i for i, p in enumerate(probs) if p >= threshold]

    def held(self) -> HeldBookkeeping:
        """How much the buffer holds (none of it may grow with the length of a silence)."""
        return HeldBookkeeping(len(self._audio), len(self._frame_probs), len(self._arrivals))

    @property
    def window_seconds(self) -> float:
        return self.seconds(self.received - self.window_start)

    @property
    def pending_start(self) -> int:
        """Where audio not yet committed begins (the window may hold some overlap before it)."""
        return max(self.window_start, self.committed_until)

    def commit_until(self, sample: int) -> None:
        self.committed_until = max(self.committed_until, sample)

    def slice(self, start: int, end: int) -> bytes:
        lo = max(0, start - self.window_start) * SAMPLE_WIDTH_BYTES
        hi = max(0, end - self.window_start) * SAMPLE_WIDTH_BYTES
        return bytes(self._audio[lo:hi])

    def drop_until(self, sample: int) -> None:
        """Let go of the audio before `sample` (within the window), and of what tracks it."""
        sample = min(max(sample, self.window_start), self.received)
        del self._audio[: (sample - self.window_start) * SAMPLE_WIDTH_BYTES]
        self.window_start = sample
        while self._arrivals and self._arrivals[0][0] <= sample:
            self._arrivals.popleft()
        # Frames just before the window still tell whether its first word was heard as speech.
        margin = self.samples(self._config.word_vad_margin_s)
        first_kept = max(0, sample - margin) // self._frame
        if first_kept > self._first_frame:
            del self._frame_probs[: first_kept - self._first_frame]
            del self._speech_index[: bisect_left(self._speech_index, first_kept)]
            self._first_frame = first_kept

    def trim_leading_silence(self) -> None:
        """Drop audio before the speech (keeping a short lead-in); nothing pending is ever dropped.

        A blip too short to count as speech is forgotten once it is followed by a pause, so a long
        silence never accumulates in the window."""
        pad = self.samples(self._config.speech_pad_s)
        frames = self.speech_frames()
        blip_over = (
            self.speech_seconds() < self._config.min_speech_s
            and self.trailing_silence_seconds() >= self._config.end_of_speech_s
        )
        keep_from = frames[0] * self._frame - pad if frames and not blip_over else self.received - pad
        if keep_from > self.window_start:
            self.drop_until(keep_from)

    # ---- what the VAD heard ------------------------------------------------------------------

    def speech_frames(self) -> Sequence[int]:
        """Absolute indices of the pending audio's frames the VAD scored as speech, in order."""
        first = bisect_left(self._speech_index, _ceil_div(self.pending_start, self._frame))
        return self._speech_index[first:]

    def speech_starts(self, start: int, end: int) -> list[int]:
        """First samples of the pending speech frames that start in [start, end)."""
        frames = self.speech_frames()  # sorted: the frames that start in [start, end) are a slice
        first = bisect_left(frames, _ceil_div(start, self._frame))
        stop = bisect_left(frames, _ceil_div(end, self._frame))
        return [index * self._frame for index in frames[first:stop]]

    def speech_seconds_in(self, speech_frames: Sequence[int]) -> float:
        """Seconds of speech in these VAD frames (one entry per frame: index or first sample)."""
        return self.seconds(len(speech_frames) * self._frame)

    def speech_seconds(self) -> float:
        """Seconds of pending speech."""
        return self.speech_seconds_in(self.speech_frames())

    def speech_seconds_between(self, start: int, end: int) -> float:
        """Seconds of pending speech in samples [start, end)."""
        return self.speech_seconds_in(self.speech_starts(start, end))

    def last_speech_end(self, before: int) -> int:
        """End sample of the last speech frame that starts before `before` (or `before` if none)."""
        frames = self.speech_frames()
        count = bisect_left(frames, _ceil_div(before, self._frame))  # frames that start before it
        return (frames[count - 1] + 1) * self._frame if count else before

    def trailing_silence_seconds(self) -> float:
        frames = self.speech_frames()
        scored_until = self._first_frame + len(self._frame_probs)
        # No speech frame left (a cut can land past the VAD's end of speech while words are still
        # pending): the whole window is silence, else those words would never become final.
        silence_from = frames[-1] + 1 if frames else self.pending_start // self._frame
        return self.seconds(max(0, scored_until - silence_from) * self._frame)

    def heard_speech(self, start_s: float, end_s: float) -> bool:
        """Whether any frame within `word_vad_margin_s` of [start_s, end_s] is speech. Whisper makes
        up words in trailing silence ("which is a very important solution."); the VAD heard nothing
        there."""
        margin = self._config.word_vad_margin_s
        first = max(self.samples(start_s - margin) // self._frame, self._first_frame)
        last = min(
            self.samples(end_s + margin) // self._frame, self._first_frame + len(self._frame_probs) - 1
        )
        if last < first:
            return True  # not scored yet (the last few samples): give the word the benefit of the doubt
        index = bisect_left(self._speech_index, first)  # the first speech frame from `first` on
        return index < len(self._speech_index) and self._speech_index[index] <= last

    def longest_quiet_seconds(self, from_s: float, to_s: float) -> float:
        """The longest run of frames the VAD scored as non-speech from the frame holding `from_s`
        to the one holding `to_s` (as far as frames are scored)."""
        first = max(self.samples(from_s) // self._frame, self._first_frame)
        scored_until = self._first_frame + len(self._frame_probs)
        stop = min(self.samples(to_s) // self._frame + 1, scored_until)
        if stop <= first:
            return 0.0
        # The quiet runs are the gaps between the speech frames in [first, stop), and its ends.
        speech = self._speech_index
        previous, longest = first - 1, 0
        for index in speech[bisect_left(speech, first) : bisect_left(speech, stop)]:
            longest = max(longest, index - previous - 1)
            previous = index
        longest = max(longest, stop - 1 - previous)
        return self.seconds(longest * self._frame)


def _ceil_div(samples: int, frame: int) -> int:
    """The first frame that starts at or after `samples`."""
    return -(-samples // frame)
