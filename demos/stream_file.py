"""Stream WAV files as the participants of one meeting and print the transcripts as they come.

    python -m demos.stream_file alice.wav bob.wav --url ws://127.0.0.1:8000 --fast 4

Each file is one participant (named after the file's stem unless `--participant` says otherwise).
Audio goes out in real time by default; `--fast` sends as fast as possible, `--fast 4` at 4x.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import shutil
import sys
import time
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI

from demos.client import (
    DEFAULT_CHUNK_SAMPLES,
    MeetingResult,
    ReceivedMessage,
    Track,
    meeting_url,
    stream_meeting,
)
from service.audio import read_wav_pcm

DEFAULT_URL = "ws://127.0.0.1:8000"
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
CLEAR_LINE = "\r\x1b[K"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        url = meeting_url(args.url)
        tracks = load_tracks(args.files, args.participant)
    except (ValueError, OSError, EOFError, wave.Error) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(f"meeting {url} with {', '.join(name for name, _ in tracks)}", file=sys.stderr)
    printer = ConsolePrinter(sys.stdout, sys.stderr, as_json=args.json, started_at_wall=time.time())
    try:
        result = asyncio.run(
            stream_meeting(
                url,
                tracks,
                lang=args.lang,
                token=args.token,
                speed=args.speed,
                chunk_samples=args.chunk_samples,
                on_message=printer.show,
            )
        )
    except ValueError as error:
        # stream_meeting checks its arguments (unique participants, header size) before connecting.
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        printer.clear_interim()
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except InvalidStatus as refusal:
        print(f"error: server refused the connection: {describe_refusal(refusal)}", file=sys.stderr)
        return EXIT_FAILED
    except (OSError, InvalidHandshake, InvalidURI) as error:
        print(f"error: cannot connect to {url}: {error}", file=sys.stderr)
        return EXIT_FAILED
    printer.clear_interim()
    print_transcripts(result, [name for name, _ in tracks], sys.stderr if args.json else sys.stdout)
    if not result.closed_normally:
        reason = f" ({result.close_reason})" if result.close_reason else ""
        print(f"error: connection closed with code {result.close_code}{reason}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m demos.stream_file",
        description="Stream WAV files (16 kHz mono 16-bit), one per participant, as one meeting.",
    )
    parser.add_argument("files", nargs="+", type=Path, help="one WAV file per participant")
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
    parser.add_argument("--lang", default="en", help="language code sent in every header (default en)")
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
        "--chunk-samples",
        type=positive_int,
        default=DEFAULT_CHUNK_SAMPLES,
        help=f"samples per message (default {DEFAULT_CHUNK_SAMPLES} = 1.024 s)",
    )
    args = parser.parse_args(bare_fast_as_unbounded(argv))
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


def load_tracks(files: Sequence[Path], participants: Sequence[str] | None) -> list[Track]:
    names = list(participants) if participants is not None else [path.stem for path in files]
    return [(name, read_wav_pcm(str(path))) for name, path in zip(names, files, strict=True)]


def describe_refusal(refusal: InvalidStatus) -> str:
    response = refusal.response
    body = response.body.decode("utf-8", errors="replace").strip() if response.body else ""
    return f"HTTP {response.status_code} {response.reason_phrase}" + (f": {body[:200]}" if body else "")


def format_offset(seconds: float) -> str:
    """`mm:ss.s`, rounding to tenths first so 59.96 s reads 01:00.0, not 00:60.0."""
    minutes, tenths = divmod(round(max(0.0, seconds) * 10), 600)
    return f"{minutes:02d}:{tenths / 10:04.1f}"


def format_final(payload: dict[str, Any], started_at_wall: float) -> str:
    offset_s = payload.get("ts", 0) / 1000 - started_at_wall
    confidence = float(payload.get("variance", 0.0))
    return (
        f"[{format_offset(offset_s)}] {payload.get('participant_id')}: "
        f"{str(payload.get('text', '')).strip()}  (conf {confidence:.2f})"
    )


def format_interim(payload: dict[str, Any]) -> str:
    return f"… {payload.get('participant_id')}: {str(payload.get('text', '')).strip()}"


def format_error(payload: dict[str, Any]) -> str:
    participant = payload.get("participant_id")
    where = f" ({participant})" if participant else ""
    return f"server error {payload.get('code')}{where}: {payload.get('message')}"


class ConsolePrinter:
    """Prints server messages as they arrive; on a terminal the current interim is rewritten in place.

    A final is stamped with its `ts` (server clock) as time since `started_at_wall`.
    """

    def __init__(self, out: TextIO, err: TextIO, *, as_json: bool, started_at_wall: float) -> None:
        self._out = out
        self._err = err
        self._as_json = as_json
        self._started_at_wall = started_at_wall
        self._live = out.isatty()
        self._interim_shown = False

    def show(self, message: ReceivedMessage) -> None:
        payload = message.payload
        if self._as_json:
            print(message.raw, file=self._out, flush=True)
        if payload is None:
            self._print_err(f"unexpected message from server: {message.raw[:200]}")
        elif message.type == "error":
            self._print_err(format_error(payload))
        elif self._as_json:
            return
        elif message.type == "interim":
            self._show_interim(format_interim(payload))
        elif message.type == "final":
            self.clear_interim()
            print(format_final(payload, self._started_at_wall), file=self._out, flush=True)

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


def print_transcripts(result: MeetingResult, participants: Sequence[str], out: TextIO) -> None:
    print("\n== transcripts ==", file=out)
    for participant in participants:
        print(f"{participant}: {result.transcript(participant)}", file=out)


if __name__ == "__main__":
    sys.exit(main())
