"""The capacity benchmark's audio: corpus utterances ("clips") laid out as participants' tracks.

Two layouts, both pure (only `corpus_clips` reads files):

- a talker: one participant saying clip after clip, speech from start to end;
- a one-at-a-time meeting: the clips are turns on one timeline, turn j spoken by participant
  j mod size, every other track digital silence (zero samples) meanwhile.

Every talker (or meeting) of a scenario says the same clips, rotated: streams say different things
at any moment, yet the words of N streams are N times those of one, so the WER at N compares with
the WER of a single stream on the same words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from bench.corpus import CorpusItem
from bench.metrics import TimedWord
from bench.scoring import normalize_text
from service.audio import SAMPLE_RATE, SAMPLE_WIDTH_BYTES
from service.pcm_files import read_pcm

MAX_CLIP_S = 15.0
"""Longer items (the 35 s synthetic ones) are monologues, not turns of a conversation."""
TALK_GAP_S = 0.2
"""Between a talker's clips, beyond the silence each clip keeps around its speech: talk goes on."""
TURN_GAP_S = 0.5
"""Between two turns of a meeting."""
MEETING_SIZE = 5

T = TypeVar("T")


@dataclass(frozen=True)
class Clip:
    """One utterance: its audio (PCM s16le, 16 kHz mono) and its reference transcript."""

    name: str
    pcm: bytes
    reference: str

    @property
    def samples(self) -> int:
        return len(self.pcm) // SAMPLE_WIDTH_BYTES

    @property
    def duration_s(self) -> float:
        return self.samples / SAMPLE_RATE


@dataclass(frozen=True)
class Placement:
    clip: Clip
    start_sample: int

    @property
    def start_s(self) -> float:
        return self.start_sample / SAMPLE_RATE

    @property
    def end_sample(self) -> int:
        return self.start_sample + self.clip.samples


@dataclass(frozen=True)
class LaidTrack:
    """A participant's track: its clips where they are placed, zero samples everywhere else."""

    participant: str
    samples: int
    placements: tuple[Placement, ...]
    """In time order, never overlapping."""

    @property
    def duration_s(self) -> float:
        return self.samples / SAMPLE_RATE

    def pcm(self) -> bytes:
        audio = bytearray(self.samples * SAMPLE_WIDTH_BYTES)
        for placement in self.placements:
            start = placement.start_sample * SAMPLE_WIDTH_BYTES
            audio[start : start + len(placement.clip.pcm)] = placement.clip.pcm
        return bytes(audio)

    @property
    def reference(self) -> str:
        return " ".join(placement.clip.reference for placement in self.placements)

    def offline_words(self, words_by_clip: Mapping[str, Sequence[TimedWord]]) -> list[TimedWord]:
        """Each clip's offline words (times from the clip's start) moved to where the clip lies."""
        return [
            TimedWord(word.text, word.start + placement.start_s, word.end + placement.start_s)
            for placement in self.placements
            for word in words_by_clip[placement.clip.name]
        ]


# --- the clips ---------------------------------------------------------------------------------


def corpus_clips(items: Sequence[CorpusItem], language: str, max_clip_s: float = MAX_CLIP_S) -> list[Clip]:
    """Every utterance of the language's items that is at most `max_clip_s` long, once each.

    Items the manifest splits into segments (long-form reading, meetings) give one clip per
    segment, cut from the speaker's track; the others are a clip when they are short enough. The
    items take turns (first clip of each, then second, ...) so any prefix mixes voices.
    """
    per_item = [
        [clip for clip in _item_clips(item) if clip.duration_s <= max_clip_s]
        for item in items
        if item.language == language
    ]
    seen: set[str] = set()
    clips = []
    for clip in interleave(per_item):
        words = normalize_text(clip.reference)
        if words and words not in seen:  # the JFK clip is an item and a meeting's segment
            seen.add(words)
            clips.append(clip)
    return clips


def _item_clips(item: CorpusItem) -> list[Clip]:
    tracks = {track.participant: track for track in item.tracks}
    if not item.segments:
        if item.multi_speaker:
            return []
        track = item.tracks[0]
        return [Clip(item.name, read_pcm(track.audio), track.reference)]
    audio = {name: read_pcm(track.audio) for name, track in tracks.items()}
    return [
        Clip(
            f"{item.name}#{index}", cut(audio[segment.participant], segment.start, segment.end), segment.text
        )
        for index, segment in enumerate(item.segments)
    ]


def cut(pcm: bytes, start_s: float, end_s: float) -> bytes:
    """The samples from `start_s` to `end_s` (clamped to the audio)."""
    first, last = round(start_s * SAMPLE_RATE), round(end_s * SAMPLE_RATE)
    return pcm[max(0, first) * SAMPLE_WIDTH_BYTES : max(0, last) * SAMPLE_WIDTH_BYTES]


def interleave(lists: Sequence[Sequence[T]]) -> list[T]:
    """First elements of every list, then second elements, ... ([[a, b, c], [x]] -> [a, x, b, c])."""
    longest = max((len(values) for values in lists), default=0)
    return [values[index] for index in range(longest) for values in lists if index < len(values)]


def pick(clips: Sequence[Clip], seconds: float) -> list[Clip]:
    """The first clips that together last at least `seconds`."""
    picked: list[Clip] = []
    for clip in clips:
        if sum(chosen.duration_s for chosen in picked) >= seconds:
            break
        picked.append(clip)
    total = sum(clip.duration_s for clip in picked)
    if total < seconds:
        raise ValueError(
            f"the corpus holds {total:.0f} s of usable clips, fewer than the {seconds:g} s asked"
        )
    return picked


def rotate(values: Sequence[T], shift: int) -> list[T]:
    """[a, b, c] rotated by 1 -> [b, c, a]."""
    if not values:
        return []
    shift %= len(values)
    return [*values[shift:], *values[:shift]]


# --- layouts -----------------------------------------------------------------------------------


def talker_tracks(clips: Sequence[Clip], count: int, gap_s: float = TALK_GAP_S) -> list[LaidTrack]:
    """`count` talkers, one per meeting: talker k says the clips rotated by k, one after another."""
    return [_laid_end_to_end(f"talker{k + 1}", rotate(clips, k), gap_s) for k in range(count)]


def _laid_end_to_end(participant: str, clips: Sequence[Clip], gap_s: float) -> LaidTrack:
    placements, start = _timeline(clips, gap_s)
    return LaidTrack(participant, start, tuple(placements))


def one_at_a_time_meetings(
    clips: Sequence[Clip], meetings: int, size: int = MEETING_SIZE, gap_s: float = TURN_GAP_S
) -> list[list[LaidTrack]]:
    """`meetings` meetings of `size` participants taking turns; meeting m's turns are the clips
    rotated by m, turn j spoken by its participant j mod size."""
    return [_meeting(f"m{m + 1}", rotate(clips, m), size, gap_s) for m in range(meetings)]


def _meeting(name: str, turns: Sequence[Clip], size: int, gap_s: float) -> list[LaidTrack]:
    placements, length = _timeline(turns, gap_s)
    return [
        LaidTrack(f"{name}p{speaker + 1}", length, tuple(placements[speaker::size]))
        for speaker in range(size)
    ]


def _timeline(clips: Sequence[Clip], gap_s: float) -> tuple[list[Placement], int]:
    """The clips one after another with `gap_s` between them, and the total length in samples."""
    gap = round(gap_s * SAMPLE_RATE)
    placements, start = [], 0
    for index, clip in enumerate(clips):
        start += gap if index else 0
        placements.append(Placement(clip, start))
        start += clip.samples
    return placements, start
