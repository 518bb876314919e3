"""The benchmark's outputs: `results.json`, `results.md` (a table and the targets) and `latency.png`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from websockets.frames import CloseCode

from bench.measures import Measures, TargetCheck

PLOT_COLUMNS = 3
COLUMNS = (
    "item",
    "audio s",
    "WER finals",
    "WER +interim",
    "WER offline",
    "end-of-final lat. p50 / p90 s",
    "first lat. p50 / p90 s",
    "words / final p50",
    "finals at sentence end or pause",
    "on function word",
    "dropped phrases",
    "lost / offline words",
    "interims / finals",
    "words on empty ref.",
    "compute s/s stream",
    "compute s/s offline",
    "stream / offline",
)


@dataclass(frozen=True)
class ItemReport:
    item: Measures
    participants: list[Measures]
    """Empty for single-speaker items (the item is its participant)."""
    server_errors: list[str] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""

    @property
    def problems(self) -> list[str]:
        """Error messages from the server, and a close other than the normal one after the meeting."""
        closed = (
            []
            if self.close_code == CloseCode.NORMAL_CLOSURE
            else [f"closed with {self.close_code} {self.close_reason!r}"]
        )
        return [*self.server_errors, *closed]


@dataclass(frozen=True)
class Report:
    config: dict[str, Any]
    items: list[ItemReport]
    total: Measures
    targets: list[TargetCheck]


def write_all(report: Report, folder: Path) -> str:
    """Write the three files into `folder`; return the Markdown."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(to_json(report), indent=2) + "\n", encoding="utf-8")
    markdown = to_markdown(report)
    (folder / "results.md").write_text(markdown, encoding="utf-8")
    plot_latencies(report, folder / "latency.png")
    return markdown


# --- JSON --------------------------------------------------------------------------------------


def to_json(report: Report) -> dict[str, Any]:
    return {
        "config": report.config,
        "items": [
            {
                **measures_json(entry.item),
                "participants": [measures_json(part) for part in entry.participants],
                "server_errors": entry.server_errors,
                "close_code": entry.close_code,
                "close_reason": entry.close_reason,
            }
            for entry in report.items
        ],
        "total": measures_json(report.total),
        "targets": [asdict(check) for check in report.targets],
    }


def measures_json(measures: Measures) -> dict[str, Any]:
    derived = {
        "wer_finals": measures.finals.rate,
        "wer_finals_with_interim": measures.with_interim.rate,
        "wer_offline": measures.offline.rate,
        "final_latency_median_s": measures.final_median,
        "final_latency_p90_s": measures.final_p90,
        "end_latency_median_s": measures.end_median,
        "end_latency_p90_s": measures.end_p90,
        "words_per_final_median": measures.words_per_final_median,
        "finals_at_boundary_share": measures.at_boundary_share,
        "first_latency_median_s": measures.first_median,
        "first_latency_p90_s": measures.first_p90,
        "stream_compute_per_audio_s": measures.stream_compute_per_s,
        "offline_compute_per_audio_s": measures.offline_compute_per_s,
        "stream_to_offline_compute": measures.compute_ratio,
    }
    return {**derived, **asdict(measures)}


# --- Markdown ----------------------------------------------------------------------------------


def to_markdown(report: Report) -> str:
    lines = [
        f"# Streaming benchmark {report.config.get('started', '')}",
        "",
        _config_line(report.config),
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for entry in report.items:
        lines.append(_row(entry.item, entry.item.name))
        lines += [_row(part, f"↳ {part.name}") for part in entry.participants]
    lines.append(_row(report.total, "**total**", empty_words=True))
    lines += ["", "## Targets", ""]
    lines += [f"- {_verdict(check.passed)} {check.target}: {check.measured}" for check in report.targets]
    lines += ["", *NOTES, ""]
    problems = [f"- {entry.item.name}: {problem}" for entry in report.items for problem in entry.problems]
    if problems:
        lines += ["## Problems (the numbers above are partial for these items)", "", *problems, ""]
    return "\n".join(lines)


NOTES = (
    "Latencies are seconds from the send of the chunk holding a word's end (its offline timestamp) "
    "to the message showing it: end-of-final latency for the last word of each final, first "
    "appearance for every word (interims count). A final ends at a sentence end when its text ends "
    "with . ? or !, at a pause when the offline words leave at least 0.5 s of silence after its "
    "last word; a dropped phrase is three or more reference words in a row that the offline pass "
    "heard and no final carries (bench.finals; results.json lists each with its time); lost words are "
    "offline words that no final word aligns to. The total "
    "WER leaves out items with an empty reference (their words are in 'words on empty ref.'). Compute "
    "is model seconds per second of streamed audio (every participant's track counts); the worker's "
    "comes from the Redis counters, the offline one from transcribing each whole file here (the "
    "median of three passes), on one thread as a worker's call runs.",
)


def _config_line(config: dict[str, Any]) -> str:
    keys = ("model", "speed", "chunk_samples", "url", "cpu_count")
    return ", ".join(f"{key}: {config[key]}" for key in keys if key in config)


def _row(measures: Measures, label: str, empty_words: bool = False) -> str:
    compute = measures.stream_compute
    cells = [
        label,
        f"{measures.audio_s:.1f}",
        _rate(measures.finals.rate),
        _rate(measures.with_interim.rate),
        _rate(measures.offline.rate),
        f"{_seconds(measures.end_median)} / {_seconds(measures.end_p90)}",
        f"{_seconds(measures.first_median)} / {_seconds(measures.first_p90)}",
        _number(measures.words_per_final_median, 0),
        _rate(measures.at_boundary_share),
        str(measures.finals_on_function_word),
        str(len(measures.dropped_phrases)),
        f"{measures.lost_words} / {measures.offline_words}",
        f"{measures.interims} / {measures.finals_count}",
        str(measures.hallucinated_words) if measures.empty_reference or empty_words else "",
        _number(measures.stream_compute_per_s) + (f" ({compute.windows} win.)" if compute else ""),
        _number(measures.offline_compute_per_s),
        _number(measures.compute_ratio, 2),
    ]
    return "| " + " | ".join(cells) + " |"


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _number(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _verdict(passed: bool | None) -> str:
    return {True: "**PASS**", False: "**FAIL**", None: "n/a"}[passed]


# --- plot --------------------------------------------------------------------------------------


def plot_latencies(report: Report, path: Path) -> None:
    """One box plot per item (and the total): end-of-final and first-appearance latencies."""
    panels = [entry.item for entry in report.items if entry.item.end_latencies or entry.item.first_latencies]
    panels.append(report.total)
    figure = _figure(panels)
    FigureCanvasAgg(figure).print_png(str(path))


def _figure(panels: Sequence[Measures]) -> Figure:
    columns = min(PLOT_COLUMNS, len(panels))
    rows = -(-len(panels) // columns)
    figure = Figure(figsize=(4.5 * columns, 3.5 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    for index, axis in enumerate(axes.flat):
        if index >= len(panels):
            axis.set_visible(False)
            continue
        measures = panels[index]
        axis.boxplot(
            [measures.end_latencies, measures.first_latencies],
            tick_labels=["end of final", "first appearance"],
            showfliers=True,
        )
        axis.set_title(measures.name, fontsize=10)
        axis.set_ylabel("seconds")
        axis.grid(axis="y", alpha=0.3)
    return figure
