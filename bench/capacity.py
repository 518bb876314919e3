"""`make bench-capacity`: how many meetings one worker keeps live, N streams at once in real time.

    python -m bench.capacity [--quick] [--talkers 1,2,4,6,8] [--participants 5,15,30,45]
                             [--talk-s 45] [--meeting-s 60] [--corpus DIR]
                             [--url ws://host:port [--redis-url redis://...] [--token JWT]] [--out DIR]

Two scenarios, N rising in each:
- every participant talking: N meetings of one participant, each talking all the time;
- one talks at a time: N participants in meetings of 5 that take turns, silent the rest of the time.
Per N: the finals' WER next to the offline WER of the same tracks, the end-of-final latency
(bench.finals: arrival of a final minus the send of the chunk holding its last word's end, by the
offline word timestamps), first appearance, words per final, dropped phrases, worker compute per
second of audio, windows, error messages and refused connections. N holds when every meeting was
served, the p90 end-of-final latency is at most 5 s and the WER at most 1.2x the offline WER of
the step's own tracks (its rotations of the clips), measured in the same run. A scenario stops
rising after a step whose p90 passes twice the bound.

Without --url it starts the service itself (embedded Redis, ONE worker process, the ingress).
Results land in bench/results/<timestamp>-capacity/: results.md, results.json, logs/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import redis
from websockets.exceptions import InvalidHandshake
from websockets.frames import CloseCode

from bench.capacity_report import (
    LANGUAGE,
    TALKERS,
    TURNS,
    Scenario,
    Step,
    aggregate,
    fails_badly,
    summary,
    to_json,
    to_markdown,
    within_latency,
)
from bench.capacity_tracks import (
    MAX_CLIP_S,
    MEETING_SIZE,
    Clip,
    LaidTrack,
    corpus_clips,
    one_at_a_time_meetings,
    pick,
    talker_tracks,
)
from bench.corpus import default_corpus_dir, load_corpus
from bench.measures import ParticipantRun
from bench.metrics import FINAL, INTERIM
from bench.run import (
    RESULTS_DIR,
    STREAM_MARGIN_S,
    Endpoint,
    OfflineTranscript,
    offline_settings,
    offline_transcript,
    participant_messages,
    positive_counts,
    read_counters,
    running_service,
    settled_counters,
)
from demos.client import DEFAULT_CHUNK_SAMPLES, MeetingResult, meeting_url, stream_meeting
from service.audio import SAMPLE_RATE
from service.logs import configure_logging
from service.settings import Settings

logger = logging.getLogger(__name__)

COOLDOWN_S = 10.0
"""After a step over the bound: the ingress refuses new meetings while recent windows were slow."""
CHUNK_S = DEFAULT_CHUNK_SAMPLES / SAMPLE_RATE
QUICK = {
    "talkers": [1, 2],
    "participants": [5],
    "talk_s": 6.0,
    "meeting_s": 10.0,
    "max_clip_s": 6.0,
    "cooldown_s": 0.0,
}
"""--quick: short clips and few steps, about a minute with the stack's start."""


@dataclass(frozen=True)
class Failure:
    """A meeting that was never served: its connection refused, or it ran out of time."""

    refused: bool
    reason: str


# --- command line ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--talkers", type=positive_counts, help="N of the talking scenario (default 1,2,4,6,8)"
    )
    parser.add_argument(
        "--participants",
        type=positive_counts,
        help=f"N of the turns scenario, multiples of {MEETING_SIZE} (default 5,15,30,45)",
    )
    parser.add_argument("--talk-s", type=float, help="seconds of speech per talker (default 45)")
    parser.add_argument("--meeting-s", type=float, help="seconds of speech per meeting of 5 (default 60)")
    parser.add_argument("--quick", action="store_true", help="a smoke run of about a minute")
    parser.add_argument("--corpus", type=Path, default=default_corpus_dir(), help="folder with manifest.json")
    parser.add_argument("--url", help="a running service (ws://host:port) instead of starting one")
    parser.add_argument("--redis-url", help="that service's Redis, to read the workers' compute counters")
    parser.add_argument("--token", help="JWT for a service that requires one")
    parser.add_argument(
        "--out", type=Path, help="results folder (default bench/results/<timestamp>-capacity)"
    )
    args = parser.parse_args(argv)
    defaults: dict[str, Any] = (
        QUICK
        if args.quick
        else {
            "talkers": [1, 2, 4, 6, 8],
            "participants": [5, 15, 30, 45],
            "talk_s": 45.0,
            "meeting_s": 60.0,
            "max_clip_s": MAX_CLIP_S,
            "cooldown_s": COOLDOWN_S,
        }
    )
    for name, value in defaults.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    if any(n % MEETING_SIZE for n in args.participants):
        parser.error(f"--participants must be multiples of {MEETING_SIZE} (whole meetings)")
    if not (args.talk_s > 0 and args.meeting_s > 0):
        parser.error("--talk-s and --meeting-s must be positive")
    if args.redis_url and not args.url:
        parser.error("--redis-url goes with --url (without --url the benchmark starts its own Redis)")
    # The single stream every other step is compared with always runs, first.
    args.talkers = sorted({TALKERS.unit, *args.talkers})
    args.participants = sorted({TURNS.unit, *args.participants})
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging("INFO")
    folder = args.out or RESULTS_DIR / f"{datetime.now():%Y%m%d-%H%M%S}-capacity"
    print(run(args, folder))
    logger.info("results in %s", folder)
    return 0


def run(args: argparse.Namespace, folder: Path) -> str:
    """Both scenarios against the service (started here unless --url); returns the Markdown."""
    started = datetime.now()
    clips = corpus_clips(load_corpus(args.corpus), LANGUAGE, args.max_clip_s)
    talk, turns = pick(clips, args.talk_s), pick(clips, args.meeting_s)
    settings = Settings()
    # Offline first: on two cores the model running beside the streams would slow them down.
    offline = transcribe_clips({clip.name: clip for clip in [*talk, *turns]}.values(), settings)
    config = {
        "started": started.isoformat(timespec="seconds"),
        "model": settings.whisper_model_name,
        "url": args.url or "local stack, one worker process",
        "cpu_count": os.cpu_count(),
        "talk_clips": [clip.name for clip in talk],
        "turn_clips": [clip.name for clip in turns],
        "load_avg_before": os.getloadavg(),
    }
    with running_service(args, folder / "logs") as endpoint:
        results = {
            TALKERS.key: run_scenario(
                TALKERS,
                args.talkers,
                lambda n: [[track] for track in talker_tracks(talk, n)],
                endpoint,
                offline,
                args.cooldown_s,
            ),
            TURNS.key: run_scenario(
                TURNS,
                args.participants,
                lambda n: one_at_a_time_meetings(turns, n // MEETING_SIZE),
                endpoint,
                offline,
                args.cooldown_s,
            ),
        }
    config["load_avg_after"] = os.getloadavg()
    markdown = to_markdown(config, results)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.md").write_text(markdown + "\n", encoding="utf-8")
    (folder / "results.json").write_text(
        json.dumps(to_json(config, results), indent=2) + "\n", encoding="utf-8"
    )
    return markdown


def transcribe_clips(clips: Iterable[Clip], settings: Settings) -> dict[str, OfflineTranscript]:
    """Each clip transcribed whole by the model the workers load: the words' times and the WER limit."""
    from models.transcriber import Transcriber

    transcriber = Transcriber.from_settings(offline_settings(settings))
    return {clip.name: offline_transcript(transcriber, clip.pcm, LANGUAGE) for clip in clips}


# --- running the steps -------------------------------------------------------------------------

Layout = Callable[[int], list[list[LaidTrack]]]
"""N -> the meetings of that step, each a list of its participants' tracks."""


def run_scenario(
    scenario: Scenario,
    counts: Sequence[int],
    layout: Layout,
    endpoint: Endpoint,
    offline: dict[str, OfflineTranscript],
    cooldown_s: float,
) -> list[Step]:
    steps: list[Step] = []
    for n in counts:
        step = run_step(n, layout(n), endpoint, offline)
        steps.append(step)
        logger.info("%s N=%d: %s", scenario.key, n, summary(step))
        if fails_badly(step):
            logger.warning("%s: N=%d is far past the bound; not raising N further", scenario.key, n)
            break
        if not within_latency(step):
            time.sleep(cooldown_s)
    return steps


def run_step(
    n: int, meetings: list[list[LaidTrack]], endpoint: Endpoint, offline: dict[str, OfflineTranscript]
) -> Step:
    """Every meeting at once, in real time; the measures of those served and the compute they cost."""
    load_avg = os.getloadavg()[0]
    pcm = [[(track.participant, track.pcm()) for track in meeting] for meeting in meetings]
    limit_s = max(track.duration_s for meeting in meetings for track in meeting) + STREAM_MARGIN_S
    counters = redis.Redis.from_url(endpoint.redis_url) if endpoint.redis_url else None
    try:
        before = read_counters(counters) if counters else None
        outcomes = asyncio.run(stream_meetings(endpoint, pcm, limit_s))
        compute = settled_counters(counters) - before if counters and before else None
    finally:
        if counters is not None:
            counters.close()
    runs: list[tuple[ParticipantRun, float]] = []
    errors: list[str] = []
    problems: list[str] = []
    refused = timed_out = 0
    for meeting, outcome in zip(meetings, outcomes, strict=True):
        if isinstance(outcome, Failure):
            refused += outcome.refused
            timed_out += not outcome.refused
            problems.append(outcome.reason)
            continue
        errors += [f"{error.get('code')}: {error.get('message')}" for error in outcome.errors()]
        if was_refused(outcome):
            refused += 1
            problems.append(f"refused with {outcome.close_code} {outcome.close_reason!r}")
            continue
        if not outcome.closed_normally:
            problems.append(f"closed with {outcome.close_code} {outcome.close_reason!r}")
        runs += [(participant_run(track, outcome, offline), track.duration_s) for track in meeting]
    measures = aggregate(f"N={n}", runs, compute)
    return Step(n, len(meetings), measures, errors, refused, timed_out, problems, load_avg)


async def stream_meetings(
    endpoint: Endpoint, meetings: list[list[tuple[str, bytes]]], limit_s: float, speed: float = 1.0
) -> list[MeetingResult | Failure]:
    # Meetings start a fraction of a chunk apart, as real ones would, rather than in lockstep.
    stagger_s = CHUNK_S / len(meetings)

    async def one(index: int, tracks: list[tuple[str, bytes]]) -> MeetingResult | Failure:
        await asyncio.sleep(index * stagger_s)
        url = meeting_url(endpoint.url, f"capacity-{uuid.uuid4().hex[:12]}")
        try:
            async with asyncio.timeout(limit_s):
                return await stream_meeting(url, tracks, lang=LANGUAGE, token=endpoint.token, speed=speed)
        except TimeoutError:
            return Failure(refused=False, reason=f"timed out after {limit_s:.0f} s")
        except (OSError, InvalidHandshake) as error:
            return Failure(refused=True, reason=f"connection refused: {error}")

    return await asyncio.gather(*(one(index, tracks) for index, tracks in enumerate(meetings)))


def was_refused(result: MeetingResult) -> bool:
    """Closed as overloaded before any transcript: the ingress turned the meeting away."""
    transcribed = any(message.type in (INTERIM, FINAL) for message in result.messages)
    return result.close_code == CloseCode.TRY_AGAIN_LATER and not transcribed


def participant_run(
    track: LaidTrack, result: MeetingResult, offline: dict[str, OfflineTranscript]
) -> ParticipantRun:
    words = {name: transcript.words for name, transcript in offline.items()}
    return ParticipantRun(
        participant=track.participant,
        reference=track.reference,
        offline_words=track.offline_words(words),
        offline_compute_s=sum(offline[placement.clip.name].compute_s for placement in track.placements),
        messages=participant_messages(result, track.participant),
        sent_at=result.sent_at[track.participant],
    )


if __name__ == "__main__":
    raise SystemExit(main())
