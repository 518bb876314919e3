"""Held-out speech: passages nobody tuned on, in voices nobody tuned on, as a benchmark corpus.

    apt-get install flite festival festvox-us-slt-hts     # the voices (Debian packages)
    python -m bench.heldout OUT [--seed 7]
    make bench BENCH_ARGS="--corpus OUT"

The streaming policy was tuned on the dev corpus only (`corpus/`). This writes a corpus
of the same layout from `heldout_passages.txt` (written for it, one utterance a line, passages
separated by blank lines), spoken by flite's clustergen voices (slt, rms, awb: American female and
male, Scottish male) and festival's HTS voice of slt: long-form items of one voice reading
passages with pauses between utterances, and a meeting of three voices taking turns, each on its
own track (silence outside its turns) and mixed. All of it is synthetic speech, but of other
synthesisers, texts and speakers than the dev corpus's espeak-ng items. `--seed` moves the pauses.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.corpus import NO_LANGUAGE
from bench.perturb import audio_files, read_samples, write_samples
from service.audio import SAMPLE_RATE

PASSAGES_FILE = Path(__file__).with_name("heldout_passages.txt")
LEAD_S = 0.5
PAUSE_S = (0.3, 1.0)
"""Silence between two utterances of one speaker, drawn uniformly."""
TURN_GAP_S = (-0.2, 0.8)
"""Between two speakers' turns: a negative gap is a small overlap, as in the dev meeting."""
DEBIAN_PACKAGES = "flite festival festvox-us-slt-hts"
SILENCE_LEVEL = 64
"""Samples at or under this magnitude at either end of a synthesised utterance are trimmed."""


@dataclass(frozen=True)
class Voice:
    name: str
    describe: str
    command: Callable[[str, Path], list[str]]
    """The command that speaks a text file into a 16 kHz WAV file."""


def _flite(voice: str) -> Callable[[str, Path], list[str]]:
    return lambda text_file, wav: ["flite", "-voice", voice, "-f", text_file, "-o", str(wav)]


def _festival_hts(text_file: str, wav: Path) -> list[str]:
    return ["text2wave", "-eval", "(voice_cmu_us_slt_arctic_hts)", "-F", "16000", "-o", str(wav), text_file]


VOICES = {
    "slt": Voice("slt", "flite cmu_us_slt (American female, clustergen)", _flite("slt")),
    "rms": Voice("rms", "flite cmu_us_rms (American male, clustergen)", _flite("rms")),
    "awb": Voice("awb", "flite cmu_us_awb (Scottish male, clustergen)", _flite("awb")),
    "slt_hts": Voice("slt_hts", "festival cmu_us_slt_arctic_hts (American female, HTS)", _festival_hts),
}

LONGFORM_ITEMS = (("slt_hts", (4, 5)), ("rms", (6, 7)), ("awb", (4, 7)))
"""(voice, passage indexes) of each long-form item."""
MEETING_TURNS = ((("slt", 0), ("rms", 1), ("awb", 2), ("slt", 3)),)
"""(voice, passage index) turns of each meeting item; its speakers are its voices in order of first turn."""


def read_passages(path: Path = PASSAGES_FILE) -> list[list[str]]:
    """Passages as lists of utterances: one a line, a blank line between passages, # comments."""
    passages: list[list[str]] = [[]]
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            continue
        if line.strip():
            passages[-1].append(line.strip())
        elif passages[-1]:
            passages.append([])
    return [passage for passage in passages if passage]


def trim_silence(samples: np.ndarray, level: int = SILENCE_LEVEL) -> np.ndarray:
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > level)
    return samples[loud[0] : loud[-1] + 1] if len(loud) else samples[:0]


def speak(voice: Voice, text: str, scratch: Path) -> np.ndarray:
    """One utterance in `voice`, trimmed of the synthesiser's own silence at either end."""
    text_file = scratch / "utterance.txt"
    wav = scratch / "utterance.wav"
    text_file.write_text(text + "\n", encoding="utf-8")
    command = voice.command(str(text_file), wav)
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=120)
    except FileNotFoundError as missing:
        raise SystemExit(f"{command[0]} is not installed: apt-get install {DEBIAN_PACKAGES}") from missing
    except subprocess.CalledProcessError as failed:
        reason = failed.stderr.decode(errors="replace").strip()
        raise SystemExit(f"{' '.join(command)} failed: {reason}") from failed
    samples = trim_silence(read_samples(wav))
    if not len(samples):
        raise SystemExit(f"{voice.name} said nothing for {text!r}")
    return samples


@dataclass(frozen=True)
class Placed:
    speaker: str
    start_s: float
    text: str
    samples: np.ndarray

    @property
    def end_s(self) -> float:
        return self.start_s + len(self.samples) / SAMPLE_RATE


def place_turns(
    turns: Sequence[tuple[str, Sequence[np.ndarray], Sequence[str]]], rng: np.random.Generator
) -> list[Placed]:
    """Utterances laid out in time: turns one after another (a turn gap apart, which may overlap
    a little), a pause between the utterances of one turn, LEAD_S before the first."""
    placed: list[Placed] = []
    clock = LEAD_S
    for number, (speaker, utterances, texts) in enumerate(turns):
        if number:
            clock = max(LEAD_S, clock + float(rng.uniform(*TURN_GAP_S)))
        for index, (samples, text) in enumerate(zip(utterances, texts, strict=True)):
            if index:
                clock += float(rng.uniform(*PAUSE_S))
            placed.append(Placed(speaker, clock, text, samples))
            clock = placed[-1].end_s
    return placed


def mix(placed: Sequence[Placed], speaker: str | None = None) -> np.ndarray:
    """The utterances of `speaker` (all, when None) on one track of the whole item's length."""
    length = round((max(p.end_s for p in placed) + LEAD_S) * SAMPLE_RATE)
    track = np.zeros(length, dtype=np.float64)
    for p in placed:
        if speaker is None or p.speaker == speaker:
            start = round(p.start_s * SAMPLE_RATE)
            track[start : start + len(p.samples)] += p.samples
    return track


def _segments(placed: Sequence[Placed], with_speaker: bool) -> list[dict[str, Any]]:
    return [
        {
            **({"speaker": p.speaker} if with_speaker else {}),
            "start": round(p.start_s, 3),
            "end": round(p.end_s, 3),
            "text": p.text,
        }
        for p in placed
    ]


def _entry(
    name: str, placed: Sequence[Placed], voices: dict[str, Voice], files: dict[str, Any]
) -> dict[str, Any]:
    return {
        "name": name,
        "duration_s": round(len(mix(placed)) / SAMPLE_RATE, 3),
        "speakers": len(voices),
        "kind": "synthetic",
        "language": "en",
        "source": "bench/heldout.py: bench/heldout_passages.txt spoken by "
        + "; ".join(f"{speaker}: {voice.describe}" for speaker, voice in voices.items()),
        "license": "Text: written for this project. Audio: generated output of flite / festival.",
        "files": files,
        "segments": _segments(placed, with_speaker=len(voices) > 1),
    }


def _write(out: Path, stem: str, samples: np.ndarray, text: str) -> dict[str, str]:
    write_samples(out / f"{stem}.wav", samples)
    (out / f"{stem}.txt").write_text(text + "\n", encoding="utf-8")
    return {"audio": f"{stem}.wav", "reference": f"{stem}.txt"}


def build_corpus(out: Path, seed: int, voices: dict[str, Voice] = VOICES) -> list[dict[str, Any]]:
    passages = read_passages()
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    items: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)

        def turn(voice: str, passage: int) -> tuple[str, list[np.ndarray], list[str]]:
            texts = passages[passage]
            return voice, [speak(voices[voice], text, scratch) for text in texts], texts

        for voice, indexes in LONGFORM_ITEMS:
            placed = place_turns([turn(voice, index) for index in indexes], rng)
            name = f"longform_heldout_{voice}"
            text = " ".join(p.text for p in placed)
            items.append(_entry(name, placed, {voice: voices[voice]}, _write(out, name, mix(placed), text)))

        for number, turns in enumerate(MEETING_TURNS, start=1):
            placed = place_turns([turn(voice, index) for voice, index in turns], rng)
            first_turns = dict.fromkeys(voice for voice, _ in turns)
            speakers = {voice: f"spk{n}" for n, voice in enumerate(first_turns, start=1)}
            placed = [Placed(speakers[p.speaker], p.start_s, p.text, p.samples) for p in placed]
            name = f"meeting_heldout_{len(speakers)}spk_{number}"
            files: dict[str, Any] = dict(_write(out, name, mix(placed), " ".join(p.text for p in placed)))
            files["tracks"] = {
                spk: dict(
                    _write(
                        out,
                        f"{name}.{spk}",
                        mix(placed, spk),
                        " ".join(p.text for p in placed if p.speaker == spk),
                    ),
                    speaker=voices[voice].describe,
                )
                for voice, spk in speakers.items()
            }
            by_speaker = {spk: voices[voice] for voice, spk in speakers.items()}
            items.append(_entry(name, placed, by_speaker, files))
    return items


def copy_items_without_speech(source: Path, out: Path) -> list[dict[str, Any]]:
    """The silence and noise items of another corpus (language "none"), copied into `out`: the
    benchmark's targets of no words and no compute on them."""
    manifest = json.loads((source / "manifest.json").read_text(encoding="utf-8"))
    entries = [entry for entry in manifest["items"] if entry["language"] == NO_LANGUAGE]
    for entry in entries:
        for audio, reference in audio_files(entry):
            shutil.copyfile(source / audio, out / audio)
            shutil.copyfile(source / reference, out / reference)
    return entries


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path, help="folder to write the corpus to")
    parser.add_argument("--seed", type=int, default=7, help="seed of the pauses between utterances")
    parser.add_argument(
        "--with-silence",
        type=Path,
        metavar="CORPUS",
        help="also copy silence_20s and noise_20s from this corpus (the targets on 0 words)",
    )
    args = parser.parse_args()
    items = build_corpus(args.out, args.seed)
    if args.with_silence:
        items += copy_items_without_speech(args.with_silence, args.out)
    manifest_out = {"corpus": f"held-out (bench/heldout.py, seed {args.seed})", "items": items}
    (args.out / "manifest.json").write_text(json.dumps(manifest_out, indent=1), encoding="utf-8")
    total = sum(item["duration_s"] for item in items)
    print(f"wrote {len(items)} items ({total:.0f} s) to {args.out}")
    print(f'run: make bench BENCH_ARGS="--corpus {args.out}"')


if __name__ == "__main__":
    main()
