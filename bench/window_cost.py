"""What one streaming window costs the worker, and how much of it the context prefix is.

    python -m bench.window_cost [FILE] [--start 30] [--seconds 9] [--context 4] [--repeats 5]

Times the worker's own call (`Transcriber.transcribe_batch`, one window) on `--seconds` of the file
from `--start`: as a window without context; as the same audio with its first `--context` seconds
given as the decoder's prefix (their text as the model hears them alone), forced whole; continued
after that prefix as the service does it (its last `context_tail_words` words forced at their
timestamp, the rest previous text); and as silence of the same length (the encoder and a decoder
step or two: no words). Each figure is the median of `--repeats` calls, so run it on a quiet
machine and read them side by side.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

from bench.corpus import REPO_CORPUS
from models.transcriber import Transcriber, Window
from service.audio import SAMPLE_RATE, SAMPLE_WIDTH_BYTES
from service.contracts import DecoderHints
from service.pcm_files import read_pcm
from service.settings import Settings
from streaming.config import PolicyConfig

DEFAULT_FILE = str(REPO_CORPUS / "longform_lj003_newgate_amateur.flac")
CONTINUED_TAIL_WORDS = PolicyConfig().context_tail_words


@dataclass(frozen=True)
class WindowCost:
    seconds_alone: float
    words_alone: int
    seconds_with_prefix: float
    prefix_words: int
    words_after_prefix: int
    seconds_continued: float
    words_continued: int
    seconds_silence: float


def median_seconds(transcriber: Transcriber, window: Window, repeats: int) -> tuple[float, int]:
    """Median seconds of one call on this window, and how many words it returned."""
    times = []
    words = 0
    for _ in range(repeats):
        started = time.perf_counter()
        words = len(transcriber.transcribe_batch([window])[0].words)
        times.append(time.perf_counter() - started)
    return statistics.median(times), words


def measure(transcriber: Transcriber, pcm: bytes, context_s: float, repeats: int) -> WindowCost:
    """The three timings for a window of `pcm` (s16le mono 16 kHz) whose first `context_s` are context."""
    context = pcm[: round(context_s * SAMPLE_RATE) * SAMPLE_WIDTH_BYTES]
    heard = transcriber.transcribe_batch([Window(context, "en")])[0].words
    prefix = "".join(word.text for word in heard)
    tail = heard[-CONTINUED_TAIL_WORDS:]
    continued = Window(
        pcm,
        "en",
        DecoderHints(
            prefix=prefix,
            prefix_tail="".join(w.text for w in tail),
            prefix_tail_s=tail[0].start if tail else 0.0,
        ),
    )
    transcriber.transcribe_batch([Window(pcm, "en")])  # the first call of a process is slower
    alone, words_alone = median_seconds(transcriber, Window(pcm, "en"), repeats)
    with_prefix, words_after = median_seconds(
        transcriber, Window(pcm, "en", DecoderHints(prefix=prefix)), repeats
    )
    after_tail, words_continued = median_seconds(transcriber, continued, repeats)
    silence, _ = median_seconds(transcriber, Window(bytes(len(pcm)), "en"), repeats)
    return WindowCost(
        alone,
        words_alone,
        with_prefix,
        len(prefix.split()),
        words_after,
        after_tail,
        words_continued,
        silence,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("audio", nargs="?", default=DEFAULT_FILE, help="16 kHz mono WAV or FLAC")
    parser.add_argument("--start", type=float, default=30.0, help="window start in the file (s)")
    parser.add_argument("--seconds", type=float, default=9.0, help="window length (s)")
    parser.add_argument("--context", type=float, default=4.0, help="seconds of it given as prefix")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if not 0 < args.context < args.seconds or args.repeats < 1:
        parser.error("need 0 < --context < --seconds and --repeats >= 1")
    pcm = read_pcm(args.audio)
    first = round(args.start * SAMPLE_RATE) * SAMPLE_WIDTH_BYTES
    window = pcm[first : first + round(args.seconds * SAMPLE_RATE) * SAMPLE_WIDTH_BYTES]
    cost = measure(Transcriber.from_settings(Settings()), window, args.context, args.repeats)
    print(f"{args.seconds:.1f} s window from {args.start:.1f} s of {args.audio}, median of {args.repeats}:")
    print(f"  alone:          {cost.seconds_alone:.3f} s ({cost.words_alone} words)")
    print(
        f"  with prefix:    {cost.seconds_with_prefix:.3f} s ({cost.prefix_words} prefix words,"
        f" {cost.words_after_prefix} after them)"
    )
    print(f"  continued:      {cost.seconds_continued:.3f} s ({cost.words_continued} words after the prefix)")
    print(f"  silence:        {cost.seconds_silence:.3f} s (encoder and a step or two)")


if __name__ == "__main__":
    main()
