"""Stream audio files as the participants of one meeting and show the transcripts as they come.

    streaming-whisper stream alice.wav bob.mp3 --url ws://127.0.0.1:8000 --fast 4
    python -m demos.stream_file ...            (the same command)

Each file is one participant (named after the file's stem unless `--participant` says otherwise).
Audio goes out in real time by default; `--fast` sends as fast as possible, `--fast 4` at 4x.
On a terminal the meeting is drawn live (`demos/live_view.py`); piped, each message is a line;
`--json` prints the server's messages as they are, one per line.

Exit status: 0 when the meeting ended normally; 1 when the server could not be reached, refused
the connection, closed it abnormally or sent an error message; 2 for bad arguments or a file that
cannot be read; 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, TextIO
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from rich.console import Console
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI
from websockets.frames import CloseCode

from demos.audio_files import load_pcm
from demos.client import (
    DEFAULT_CHUNK_SAMPLES,
    MeetingResult,
    ReceivedMessage,
    Track,
    meeting_url,
    stream_meeting,
    with_query,
)
from demos.live_view import LiveView, MeetingBoard, format_notice, format_offset

DEFAULT_URL = "ws://127.0.0.1:8000"
DEFAULT_PROG = "python -m demos.stream_file"
DESCRIPTION = (
    "Stream audio files, one per participant, as one meeting: WAV, or anything FFmpeg reads "
    "(mp3, flac, ogg, m4a, ...), resampled to 16 kHz mono."
)
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
CLEAR_LINE = "\r\x1b[K"
SECRET_QUERY_KEYS = frozenset({"auth_token"})


class Display(Protocol):
    def __enter__(self) -> Display: ...

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None: ...

    def show(self, message: ReceivedMessage) -> None: ...

    def print_transcripts(self, transcripts: Sequence[tuple[str, str]]) -> None: ...


def main(
    argv: Sequence[str] | None = None,
    *,
    prog: str = DEFAULT_PROG,
    console: Console | None = None,
    err_console: Console | None = None,
) -> int:
    """`console` (stdout) decides between the live view (a terminal) and plain lines; tests pass one."""
    args = parse_args(sys.argv[1:] if argv is None else argv, prog=prog)
    return run(args, console=console, err_console=err_console)


def run(
    args: argparse.Namespace, *, console: Console | None = None, err_console: Console | None = None
) -> int:
    try:
        url = meeting_url(args.url)
        if args.words:
            url = with_query(url, words="1")
        if args.keyterms:
            url = with_query(url, keyterms=",".join(args.keyterms))
        tracks = load_tracks(args.files, args.participant)
    except ValueError as error:  # AudioFileError included
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    names = [name for name, _ in tracks]
    print(f"meeting {redact_url(url)} with {', '.join(names)}", file=sys.stderr)
    display = choose_display(args.json, names, console or Console(), err_console or Console(stderr=True))
    try:
        with display:
            result = asyncio.run(
                stream_meeting(
                    url,
                    tracks,
                    lang=args.lang,
                    token=args.token,
                    speed=args.speed,
                    chunk_samples=args.chunk_samples,
                    on_message=display.show,
                )
            )
    except ValueError as error:
        # stream_meeting checks its arguments (unique participants, header size) before connecting.
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except InvalidStatus as refusal:
        print(f"error: server refused the connection: {describe_refusal(refusal)}", file=sys.stderr)
        return EXIT_FAILED
    except (OSError, InvalidHandshake, InvalidURI) as error:
        print(f"error: cannot connect to {redact_url(url)}: {error}", file=sys.stderr)
        return EXIT_FAILED
    display.print_transcripts([(name, result.transcript(name)) for name in names])
    if not result.closed_normally:
        print(f"error: connection closed with {describe_close(result)}", file=sys.stderr)
        return EXIT_FAILED
    if result.errors():
        count = len(result.errors())
        print(f"error: the server reported {count} error(s); transcripts may be incomplete", file=sys.stderr)
        return EXIT_FAILED
    return 0


def choose_display(as_json: bool, participants: list[str], console: Console, err_console: Console) -> Display:
    """The live view on a terminal; plain lines when piped (and raw JSON lines with --json)."""
    started_at_wall = time.time()
    if as_json or not console.is_terminal:
        return ConsolePrinter(sys.stdout, sys.stderr, as_json=as_json, started_at_wall=started_at_wall)
    return LiveView(MeetingBoard(list(participants), started_at_wall), console, err_console)


def parse_args(argv: Sequence[str], prog: str = DEFAULT_PROG) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    add_arguments(parser)
    return check_args(parser, parser.parse_args(bare_fast_as_unbounded(argv)))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, help="one audio file per participant")
    parser.add_argument(
        "--url",
        default=DEFAULT_URL,
        help=f"server or meeting URL; without a meeting id a random one is added (default {DEFAULT_URL})",
    )
    parser.add_argument(
        "--participant",
        action="append",
        help="participant id, once per file in the same order (default: each file's stem)",
    )
    parser.add_argument(
        "--lang",
        default="en",
        help="language code sent in every header, or 'auto' to have it detected (default en)",
    )
    parser.add_argument("--token", help="JWT, sent as 'Authorization: Bearer <token>'")
    parser.add_argument(
        "--fast",
        dest="speed",
        nargs="?",
        type=speed_factor,
        const=math.inf,
        default=1.0,
        metavar="FACTOR",
        help="send faster than real time: FACTOR times (e.g. 4), or as fast as possible when bare",
    )
    parser.add_argument("--json", action="store_true", help="print every server message as raw JSON")
    parser.add_argument(
        "--words",
        action="store_true",
        help="ask for each word's times and confidence in every interim and final (?words=1; see --json)",
    )
    parser.add_argument(
        "--keyterms",
        type=keyterm_list,
        default=[],
        metavar="TERM,TERM",
        help="names and words to expect, comma-separated (?keyterms=): the model spells them as given",
    )
    parser.add_argument(
        "--chunk-samples",
        type=positive_int,
        default=DEFAULT_CHUNK_SAMPLES,
        help=f"samples per message (default {DEFAULT_CHUNK_SAMPLES} = 1.024 s)",
    )


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    if args.speed == math.inf:
        args.speed = None
    if args.participant is not None and len(args.participant) != len(args.files):
        parser.error(
            f"--participant given {len(args.participant)} time(s) for {len(args.files)} file(s); "
            "give one per file or none"
        )
    return args


def bare_fast_as_unbounded(argv: Sequence[str]) -> list[str]:
    """`--fast a.wav` would make argparse read `a.wav` as the factor: spell a bare --fast `--fast=inf`."""
    normalized = list(argv)
    for index, token in enumerate(normalized):
        if token == "--":
            break
        if token == "--fast" and not (index + 1 < len(normalized) and is_number(normalized[index + 1])):
            normalized[index] = "--fast=inf"
    return normalized


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def speed_factor(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"speed factor must be a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"speed factor must be positive, got {text!r}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


def keyterm_list(text: str) -> list[str]:
    """`a, b,c` → ["a", "b", "c"]; the server checks each term and says what is wrong."""
    terms = [term.strip() for term in text.split(",")]
    if not all(terms):
        raise argparse.ArgumentTypeError(f"an empty keyterm in {text!r}")
    return terms


def load_tracks(files: Sequence[Path], participants: Sequence[str] | None) -> list[Track]:
    """Raises AudioFileError (a ValueError) naming the first file that cannot be read."""
    names = list(participants) if participants is not None else [path.stem for path in files]
    return [(name, load_pcm(path)) for name, path in zip(names, files, strict=True)]


def redact_url(url: str) -> str:
    """The URL with the value of `auth_token` hidden: it is a credential, not for terminals and logs."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = [(key, "***" if key in SECRET_QUERY_KEYS else value) for key, value in parse_qsl(parts.query)]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*")))


def describe_refusal(refusal: InvalidStatus) -> str:
    response = refusal.response
    body = response.body.decode("utf-8", errors="replace").strip() if response.body else ""
    return f"HTTP {response.status_code} {response.reason_phrase}" + (f": {body[:200]}" if body else "")


def describe_close(result: MeetingResult) -> str:
    """`code 1008 (token expired)`; the code's name when the server gave no reason."""
    if result.close_reason:
        return f"code {result.close_code} ({result.close_reason})"
    if result.close_code is None:
        return "no close code (the connection dropped)"
    try:
        name = CloseCode(result.close_code).name.lower().replace("_", " ")
    except ValueError:
        name = "unknown code"
    return f"code {result.close_code} ({name}, no reason given)"


def format_final(payload: dict[str, Any], started_at_wall: float) -> str:
    offset_s = payload.get("ts", 0) / 1000 - started_at_wall
    confidence = float(payload.get("variance", 0.0))
    return (
        f"[{format_offset(offset_s)}] {payload.get('participant_id')}: "
        f"{str(payload.get('text', '')).strip()}  (conf {confidence:.2f})"
    )


def format_interim(payload: dict[str, Any]) -> str:
    return f"… {payload.get('participant_id')}: {str(payload.get('text', '')).strip()}"


class ConsolePrinter:
    """Prints server messages as lines as they arrive (piped output, and --json).

    On a terminal the current interim is rewritten in place. A final is stamped with its `ts`
    (server clock) as time since `started_at_wall`.
    """

    def __init__(self, out: TextIO, err: TextIO, *, as_json: bool, started_at_wall: float) -> None:
        self._out = out
        self._err = err
        self._as_json = as_json
        self._started_at_wall = started_at_wall
        self._live = out.isatty()
        self._interim_shown = False

    def __enter__(self) -> ConsolePrinter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.clear_interim()

    def show(self, message: ReceivedMessage) -> None:
        payload = message.payload
        if self._as_json:
            print(message.raw, file=self._out, flush=True)
        if payload is None:
            self._print_err(f"unexpected message from server: {message.raw[:200]}")
        elif message.type in ("error", "warning"):
            self._print_err(format_notice(payload))
        elif self._as_json:
            return
        elif message.type == "interim":
            self._show_interim(format_interim(payload))
        elif message.type == "final":
            self.clear_interim()
            print(format_final(payload, self._started_at_wall), file=self._out, flush=True)

    def print_transcripts(self, transcripts: Sequence[tuple[str, str]]) -> None:
        """After the meeting; with --json on stderr, so stdout stays one JSON message per line."""
        out = self._err if self._as_json else self._out
        print("\n== transcripts ==", file=out)
        for participant, transcript in transcripts:
            print(f"{participant}: {transcript}", file=out)

    def clear_interim(self) -> None:
        if self._interim_shown:
            self._out.write(CLEAR_LINE)
            self._out.flush()
            self._interim_shown = False

    def _show_interim(self, line: str) -> None:
        if not self._live:
            print(line, file=self._out, flush=True)
            return
        # A line wider than the terminal wraps, and \r could then not erase it.
        width = shutil.get_terminal_size().columns - 1
        self._out.write(CLEAR_LINE + line[:width])
        self._out.flush()
        self._interim_shown = True

    def _print_err(self, line: str) -> None:
        self.clear_interim()
        print(line, file=self._err, flush=True)


if __name__ == "__main__":
    sys.exit(main())
