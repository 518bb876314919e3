"""`streaming-whisper run | ingress | worker`: the entry points (they alone configure logging)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import uuid

from service.logs import configure_logging
from service.settings import Settings, SettingsError, load_settings

logger = logging.getLogger(__name__)


def run_ingress(settings: Settings) -> None:
    import uvicorn

    from ingress.app import create_app

    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        ws_max_size=settings.ws_max_size_bytes,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        log_config=None,  # keep our handlers (and the token redaction filter)
        timeout_graceful_shutdown=10,
    )


def run_worker(settings: Settings) -> None:
    from service import names
    from tasks.celery_app import create_celery_app
    from tasks.transcribe import register_tasks

    app = create_celery_app(settings)
    register_tasks(app, settings)
    app.worker_main(
        [
            "worker",
            f"--loglevel={settings.log_level}",
            f"--concurrency={settings.worker_concurrency}",
            "--pool=prefork",
            f"--queues={names.TRANSCRIBE_QUEUE}",
            f"--hostname=transcriber-{uuid.uuid4().hex[:8]}@%h",
            "--without-mingle",
            "--without-gossip",
        ]
    )


def run_all(settings: Settings) -> None:
    from service.launcher import LocalStack, StackError, StopRequested

    stack = LocalStack(settings)
    stack.stop_on_signals()
    try:
        with stack:
            logger.info("Streaming Whisper is ready: %s", stack.meeting_url("MEETING_ID"))
            stack.wait()
    except StopRequested:
        logger.info("stopped")
    except StackError as error:
        logger.error("stopped: %s", error)
        raise SystemExit(1) from None


COMMANDS = {"run": run_all, "ingress": run_ingress, "worker": run_worker}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="streaming-whisper", description=__doc__)
    parser.add_argument(
        "command",
        choices=sorted(COMMANDS),
        help="run: Redis (embedded unless REDIS_URL/REDIS_HOST is set), a worker and the ingress; "
        "ingress: the websocket server; worker: a Celery transcription worker",
    )
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"streaming-whisper: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_level)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    COMMANDS[args.command](settings)


if __name__ == "__main__":
    main()
