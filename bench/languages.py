"""`make bench-languages`: the non-English corpus through the websocket with the multilingual
`base` model, next to the same model transcribing each whole file offline.

    python -m bench.languages [--model-path DIR] [--items a,b] [--speed 1.0] [--detect]
        [--corpus DIR] [--out DIR]

It starts its own Redis, a worker with WHISPER_MODEL_NAME=base and WHISPER_MODEL_PATH=<that
folder>, and the ingress; streams each item in its own language (the manifest's `language`, sent
in every header); and prints a Markdown table of the finals' WER (CER for Chinese) against the
offline error rate. Results land in bench/results/<timestamp>-languages/.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from bench.corpus import NO_LANGUAGE, CorpusItem, default_corpus_dir, load_corpus, select_items
from bench.run import RESULTS_DIR, Endpoint, stream_item, transcribe_offline
from bench.scoring import CHARACTER_SCORED_LANGUAGES, error_rate
from commands.launcher import LocalStack, free_port
from demos.client import MeetingResult
from models.catalogue import ModelNotFoundError, resolve_model_folder
from service.languages import AUTO
from service.logs import configure_logging
from service.settings import Settings

logger = logging.getLogger(__name__)

MODEL_NAME = "base"
ENGLISH = "en"


@dataclass(frozen=True)
class LanguageRow:
    item: str
    language: str
    metric: str
    duration_s: float
    streamed: float
    offline: float
    finals: int
    server_errors: list[str]
    streamed_text: str
    offline_text: str
    detected_streamed: float | None = None
    """With `--detect`: the error rate streamed again with `auto` in every header..."""
    detected_languages: str = ""
    """...and the languages its finals said they were in."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.languages", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model-path",
        type=Path,
        help="the base model folder (default: where `streaming-whisper models install base` put it)",
    )
    parser.add_argument("--corpus", type=Path, default=default_corpus_dir(), help="folder with manifest.json")
    parser.add_argument("--items", type=lambda text: [part for part in text.split(",") if part], default=[])
    parser.add_argument("--speed", type=float, default=1.0, help="pacing factor (default 1.0: real time)")
    parser.add_argument(
        "--detect",
        action="store_true",
        help="stream each item again with language auto in the header, and score that too",
    )
    parser.add_argument(
        "--out", type=Path, help="results folder (default bench/results/<timestamp>-languages)"
    )
    args = parser.parse_args(argv)
    if not args.speed > 0:
        parser.error("--speed must be positive")
    return args


def non_english(items: Sequence[CorpusItem], names: Sequence[str]) -> list[CorpusItem]:
    languages = {item.language for item in items} - {ENGLISH, NO_LANGUAGE}
    return [item for item in select_items(items, names, languages) if item.language != NO_LANGUAGE]


def find_model(model_path: Path | None) -> Path:
    if model_path is not None:
        return resolve_model_folder(MODEL_NAME, model_path)
    return resolve_model_folder(MODEL_NAME, Settings().whisper_model_path)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging("INFO")
    try:
        model = find_model(args.model_path)
    except ModelNotFoundError as error:
        print(f"error: {error}\nInstall it first: streaming-whisper models install base")
        return 2
    folder = args.out or RESULTS_DIR / f"{datetime.now():%Y%m%d-%H%M%S}-languages"
    items = non_english(load_corpus(args.corpus), args.items)
    rows = measure(items, model, args.speed, folder / "logs", args.detect)
    table = to_markdown(rows, model, args.speed, args.detect)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.md").write_text(table + "\n", encoding="utf-8")
    (folder / "results.json").write_text(
        json.dumps([asdict(row) for row in rows], indent=2, ensure_ascii=False), encoding="utf-8"
    )
    print(table)
    logger.info("results in %s", folder)
    return 0


def measure(
    items: Sequence[CorpusItem], model: Path, speed: float, log_dir: Path, detect: bool = False
) -> list[LanguageRow]:
    settings = Settings(
        whisper_model_name=MODEL_NAME,
        whisper_model_path=model,
        port=free_port(),
        bypass_authorization=True,
        redis_url=None,
        redis_host=None,
    )
    # Offline first: on two cores the model running beside the stream would slow the stream down.
    offline = transcribe_offline(items, ENGLISH, settings)
    worker_env = {
        "BYPASS_AUTHORIZATION": "1",
        "WHISPER_MODEL_NAME": MODEL_NAME,
        "WHISPER_MODEL_PATH": str(model),
    }
    rows = []
    with LocalStack(settings, log_dir=log_dir, extra_env=worker_env) as stack:
        endpoint = Endpoint(f"ws://{settings.host}:{settings.port}", stack.redis_url)
        for item in items:
            result, _compute = stream_item(item, endpoint, speed, item.language)
            detected = stream_item(item, endpoint, speed, AUTO)[0] if detect else None
            for track in item.tracks:
                auto_rate, heard_as = detection_scores(
                    detected, track.participant, track.reference, item.language
                )
                offline_text = "".join(word.text for word in offline[item.name, track.participant].words)
                streamed_text = result.transcript(track.participant)
                rows.append(
                    LanguageRow(
                        item=item.name if not item.multi_speaker else f"{item.name}/{track.participant}",
                        language=item.language,
                        metric="CER" if item.language in CHARACTER_SCORED_LANGUAGES else "WER",
                        duration_s=item.duration_s,
                        streamed=error_rate(track.reference, streamed_text, item.language),
                        offline=error_rate(track.reference, offline_text, item.language),
                        finals=len(result.finals(track.participant)),
                        server_errors=[str(error.get("message", error)) for error in result.errors()],
                        streamed_text=streamed_text,
                        offline_text=offline_text.strip(),
                        detected_streamed=auto_rate,
                        detected_languages=heard_as,
                    )
                )
    return rows


def detection_scores(
    result: MeetingResult | None, participant: str, reference: str, language: str
) -> tuple[float | None, str]:
    """The error rate of the `auto` stream, and the languages its finals said they were in."""
    if result is None:
        return None, ""
    heard = sorted({str(final.get("language")) for final in result.finals(participant)})
    return error_rate(reference, result.transcript(participant), language), ",".join(heard)


def to_markdown(rows: Sequence[LanguageRow], model: Path, speed: float, detect: bool = False) -> str:
    detected_head = " detected (auto) | heard as |" if detect else ""
    lines = [
        f"Multilingual `base` ({model}), streamed at {speed:g}x real time through the websocket "
        "(language in every header) vs. the same model on the whole file offline"
        + ("; then streamed again with `auto` in every header." if detect else "."),
        "",
        "| item | language | audio (s) | metric | streamed finals | offline | finals | server errors |"
        + detected_head,
        "| --- | --- | ---: | --- | ---: | ---: | ---: | --- |" + (" ---: | --- |" if detect else ""),
    ]
    for row in rows:
        errors = "; ".join(row.server_errors) or "–"
        detected = (
            f" {row.detected_streamed:.3f} | {row.detected_languages} |"
            if detect and row.detected_streamed is not None
            else ""
        )
        lines.append(
            f"| {row.item} | {row.language} | {row.duration_s:.1f} | {row.metric} | {row.streamed:.3f} "
            f"| {row.offline:.3f} | {row.finals} | {errors} |{detected}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
