"""The repository's own corpus: every audio file decodes to exactly the samples of the WAV it was made
from (the count and checksum its manifest records), and the tracked tree stays small."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bench.corpus import PCM_FINGERPRINT, REPO_CORPUS, REPO_ROOT, load_corpus, pcm_fingerprint
from bench.scoring import normalize_text
from service.audio import SAMPLE_RATE
from service.pcm_files import read_pcm

pytestmark = pytest.mark.unit

MAX_TRACKED_BYTES = 12 * 1024 * 1024
"""A clone carries the corpus: keep it losslessly compressed, and the whole tree under 12 MB."""


KEYTERMS_CORPUS = REPO_CORPUS / "keyterms"
"""A corpus of its own (`bench.keyterms`), kept out of the dev corpus every benchmark streams."""
CORPORA = (REPO_CORPUS, KEYTERMS_CORPUS)


def audio_specs(corpus: Path) -> list[dict[str, Any]]:
    """The file spec of every audio file the manifest lists: items, meeting mixes and their tracks."""
    manifest = json.loads((corpus / "manifest.json").read_text(encoding="utf-8"))
    specs = []
    for item in manifest["items"]:
        specs += [item["files"], *item["files"].get("tracks", {}).values()]
    return specs


@pytest.mark.parametrize(
    ("corpus", "spec"),
    [(corpus, spec) for corpus in CORPORA for spec in audio_specs(corpus)],
    ids=lambda value: value["audio"] if isinstance(value, dict) else value.name,
)
def test_each_audio_file_decodes_to_the_samples_its_manifest_records(
    corpus: Path, spec: dict[str, Any]
) -> None:
    assert spec["audio"].endswith(".flac")
    pcm = read_pcm(corpus / spec["audio"])

    assert pcm_fingerprint(pcm) == {key: spec[key] for key in PCM_FINGERPRINT}


@pytest.mark.parametrize("corpus", CORPORA, ids=lambda corpus: corpus.name)
def test_each_item_lasts_as_long_as_its_manifest_says(corpus: Path) -> None:
    for item in load_corpus(corpus):
        for track in item.tracks:
            seconds = len(read_pcm(track.audio)) / 2 / SAMPLE_RATE
            assert abs(seconds - item.duration_s) < 0.001, (track.audio.name, seconds, item.duration_s)


def test_the_folder_holds_what_the_manifest_lists_and_its_readme() -> None:
    listed = {"manifest.json", "README.md", KEYTERMS_CORPUS.name}
    for spec in audio_specs(REPO_CORPUS):
        listed |= {spec["audio"], spec["reference"]}
    assert {path.name for path in REPO_CORPUS.iterdir()} == listed
    keyterms = {"manifest.json"}
    for spec in audio_specs(KEYTERMS_CORPUS):
        keyterms |= {spec["audio"], spec["reference"]}
    assert {path.name for path in KEYTERMS_CORPUS.iterdir()} == keyterms


def test_every_word_of_an_items_keyterms_is_in_its_reference() -> None:
    manifest = json.loads((KEYTERMS_CORPUS / "manifest.json").read_text(encoding="utf-8"))
    for entry in manifest["items"]:
        reference = normalize_text(
            (KEYTERMS_CORPUS / entry["files"]["reference"]).read_text(encoding="utf-8")
        )
        assert entry["keyterms"]
        for term in entry["keyterms"]:
            assert f" {normalize_text(term)} " in f" {reference} ", term


def test_the_tracked_tree_stays_under_12_mb() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    sizes = {name.decode(): (REPO_ROOT / name.decode()).stat().st_size for name in tracked if name}
    total = sum(sizes.values())
    largest = sorted(sizes.items(), key=lambda pair: -pair[1])[:5]
    assert total <= MAX_TRACKED_BYTES, f"{total / 1e6:.1f} MB tracked; largest: {largest}"
