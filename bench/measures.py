"""What the benchmark reports per participant, per item and in total, and the targets it checks.

Pure: built from what was recorded (messages, send times, offline words, compute counters).
One `Measures` shape serves a participant, an item (its participants combined) and the total
(the items combined), so every row of the report is computed the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from bench.finals import DroppedPhrase, final_shapes
from bench.metrics import (
    FINAL,
    INTERIM,
    ErrorCount,
    Message,
    TimedWord,
    count_errors,
    final_word_latencies,
    finals_text,
    finals_with_trailing_interim,
    first_appearance_latencies,
    percentile,
    speech_seconds,
    sum_errors,
    words_emitted,
)

FINALS_WER_FACTOR = 1.0
END_LATENCY_MEDIAN_S = 1.2
END_LATENCY_P90_S = 2.5
FIRST_LATENCY_MEDIAN_S = 0.6
WORDS_PER_FINAL_MEDIAN = 10
"""On read long-form speech: a final is an utterance, not a phrase."""
AT_BOUNDARY_SHARE = 0.85
MAX_ON_FUNCTION_WORD = 2
"""Finals per item ending on a function word the speaker did not pause after."""
READ_ITEM_PREFIX = "longform_"
SPEECH_COMPUTE_FACTOR = 4.0
SILENCE_COMPUTE_FACTOR = 0.05
LONG_ITEM_PREFIXES = ("longform_", "meeting_")


@dataclass(frozen=True)
class ParticipantRun:
    """What one participant's stream recorded, next to its reference and offline transcript."""

    participant: str
    reference: str
    offline_words: list[TimedWord]
    offline_compute_s: float
    messages: list[Message]
    sent_at: list[float]


@dataclass(frozen=True)
class StreamCompute:
    """Worker model seconds and windows, from the Redis counters read before and after an item."""

    compute_s: float
    windows: int


@dataclass(frozen=True)
class Measures:
    name: str
    audio_s: float
    """Seconds of audio streamed: every participant's track counts."""
    speech_s: float
    """Seconds the offline words cover (approximate)."""
    empty_reference: bool
    finals: ErrorCount
    with_interim: ErrorCount
    offline: ErrorCount
    final_latencies: list[float]
    """Per word: arrival of the final carrying it (informative: a long utterance's first words
    wait for its end; the interims showed them)."""
    first_latencies: list[float]
    offline_words: int
    lost_words: int
    interims: int
    finals_count: int
    hallucinated_words: int
    """Words emitted (interims included) where the reference is empty."""
    offline_compute_s: float
    stream_compute: StreamCompute | None
    words_per_final: list[int] = field(default_factory=list)
    finals_at_boundary: int = 0
    """Finals ending at a sentence mark or where the speaker paused (bench.finals)."""
    finals_on_function_word: int = 0
    end_latencies: list[float] = field(default_factory=list)
    """Per final: its arrival minus the send of the chunk holding its last word's end."""
    dropped_phrases: list[DroppedPhrase] = field(default_factory=list)
    transcripts: dict[str, dict[str, str]] = field(default_factory=dict)
    """Per participant: reference, finals, finals+interim and offline text, for reading the JSON."""

    @property
    def final_median(self) -> float | None:
        return percentile(self.final_latencies, 50)

    @property
    def final_p90(self) -> float | None:
        return percentile(self.final_latencies, 90)

    @property
    def end_median(self) -> float | None:
        return percentile(self.end_latencies, 50)

    @property
    def end_p90(self) -> float | None:
        return percentile(self.end_latencies, 90)

    @property
    def words_per_final_median(self) -> float | None:
        return percentile(self.words_per_final, 50)

    @property
    def at_boundary_share(self) -> float | None:
        return self.finals_at_boundary / len(self.words_per_final) if self.words_per_final else None

    @property
    def first_median(self) -> float | None:
        return percentile(self.first_latencies, 50)

    @property
    def first_p90(self) -> float | None:
        return percentile(self.first_latencies, 90)

    @property
    def stream_compute_per_s(self) -> float | None:
        if self.stream_compute is None or not self.audio_s:
            return None
        return self.stream_compute.compute_s / self.audio_s

    @property
    def offline_compute_per_s(self) -> float | None:
        return self.offline_compute_s / self.audio_s if self.audio_s else None

    @property
    def compute_ratio(self) -> float | None:
        if self.stream_compute is None or not self.offline_compute_s:
            return None
        return self.stream_compute.compute_s / self.offline_compute_s


def measure_participant(
    run: ParticipantRun, language: str, duration_s: float, chunk_samples: int
) -> Measures:
    finals_only = finals_text(run.messages)
    with_interim = finals_with_trailing_interim(run.messages)
    offline_text = "".join(word.text for word in run.offline_words).strip()
    final_words = final_word_latencies(run.offline_words, run.messages, run.sent_at, chunk_samples, language)
    first_words = first_appearance_latencies(
        run.offline_words, run.messages, run.sent_at, chunk_samples, language
    )
    empty_reference = not count_errors(run.reference, "", language).reference_words
    shapes = final_shapes(
        run.reference, run.offline_words, run.messages, run.sent_at, chunk_samples, language
    )
    return Measures(
        name=run.participant,
        audio_s=duration_s,
        speech_s=speech_seconds(run.offline_words),
        empty_reference=empty_reference,
        finals=count_errors(run.reference, finals_only, language),
        with_interim=count_errors(run.reference, with_interim, language),
        offline=count_errors(run.reference, offline_text, language),
        final_latencies=final_words.latencies,
        first_latencies=first_words.latencies,
        offline_words=len(run.offline_words),
        lost_words=final_words.unmatched,
        interims=sum(1 for m in run.messages if m.kind == INTERIM),
        finals_count=sum(1 for m in run.messages if m.kind == FINAL),
        hallucinated_words=words_emitted(run.messages, language) if empty_reference else 0,
        offline_compute_s=run.offline_compute_s,
        stream_compute=None,
        words_per_final=shapes.words_per_final,
        finals_at_boundary=shapes.at_boundary,
        finals_on_function_word=shapes.on_function_word,
        end_latencies=shapes.end_latencies,
        dropped_phrases=[replace(phrase, participant=run.participant) for phrase in shapes.dropped],
        transcripts={
            run.participant: {
                "reference": run.reference,
                "finals": finals_only,
                "finals_with_interim": with_interim,
                "offline": offline_text,
            }
        },
    )


def measure_item(
    name: str,
    runs: Sequence[ParticipantRun],
    *,
    language: str,
    duration_s: float,
    chunk_samples: int,
    stream_compute: StreamCompute | None,
) -> tuple[Measures, list[Measures]]:
    """The item's measures (its participants combined, plus the worker compute) and each participant's."""
    participants = [measure_participant(run, language, duration_s, chunk_samples) for run in runs]
    return replace(combine(name, participants), stream_compute=stream_compute), participants


def combine(name: str, parts: Sequence[Measures]) -> Measures:
    """Counts and seconds add up, latencies pool; WER is total errors over total reference words.

    Parts with an empty reference add no errors to a WER over speech (their words are counted as
    hallucinated words instead), unless every part has an empty reference.
    """
    scored = [part for part in parts if not part.empty_reference] or list(parts)
    computes = [part.stream_compute for part in parts]
    return Measures(
        name=name,
        audio_s=sum(part.audio_s for part in parts),
        speech_s=sum(part.speech_s for part in parts),
        empty_reference=all(part.empty_reference for part in parts),
        finals=sum_errors(part.finals for part in scored),
        with_interim=sum_errors(part.with_interim for part in scored),
        offline=sum_errors(part.offline for part in scored),
        final_latencies=[latency for part in parts for latency in part.final_latencies],
        first_latencies=[latency for part in parts for latency in part.first_latencies],
        offline_words=sum(part.offline_words for part in parts),
        lost_words=sum(part.lost_words for part in parts),
        interims=sum(part.interims for part in parts),
        finals_count=sum(part.finals_count for part in parts),
        hallucinated_words=sum(part.hallucinated_words for part in parts),
        offline_compute_s=sum(part.offline_compute_s for part in parts),
        stream_compute=_sum_compute(computes),
        words_per_final=[count for part in parts for count in part.words_per_final],
        finals_at_boundary=sum(part.finals_at_boundary for part in parts),
        finals_on_function_word=sum(part.finals_on_function_word for part in parts),
        end_latencies=[latency for part in parts for latency in part.end_latencies],
        dropped_phrases=[phrase for part in parts for phrase in part.dropped_phrases],
        transcripts={key: value for part in parts for key, value in part.transcripts.items()},
    )


def _sum_compute(computes: Sequence[StreamCompute | None]) -> StreamCompute | None:
    known = [compute for compute in computes if compute is not None]
    if not known or len(known) < len(computes):
        return None
    return StreamCompute(sum(c.compute_s for c in known), sum(c.windows for c in known))


# --- targets -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetCheck:
    target: str
    measured: str
    passed: bool | None
    """None when the run had nothing to check it on (no such item, compute unavailable)."""


def check_targets(items: Sequence[Measures]) -> list[TargetCheck]:
    speech = combine("speech", [item for item in items if not item.empty_reference])
    silence = [item for item in items if item.empty_reference]
    return [
        *_wer_checks(items),
        *_shape_checks(items, speech),
        _at_most("end-of-final latency median (s)", speech.end_median, END_LATENCY_MEDIAN_S),
        _at_most("end-of-final latency p90 (s)", speech.end_p90, END_LATENCY_P90_S),
        _at_most("first-appearance latency median (s)", speech.first_median, FIRST_LATENCY_MEDIAN_S),
        *[_at_most(f"{item.name}: words emitted", item.hallucinated_words, 0) for item in silence],
        _compute_check("per second of speech", speech, lambda m: m.speech_s, SPEECH_COMPUTE_FACTOR),
        _compute_check(
            "per second of silence",
            combine("silence", silence) if silence else None,
            lambda m: m.audio_s,
            SILENCE_COMPUTE_FACTOR,
        ),
    ]


def _shape_checks(items: Sequence[Measures], speech: Measures) -> list[TargetCheck]:
    """Finals that read like a transcript: utterance-sized on read speech, ending where a sentence
    or the speaker stopped, never on a dangling function word, and no phrase lost."""
    scored = [item for item in items if not item.empty_reference]
    share = speech.at_boundary_share
    return [
        *[
            _at_least(
                f"{item.name}: words per final, median", item.words_per_final_median, WORDS_PER_FINAL_MEDIAN
            )
            for item in scored
            if item.name.startswith(READ_ITEM_PREFIX)
        ],
        TargetCheck(
            f"finals ending at a sentence end or a pause ≥ {AT_BOUNDARY_SHARE:.0%}",
            "no finals" if share is None else f"{share:.1%} of {len(speech.words_per_final)}",
            None if share is None else share >= AT_BOUNDARY_SHARE,
        ),
        *[
            _at_most(
                f"{item.name}: finals ending on a function word",
                item.finals_on_function_word,
                MAX_ON_FUNCTION_WORD,
            )
            for item in scored
        ],
        *[
            TargetCheck(
                f"{item.name}: dropped phrases = 0",
                "; ".join(_dropped(phrase) for phrase in item.dropped_phrases) or "0",
                not item.dropped_phrases,
            )
            for item in scored
        ],
    ]


def _dropped(phrase: DroppedPhrase) -> str:
    where = f"{phrase.participant} " if phrase.participant else ""
    return f"{where}{phrase.at_s:.1f} s {phrase.text!r}"


def _wer_checks(items: Sequence[Measures]) -> list[TargetCheck]:
    long_items = [item for item in items if item.name.startswith(LONG_ITEM_PREFIXES)]
    if not long_items:
        target = f"finals WER ≤ {FINALS_WER_FACTOR} × offline WER (long-form, meeting)"
        return [TargetCheck(target, "no such item", None)]
    return [_wer_check(item) for item in long_items]


def _wer_check(item: Measures) -> TargetCheck:
    target = f"{item.name}: finals WER ≤ {FINALS_WER_FACTOR} × offline WER"
    finals, offline = item.finals.rate, item.offline.rate
    if finals is None or offline is None:
        return TargetCheck(target, "no reference words", None)
    limit = FINALS_WER_FACTOR * offline
    return TargetCheck(target, f"{finals:.3f} vs limit {limit:.3f}", finals <= limit + 1e-12)


def _at_most(target: str, measured: float | None, limit: float) -> TargetCheck:
    label = f"{target} ≤ {limit:g}"
    if measured is None:
        return TargetCheck(label, "no data", None)
    return TargetCheck(label, f"{measured:.3g}", measured <= limit)


def _at_least(target: str, measured: float | None, limit: float) -> TargetCheck:
    label = f"{target} ≥ {limit:g}"
    if measured is None:
        return TargetCheck(label, "no data", None)
    return TargetCheck(label, f"{measured:.3g}", measured >= limit)


def _compute_check(
    what: str, measures: Measures | None, seconds: Callable[[Measures], float], factor: float
) -> TargetCheck:
    target = f"worker compute {what} ≤ {factor:g} × offline"
    if measures is None or measures.stream_compute is None or not seconds(measures):
        return TargetCheck(target, "no data" if measures is None else "unavailable", None)
    stream = measures.stream_compute.compute_s / seconds(measures)
    offline = measures.offline_compute_s / seconds(measures)
    measured = f"{stream:.4f} s/s vs offline {offline:.4f} s/s"
    return TargetCheck(target, measured, stream <= factor * offline)
