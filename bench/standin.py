"""The pipeline benchmark's stand-in for the model: a fixed cost per model call, and the words the
real model heard offline where the window's audio came from.

It measures the pipeline itself (ingress, Redis, Celery, the worker's own work) at the throughput
a GPU would give the model. Nothing in the service can reach it: only the benchmark's own worker
entry point (`bench/pipeline_worker.py`) passes it to `tasks.transcribe.register_tasks`.

Audio crosses the service bit for bit, so a window's samples are found among the clips the
benchmark streams (`AudioIndex`): a few probes per window, each a key of `KEY_SAMPLES` samples,
say which clip and where; the words of the offline pass there are the window's words. The policy
then commits, cuts and ends utterances as it would with the model, and windows keep their real
lengths and rate."""

from __future__ import annotations

import json
import time
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.transcriber import Transcription, UnsupportedLanguageError, Window
from service.audio import SAMPLE_RATE
from service.contracts import WordTiming
from service.languages import ENGLISH

KEY_SAMPLES = 8
"""Samples in one probe's key: eight 16-bit samples of real audio are as good as unique in a
minute of speech; runs that repeat (digital silence) are left out of the index."""
PROBE_EVERY_S = 0.1
"""A window is probed this often: each probe places the next 0.1 s of it in a clip."""


@dataclass(frozen=True)
class StandinClip:
    pcm: bytes
    words: list[WordTiming]
    """The offline pass's words, times in seconds from the clip's start."""


def sample_keys(samples: np.ndarray, positions: np.ndarray | None = None) -> np.ndarray:
    """A 64-bit key of the `KEY_SAMPLES` samples starting at each position (default: every one)."""
    count = len(samples) - KEY_SAMPLES + 1
    if count <= 0:
        return np.zeros(0, dtype=np.uint64)
    at = np.arange(count) if positions is None else positions[positions < count]
    keys = np.zeros(len(at), dtype=np.uint64)
    for index in range(KEY_SAMPLES):  # a polynomial hash, vectorised over the positions
        # Only the probed samples are widened: the stand-in's CPU counts as the worker's.
        values = samples[at + index].astype(np.uint16).astype(np.uint64)
        keys = keys * np.uint64(1_000_003) + values
    return keys


class AudioIndex:
    """Where a window's samples come from: (clip, sample offset) for a key, if only one place has it."""

    def __init__(self, clips: Sequence[StandinClip]) -> None:
        self.clips = list(clips)
        self._starts = [[word.start for word in clip.words] for clip in self.clips]
        keys, places = [], []
        for number, clip in enumerate(self.clips):
            clip_keys = sample_keys(np.frombuffer(clip.pcm, dtype="<i2"))
            keys.append(clip_keys)
            places.append(np.stack([np.full(len(clip_keys), number), np.arange(len(clip_keys))], axis=1))
        all_keys = np.concatenate(keys) if keys else np.zeros(0, dtype=np.uint64)
        all_places = np.concatenate(places) if places else np.zeros((0, 2), dtype=np.int64)
        order = np.argsort(all_keys, kind="stable")
        sorted_keys = all_keys[order]
        unique, first, counts = np.unique(sorted_keys, return_index=True, return_counts=True)
        single = counts == 1
        self._keys = unique[single]
        self._places = all_places[order[first[single]]]

    def place(self, key: np.uint64) -> tuple[int, int] | None:
        return self.places(np.array([key], dtype=np.uint64))[0]

    def places(self, keys: np.ndarray) -> list[tuple[int, int] | None]:
        """`place` of each key, in one search of the index."""
        if len(self._keys) == 0:
            return [None] * len(keys)
        at = np.minimum(np.searchsorted(self._keys, keys), len(self._keys) - 1)
        hit = (self._keys[at] == keys).tolist()
        return [
            (clip, offset) if ok else None
            for (clip, offset), ok in zip(self._places[at].tolist(), hit, strict=True)
        ]

    def words_in(self, pcm: bytes) -> list[WordTiming]:
        """The offline words that start in the window, in window time (seconds from its start)."""
        samples = np.frombuffer(pcm, dtype="<i2")
        step = int(PROBE_EVERY_S * SAMPLE_RATE)
        probes = np.arange(0, len(samples), step)
        keys = sample_keys(samples, probes)
        seen: set[tuple[int, int]] = set()
        words = []
        for probe, place in zip(probes.tolist(), self.places(keys), strict=False):
            if place is None:
                continue
            clip, offset = place
            shift = (probe - offset) / SAMPLE_RATE  # clip time + shift = window time
            start_s, end_s = offset / SAMPLE_RATE, (offset + step) / SAMPLE_RATE
            starts = self._starts[clip]
            for number in range(bisect_left(starts, start_s), bisect_left(starts, end_s)):
                if (clip, number) not in seen:
                    seen.add((clip, number))
                    word = self.clips[clip].words[number]
                    moved = {"start": word.start + shift, "end": word.end + shift}
                    words.append(word.model_copy(update=moved))
        window_s = len(samples) / SAMPLE_RATE
        return sorted((w for w in words if w.end <= window_s), key=lambda w: w.start)


class FixedCostTranscriber:
    """`WindowTranscriber` for the pipeline benchmark: each call (one window or a batch) sleeps
    `call_ms`, as a model on a GPU would take that long whatever the batch, and answers with the
    offline words (`AudioIndex`). English only, as tiny.en."""

    def __init__(self, index: AudioIndex, call_ms: float) -> None:
        self._index = index
        self._call_s = call_ms / 1000.0
        self.load_s = 0.0
        self.decoder_calls = 0

    @classmethod
    def from_file(cls, path: Path, call_ms: float) -> FixedCostTranscriber:
        """The clips written by `write_standin_file`."""
        spec = json.loads(path.read_text(encoding="utf-8"))
        clips = [
            StandinClip(
                (path.parent / clip["pcm_file"]).read_bytes(),
                [WordTiming.model_validate(word) for word in clip["words"]],
            )
            for clip in spec["clips"]
        ]
        return cls(AudioIndex(clips), call_ms)

    def check_language(self, language: str) -> None:
        if language != ENGLISH:
            raise UnsupportedLanguageError(f"the stand-in serves English only, not {language!r}")

    def warm_up(self) -> float:
        return 0.0

    def transcribe_batch(self, windows: Sequence[Window]) -> list[Transcription]:
        for window in windows:
            self.check_language(window.language)
        time.sleep(self._call_s)
        self.decoder_calls += 1
        share = self._call_s / max(len(windows), 1)
        return [Transcription(self._index.words_in(window.pcm), share) for window in windows]


def write_standin_file(folder: Path, clips: dict[str, StandinClip]) -> Path:
    """The clips for `FixedCostTranscriber.from_file`: their PCM beside a JSON of their words."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for number, (name, clip) in enumerate(clips.items()):
        pcm_file = f"clip{number}.pcm"
        (folder / pcm_file).write_bytes(clip.pcm)
        words = [word.model_dump() for word in clip.words]
        entries.append({"name": name, "pcm_file": pcm_file, "words": words})
    path = folder / "standin.json"
    path.write_text(json.dumps({"clips": entries}), encoding="utf-8")
    return path
