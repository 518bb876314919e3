"""A copy of a corpus under conditions nobody tuned on: faster or slower speech, and noise.

    python -m bench.perturb OUT [--corpus DIR] [--speed 1.1] [--snr-db 15] [--noise FILE]
    make bench BENCH_ARGS="--corpus OUT"

The dev corpus is all this project has been tuned on, and no unseen speech is at hand: this
gives the benchmark the same speech played faster or slower (resampled, pitch moving with it,
as a tape would) with noise mixed in at a chosen speech-to-noise ratio. It is not unseen speech;
it tells whether streaming keeps its ratio to the offline pass when the audio changes.
Items with an empty reference are copied as they are; references and utterance times are kept
(times scaled by the speed).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from bench.corpus import PCM_FINGERPRINT, audio_file, default_corpus_dir
from service.audio import SAMPLE_RATE
from service.pcm_files import read_pcm, write_pcm

FRAME_S = 0.03
SPEECH_FLOOR_DB = -40.0
"""Frames this far below the loudest count as silence when the speech's power is measured."""


def change_speed(samples: np.ndarray, speed: float) -> np.ndarray:
    """The audio played `speed` times as fast (linear interpolation, so pitch moves with it)."""
    if speed <= 0:
        raise ValueError(f"speed must be positive, not {speed}")
    length = max(1, round(len(samples) / speed))
    positions = np.arange(length) * speed
    return np.interp(positions, np.arange(len(samples)), samples.astype(np.float64))


def speech_power(samples: np.ndarray) -> float:
    """Mean power of the frames within SPEECH_FLOOR_DB of the loudest: silence between turns does
    not dilute it."""
    frame = round(FRAME_S * SAMPLE_RATE)
    usable = len(samples) // frame * frame
    if usable == 0:
        return float(np.mean(samples.astype(np.float64) ** 2)) if len(samples) else 0.0
    powers = np.mean(samples[:usable].astype(np.float64).reshape(-1, frame) ** 2, axis=1)
    loudest = float(powers.max())
    if loudest == 0.0:
        return 0.0
    return float(powers[powers >= loudest * 10 ** (SPEECH_FLOOR_DB / 10)].mean())


def add_noise(samples: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """`samples` with `noise` (looped to its length) scaled to `snr_db` below the speech's power."""
    if not len(noise) or not np.any(noise):
        raise ValueError("the noise is silent")
    looped = np.resize(noise.astype(np.float64), len(samples))
    wanted = speech_power(samples) / 10 ** (snr_db / 10)
    gain = np.sqrt(wanted / float(np.mean(looped**2))) if wanted else 0.0
    return samples.astype(np.float64) + gain * looped


def to_pcm(samples: np.ndarray) -> np.ndarray:
    return np.clip(np.round(samples), -32768, 32767).astype("<i2")


def write_samples(path: Path, samples: np.ndarray) -> None:
    """As WAV or FLAC, by the file's name (a perturbed corpus keeps its source's names)."""
    write_pcm(path, to_pcm(samples).tobytes())


def read_samples(path: Path) -> np.ndarray:
    return np.frombuffer(read_pcm(path), dtype="<i2")


def audio_files(entry: dict[str, Any]) -> list[tuple[str, str]]:
    """(audio, reference) file names of an item: its own, and its speakers' tracks."""
    files = entry["files"]
    pairs = [(files["audio"], files["reference"])] if "audio" in files else []
    pairs += [(spec["audio"], spec["reference"]) for spec in files.get("tracks", {}).values()]
    return pairs


def without_fingerprints(files: dict[str, Any]) -> dict[str, Any]:
    """An item's files without the sample count and checksum of the source's audio, which no longer hold."""
    stripped = {key: value for key, value in files.items() if key not in PCM_FINGERPRINT}
    if "tracks" in files:
        stripped["tracks"] = {name: without_fingerprints(spec) for name, spec in files["tracks"].items()}
    return stripped


def perturb_corpus(source: Path, out: Path, speed: float, snr_db: float | None, noise: np.ndarray) -> None:
    manifest = json.loads((source / "manifest.json").read_text(encoding="utf-8"))
    out.mkdir(parents=True, exist_ok=True)
    items = []
    for entry in manifest["items"]:
        speech = any((source / ref).read_text(encoding="utf-8").strip() for _, ref in audio_files(entry))
        for audio, reference in audio_files(entry):
            shutil.copyfile(source / reference, out / reference)
            if not speech:
                shutil.copyfile(source / audio, out / audio)
                continue
            samples = change_speed(read_samples(source / audio), speed)
            if snr_db is not None:
                samples = add_noise(samples, noise, snr_db)
            write_samples(out / audio, samples)
        if speech:
            entry = dict(
                entry, duration_s=entry["duration_s"] / speed, files=without_fingerprints(entry["files"])
            )
            entry["segments"] = [
                dict(s, start=s["start"] / speed, end=s["end"] / speed) for s in entry.get("segments", [])
            ]
        items.append(entry)
    conditions = f"speed {speed}" + (f", noise at {snr_db} dB SNR" if snr_db is not None else "")
    (out / "manifest.json").write_text(
        json.dumps(
            dict(manifest, corpus=f"{manifest.get('corpus', '')} perturbed: {conditions}", items=items)
        ),
        encoding="utf-8",
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path, help="folder to write the perturbed corpus to")
    parser.add_argument("--corpus", type=Path, default=default_corpus_dir(), help="folder with manifest.json")
    parser.add_argument("--speed", type=float, default=1.0, help="play speech this many times as fast")
    parser.add_argument("--snr-db", type=float, help="mix noise in at this speech-to-noise ratio (dB)")
    parser.add_argument("--noise", type=Path, help="noise WAV or FLAC (default: the corpus's noise_20s)")
    args = parser.parse_args()
    noise = (
        read_samples(args.noise or audio_file(args.corpus, "noise_20s"))
        if args.snr_db is not None
        else np.zeros(1)
    )
    perturb_corpus(args.corpus, args.out, args.speed, args.snr_db, noise)
    print(f'wrote {args.out}; run: make bench BENCH_ARGS="--corpus {args.out}"')


if __name__ == "__main__":
    main()
