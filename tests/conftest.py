"""Fixtures every test tier shares. Integration fixtures live in tests/integration/conftest.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bench.corpus import audio_file, default_corpus_dir


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The evaluation corpus: $CORPUS_DIR, else the repository's own `corpus/`."""
    folder = default_corpus_dir()
    if not (folder / "manifest.json").is_file():
        pytest.fail(f"no corpus at {folder}; set CORPUS_DIR to the folder holding manifest.json")
    return folder


@pytest.fixture(scope="session")
def corpus_audio(corpus_dir: Path) -> Callable[[str], Path]:
    """The audio file of a corpus item or track by its name (`jfk_ask_not`, `meeting_3spk_dev.spk1`)."""
    return lambda name: audio_file(corpus_dir, name)
