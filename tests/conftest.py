"""Fixtures every test tier shares. Integration fixtures live in tests/integration/conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The evaluation corpus (SPEC §6): $CORPUS_DIR, else `shared/corpus` beside the repository."""
    override = os.environ.get("CORPUS_DIR")
    candidates = [Path(override)] if override else [REPO_ROOT.parent / "shared" / "corpus"]
    for candidate in candidates:
        if (candidate / "manifest.json").is_file():
            return candidate
    pytest.fail(f"no corpus at {candidates[0]}; set CORPUS_DIR to the folder holding manifest.json")
