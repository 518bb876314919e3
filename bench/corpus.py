"""The evaluation corpus as the benchmark uses it: `manifest.json` items, their tracks and references."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.audio import SAMPLE_WIDTH_BYTES

REPO_ROOT = Path(__file__).resolve().parents[1]
NO_LANGUAGE = "none"
"""The manifest's language of silence and noise: streamed in the benchmark's language, never skipped."""
SINGLE_PARTICIPANT = "spk1"


@dataclass(frozen=True)
class Track:
    participant: str
    audio: Path
    reference: str


@dataclass(frozen=True)
class Segment:
    """One utterance of a concatenated or multi-speaker item, as the manifest places it."""

    participant: str
    """The track it is on."""
    start: float
    end: float
    """Seconds from the start of the track, its silence margins included."""
    text: str


@dataclass(frozen=True)
class CorpusItem:
    name: str
    language: str
    duration_s: float
    tracks: list[Track]
    """One per participant: the speaker files of a meeting, else the item's own file."""
    segments: list[Segment] = field(default_factory=list)
    """The manifest's `segments`, for items made of several utterances; empty for the others."""

    @property
    def multi_speaker(self) -> bool:
        return len(self.tracks) > 1


REPO_CORPUS = REPO_ROOT / "corpus"
AUDIO_SUFFIXES = (".flac", ".wav")
"""How a corpus names its audio: the repository's is FLAC, a corpus made by `bench.heldout` is WAV."""


PCM_FINGERPRINT = ("samples", "pcm_sha256")
"""What the manifest records of each audio file's decoded PCM: its sample count and SHA-256, so a
lossless copy (the repository's FLAC) is checked against the WAV it was made from."""


def pcm_fingerprint(pcm: bytes) -> dict[str, Any]:
    """The manifest's fingerprint of PCM s16le bytes, keyed as in PCM_FINGERPRINT."""
    samples_key, checksum_key = PCM_FINGERPRINT
    return {samples_key: len(pcm) // SAMPLE_WIDTH_BYTES, checksum_key: hashlib.sha256(pcm).hexdigest()}


def default_corpus_dir() -> Path:
    """$CORPUS_DIR (the tests read it too), else the repository's own `corpus/`."""
    override = os.environ.get("CORPUS_DIR")
    return Path(override) if override else REPO_CORPUS


def audio_file(folder: Path, stem: str) -> Path:
    """The audio file `stem` of a corpus folder, FLAC or WAV (`jfk_ask_not`, `meeting_3spk_dev.spk1`)."""
    candidates = [folder / f"{stem}{suffix}" for suffix in AUDIO_SUFFIXES]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no {' or '.join(path.name for path in candidates)} in {folder}")


def load_corpus(folder: Path) -> list[CorpusItem]:
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"no manifest.json in {folder}; pass --corpus DIR")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    return [_item(folder, entry) for entry in manifest["items"]]


def _item(folder: Path, entry: dict[str, Any]) -> CorpusItem:
    files = entry["files"]
    track_files = files.get("tracks") or {SINGLE_PARTICIPANT: files}
    tracks = [
        Track(
            participant=participant,
            audio=folder / spec["audio"],
            reference=(folder / spec["reference"]).read_text(encoding="utf-8").strip(),
        )
        for participant, spec in track_files.items()
    ]
    segments = [
        Segment(
            participant=segment.get("speaker", SINGLE_PARTICIPANT),
            start=float(segment["start"]),
            end=float(segment["end"]),
            text=segment["text"],
        )
        for segment in entry.get("segments", [])
    ]
    return CorpusItem(
        name=entry["name"],
        language=entry["language"],
        duration_s=float(entry["duration_s"]),
        tracks=tracks,
        segments=segments,
    )


def select_items(
    items: Sequence[CorpusItem], names: Sequence[str], languages: Collection[str]
) -> list[CorpusItem]:
    """The named items in the order given, else every item in `languages` plus silence and noise."""
    if not names:
        return [item for item in items if item.language in languages or item.language == NO_LANGUAGE]
    by_name = {item.name: item for item in items}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise ValueError(f"not in the corpus: {', '.join(unknown)}; it has {', '.join(by_name)}")
    return [by_name[name] for name in names]
