"""What the ingress's VAD costs a second of audio: the ingress's own Silero stream (`ingress/vad.py`)
fed a file in the clients' chunks, on one thread, as it hears one participant.

    python -m bench.vad_cost [FILE ...] [--repeats 3]

Per file (default: the corpus's long-form reading and the meeting's three tracks): the thread's CPU
milliseconds a second of audio (the median of `--repeats` passes, the PCM conversion included),
the share of it spent inside the model's call, and the share of frames the model scored (digital
silence past half a second is not run through it). `make bench-pipeline` measures the VAD's
threads beside everything else the service runs; this is the VAD alone.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.corpus import REPO_CORPUS, audio_file
from demos.client import DEFAULT_CHUNK_SAMPLES
from ingress.vad import FRAME_SAMPLES, SileroVad
from service.audio import BYTES_PER_SECOND, SAMPLE_WIDTH_BYTES, pcm_to_float32
from service.pcm_files import read_pcm

DEFAULT_FILES = [
    audio_file(REPO_CORPUS, stem)
    for stem in (
        "longform_lj003_newgate_amateur",
        "meeting_3spk_dev.spk1",
        "meeting_3spk_dev.spk2",
        "meeting_3spk_dev.spk3",
    )
]


class TimedVad(SileroVad):
    """The ingress's model, counting the frames it scores and the thread's time inside its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.frames_scored = 0
        self.model_s = 0.0

    def score(
        self, frames: np.ndarray, h: np.ndarray, c: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        started = time.thread_time()
        try:
            return super().score(frames, h, c)
        finally:
            self.model_s += time.thread_time() - started
            self.frames_scored += len(frames)


@dataclass(frozen=True)
class VadCost:
    audio_s: float
    cpu_ms_per_audio_s: float
    """The median pass's."""
    model_share: float
    """Of that pass's CPU, the share inside the model's call."""
    frames: int
    frames_scored: int
    """Of the audio's whole frames, those the model scored (the same in every pass)."""

    @property
    def scored_share(self) -> float:
        return self.frames_scored / self.frames if self.frames else 0.0


def measure(pcm: bytes, repeats: int = 3) -> VadCost:
    """`repeats` passes of one participant's stream over `pcm`, each from a fresh state."""
    vad = TimedVad()
    chunk_bytes = DEFAULT_CHUNK_SAMPLES * SAMPLE_WIDTH_BYTES
    passes: list[tuple[float, float, int]] = []
    try:
        for _ in range(repeats):
            stream = vad.new_stream()
            model_before, scored_before = vad.model_s, vad.frames_scored
            started = time.thread_time()
            for at in range(0, len(pcm), chunk_bytes):
                stream.process(pcm_to_float32(pcm[at : at + chunk_bytes]))  # as `hear` runs it
            cpu_s = time.thread_time() - started
            passes.append((cpu_s, vad.model_s - model_before, vad.frames_scored - scored_before))
    finally:
        vad.close()
    cpu_s, model_s, scored = sorted(passes)[len(passes) // 2]
    audio_s = len(pcm) / BYTES_PER_SECOND
    return VadCost(
        audio_s=audio_s,
        cpu_ms_per_audio_s=1000 * cpu_s / audio_s,
        model_share=model_s / cpu_s if cpu_s else 0.0,
        frames=len(pcm) // SAMPLE_WIDTH_BYTES // FRAME_SAMPLES,
        frames_scored=scored,
    )


def report(costs: Sequence[tuple[str, VadCost]]) -> str:
    lines = [
        "| file | audio s | VAD CPU ms a second of audio | in the model's call | frames scored |",
        "|---|---|---|---|---|",
    ]
    for name, cost in costs:
        lines.append(
            f"| {name} | {cost.audio_s:.1f} | {cost.cpu_ms_per_audio_s:.2f} | {cost.model_share:.1%} "
            f"| {cost.scored_share:.1%} |"
        )
    total_s = sum(cost.audio_s for _, cost in costs)
    if total_s:
        mean = sum(cost.cpu_ms_per_audio_s * cost.audio_s for _, cost in costs) / total_s
        lines.append(f"\nVAD: {mean:.2f} ms of CPU a second of audio ({total_s:.0f} s of audio)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.vad_cost",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("files", nargs="*", type=Path, help="16 kHz mono 16-bit FLAC or WAV files")
    parser.add_argument("--repeats", type=int, default=3, help="passes per file; the median is reported")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    files = args.files or DEFAULT_FILES
    print(report([(path.name, measure(read_pcm(path), args.repeats)) for path in files]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
