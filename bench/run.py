"""`make bench`: stream corpus items through the whole service, one after another, and measure
accuracy, latency and compute against the same model transcribing each whole file offline.

    python -m bench.run [--quick] [--items a,b] [--language en] [--speed 1.0] [--corpus DIR]
                        [--protocol seed,openai]
                        [--url ws://host:port [--redis-url redis://...] [--token JWT]] [--out DIR]

Without --url it starts the service itself (embedded Redis, a worker, the ingress, on free ports).
`--protocol`: the seed protocol (the default: one socket a meeting, 1.024 s chunks), the OpenAI
Realtime API's transcription sessions (`openai`: one socket a track, 100 ms appends at 24 kHz,
through the official SDK), or both one after the other against the same service.
Results land in bench/results/<timestamp>/: results.json, results.md, latency.png, logs/ (with
both protocols, one folder of results each: seed/, openai/).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import statistics
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import redis

from bench.corpus import NO_LANGUAGE, REPO_ROOT, CorpusItem, default_corpus_dir, load_corpus, select_items
from bench.measures import ParticipantRun, StreamCompute, check_targets, combine, measure_item
from bench.metrics import FINAL, INTERIM, Message, TimedWord
from bench.report import ItemReport, Report, write_all
from commands.launcher import LocalStack, free_port
from demos.client import DEFAULT_CHUNK_SAMPLES, MeetingResult, ReceivedMessage, meeting_url, stream_meeting
from demos.realtime_client import COMPLETED, DELTA, PIECE_S, RealtimeResult, stream_realtime
from service import names
from service.audio import SAMPLE_RATE
from service.logs import configure_logging
from service.pcm_files import read_pcm
from service.settings import Settings

if TYPE_CHECKING:
    from models.transcriber import Transcriber

logger = logging.getLogger(__name__)

RESULTS_DIR = REPO_ROOT / "bench" / "results"
QUICK_ITEMS = ("jfk_ask_not", "silence_20s")
"""--quick: about 45 s on two cores, in real time so its latencies compare with the targets."""
STREAM_MARGIN_S = 120.0
"""Beyond the audio's own duration: the end-of-meeting flush and a slow worker's backlog."""
PROTOCOLS = ("seed", "openai")
CHUNK_SAMPLES = {"seed": DEFAULT_CHUNK_SAMPLES, "openai": round(PIECE_S * SAMPLE_RATE)}
"""Audio per message of each protocol's client, at 16 kHz (what the latency measures count in)."""
SETTLE_POLL_S = 0.5
SETTLE_TIMEOUT_S = 10.0

OfflineKey = tuple[str, str]
"""(item name, participant)."""


@dataclass(frozen=True)
class OfflineTranscript:
    words: list[TimedWord]
    compute_s: float
    """The median of `pass_compute_s` (one pass: its own time)."""
    pass_compute_s: tuple[float, ...] = ()


@dataclass(frozen=True)
class Endpoint:
    url: str
    redis_url: str | None
    """Where the workers' compute counters are; None: compute is reported as unavailable."""
    token: str | None = None


# --- command line ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=default_corpus_dir(), help="folder with manifest.json")
    parser.add_argument("--items", type=_csv, default=[], help="comma-separated item names")
    parser.add_argument(
        "--language",
        type=_csv,
        default=["en"],
        help="comma-separated languages of the items to run when --items is not given (default en; "
        "silence and noise always run, in the first language)",
    )
    parser.add_argument("--speed", type=float, default=1.0, help="pacing factor (default 1.0: real time)")
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK_ITEMS)}")
    parser.add_argument(
        "--protocol",
        type=_protocols,
        default=["seed"],
        help="seed, openai (the Realtime API's transcription sessions) or seed,openai (default seed)",
    )
    parser.add_argument("--url", help="a running service (ws://host:port) instead of starting one")
    parser.add_argument("--redis-url", help="that service's Redis, to read the workers' compute counters")
    parser.add_argument("--token", help="JWT for a service that requires one")
    parser.add_argument("--out", type=Path, help="results folder (default bench/results/<timestamp>)")
    args = parser.parse_args(argv)
    if args.quick and not args.items:
        args.items = list(QUICK_ITEMS)
    if not (args.speed > 0 and math.isfinite(args.speed)):
        parser.error("--speed must be positive")
    if args.redis_url and not args.url:
        parser.error("--redis-url goes with --url (without --url the benchmark starts its own Redis)")
    return args


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


Number = TypeVar("Number", int, float)


def _protocols(value: str) -> list[str]:
    protocols = _csv(value)
    unknown = [name for name in protocols if name not in PROTOCOLS]
    if unknown or not protocols:
        raise argparse.ArgumentTypeError(
            f"expected {' or '.join(PROTOCOLS)} (comma-separated), got {value!r}"
        )
    return list(dict.fromkeys(protocols))


def positive_counts(value: str) -> list[int]:
    """An argparse type: "1,2,4" -> [1, 2, 4], every count at least 1 (the benchmarks' N lists)."""
    return _numbers(value, int, 1, "counts")


def non_negative_seconds(value: str) -> list[float]:
    """An argparse type: "0,0.3" -> [0.0, 0.3], every one at least 0."""
    return _numbers(value, float, 0, "seconds")


def _numbers(value: str, kind: Callable[[str], Number], minimum: Number, what: str) -> list[Number]:
    try:
        numbers = [kind(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {value!r}") from None
    if not numbers or min(numbers) < minimum:
        raise argparse.ArgumentTypeError(f"expected {what} of at least {minimum}, got {value!r}")
    return numbers


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging("INFO")
    started = datetime.now()
    folder = args.out or RESULTS_DIR / started.strftime("%Y%m%d-%H%M%S")
    items = select_items(load_corpus(args.corpus), args.items, args.language)
    settings = Settings()
    offline = transcribe_offline(items, args.language[0], settings)
    with running_service(args, folder / "logs") as endpoint:
        runs = {
            protocol: [
                run_item(item, endpoint, args.speed, args.language[0], offline, protocol) for item in items
            ]
            for protocol in args.protocol
        }
    for protocol, reports in runs.items():
        total = combine("total", [entry.item for entry in reports])
        config = {
            "started": started.isoformat(timespec="seconds"),
            "model": settings.whisper_model_name,
            "protocol": protocol,
            "speed": args.speed,
            "chunk_samples": CHUNK_SAMPLES[protocol],
            "url": args.url or "local stack",
            "cpu_count": os.cpu_count(),
            "corpus": str(args.corpus),
            "items": [item.name for item in items],
        }
        report = Report(config, reports, total, check_targets([entry.item for entry in reports]))
        print(f"## protocol: {protocol}\n")
        print(write_all(report, folder / protocol if len(runs) > 1 else folder))
    logger.info("results in %s", folder)
    return 0


# --- the offline limit -------------------------------------------------------------------------


OFFLINE_REPEATS = 3
"""Times each track is transcribed offline; its compute is the median. One pass of the long-form
item took 8.2 s in one run and 10.5 s in another on this shared machine (greedy decoding gives
the same words each time), and that one figure is the denominator of every compute ratio."""


def transcribe_offline(
    items: Sequence[CorpusItem], default_language: str, settings: Settings
) -> dict[OfflineKey, OfflineTranscript]:
    """Each track transcribed whole by the same model the workers load, before any streaming."""
    from models.transcriber import Transcriber

    transcriber = Transcriber.from_settings(offline_settings(settings))
    transcripts: dict[OfflineKey, OfflineTranscript] = {}
    for item in items:
        for track in item.tracks:
            pcm, language = read_pcm(track.audio), language_of(item, default_language)
            runs = [offline_transcript(transcriber, pcm, language) for _ in range(OFFLINE_REPEATS)]
            passes = tuple(run.compute_s for run in runs)
            transcript = OfflineTranscript(runs[0].words, statistics.median(passes), passes)
            transcripts[item.name, track.participant] = transcript
            logger.info(
                "offline %s/%s: %s s of compute, median %.2f s",
                item.name,
                track.participant,
                " / ".join(f"{seconds:.2f}" for seconds in passes),
                transcript.compute_s,
            )
    return transcripts


def offline_settings(settings: Settings) -> Settings:
    """The offline limit on a worker call's footing: one call, one thread. Compute is compared in
    seconds of one core, which is what a worker's call spends. On both cores the whole recording
    is done sooner but costs more (the 258 s long-form item, 2026-12-03, twice each: 9.0-10.3 s on
    one thread; 7.3-9.6 s on two, 10.9-13.5 s of CPU), so its wall time would understate what
    offline transcription costs by 10-25%."""
    return settings.model_copy(update={"whisper_cpu_threads": 1, "whisper_parallel_calls": 1})


def offline_transcript(transcriber: Transcriber, pcm: bytes, language: str) -> OfflineTranscript:
    """The words of a whole recording, with times in seconds from its start, and the compute spent."""
    result = transcriber.transcribe_recording(pcm, language)
    words = [TimedWord(word.text, word.start, word.end) for word in result.words]
    return OfflineTranscript(words, result.compute_s)


def language_of(item: CorpusItem, default_language: str) -> str:
    return default_language if item.language == NO_LANGUAGE else item.language


# --- the service -------------------------------------------------------------------------------


@contextmanager
def running_service(args: argparse.Namespace, log_dir: Path) -> Iterator[Endpoint]:
    if args.url:
        if not args.redis_url:
            logger.warning("no --redis-url: worker compute will be reported as unavailable")
        yield Endpoint(args.url, args.redis_url, args.token)
        return
    settings = Settings(port=free_port(), bypass_authorization=True, redis_url=None, redis_host=None)
    with LocalStack(settings, log_dir=log_dir, extra_env={"BYPASS_AUTHORIZATION": "1"}) as stack:
        yield Endpoint(f"ws://{settings.host}:{settings.port}", stack.redis_url)


def run_item(
    item: CorpusItem,
    endpoint: Endpoint,
    speed: float,
    default_language: str,
    offline: dict[OfflineKey, OfflineTranscript],
    protocol: str = "seed",
) -> ItemReport:
    language = language_of(item, default_language)
    stream = stream_item_realtime if protocol == "openai" else stream_item
    result, compute = stream(item, endpoint, speed, language)
    runs = [
        ParticipantRun(
            participant=track.participant,
            reference=track.reference,
            offline_words=offline[item.name, track.participant].words,
            offline_compute_s=offline[item.name, track.participant].compute_s,
            messages=participant_messages(result, track.participant),
            sent_at=result.sent_at[track.participant],
        )
        for track in item.tracks
    ]
    measures, participants = measure_item(
        item.name,
        runs,
        language=language,
        duration_s=item.duration_s,
        chunk_samples=CHUNK_SAMPLES[protocol],
        stream_compute=compute,
    )
    return ItemReport(
        item=measures,
        participants=participants if item.multi_speaker else [],
        server_errors=[str(error.get("message", error)) for error in result.errors()],
        close_code=result.close_code,
        close_reason=result.close_reason,
    )


def stream_item(
    item: CorpusItem, endpoint: Endpoint, speed: float, language: str
) -> tuple[MeetingResult, StreamCompute | None]:
    """One meeting with a participant per track, and the worker compute it caused."""
    tracks = [(track.participant, read_pcm(track.audio)) for track in item.tracks]
    meeting = meeting_url(endpoint.url, f"bench-{item.name}-{uuid.uuid4().hex[:8]}")
    logger.info("streaming %s: %d track(s) of %.1f s at %gx", item.name, len(tracks), item.duration_s, speed)
    counters = redis.Redis.from_url(endpoint.redis_url) if endpoint.redis_url else None
    try:
        before = read_counters(counters) if counters else None
        result = asyncio.run(
            _stream(meeting, tracks, language, speed, item.duration_s / speed, endpoint.token)
        )
        compute = settled_counters(counters) - before if counters and before else None
    finally:
        if counters is not None:
            counters.close()
    logger.info("%s: %d messages, close code %s", item.name, len(result.messages), result.close_code)
    return result, compute


def stream_item_realtime(
    item: CorpusItem, endpoint: Endpoint, speed: float, language: str
) -> tuple[MeetingResult, StreamCompute | None]:
    """Each track through its own Realtime session, all at once, as one meeting's result (an
    interim per delta, with the item's text so far; a final per completed item)."""
    tracks = [(track.participant, read_pcm(track.audio)) for track in item.tracks]
    logger.info("streaming %s over the Realtime API: %d session(s) at %gx", item.name, len(tracks), speed)
    counters = redis.Redis.from_url(endpoint.redis_url) if endpoint.redis_url else None

    async def sessions() -> list[RealtimeResult]:
        async with asyncio.timeout(item.duration_s / speed + STREAM_MARGIN_S):
            return await asyncio.gather(
                *(
                    stream_realtime(endpoint.url, pcm, speed, language, token=endpoint.token or "no-key")
                    for _, pcm in tracks
                )
            )

    try:
        before = read_counters(counters) if counters else None
        results = asyncio.run(sessions())
        compute = settled_counters(counters) - before if counters and before else None
    finally:
        if counters is not None:
            counters.close()
    return as_meeting(endpoint.url, [participant for participant, _ in tracks], results), compute


def as_meeting(url: str, participants: list[str], results: list[RealtimeResult]) -> MeetingResult:
    meeting = MeetingResult(
        url, min(result.started_at for result in results), time.time(), close_code=1000, end_sent_at=None
    )
    for participant, result in zip(participants, results, strict=True):
        meeting.sent_at[participant] = result.sent_at
        said: dict[str, str] = {}
        for event in result.events:
            payload = event.payload
            item_id = str(payload.get("item_id", ""))
            if event.type == DELTA:
                said[item_id] = said.get(item_id, "") + str(payload.get("delta", ""))
                shown = {"type": INTERIM, "id": item_id, "participant_id": participant, "text": said[item_id]}
            elif event.type == COMPLETED:
                shown = {
                    "type": FINAL,
                    "id": item_id,
                    "participant_id": participant,
                    "text": payload["transcript"],
                }
            elif event.type == "error":
                shown = {"type": "error", "participant_id": participant, **payload["error"]}
            else:
                continue
            meeting.messages.append(ReceivedMessage(event.arrived_at, "", shown))
    meeting.messages.sort(key=lambda message: message.arrived_at)
    return meeting


async def _stream(
    url: str, tracks: list[tuple[str, bytes]], language: str, speed: float, audio_s: float, token: str | None
) -> MeetingResult:
    async with asyncio.timeout(audio_s + STREAM_MARGIN_S):
        return await stream_meeting(url, tracks, lang=language, token=token, speed=speed)


def participant_messages(result: MeetingResult, participant: str) -> list[Message]:
    return [
        Message(
            arrived_at=message.arrived_at,
            kind=str(message.type),
            utterance_id=str(message.payload.get("id", "")),
            text=str(message.payload.get("text", "")),
        )
        for message in result.messages
        if message.payload is not None
        and message.participant == participant
        and message.type in (INTERIM, FINAL)
    ]


# --- compute counters --------------------------------------------------------------------------


@dataclass(frozen=True)
class Counters:
    compute_s: float
    windows: int

    def __sub__(self, earlier: Counters) -> StreamCompute:
        return StreamCompute(self.compute_s - earlier.compute_s, self.windows - earlier.windows)


def read_counters(client: redis.Redis) -> Counters:
    compute, windows = client.mget(names.COMPUTE_SECONDS, names.WINDOWS_TRANSCRIBED)
    return Counters(float(compute or 0.0), int(windows or 0))


def settled_counters(client: redis.Redis) -> Counters:
    """The counters once no window has finished for a poll interval: stragglers belong to this item."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    previous = read_counters(client)
    while time.monotonic() < deadline:
        time.sleep(SETTLE_POLL_S)
        current = read_counters(client)
        if current == previous:
            return current
        previous = current
    return previous


if __name__ == "__main__":
    raise SystemExit(main())
