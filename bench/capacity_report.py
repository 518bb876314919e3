"""What the capacity benchmark reports: each step's measures, whether it holds, the tables.

Pure: built from what the steps recorded. A step is one N of one scenario, every meeting at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from bench.capacity_tracks import MEETING_SIZE
from bench.measures import Measures, ParticipantRun, StreamCompute, combine, measure_participant
from bench.report import measures_json
from demos.client import DEFAULT_CHUNK_SAMPLES

LANGUAGE = "en"
LATENCY_P90_BOUND_S = 5.0
WER_FACTOR = 1.2
BAD_FACTOR = 2.0
"""A step whose p90 passes this many times the bound ends its scenario: larger N only waits longer."""


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    unit: int
    """N of a single stream: one talker, or one meeting of 5."""
    target: int


TALKERS = Scenario("talkers", "Every participant talking (meetings of one)", 1, 6)
TURNS = Scenario("participants", f"One talks at a time (meetings of {MEETING_SIZE})", MEETING_SIZE, 30)


@dataclass(frozen=True)
class Step:
    n: int
    meetings: int
    measures: Measures
    """Every served participant's measures combined (latencies pooled, WER over all their words)."""
    errors: list[str]
    """Every error message received, as "code: message"."""
    refused: int
    """Meetings whose connection was turned away."""
    timed_out: int
    """Meetings still open when their time ran out (their messages are lost)."""
    problems: list[str]
    """What went wrong with meetings: refusals, time-outs, abnormal closes."""
    load_avg: float
    """The machine's 1-minute load average when the step began."""

    @property
    def served(self) -> bool:
        return not self.refused and not self.timed_out


# --- verdicts ----------------------------------------------------------------------------------


def aggregate(
    name: str, runs: Sequence[tuple[ParticipantRun, float]], compute: StreamCompute | None
) -> Measures:
    """Each (participant, seconds of its track) measured alone, then combined: latencies pooled,
    WER = all errors / all reference words, audio = every track's seconds."""
    parts = [measure_participant(run, LANGUAGE, seconds, DEFAULT_CHUNK_SAMPLES) for run, seconds in runs]
    return replace(combine(name, parts), stream_compute=compute)


def within_latency(step: Step) -> bool:
    p90 = step.measures.end_p90
    return p90 is not None and p90 <= LATENCY_P90_BOUND_S


def wer_limit(step: Step) -> float | None:
    """WER_FACTOR x the offline WER of the step's own tracks: every N is judged on the audio it
    streamed (the rotations differ from N to N)."""
    rate = step.measures.offline.rate
    return None if rate is None else WER_FACTOR * rate


def wer_ratio(step: Step) -> float | None:
    """The finals' WER over the offline WER of the same tracks."""
    finals, offline = step.measures.finals.rate, step.measures.offline.rate
    if finals is None or offline is None:
        return None
    return finals / offline if offline else (1.0 if not finals else float("inf"))


def holds(step: Step) -> bool:
    """Every meeting served, p90 end-of-final latency within the bound, WER within the factor of the
    offline WER of the same tracks."""
    limit, rate = wer_limit(step), step.measures.finals.rate
    wer_ok = limit is not None and rate is not None and rate <= limit + 1e-12
    return step.served and within_latency(step) and wer_ok


def fails_badly(step: Step) -> bool:
    p90 = step.measures.end_p90
    return p90 is None or p90 > BAD_FACTOR * LATENCY_P90_BOUND_S or step.refused >= step.meetings


def largest_holding(steps: Sequence[Step]) -> int | None:
    """The largest N up to which every step held; None if even the first did not. A step past a
    failed one does not count: capacity is what holds all the way."""
    ordered = sorted(steps, key=lambda step: step.n)
    largest = None
    for step in ordered:
        if not holds(step):
            break
        largest = step.n
    return largest


def meets_target(steps: Sequence[Step], target: int) -> bool | None:
    """True when N >= target held; False when a step up to the target failed; None when every step
    held but none reached the target (nothing measured there)."""
    largest = largest_holding(steps)
    if largest is not None and largest >= target:
        return True
    if steps and largest == max(step.n for step in steps):
        return None
    return False


# --- report ------------------------------------------------------------------------------------

COLUMNS = (
    "meetings",
    "audio s",
    "WER finals",
    "WER offline",
    "finals / offline",
    "end-of-final lat. p50 / p90 s",
    "first lat. p50 / p90 s",
    "words / final p50",
    "dropped phrases",
    "lost / offline words",
    "compute s per audio s",
    "windows",
    "errors",
    "refused",
    "load 1 min",
    "holds",
)


def to_markdown(config: dict[str, Any], results: dict[str, list[Step]]) -> str:
    lines = [
        f"# Capacity benchmark {config['started']}",
        "",
        f"model: {config['model']}, service: {config['url']}, cpu_count: {config['cpu_count']}, "
        f"load average (1/5/15 min) before: {_load(config['load_avg_before'])}, "
        f"after: {_load(config.get('load_avg_after'))}",
    ]
    for scenario in (TALKERS, TURNS):
        lines += ["", *scenario_markdown(scenario, results.get(scenario.key, []))]
    lines += ["", *NOTES]
    return "\n".join(lines)


def scenario_markdown(scenario: Scenario, steps: Sequence[Step]) -> list[str]:
    lines = [f"## {scenario.title}", ""]
    if not steps:
        return [*lines, "No step ran."]
    lines += ["| " + " | ".join((scenario.key, *COLUMNS)) + " |", "|" + "---|" * (len(COLUMNS) + 1)]
    lines += [_row(step) for step in sorted(steps, key=lambda step: step.n)]
    largest = largest_holding(steps)
    verdict = {True: "**PASS**", False: "**FAIL**", None: "not reached by these steps"}[
        meets_target(steps, scenario.target)
    ]
    lines += [
        "",
        f"Largest N holding p90 end-of-final latency ≤ {LATENCY_P90_BOUND_S:g} s and WER ≤ "
        f"{WER_FACTOR:g} × the offline WER of its own tracks, every meeting served: "
        f"**{largest if largest is not None else 'none'}** {scenario.key}; "
        f"target ≥ {scenario.target}: {verdict}.",
    ]
    dropped = [
        f"dropped phrase: {phrase.participant} {phrase.at_s:.1f} s {phrase.text!r}"
        for step in steps
        for phrase in step.measures.dropped_phrases
    ]
    problems = [
        f"- N={step.n}: {problem}" for step in steps for problem in [*step.problems, *step.errors]
    ] + [f"- {line}" for line in dropped]
    if problems:
        lines += ["", "Problems and error messages:", "", *problems[:40]]
        if len(problems) > 40:
            lines.append(f"- ... and {len(problems) - 40} more (results.json has them all)")
    return lines


def _row(step: Step) -> str:
    m = step.measures
    ratio = wer_ratio(step)
    compute = m.stream_compute
    cells = [
        str(step.n),
        str(step.meetings),
        f"{m.audio_s:.0f}",
        _rate(m.finals.rate),
        _rate(m.offline.rate),
        "—" if ratio is None else f"{ratio:.2f}",
        f"{_seconds(m.end_median)} / {_seconds(m.end_p90)}",
        f"{_seconds(m.first_median)} / {_seconds(m.first_p90)}",
        "—" if m.words_per_final_median is None else f"{m.words_per_final_median:.0f}",
        str(len(m.dropped_phrases)),
        f"{m.lost_words} / {m.offline_words}",
        "—" if m.stream_compute_per_s is None else f"{m.stream_compute_per_s:.4f}",
        "—" if compute is None else str(compute.windows),
        str(len(step.errors)),
        str(step.refused),
        f"{step.load_avg:.1f}",
        "yes" if holds(step) else "**no**",
    ]
    return "| " + " | ".join(cells) + " |"


NOTES = (
    "End-of-final latency: arrival of a final minus the send of the chunk holding its last word's "
    "end (its offline timestamp); first appearance: of every word, interims counting; p50 / p90 "
    "over every served participant. WER: all finals' errors over all reference words, next to the "
    "offline WER of the same tracks (each clip transcribed whole by the same model): the streams "
    "of a step say the clips in different rotations, so each step is judged on its own audio. "
    "Dropped phrases: three or more reference words in a row the offline pass heard and no final "
    "carries (bench.finals). Compute: the worker's model seconds "
    "(Redis counters) per second of audio streamed, every participant's track counting, silence "
    "included. Errors: every error message received (1013 overload, timeouts, ...); refused: "
    "meetings whose connection was turned away. Load: the machine's 1-minute load average as the "
    "step began (the benchmark's own processes included).",
)


def to_json(config: dict[str, Any], results: dict[str, list[Step]]) -> dict[str, Any]:
    scenarios = {}
    for scenario in (TALKERS, TURNS):
        steps = results.get(scenario.key, [])
        scenarios[scenario.key] = {
            "title": scenario.title,
            "target": scenario.target,
            "largest_holding": largest_holding(steps) if steps else None,
            "meets_target": meets_target(steps, scenario.target) if steps else None,
            "steps": [
                {
                    "n": step.n,
                    "meetings": step.meetings,
                    "holds": holds(step),
                    "refused": step.refused,
                    "timed_out": step.timed_out,
                    "errors": step.errors,
                    "problems": step.problems,
                    "load_avg_1min": step.load_avg,
                    "measures": measures_json(step.measures),
                }
                for step in steps
            ],
        }
    return {
        "config": config,
        "limits": {"latency_p90_s": LATENCY_P90_BOUND_S, "wer_factor": WER_FACTOR, "bad_factor": BAD_FACTOR},
        "scenarios": scenarios,
    }


def summary(step: Step) -> str:
    """One line for the log."""
    measures = step.measures
    return (
        f"p90 end-of-final latency {_seconds(measures.end_p90)} s, WER {_rate(measures.finals.rate)} "
        f"(offline {_rate(measures.offline.rate)}), {len(measures.dropped_phrases)} dropped phrase(s), "
        f"{len(step.errors)} error message(s), {step.refused} refused, {step.timed_out} timed out"
    )


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _load(values: Sequence[float] | None) -> str:
    return "—" if values is None else " / ".join(f"{value:.2f}" for value in values)
