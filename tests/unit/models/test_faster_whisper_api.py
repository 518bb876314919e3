"""The parts of faster-whisper that are not its public API and that `models/` relies
on, checked against the release pyproject.toml pins. A new release fails here, loudly and by name,
instead of silently in a window's words; when it does, re-read what changed, adapt the
transcriber (engine.py, batch.py, word_timings.py), then move the pin and the fingerprint below together."""

from __future__ import annotations

import hashlib
import inspect
import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from faster_whisper import WhisperModel
from faster_whisper.feature_extractor import FeatureExtractor
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens, merge_punctuations

pytestmark = pytest.mark.unit

PYPROJECT = Path(__file__).resolve().parents[3] / "pyproject.toml"

ADD_WORD_TIMESTAMPS_SHA256 = "74046c2810f714e0"
"""The source of `WhisperModel.add_word_timestamps` in the pinned release: `timed_words` follows
its rules for a window's words, so a change there must be carried over by hand."""


def pinned_spec() -> str:
    dependencies = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["optional-dependencies"][
        "worker"
    ]
    (spec,) = [d for d in dependencies if re.match(r"faster-whisper\b", d)]
    return str(spec)


def test_the_pin_allows_one_minor_release_series_and_it_is_installed() -> None:
    match = re.fullmatch(r"faster-whisper>=(\d+)\.(\d+)\.(\d+),<(\d+)\.(\d+)", pinned_spec())
    assert match, f"pin faster-whisper to one minor series (>=X.Y.Z,<X.Y+1), not {pinned_spec()!r}"
    major, minor, patch, below_major, below_minor = map(int, match.groups())
    assert (below_major, below_minor) == (major, minor + 1)
    installed = tuple(int(part) for part in version("faster-whisper").split(".")[:3])
    assert (major, minor, patch) <= installed < (major, minor + 1, 0), version("faster-whisper")


@pytest.mark.parametrize(
    ("function", "parameters"),
    [
        (WhisperModel.find_alignment, ["self", "tokenizer", "text_tokens", "encoder_output", "num_frames"]),
        (WhisperModel.encode, ["self", "features"]),
        (get_compression_ratio, ["text"]),
        (get_suppressed_tokens, ["tokenizer", "suppress_tokens"]),
        (merge_punctuations, ["alignment", "prepended", "appended"]),
        (Tokenizer.__init__, ["self", "tokenizer", "multilingual", "task", "language"]),
        (FeatureExtractor.__call__, ["self", "waveform", "padding", "chunk_length"]),
    ],
)
def test_the_private_functions_we_call_keep_their_parameters(function: object, parameters: list[str]) -> None:
    assert callable(function)
    assert list(inspect.signature(function).parameters)[: len(parameters)] == parameters


def test_the_word_timing_rules_timed_words_follows_are_unchanged() -> None:
    source = inspect.getsource(WhisperModel.add_word_timestamps)
    assert hashlib.sha256(source.encode()).hexdigest()[:16] == ADD_WORD_TIMESTAMPS_SHA256, (
        "faster-whisper changed add_word_timestamps: compare it with models/word_timings.py timed_words"
    )
