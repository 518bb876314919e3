"""`make bench-pipeline`: how many windows a second one ingress process and one worker process
carry when the model costs what it would on a GPU. A CPU predictor of the GPU pool's ceiling.

    python -m bench.pipeline [--talkers 8,16,32,64] [--call-ms 0,5] [--seconds 20] [--speed 1]
                             [--batch-size 32] [--queued 1024] [--quick] [--corpus DIR] [--out DIR]

For each model cost (`--call-ms`: the time of one model call, one window or a batch; 0, and 5 ms
as a GPU takes for tiny.en) it starts the service with the benchmark's own worker, whose model
call is the fixed-cost stand-in (`bench/standin.py`: it sleeps that long and answers with the
words the real model hears offline in that audio, so the policy commits and cuts as it would),
and streams N talkers (meetings of one, each saying the corpus clips rotated, `--speed` times
real time). Per N: windows a second, windows per model call (batch fill), the dispatch-to-result
time of a window (p50 / p90, from the ingress's histogram), the worker's CPU per window (all of it
outside the model call, since the stand-in sleeps; its own look-up is counted in it), and the
ingress's CPU per second of talker audio, and its split: the event loop's thread (protocol, policy,
Redis, JSON) and the rest (the VAD's threads).

Then, per model cost, the worker alone in full batches (`--queued N`, 0 to skip): N windows of
the clips' audio are queued at once while the worker is stopped (SIGSTOP), so that each batch it
takes is as full as WHISPER_BATCH_SIZE allows; its CPU per window from its restart to the last
answer is what one window costs a GPU worker's CPU outside the model call.

It prints `pipeline ceiling: X windows/s` per model cost: the most windows a second of a step
whose p90 dispatch-to-result stayed within 1 s. The client streams from this process, so on two
cores the client, Redis, the ingress and the worker share them. Results land in
bench/results/<timestamp>-pipeline/ (results.md, results.json, logs/).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import signal
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import psutil
import redis
from prometheus_client.parser import text_string_to_metric_families

from bench.capacity import Failure, stream_meetings, transcribe_clips
from bench.capacity_report import LANGUAGE
from bench.capacity_tracks import MAX_CLIP_S, Clip, corpus_clips, pick, talker_tracks
from bench.corpus import default_corpus_dir, load_corpus
from bench.pipeline_worker import CALL_MS_VARIABLE, STANDIN_FILE_VARIABLE
from bench.run import RESULTS_DIR, STREAM_MARGIN_S, Endpoint, positive_counts
from bench.standin import StandinClip, write_standin_file
from commands.launcher import LocalStack, free_port
from demos.client import MeetingResult
from service import names
from service.audio import BYTES_PER_SECOND
from service.contracts import AudioPiece, WindowRequest, WordTiming
from service.settings import Settings
from tasks.celery_app import create_celery_app

logger = logging.getLogger(__name__)

ROUND_TRIP_METRIC = "streaming_whisper_window_round_trip_seconds"
CEILING_P90_S = 1.0
"""A step counts towards the ceiling while 90% of its windows come back within this."""
OFFLINE_PROBABILITY = 0.9
"""The stand-in's words are sure ones (the offline pass gives no probabilities here)."""
QUICK = {"talkers": [2], "call_ms": [5.0], "seconds": 8.0, "queued": 64}
QUEUED_WINDOW_S = 6.0
"""Audio of each queued window: a typical window (new speech and its context)."""
QUEUED_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Usage:
    """What the service had done at one moment: its counters and its processes' CPU seconds."""

    windows: int
    batches: int
    ingress_cpu_s: float
    ingress_loop_cpu_s: float
    worker_cpu_s: float
    round_trips: dict[float, float]
    """Cumulative histogram: upper bound in seconds -> windows that came back within it."""


class WorkerShare:
    """What a step's windows cost the worker (its fields are the dataclasses' own)."""

    windows: int
    batches: int
    worker_cpu_s: float

    @property
    def batch_fill(self) -> float:
        return self.windows / self.batches if self.batches else 0.0

    @property
    def worker_cpu_ms_per_window(self) -> float:
        return 1000 * self.worker_cpu_s / self.windows if self.windows else math.nan


@dataclass(frozen=True)
class PipelineStep(WorkerShare):
    call_ms: float
    talkers: int
    seconds: float
    """Wall time the talkers streamed."""
    audio_s: float
    """Seconds of audio the talkers sent together."""
    windows: int
    batches: int
    round_trip_p50_s: float
    round_trip_p90_s: float
    ingress_cpu_s: float
    ingress_loop_cpu_s: float
    """Of `ingress_cpu_s`, the event loop's thread (the process's main thread): the websocket, the
    policy, Redis and JSON. The rest is the VAD's threads (the model and the PCM conversion)."""
    worker_cpu_s: float
    errors: int

    @property
    def windows_per_s(self) -> float:
        return self.windows / self.seconds if self.seconds > 0 else 0.0

    @property
    def ingress_cpu_ms_per_talker_s(self) -> float:
        return 1000 * self.ingress_cpu_s / self.audio_s if self.audio_s else math.nan

    @property
    def ingress_loop_ms_per_talker_s(self) -> float:
        return 1000 * self.ingress_loop_cpu_s / self.audio_s if self.audio_s else math.nan

    @property
    def ingress_vad_ms_per_talker_s(self) -> float:
        """The ingress's other threads: the VAD's pool (nothing else there runs for long)."""
        return self.ingress_cpu_ms_per_talker_s - self.ingress_loop_ms_per_talker_s


def quantile_from_buckets(buckets: dict[float, float], q: float) -> float:
    """The q-quantile of a cumulative histogram, linear within the bucket it falls in (inf past
    the last finite bound, nan when it is empty)."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return math.nan
    wanted = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= wanted:
            if math.isinf(bound):
                return math.inf
            share = (wanted - lower_count) / (count - lower_count) if count > lower_count else 1.0
            return lower_bound + share * (bound - lower_bound)
        lower_bound, lower_count = bound, count
    return math.inf


def ceiling(steps: Sequence[PipelineStep]) -> float:
    """The most windows a second among steps whose p90 stayed within `CEILING_P90_S` (0 if none)."""
    held = [s.windows_per_s for s in steps if s.round_trip_p90_s <= CEILING_P90_S and not s.errors]
    return max(held, default=0.0)


# --- measuring ---------------------------------------------------------------------------------


def read_round_trips(base_url: str) -> dict[float, float]:
    with urllib.request.urlopen(base_url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == ROUND_TRIP_METRIC + "_bucket":
                buckets[float(sample.labels["le"])] = float(sample.value)
    return buckets


def cpu_seconds(process: psutil.Process) -> float:
    """CPU seconds of a process and its children (a Celery worker runs its pool in children)."""
    total = 0.0
    for each in [process, *process.children(recursive=True)]:
        try:
            times = each.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def main_thread_cpu_seconds(process: psutil.Process) -> float:
    """CPU seconds of a process's main thread (Linux numbers it as the process)."""
    (main,) = [thread for thread in process.threads() if thread.id == process.pid]
    return main.user_time + main.system_time


def read_usage(stack: LocalStack, counters: redis.Redis) -> Usage:
    windows, batches = counters.mget(names.WINDOWS_TRANSCRIBED, names.BATCHES_TRANSCRIBED)
    ingress = psutil.Process(stack.process("ingress").pid)
    return Usage(
        windows=int(windows or 0),
        batches=int(batches or 0),
        ingress_cpu_s=cpu_seconds(ingress),
        ingress_loop_cpu_s=main_thread_cpu_seconds(ingress),
        worker_cpu_s=cpu_seconds(psutil.Process(stack.process("worker").pid)),
        round_trips=read_round_trips(stack.base_http_url),
    )


def errors_of(outcome: MeetingResult | Failure) -> int:
    """Error messages of a meeting, and one more if it did not close normally (or never ran)."""
    if isinstance(outcome, Failure):
        return 1
    return len(outcome.errors()) + (not outcome.closed_normally)


def run_step(
    stack: LocalStack, counters: redis.Redis, call_ms: float, tracks: list[tuple[str, bytes]], speed: float
) -> PipelineStep:
    endpoint = Endpoint(f"ws://{stack.settings.host}:{stack.settings.port}", stack.redis_url)
    limit_s = max(len(pcm) for _, pcm in tracks) / BYTES_PER_SECOND / speed + STREAM_MARGIN_S
    before = read_usage(stack, counters)
    started = time.monotonic()
    outcomes = asyncio.run(stream_meetings(endpoint, [[track] for track in tracks], limit_s, speed))
    seconds = time.monotonic() - started
    after = read_usage(stack, counters)
    trips = {bound: count - before.round_trips.get(bound, 0.0) for bound, count in after.round_trips.items()}
    return PipelineStep(
        call_ms=call_ms,
        talkers=len(tracks),
        seconds=seconds,
        audio_s=sum(len(pcm) for _, pcm in tracks) / BYTES_PER_SECOND,
        windows=after.windows - before.windows,
        batches=after.batches - before.batches,
        round_trip_p50_s=quantile_from_buckets(trips, 0.5),
        round_trip_p90_s=quantile_from_buckets(trips, 0.9),
        ingress_cpu_s=after.ingress_cpu_s - before.ingress_cpu_s,
        ingress_loop_cpu_s=after.ingress_loop_cpu_s - before.ingress_loop_cpu_s,
        worker_cpu_s=after.worker_cpu_s - before.worker_cpu_s,
        errors=sum(errors_of(outcome) for outcome in outcomes),
    )


@dataclass(frozen=True)
class QueuedStep(WorkerShare):
    """The worker alone, taking windows that were all waiting when it started."""

    call_ms: float
    windows: int
    batches: int
    seconds: float
    worker_cpu_s: float


@contextmanager
def stopped(process: psutil.Process) -> Iterator[None]:
    """A process and its children stopped (SIGSTOP) for the duration, then resumed."""
    family = [process, *process.children(recursive=True)]
    for each in family:
        each.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        for each in family:
            each.send_signal(signal.SIGCONT)


def queued_requests(clips: Sequence[Clip], count: int, reply_to: str) -> list[tuple[WindowRequest, bytes]]:
    """`count` windows of the clips' first seconds, rotating, each with the audio it names."""
    length = int(QUEUED_WINDOW_S * BYTES_PER_SECOND) // 2 * 2
    windows = []
    for n in range(count):
        pcm = clips[n % len(clips)].pcm[:length]
        request_id = uuid.uuid4().hex
        key = names.audio_key(request_id, 0)
        pieces = [AudioPiece(key=key, start=0, end=len(pcm))]
        request = WindowRequest(request_id=request_id, audio=pieces, reply_to=reply_to, language=LANGUAGE)
        windows.append((request, pcm))
    return windows


def run_queued_step(
    stack: LocalStack, counters: redis.Redis, call_ms: float, clips: Sequence[Clip], count: int
) -> QueuedStep:
    reply_to = names.reply_stream(f"bench-queued-{uuid.uuid4().hex}")
    windows = queued_requests(clips, count, reply_to)
    with counters.pipeline(transaction=False) as pipe:
        for request, pcm in windows:
            pipe.set(request.audio[0].key, pcm, ex=names.AUDIO_TTL_S)
            pipe.set(names.window_key(request.request_id), 1, ex=names.AUDIO_TTL_S)
        pipe.execute()
    app = create_celery_app(Settings(redis_url=stack.redis_url))
    worker = psutil.Process(stack.process("worker").pid)
    before = read_usage(stack, counters)
    try:
        with stopped(worker):
            for request, _ in windows:
                app.send_task(
                    names.TRANSCRIBE_TASK,
                    args=[request.model_dump()],
                    queue=names.TRANSCRIBE_QUEUE,
                    priority=names.FINAL_PRIORITY,
                )
            cpu_before = cpu_seconds(worker)
        started = time.monotonic()
        deadline = started + QUEUED_TIMEOUT_S
        while int(counters.get(names.WINDOWS_TRANSCRIBED) or 0) < before.windows + count:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the worker did not answer {count} queued windows in {QUEUED_TIMEOUT_S:.0f} s"
                )
            time.sleep(0.01)
        seconds = time.monotonic() - started
        after = read_usage(stack, counters)
    finally:
        app.close()
        counters.delete(reply_to, *(request.audio[0].key for request, _ in windows))
    return QueuedStep(
        call_ms=call_ms,
        windows=after.windows - before.windows,
        batches=after.batches - before.batches,
        seconds=seconds,
        worker_cpu_s=after.worker_cpu_s - cpu_before,
    )


# --- the run -----------------------------------------------------------------------------------


def milliseconds(text: str) -> list[float]:
    values = [float(value) for value in text.split(",") if value.strip()]
    if not values or any(value < 0 for value in values):
        raise argparse.ArgumentTypeError("give one or more costs in ms >= 0, comma separated")
    return values


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--talkers", type=positive_counts, help="N of each step (default 8,16,32,64)")
    parser.add_argument("--call-ms", type=milliseconds, help="model call costs in ms (default 0,5)")
    parser.add_argument("--seconds", type=float, help="audio each talker sends (default 20)")
    parser.add_argument("--speed", type=float, default=1.0, help="times real time each talker streams")
    parser.add_argument("--batch-size", type=int, default=32, help="WHISPER_BATCH_SIZE of the worker")
    parser.add_argument(
        "--queued", type=int, help="windows queued at once for the worker alone (default 1024; 0: skip)"
    )
    parser.add_argument("--quick", action="store_true", help="one small step: a smoke run")
    parser.add_argument("--corpus", type=Path, default=default_corpus_dir(), help="folder with manifest.json")
    parser.add_argument("--out", type=Path, help="default bench/results/<timestamp>-pipeline")
    args = parser.parse_args(argv)
    defaults = (
        QUICK
        if args.quick
        else {"talkers": [8, 16, 32, 64], "call_ms": [0.0, 5.0], "seconds": 20.0, "queued": 1024}
    )
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def standin_clips(clips: Sequence[Clip]) -> dict[str, StandinClip]:
    """Each clip with the words the real model hears in it offline."""
    offline = transcribe_clips(clips, Settings())
    return {
        clip.name: StandinClip(
            clip.pcm,
            [
                WordTiming(text=w.text, start=w.start, end=w.end, probability=OFFLINE_PROBABILITY)
                for w in offline[clip.name].words
            ],
        )
        for clip in clips
    }


def run(args: argparse.Namespace, folder: Path) -> tuple[str, list[PipelineStep], list[QueuedStep]]:
    clips = pick(corpus_clips(load_corpus(args.corpus), LANGUAGE, MAX_CLIP_S), args.seconds)
    standin_file = write_standin_file(folder / "standin", standin_clips(clips))
    steps: list[PipelineStep] = []
    queued: list[QueuedStep] = []
    for call_ms in args.call_ms:
        settings = Settings(port=free_port(), bypass_authorization=True, redis_url=None, redis_host=None)
        env = {
            "BYPASS_AUTHORIZATION": "1",
            "WHISPER_BATCH_SIZE": str(args.batch_size),
            "SATURATION_ROUND_TRIP_S": "0",  # measure past saturation instead of refusing talkers
            "WHISPER_MAX_CONNECTIONS": "100000",
            CALL_MS_VARIABLE: str(call_ms),
            STANDIN_FILE_VARIABLE: str(standin_file),
        }
        logs = folder / "logs" / f"call-{call_ms:g}ms"
        with (
            LocalStack(settings, log_dir=logs, extra_env=env, worker_module="bench.pipeline_worker") as stack,
            redis.Redis.from_url(stack.redis_url) as counters,
        ):
            for talkers in args.talkers:
                tracks = [(t.participant, t.pcm()) for t in talker_tracks(clips, talkers)]
                step = run_step(stack, counters, call_ms, tracks, args.speed)
                steps.append(step)
                logger.info("%s", describe(step))
            if args.queued > 0:
                alone = run_queued_step(stack, counters, call_ms, clips, args.queued)
                queued.append(alone)
                logger.info("%s", describe_queued(alone))
    markdown = report(args, steps, queued)
    (folder / "results.md").write_text(markdown + "\n", encoding="utf-8")
    results = [{**asdict(s), "windows_per_s": s.windows_per_s, "batch_fill": s.batch_fill} for s in steps]
    queued_results = [
        {**asdict(q), "batch_fill": q.batch_fill, "worker_cpu_ms_per_window": q.worker_cpu_ms_per_window}
        for q in queued
    ]
    (folder / "results.json").write_text(
        json.dumps({"steps": results, "queued": queued_results}, indent=2), encoding="utf-8"
    )
    return markdown, steps, queued


def describe(step: PipelineStep) -> str:
    return (
        f"{step.call_ms:g} ms a call, {step.talkers} talkers: {step.windows_per_s:.1f} windows/s, "
        f"{step.batch_fill:.1f} windows a call, round trip p50 {step.round_trip_p50_s:.2f} s / p90 "
        f"{step.round_trip_p90_s:.2f} s, worker CPU {step.worker_cpu_ms_per_window:.2f} ms a window, "
        f"ingress CPU {step.ingress_cpu_ms_per_talker_s:.2f} ms a talker-second (event loop "
        f"{step.ingress_loop_ms_per_talker_s:.2f}, VAD {step.ingress_vad_ms_per_talker_s:.2f}), "
        f"{step.errors} error(s)"
    )


def describe_queued(step: QueuedStep) -> str:
    return (
        f"{step.call_ms:g} ms a call, {step.windows} windows queued at once: {step.batch_fill:.1f} windows a "
        f"call, worker CPU {step.worker_cpu_ms_per_window:.2f} ms a window, {step.seconds:.1f} s"
    )


def report(args: argparse.Namespace, steps: Sequence[PipelineStep], queued: Sequence[QueuedStep] = ()) -> str:
    lines = [
        f"# Pipeline benchmark {datetime.now().isoformat(timespec='seconds')}",
        "",
        f"One ingress process, one worker process (batch size {args.batch_size}), embedded Redis; "
        f"talkers stream {args.seconds:g} s of audio each at {args.speed:g}x real time; the model call "
        "is the fixed-cost stand-in.",
        "",
        "| model call | talkers | windows/s | windows a call | round trip p50 / p90 s "
        "| worker CPU ms a window | ingress CPU ms a talker-second (event loop / VAD) | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for step in steps:
        lines.append(
            f"| {step.call_ms:g} ms | {step.talkers} | {step.windows_per_s:.1f} | {step.batch_fill:.1f} "
            f"| {step.round_trip_p50_s:.2f} / {step.round_trip_p90_s:.2f} "
            f"| {step.worker_cpu_ms_per_window:.2f} "
            f"| {step.ingress_cpu_ms_per_talker_s:.2f} ({step.ingress_loop_ms_per_talker_s:.2f} / "
            f"{step.ingress_vad_ms_per_talker_s:.2f}) | {step.errors} |"
        )
    lines.append("")
    for call_ms in args.call_ms:
        best = ceiling([step for step in steps if step.call_ms == call_ms])
        lines.append(f"pipeline ceiling: {best:.0f} windows/s (model call {call_ms:g} ms, p90 ≤ 1 s)")
    if queued:
        lines += [
            "",
            f"The worker alone, every window queued before it started ({QUEUED_WINDOW_S:g} s of audio each):",
            "",
            "| model call | windows | windows a call | worker CPU ms a window | seconds |",
            "|---|---|---|---|---|",
        ]
        for alone in queued:
            lines.append(
                f"| {alone.call_ms:g} ms | {alone.windows} | {alone.batch_fill:.1f} "
                f"| {alone.worker_cpu_ms_per_window:.2f} | {alone.seconds:.1f} |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = parse_args(argv)
    folder = args.out or RESULTS_DIR / f"{datetime.now():%Y%m%d-%H%M%S}-pipeline"
    folder.mkdir(parents=True, exist_ok=True)
    markdown, _, _ = run(args, folder)
    print(markdown)
    logger.info("results in %s", folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
