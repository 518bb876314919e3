"""Cross-stream batching: windows per second of the worker's model, one window at a time against
batches of several (as a worker takes the windows of several participants that are ready at once).

    python -m bench.batching [--windows 64] [--sizes 4,8,32] [--rounds 2] [--corpus DIR] [--out DIR]

Windows of 5-8 s are cut from the English corpus tracks (a fixed seed, so every run hears the same
audio) and transcribed in process with the configured model (WHISPER_MODEL_NAME, WHISPER_DEVICE,
WHISPER_CPU_THREADS...): one by one with `Transcriber.transcribe`, and in consecutive batches of
each size with `Transcriber.transcribe_batch`. Twice over: with no prompts, and with a prompt of
20-40 words per window (as the last two finals, utterances of 10 words and more, prompt a live
window), since CTranslate2 decodes together only windows whose prompts are equally long: both
paths cut a prompt to its last WHISPER_PROMPT_TOKENS tokens (none when it has fewer), so that the
windows of a batch share a call. Every configuration runs `--rounds` times, rounds
interleaved (one of each, then again), so a busy neighbour slows all of them alike. Prints a
Markdown table; results land in bench/results/<timestamp>-batching/.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from bench.corpus import default_corpus_dir, load_corpus
from bench.run import RESULTS_DIR, positive_counts
from models.transcriber import Transcriber, Window
from service.audio import BYTES_PER_SECOND
from service.contracts import DecoderHints
from service.languages import ENGLISH
from service.logs import configure_logging
from service.pcm_files import read_pcm
from service.settings import Settings

logger = logging.getLogger(__name__)

SEED = 20261125
MIN_WINDOW_S, MAX_WINDOW_S = 5.0, 8.0
MIN_PROMPT_WORDS, MAX_PROMPT_WORDS = 20, 40
ONE_BY_ONE = 0
"""The `size` of the baseline: `transcribe` per window, the worker's path before batching."""


@dataclass(frozen=True)
class Run:
    prompts: str
    size: int
    round: int
    windows: int
    seconds: float
    words: int
    decoder_calls: int

    @property
    def windows_per_s(self) -> float:
        return self.windows / self.seconds

    @property
    def windows_per_call(self) -> float | None:
        """None one by one: faster-whisper's own `transcribe` makes those calls, uncounted."""
        return self.windows / self.decoder_calls if self.decoder_calls else None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.batching", description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", type=int, default=64, help="windows per configuration (default 64)")
    parser.add_argument(
        "--sizes", type=positive_counts, default=[4, 8, 32], help="batch sizes (default 4,8,32)"
    )
    parser.add_argument("--rounds", type=int, default=2, help="runs of each configuration (default 2)")
    parser.add_argument("--corpus", type=Path, default=default_corpus_dir(), help="folder with manifest.json")
    parser.add_argument(
        "--out", type=Path, help="results folder (default bench/results/<timestamp>-batching)"
    )
    args = parser.parse_args(argv)
    if args.windows < 1 or args.rounds < 1:
        parser.error("--windows and --rounds must be at least 1")
    return args


def cut_windows(corpus: Path, count: int, with_prompts: bool) -> list[Window]:
    """`count` windows of 5-8 s, taken in turn from each English track (as from several participants),
    each with a prompt of some of its track's reference words when `with_prompts`."""
    rng = random.Random(SEED)
    tracks = [
        (read_pcm(track.audio), track.reference.split())
        for item in load_corpus(corpus)
        if item.language == ENGLISH
        for track in item.tracks
        if track.reference
    ]
    if not tracks:
        raise SystemExit(f"no English tracks with a reference in {corpus}")
    positions = [0] * len(tracks)
    windows: list[Window] = []
    while len(windows) < count:
        for number, (pcm, reference) in enumerate(tracks):
            length = int(rng.uniform(MIN_WINDOW_S, MAX_WINDOW_S) * BYTES_PER_SECOND) // 2 * 2
            if positions[number] + length > len(pcm):
                positions[number] = 0
            audio = pcm[positions[number] : positions[number] + length]
            positions[number] += length
            words = rng.randint(MIN_PROMPT_WORDS, MAX_PROMPT_WORDS)
            start = rng.randrange(max(len(reference) - words, 1))
            prompt = " ".join(reference[start : start + words]) if with_prompts else ""
            windows.append(Window(pcm=audio, language=ENGLISH, hints=DecoderHints(prompt=prompt)))
            if len(windows) == count:
                break
    return windows


def transcribe_all(transcriber: Transcriber, windows: Sequence[Window], size: int) -> tuple[float, int]:
    """Seconds to transcribe every window in batches of `size` (ONE_BY_ONE: `transcribe`), and words heard."""
    words = 0
    started = time.perf_counter()
    if size == ONE_BY_ONE:
        for window in windows:
            words += len(transcriber.transcribe(window.pcm, window.language, window.hints.prompt).words)
    else:
        for first in range(0, len(windows), size):
            words += sum(len(t.words) for t in transcriber.transcribe_batch(windows[first : first + size]))
    return time.perf_counter() - started, words


def measure(
    transcriber: Transcriber, scenarios: dict[str, list[Window]], batch_sizes: Sequence[int], rounds: int
) -> list[Run]:
    runs = []
    transcriber.transcribe_batch(next(iter(scenarios.values()))[:2])  # warm-up, not counted
    for number in range(1, rounds + 1):
        for name, windows in scenarios.items():
            for size in [ONE_BY_ONE, *batch_sizes]:
                calls_before = transcriber.decoder_calls
                seconds, words = transcribe_all(transcriber, windows, size)
                calls = transcriber.decoder_calls - calls_before
                runs.append(Run(name, size, number, len(windows), seconds, words, calls))
                logger.info(
                    "%s prompts, %s, round %d: %.2f windows/s",
                    name,
                    label(size),
                    number,
                    runs[-1].windows_per_s,
                )
    return runs


def label(size: int) -> str:
    return "one by one" if size == ONE_BY_ONE else f"batches of {size}"


def to_markdown(runs: Sequence[Run], settings: Settings, transcriber: Transcriber) -> str:
    rounds = sorted({run.round for run in runs})
    lines = [
        f"Model {transcriber.name} on {transcriber.device} ({settings.whisper_compute_type}), "
        f"{runs[0].windows} windows of {MIN_WINDOW_S:.0f}-{MAX_WINDOW_S:.0f} s per run.",
        "",
        "| prompts | mode | "
        + " | ".join(f"run {r} (windows/s)" for r in rounds)
        + " | mean | speed-up | windows per decoder call |",
        "| --- | --- | " + " | ".join("---:" for _ in rounds) + " | ---: | ---: | ---: |",
    ]
    for prompts in dict.fromkeys(run.prompts for run in runs):
        mine = [run for run in runs if run.prompts == prompts]
        mean = {
            size: sum(run.windows_per_s for run in mine if run.size == size) / len(rounds)
            for size in dict.fromkeys(run.size for run in mine)
        }
        for size, rate in mean.items():
            per_round = [f"{run.windows_per_s:.2f}" for run in mine if run.size == size]
            fill = next(run.windows_per_call for run in mine if run.size == size)
            fill_text = "-" if fill is None else f"{fill:.1f}"
            lines.append(
                f"| {prompts} | {label(size)} | {' | '.join(per_round)} | {rate:.2f} | "
                f"{rate / mean[ONE_BY_ONE]:.2f}x | {fill_text} |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging("INFO")
    settings = Settings()
    transcriber = Transcriber.from_settings(settings)
    scenarios = {
        "none": cut_windows(args.corpus, args.windows, with_prompts=False),
        f"{MIN_PROMPT_WORDS}-{MAX_PROMPT_WORDS} words": cut_windows(
            args.corpus, args.windows, with_prompts=True
        ),
    }
    runs = measure(transcriber, scenarios, args.sizes, args.rounds)
    table = to_markdown(runs, settings, transcriber)
    folder = args.out or RESULTS_DIR / f"{datetime.now():%Y%m%d-%H%M%S}-batching"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.md").write_text(table + "\n", encoding="utf-8")
    (folder / "results.json").write_text(
        json.dumps(
            [
                asdict(run) | {"windows_per_s": run.windows_per_s, "windows_per_call": run.windows_per_call}
                for run in runs
            ],
            indent=2,
        ),
        encoding="utf-8",
    )
    print(table)
    logger.info("results in %s", folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
