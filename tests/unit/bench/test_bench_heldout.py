"""The held-out corpus builder: passages, layout of utterances in time, and a whole corpus on disk
spoken by a stand-in voice (a Python process writing a tone per utterance, as flite writes speech)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.corpus import load_corpus
from bench.heldout import (
    LEAD_S,
    PASSAGES_FILE,
    PAUSE_S,
    Placed,
    Voice,
    build_corpus,
    copy_items_without_speech,
    mix,
    place_turns,
    read_passages,
    speak,
    trim_silence,
)
from bench.perturb import read_samples
from service.audio import SAMPLE_RATE

pytestmark = pytest.mark.unit

TONE_VOICE_SCRIPT = """
import struct, sys, wave
words = len(open(sys.argv[1], encoding="utf-8").read().split())
tone = struct.pack("<2h", 8000, -8000) * (800 * words)
silence = bytes(3200)
with wave.open(sys.argv[2], "wb") as out:
    out.setnchannels(1); out.setsampwidth(2); out.setframerate(16000)
    out.writeframes(silence + tone + silence)
"""
"""Speaks 0.1 s of a square wave per word, with 0.1 s of silence either side."""


def tone_voice(name: str) -> Voice:
    return Voice(
        name, f"tone {name}", lambda text, wav: [sys.executable, "-c", TONE_VOICE_SCRIPT, text, str(wav)]
    )


def test_passages_are_utterances_separated_by_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "passages.txt"
    path.write_text("# a comment\n\nOne.\nTwo.\n\n\nThree.\n", encoding="utf-8")
    assert read_passages(path) == [["One.", "Two."], ["Three."]]


def test_the_shipped_passages_have_no_digits_the_scorer_would_not_match() -> None:
    passages = read_passages(PASSAGES_FILE)
    assert len(passages) >= 8
    assert not any(char.isdigit() for passage in passages for line in passage for char in line)


def test_silence_is_trimmed_at_both_ends_only() -> None:
    samples = np.array([0, 3, 500, 0, 0, 700, 10, 0], dtype="<i2")
    assert trim_silence(samples).tolist() == [500, 0, 0, 700]
    assert not len(trim_silence(np.zeros(5, dtype="<i2")))


def test_utterances_follow_each_other_with_pauses_and_turns_may_overlap_a_little() -> None:
    second = np.ones(SAMPLE_RATE)
    turns = [("a", [second, second], ["one", "two"]), ("b", [second], ["three"])]
    placed = place_turns(turns, np.random.default_rng(1))
    assert [p.speaker for p in placed] == ["a", "a", "b"]
    assert placed[0].start_s == LEAD_S
    pause = placed[1].start_s - placed[0].end_s
    assert PAUSE_S[0] <= pause <= PAUSE_S[1]
    assert placed[2].start_s >= placed[1].end_s - 0.2


def test_each_track_holds_only_its_speaker_and_the_mix_holds_both() -> None:
    placed = [Placed("a", 0.5, "x", np.full(100, 7.0)), Placed("b", 1.0, "y", np.full(100, 5.0))]
    track_a, track_b, both = mix(placed, "a"), mix(placed, "b"), mix(placed)
    assert (
        len(track_a) == len(track_b) == len(both) == round((1.0 + 100 / SAMPLE_RATE + LEAD_S) * SAMPLE_RATE)
    )
    assert track_a.sum() == 700 and track_b.sum() == 500 and both.sum() == 1200


def test_a_voice_that_fails_stops_the_build_with_its_message(tmp_path: Path) -> None:
    failing = Voice(
        "bad", "fails", lambda text, wav: [sys.executable, "-c", "import sys; sys.exit('no voice')"]
    )
    with pytest.raises(SystemExit, match="no voice"):
        speak(failing, "hello", tmp_path)
    missing = Voice("gone", "missing", lambda text, wav: ["no-such-synthesiser-here", text])
    with pytest.raises(SystemExit, match="not installed: apt-get install"):
        speak(missing, "hello", tmp_path)


def test_the_corpus_loads_as_the_benchmark_reads_it(tmp_path: Path) -> None:
    voices = {name: tone_voice(name) for name in ("slt", "rms", "awb", "slt_hts")}
    out = tmp_path / "heldout"
    entries = build_corpus(out, seed=3, voices=voices)
    (out / "manifest.json").write_text(json.dumps({"items": entries}), encoding="utf-8")

    items = {item.name: item for item in load_corpus(out)}
    meeting = items["meeting_heldout_3spk_1"]
    assert meeting.multi_speaker and [t.participant for t in meeting.tracks] == ["spk1", "spk2", "spk3"]
    passages = read_passages()
    assert meeting.tracks[0].reference == " ".join(passages[0] + passages[3])
    assert {"longform_heldout_slt_hts", "longform_heldout_rms", "longform_heldout_awb"} <= set(items)
    for item in items.values():
        for track in item.tracks:
            samples = read_samples(track.audio)
            assert abs(len(samples) - item.duration_s * SAMPLE_RATE) <= SAMPLE_RATE / 1000
            # Each utterance's tone lies where its segment says, on its speaker's track only.
            for segment in item.segments:
                middle = round((segment.start + segment.end) / 2 * SAMPLE_RATE)
                assert (samples[middle - 40 : middle + 40] != 0).any() == (
                    segment.participant == track.participant
                )


def test_silence_and_noise_items_are_copied_with_their_files_and_speech_items_are_not(tmp_path: Path) -> None:
    source, out = tmp_path / "source", tmp_path / "out"
    source.mkdir()
    out.mkdir()
    entries = []
    for name, language in (("quiet", "none"), ("talk", "en")):
        (source / f"{name}.wav").write_bytes(b"RIFF")
        (source / f"{name}.txt").write_text("", encoding="utf-8")
        entries.append(
            {
                "name": name,
                "language": language,
                "files": {"audio": f"{name}.wav", "reference": f"{name}.txt"},
            }
        )
    (source / "manifest.json").write_text(json.dumps({"items": entries}), encoding="utf-8")

    copied = copy_items_without_speech(source, out)

    assert [entry["name"] for entry in copied] == ["quiet"]
    assert sorted(path.name for path in out.iterdir()) == ["quiet.txt", "quiet.wav"]
