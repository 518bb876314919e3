"""`streaming-whisper run | ingress | worker | stream | models`: the entry points (they alone
configure logging)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from commands.children import exit_with_parent
from service.logs import configure_logging
from service.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from celery import Celery

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
        # Clients send PCM, which deflate barely shrinks: compressing every chunk and message cost
        # the ingress 5% of its CPU (`make bench-pipeline`, profiled). Offered, it is declined.
        ws_per_message_deflate=False,
        log_config=None,  # keep our handlers (and the token redaction filter)
        timeout_graceful_shutdown=10,
    )


NUMERIC_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
"""Read once, when OpenMP, OpenBLAS or MKL loads: the size of each library's own thread pool."""


def pin_numeric_threads(environ: dict[str, str] | os._Environ[str], cpu_threads: int) -> None:
    """Size numpy's and OpenMP's thread pools to the model's (WHISPER_CPU_THREADS, at least one)
    before they load, unless the user set them: left alone, each library starts one thread per
    core in every worker process (the feature extraction's matrix products in OpenBLAS), and
    several processes on one machine oversubscribe it (load average 16-21 on 16 cores for four
    processes on one GPU)."""
    for name in NUMERIC_THREAD_VARIABLES:
        environ.setdefault(name, str(max(cpu_threads, 1)))


def run_worker(settings: Settings) -> None:
    pin_numeric_threads(os.environ, settings.whisper_cpu_threads)
    from models.transcriber import pick_device
    from service.settings import Device
    from tasks.celery_app import create_celery_app
    from tasks.metrics import serve_worker_metrics
    from tasks.transcribe import register_tasks

    if len(settings.whisper_gpu_indices) > 1 and pick_device(settings.whisper_device) == Device.CUDA.value:
        from commands.gpu_workers import run_one_per_gpu

        raise SystemExit(run_one_per_gpu(settings.whisper_gpu_indices))
    if settings.worker_metrics_port:
        # Before anything imports prometheus_client: its multiprocess mode is chosen at import.
        serve_worker_metrics(settings.worker_metrics_port, settings.host)
    app = create_celery_app(settings)
    register_tasks(app, settings)
    start_celery_worker(app, settings)


def start_celery_worker(app: Celery, settings: Settings) -> None:
    """Run the worker (its prefork pool, the transcribe queue) until it is stopped."""
    from service import names

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
    from commands.launcher import LocalStack, StackError, StopRequested

    stack = LocalStack(settings)
    stack.stop_on_signals()
    try:
        with stack:
            logger.info("Streaming Whisper is ready: %s", stack.meeting_url("MEETING_ID"))
            logger.info("browser demo: %s/demo/", stack.base_http_url)
            stack.wait()
    except StopRequested:
        logger.info("stopped")
    except StackError as error:
        logger.error("stopped: %s", error)
        raise SystemExit(1) from None


SERVICE_COMMANDS = {
    "run": (
        run_all,
        "Redis (embedded unless REDIS_URL/REDIS_HOST is set), a worker and the ingress",
    ),
    "ingress": (run_ingress, "the websocket server"),
    "worker": (run_worker, "a Celery transcription worker"),
}
EXIT_FAILED = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    from demos import stream_file

    parser = argparse.ArgumentParser(
        prog="streaming-whisper",
        description="Live transcription for video meetings: the service and its tools.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text) in SERVICE_COMMANDS.items():
        service_command = commands.add_parser(name, help=help_text, description=help_text)
        if name == "run":
            service_command.add_argument(
                "--exit-with-parent",
                action="store_true",
                help="stop everything when the process that started this one dies, even by SIGKILL "
                "(Linux; `make run` passes it)",
            )
    stream = commands.add_parser(
        "stream",
        help="stream audio files as one meeting and show the transcripts live",
        description=stream_file.DESCRIPTION,
    )
    stream_file.add_arguments(stream)
    stream.set_defaults(stream_parser=stream)  # its own usage line for errors found after parsing
    add_models_arguments(
        commands.add_parser(
            "models", help="list, install and verify Whisper models", description=models_help()
        )
    )
    return parser


def add_models_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    actions.add_parser("list", help="the catalogue and the installed models")
    install = actions.add_parser(
        "install",
        help="install a model into WHISPER_MODEL_PATH (or the default models folder)",
        description="NAME: base, or the Hugging Face repo id of a CTranslate2 Whisper model "
        "(e.g. Systran/faster-whisper-small); tiny.en is packaged and needs nothing.",
    )
    install.add_argument("name", metavar="NAME")
    install.add_argument(
        "--into", type=Path, metavar="DIR", help="models folder to install into (created if missing)"
    )
    install.add_argument("--force", action="store_true", help="reinstall over an existing folder")
    verify = actions.add_parser(
        "verify",
        help="check that a folder holds a loadable CTranslate2 Whisper model",
        description="Checks the files, loads the model on CPU (int8) and transcribes 1 s of a tone.",
    )
    verify.add_argument("path", type=Path, metavar="PATH")


def models_help() -> str:
    from models.catalogue import default_models_dir

    return (
        "Models live in WHISPER_MODEL_PATH, or, when it is unset, in "
        f"{default_models_dir()}, where the worker also looks."
    )


def run_models(args: argparse.Namespace) -> int:
    from models.catalogue import default_models_dir
    from models.install import InstallError, format_listing, install, list_models
    from models.verify import VerifyError, verify_model

    if args.models_command == "verify":
        try:
            print(verify_model(args.path).describe())
        except VerifyError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_FAILED
        return 0
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"streaming-whisper: {error}", file=sys.stderr)
        return EXIT_USAGE
    models_dir = settings.whisper_model_path or default_models_dir()
    if args.models_command == "list":
        listed = list_models(models_dir, settings.whisper_model_name, settings.whisper_model_path)
        print(format_listing(listed, models_dir, from_setting=settings.whisper_model_path is not None))
        return 0
    try:
        install(args.name, args.into or models_dir, force=args.force)
    except InstallError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    from demos import stream_file

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["stream"]:
        argv = ["stream", *stream_file.bare_fast_as_unbounded(argv[1:])]
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "stream":
        stream_file.check_args(args.stream_parser, args)
        raise SystemExit(stream_file.run(args))
    if args.command == "models":
        raise SystemExit(run_models(args))
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"streaming-whisper: {error}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    configure_logging(settings.log_level)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if getattr(args, "exit_with_parent", False):
        exit_with_parent()  # its SIGTERM stops the stack as Ctrl-C does
    SERVICE_COMMANDS[args.command][0](settings)


if __name__ == "__main__":
    main()
