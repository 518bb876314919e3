"""The terminal view of a meeting being transcribed: per participant the current interim, below
them the finals in speaking order with time, participant and confidence.

`MeetingBoard` is the state (pure: it takes server payloads and renders a `rich` renderable);
`LiveView` redraws it in place with `rich.live.Live` as messages arrive.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from demos.client import ReceivedMessage

HIGH_CONFIDENCE = 0.8
LOW_CONFIDENCE = 0.5
VIEW_MARGIN_LINES = 8
"""Lines of the view that are not finals: the interim panel's border, the table header, captions."""
MIN_FINALS_SHOWN = 3


def format_offset(seconds: float) -> str:
    """`mm:ss.s`, rounding to tenths first so 59.96 s reads 01:00.0, not 00:60.0."""
    minutes, tenths = divmod(round(max(0.0, seconds) * 10), 600)
    return f"{minutes:02d}:{tenths / 10:04.1f}"


def format_notice(payload: dict[str, Any]) -> str:
    """An error or warning message as one line: `server error 1008 (alice): ...`."""
    participant = payload.get("participant_id")
    where = f" ({participant})" if participant else ""
    return f"server {payload.get('type')} {payload.get('code')}{where}: {payload.get('message')}"


def confidence_style(confidence: float) -> str:
    if confidence >= HIGH_CONFIDENCE:
        return "green"
    return "yellow" if confidence >= LOW_CONFIDENCE else "red"


@dataclass(frozen=True)
class Final:
    ts_ms: int
    participant: str
    text: str
    confidence: float


@dataclass(frozen=True)
class Interim:
    utterance_id: str
    text: str


@dataclass
class MeetingBoard:
    """What the view shows. Finals are kept sorted by `ts` (utterance start), as the browser client does."""

    participants: list[str]
    started_at_wall: float
    """time.time() when the meeting started: a final's time is its `ts` counted from here."""
    interims: dict[str, Interim] = field(default_factory=dict)
    finals: list[Final] = field(default_factory=list)

    def apply(self, payload: dict[str, Any]) -> None:
        """Take one interim or final; other payloads (errors) are not the board's business."""
        kind = payload.get("type")
        if kind not in ("interim", "final"):
            return
        participant = str(payload.get("participant_id", ""))
        if participant not in self.participants:
            self.participants.append(participant)
        utterance_id = str(payload.get("id", ""))
        text = str(payload.get("text", "")).strip()
        if kind == "interim":
            self.interims[participant] = Interim(utterance_id, text)
            return
        shown = self.interims.get(participant)
        if shown is not None and shown.utterance_id == utterance_id:
            del self.interims[participant]  # the final replaces its utterance's interim
        final = Final(
            ts_ms=int(payload.get("ts", 0)),
            participant=participant,
            text=text,
            confidence=float(payload.get("variance", 0.0)),
        )
        bisect.insort(self.finals, final, key=lambda item: item.ts_ms)

    def render(self, max_finals: int | None = None) -> RenderableType:
        return Group(self._speaking(), self._finals_table(max_finals))

    def _speaking(self) -> Panel:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column(overflow="fold")
        for participant in self.participants:
            interim = self.interims.get(participant)
            text = Text(interim.text, style="italic") if interim else Text("…", style="dim")
            table.add_row(participant, text)
        return Panel(table, title="speaking", title_align="left", border_style="dim")

    def _finals_table(self, max_finals: int | None) -> Table:
        shown = self.finals if max_finals is None else self.finals[-max_finals:] if max_finals > 0 else []
        hidden = len(self.finals) - len(shown)
        table = Table(
            title="finals",
            title_justify="left",
            caption=f"({hidden} earlier finals above the view)" if hidden else None,
            caption_justify="left",
            expand=True,
        )
        table.add_column("time", no_wrap=True, style="dim")
        table.add_column("participant", no_wrap=True, style="bold cyan")
        table.add_column("text", ratio=1, overflow="fold")
        table.add_column("conf", justify="right", no_wrap=True)
        for final in shown:
            table.add_row(
                format_offset(final.ts_ms / 1000 - self.started_at_wall),
                final.participant,
                final.text,
                Text(f"{final.confidence:.2f}", style=confidence_style(final.confidence)),
            )
        return table


class LiveView:
    """Redraws the board on every interim and final; errors print above it, to stderr."""

    def __init__(self, board: MeetingBoard, console: Console, err_console: Console) -> None:
        self._board = board
        self._console = console
        self._err_console = err_console
        self._live = Live(self._render(), console=console, auto_refresh=False, transient=False)

    def __enter__(self) -> LiveView:
        self._live.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._live.stop()

    def show(self, message: ReceivedMessage) -> None:
        payload = message.payload
        if payload is None:
            self._err_console.print(f"unexpected message from server: {message.raw[:200]}", markup=False)
        elif message.type == "error":
            self._err_console.print(Text(format_notice(payload), style="red"))
        elif message.type == "warning":
            self._err_console.print(Text(format_notice(payload), style="yellow"))
        else:
            self._board.apply(payload)
            self._live.update(self._render(), refresh=True)

    def print_transcripts(self, transcripts: Sequence[tuple[str, str]]) -> None:
        self._console.print(Text("\n== transcripts ==", style="bold"))
        for participant, transcript in transcripts:
            self._console.print(Text.assemble((participant, "bold cyan"), ": ", transcript))

    def _render(self) -> RenderableType:
        room = self._console.size.height - len(self._board.participants) - VIEW_MARGIN_LINES
        return self._board.render(max_finals=max(MIN_FINALS_SHOWN, room))
