"""Is this folder a CTranslate2 Whisper model the workers can load? Files, load, one transcription.

`streaming-whisper models verify PATH` and `models install` (before it moves a model into place)
both use `verify_model`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.catalogue import MODEL_FILE
from service.audio import SAMPLE_RATE

REQUIRED_FILES = (MODEL_FILE, "config.json", "tokenizer.json")
"""Without tokenizer.json faster-whisper would fetch a tokenizer from the Hugging Face Hub."""
VOCABULARY_FILES = ("vocabulary.json", "vocabulary.txt")
MULTILINGUAL_VOCABULARY_SIZE = 51_865
"""Whisper's multilingual vocabulary; the English-only models have one token fewer."""
CHECK_THREADS = 2
TONE_HZ = 440.0
TONE_AMPLITUDE = 0.1
CHECK_MAX_TOKENS = 8
"""Enough to run the decoder; a tone needs no more, and a made-up loop stays short."""


class VerifyError(RuntimeError):
    """The folder does not hold a loadable Whisper model; the message says why."""


@dataclass(frozen=True)
class ModelCheck:
    folder: Path
    multilingual: bool
    languages: int
    size_bytes: int
    load_s: float
    transcribe_s: float

    def describe(self) -> str:
        kind = f"multilingual ({self.languages} languages)" if self.multilingual else "English-only"
        return (
            f"{self.folder}: a loadable CTranslate2 Whisper model, {kind}, "
            f"{self.size_bytes / 1e6:.0f} MB; loaded in {self.load_s:.1f} s and transcribed 1 s of "
            f"audio in {self.transcribe_s:.1f} s on CPU (int8)"
        )


def check_files(folder: Path) -> None:
    if not folder.exists():
        raise VerifyError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise VerifyError(f"{folder}: not a folder (give the folder that holds {MODEL_FILE})")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if not any((folder / name).is_file() for name in VOCABULARY_FILES):
        missing.append(" or ".join(VOCABULARY_FILES))
    if missing:
        raise VerifyError(f"{folder}: not a CTranslate2 Whisper model folder; missing {', '.join(missing)}")


def vocabulary_size(folder: Path) -> int | None:
    """Tokens in the model's vocabulary (it tells multilingual from English-only without loading)."""
    as_json = folder / "vocabulary.json"
    if as_json.is_file():
        tokens = json.loads(as_json.read_text(encoding="utf-8"))
        return len(tokens) if isinstance(tokens, list) else None
    as_text = folder / "vocabulary.txt"
    if as_text.is_file():
        return len(as_text.read_text(encoding="utf-8").splitlines())
    return None


def is_multilingual(folder: Path) -> bool | None:
    """None when the folder has no readable vocabulary."""
    try:
        size = vocabulary_size(folder)
    except (OSError, ValueError):
        return None
    return None if size is None else size >= MULTILINGUAL_VOCABULARY_SIZE


def verify_model(folder: Path) -> ModelCheck:
    """Files present, loads with faster-whisper on CPU (int8), transcribes 1 s of a tone."""
    check_files(folder)
    from faster_whisper import WhisperModel

    started = time.perf_counter()
    try:
        model = WhisperModel(
            str(folder), device="cpu", compute_type="int8", cpu_threads=CHECK_THREADS, local_files_only=True
        )
    except Exception as error:  # CTranslate2 and tokenizers raise bare RuntimeError/Exception: all mean "no"
        raise VerifyError(f"{folder}: does not load as a Whisper model: {error}") from error
    loaded = time.perf_counter()
    tone = TONE_AMPLITUDE * np.sin(2 * np.pi * TONE_HZ * np.arange(SAMPLE_RATE) / SAMPLE_RATE)
    try:
        segments, _info = model.transcribe(
            tone.astype(np.float32),
            language="en",
            beam_size=1,
            temperature=0.0,
            condition_on_previous_text=False,
            max_new_tokens=CHECK_MAX_TOKENS,
        )
        list(segments)  # decoding is lazy
    except Exception as error:  # the same boundary: any failure here means the model is unusable
        raise VerifyError(f"{folder}: loads, but failed to transcribe 1 s of audio: {error}") from error
    return ModelCheck(
        folder=folder,
        multilingual=bool(model.model.is_multilingual),
        languages=int(model.model.num_languages),
        size_bytes=sum(path.stat().st_size for path in folder.iterdir() if path.is_file()),
        load_s=loaded - started,
        transcribe_s=time.perf_counter() - loaded,
    )
