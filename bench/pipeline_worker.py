"""`python -m bench.pipeline_worker worker`: the pipeline benchmark's worker. The real worker
(`tasks/transcribe.py`: Celery, Redis, claims, batching, results) with the fixed-cost stand-in in
place of the model (`bench/standin.py`). Started by `bench/pipeline.py` through `LocalStack`;
the service's own entry point (`streaming-whisper worker`) never loads the stand-in.

Environment: the service's settings, plus `BENCH_MODEL_CALL_MS` (the cost of one model call,
batch or not) and `BENCH_STANDIN_FILE` (the clips and their offline words)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bench.standin import FixedCostTranscriber
from commands.cli import start_celery_worker
from service.logs import configure_logging
from service.settings import Settings, load_settings
from tasks.celery_app import create_celery_app
from tasks.transcribe import register_tasks

CALL_MS_VARIABLE = "BENCH_MODEL_CALL_MS"
STANDIN_FILE_VARIABLE = "BENCH_STANDIN_FILE"


def main() -> None:
    if sys.argv[1:] != ["worker"]:
        raise SystemExit("usage: python -m bench.pipeline_worker worker")
    settings = load_settings()
    configure_logging(settings.log_level)
    call_ms = float(os.environ[CALL_MS_VARIABLE])
    standin_file = Path(os.environ[STANDIN_FILE_VARIABLE])

    def load_standin(_: Settings) -> FixedCostTranscriber:
        return FixedCostTranscriber.from_file(standin_file, call_ms)

    app = create_celery_app(settings)
    register_tasks(app, settings, load_transcriber=load_standin)
    start_celery_worker(app, settings)


if __name__ == "__main__":
    main()
