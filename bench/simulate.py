"""Replay a WAV through the ingress's VAD and streaming policy and the worker's model in one
process, on a simulated clock: no Redis, no websocket. For tuning and debugging the policy.

    python -m bench.simulate FILE [--speed 1] [--verbose] [--fixed-compute S] [--offsets 0,0.3]

Chunks arrive every 1.024 s of simulated time; a model call occupies the simulated clock for
its measured compute time, and chunks that arrive meanwhile join the next window. Word errors,
the finals' shapes and latencies are measured as `make bench` measures them (`bench.finals`,
`bench.metrics`). Where the
chunks fall moves a single run by a few words: `--offsets` replays the file after each of these
seconds of leading silence.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.finals import final_shapes
from bench.metrics import Message, TimedWord, count_errors, first_appearance_latencies, percentile
from bench.run import non_negative_seconds, offline_transcript
from ingress.vad import SileroVad
from models.transcriber import Transcriber, Window
from service.audio import SAMPLE_RATE, SAMPLE_WIDTH_BYTES, pcm_to_float32
from service.contracts import WordTiming
from service.languages import ENGLISH
from service.pcm_files import read_pcm
from service.settings import Settings
from streaming.config import PolicyConfig
from streaming.driver import WindowFailed, drive
from streaming.participant import ParticipantPolicy
from streaming.utterances import Transcript
from streaming.window import WindowPlan

CHUNK_SAMPLES = 16_384


@dataclass
class Replay:
    transcripts: list[tuple[float, Transcript]] = field(default_factory=list)
    """(simulated emission time, transcript), in order."""
    sent_at: list[float] = field(default_factory=list)
    """Simulated arrival time of each chunk."""
    calls: int = 0
    compute_s: float = 0.0

    @property
    def finals(self) -> list[Transcript]:
        return [t for _, t in self.transcripts if t.kind == "final"]

    def text(self) -> str:
        return " ".join(t.text for t in self.finals)

    def messages(self) -> list[Message]:
        return [Message(emitted, t.kind, t.utterance_id, t.text) for emitted, t in self.transcripts]


class SimulatedIO:
    """The driver's surroundings on a simulated clock: chunks land when the loop next looks at the
    policy after their arrival time (a chunk that arrives during a model call joins the next
    window), a model call occupies the clock for its compute time, and waits poll every 50 ms."""

    def __init__(
        self,
        policy: ParticipantPolicy,
        chunks: list[bytes],
        transcriber: Transcriber,
        language: str,
        verbose: bool,
        speed: float,
        fixed_compute_s: float | None,
    ) -> None:
        self._policy = policy
        self._vad = SileroVad().new_stream()
        self._chunks = chunks
        self._transcriber = transcriber
        self._language = language
        self._verbose = verbose
        self._speed = speed
        self._fixed_compute_s = fixed_compute_s
        self._next_chunk = 0
        self._clock = 0.0
        self._applying = False
        self.out = Replay(sent_at=[self._arrival_s(index) for index in range(len(chunks))])

    def _arrival_s(self, index: int) -> float:
        return (index + 1) * CHUNK_SAMPLES / SAMPLE_RATE / self._speed

    def now_ms(self) -> int:
        return int(self._clock * 1000)

    def forget_news(self) -> None:
        """Deliver every chunk that has arrived by now; the last one ends the meeting."""
        self._applying = False
        while (
            self._next_chunk < len(self._chunks) and self._arrival_s(self._next_chunk) <= self._clock + 1e-9
        ):
            chunk = self._chunks[self._next_chunk]
            arrival_ms = int(self._arrival_s(self._next_chunk) * 1000)
            self._policy.add_audio(chunk, self._vad.process(pcm_to_float32(chunk)), arrival_ms)
            self._next_chunk += 1
        if self._next_chunk == len(self._chunks) and not self._policy.ended:
            self._policy.end()

    async def wait_for_news(self, timeout_s: float | None) -> None:
        self._clock = min(self._clock + 0.05, self._arrival_s(self._next_chunk))

    async def sleep(self, seconds: float) -> None:
        self._clock += seconds

    async def transcribe(self, plan: WindowPlan) -> Sequence[WordTiming]:
        started = time.perf_counter()
        window = Window(plan.pcm, self._language, plan.hints)
        result = self._transcriber.transcribe_batch([window])[0]
        spent = time.perf_counter() - started
        self.out.calls += 1
        self.out.compute_s += spent
        # A fixed simulated cost makes runs comparable on a busy machine (the policy's decisions
        # depend on how long each call takes).
        self._clock += spent if self._fixed_compute_s is None else self._fixed_compute_s
        if self._verbose:
            words = "".join(w.text for w in result.words)
            print(
                f"{self._clock:7.2f}s {'FINAL' if plan.final else 'plan '} "
                f"[{plan.start / SAMPLE_RATE:6.2f}-{plan.end / SAMPLE_RATE:6.2f}] {words!r}"
            )
        self._applying = True
        return result.words

    async def emit(self, transcript: Transcript) -> None:
        self.out.transcripts.append((self._clock, transcript))
        if not self._verbose:
            return
        if not self._applying:
            print(f"{self._clock:7.2f}s settled without a call -> final {transcript.text!r}")
        elif transcript.kind == "final":
            print(f"          -> final {transcript.text!r}")

    async def report(self, failure: WindowFailed) -> None:
        raise failure  # the model runs in this process: a failure here is a bug to see


def replay(
    pcm: bytes,
    transcriber: Transcriber,
    config: PolicyConfig,
    language: str = "en",
    verbose: bool = False,
    speed: float = 1.0,
    fixed_compute_s: float | None = None,
) -> Replay:
    policy = ParticipantPolicy(config)
    step = CHUNK_SAMPLES * SAMPLE_WIDTH_BYTES
    chunks = [pcm[i : i + step] for i in range(0, len(pcm), step)]
    io = SimulatedIO(policy, chunks, transcriber, language, verbose, speed, fixed_compute_s)
    asyncio.run(drive(policy, io))
    return io.out


def policy_config(overrides: list[str]) -> PolicyConfig:
    """PolicyConfig with FIELD=VALUE overrides, each value parsed as its field's default type."""
    defaults = PolicyConfig()
    changes: dict[str, Any] = {}
    for item in overrides:
        name, _, text = item.partition("=")
        if not hasattr(defaults, name):
            raise SystemExit(f"PolicyConfig has no field {name!r}")
        kind = type(getattr(defaults, name))
        changes[name] = text.lower() in ("1", "true", "yes") if kind is bool else kind(text)
    return dataclasses.replace(defaults, **changes)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("audio", help="16 kHz mono WAV or FLAC; its reference is the .txt beside it")
    parser.add_argument("--reference", help="reference transcript file (default: WAV with .txt)")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--speed", type=float, default=1.0, help="chunks arrive this many times faster")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a PolicyConfig field, e.g. --set phrase_finals=false (repeatable)",
    )
    parser.add_argument(
        "--fixed-compute",
        type=float,
        help="advance the simulated clock this many seconds per call instead of the measured time",
    )
    parser.add_argument(
        "--offsets",
        type=non_negative_seconds,
        default=[0.0],
        help="replay after each of these seconds of leading silence (default 0)",
    )
    args = parser.parse_args()
    pcm = read_pcm(args.audio)
    transcriber = Transcriber.from_settings(Settings())
    config = policy_config(args.set)
    reference_path = args.reference or str(Path(args.audio).with_suffix(".txt"))
    reference = Path(reference_path).read_text(encoding="utf-8")
    offline = offline_transcript(transcriber, pcm, ENGLISH)
    offline_errors = count_errors(reference, " ".join(w.text for w in offline.words), ENGLISH)
    print(f"offline: {offline_errors.errors} word errors of {offline_errors.reference_words}")
    for offset in args.offsets:
        silence = bytes(round(offset * SAMPLE_RATE) * SAMPLE_WIDTH_BYTES)
        result = replay(
            silence + pcm,
            transcriber,
            config,
            verbose=args.verbose,
            speed=args.speed,
            fixed_compute_s=args.fixed_compute,
        )
        errors = count_errors(reference, result.text(), ENGLISH)
        shifted = [TimedWord(w.text, w.start + offset, w.end + offset) for w in offline.words]
        messages = result.messages()
        shapes = final_shapes(reference, shifted, messages, result.sent_at, CHUNK_SAMPLES, ENGLISH)
        first = first_appearance_latencies(shifted, messages, result.sent_at, CHUNK_SAMPLES, ENGLISH)
        finals = len(shapes.words_per_final)
        print(
            f"offset {offset:.2f} s: {errors.errors} word errors, {finals} finals of median"
            f" {percentile(shapes.words_per_final, 50) or 0:.0f} words,"
            f" {shapes.at_boundary} at a sentence end or pause, {shapes.on_function_word} on a function"
            f" word; end-of-final latency p50 {percentile(shapes.end_latencies, 50) or 0:.2f} s,"
            f" p90 {percentile(shapes.end_latencies, 90) or 0:.2f} s; first appearance p50"
            f" {percentile(first.latencies, 50) or 0:.2f} s; {result.calls} calls,"
            f" {result.compute_s:.1f} s compute"
        )
        for phrase in shapes.dropped:
            print(f"  dropped phrase at {phrase.at_s:.1f} s: {phrase.text!r}")


if __name__ == "__main__":
    main()
