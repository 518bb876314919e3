"""`python -m bench.keyterms`: what `?keyterms=` does to rare names, and to the rest.

    python -m bench.keyterms [--corpus corpus/keyterms] [--speed 1.0] [--ordinary a,b] [--out DIR]

It starts its own Redis, worker and ingress (the packaged tiny.en), streams each item of the
keyterms corpus twice in real time (without keyterms, then with the ones its manifest lists) and
prints a Markdown table: the error rate on the reference's keyterm words (each word of a keyterm
that is not transcribed as written, case and punctuation aside, counts) and the WER of all the
other words. `--ordinary` names items of the main corpus to stream the same two ways, with every
keyterm of the keyterms corpus (none of which they say): what unrelated keyterms cost ordinary
speech. Results land in bench/results/<timestamp>-keyterms/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import jiwer

from bench.corpus import REPO_CORPUS, CorpusItem, default_corpus_dir, load_corpus, select_items
from bench.run import RESULTS_DIR
from bench.scoring import normalize_text
from commands.launcher import LocalStack, free_port
from demos.client import MeetingResult, meeting_url, stream_meeting, with_query
from service.logs import configure_logging
from service.pcm_files import read_pcm
from service.settings import Settings

logger = logging.getLogger(__name__)

KEYTERMS_CORPUS = REPO_CORPUS / "keyterms"
STREAM_MARGIN_S = 60.0


@dataclass(frozen=True)
class TermScore:
    """Errors against a reference, split between the words of its keyterms and the others."""

    term_words: int
    term_errors: int
    other_words: int
    other_errors: int

    @property
    def term_error_rate(self) -> float:
        return self.term_errors / self.term_words if self.term_words else 0.0

    @property
    def other_wer(self) -> float:
        return self.other_errors / self.other_words if self.other_words else 0.0


def term_positions(reference_words: Sequence[str], terms: Sequence[str]) -> set[int]:
    """Which words of the (normalised) reference belong to a keyterm."""
    positions: set[int] = set()
    for term in terms:
        words = normalize_text(term).split()
        for start in range(len(reference_words) - len(words) + 1):
            if list(reference_words[start : start + len(words)]) == words:
                positions.update(range(start, start + len(words)))
    return positions


def score_terms(reference: str, hypothesis: str, terms: Sequence[str]) -> TermScore:
    """A reference word substituted or deleted is an error of its own kind (keyterm or other); a
    word inserted counts against the others (it names no reference word)."""
    reference_words = normalize_text(reference).split()
    in_terms = term_positions(reference_words, terms)
    term_errors = other_errors = 0
    alignment = jiwer.process_words(" ".join(reference_words), normalize_text(hypothesis) or "").alignments[0]
    for chunk in alignment:
        if chunk.type == "insert":
            other_errors += chunk.hyp_end_idx - chunk.hyp_start_idx
        elif chunk.type in ("substitute", "delete"):
            wrong = range(chunk.ref_start_idx, chunk.ref_end_idx)
            term_errors += sum(1 for index in wrong if index in in_terms)
            other_errors += sum(1 for index in wrong if index not in in_terms)
    return TermScore(len(in_terms), term_errors, len(reference_words) - len(in_terms), other_errors)


@dataclass(frozen=True)
class KeytermRow:
    item: str
    keyterms: list[str]
    score: TermScore
    finals: int
    errors: list[str]
    text: str


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.keyterms", description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=KEYTERMS_CORPUS, help="folder with manifest.json")
    parser.add_argument("--speed", type=float, default=1.0, help="pacing factor (default 1.0: real time)")
    parser.add_argument(
        "--ordinary",
        type=lambda text: [part for part in text.split(",") if part],
        default=[],
        help="items of the main corpus to stream with the keyterms too (their speech names none)",
    )
    parser.add_argument(
        "--out", type=Path, help="results folder (default bench/results/<timestamp>-keyterms)"
    )
    return parser.parse_args(argv)


def manifest_keyterms(corpus: Path) -> dict[str, list[str]]:
    manifest = json.loads((corpus / "manifest.json").read_text(encoding="utf-8"))
    return {entry["name"]: list(entry.get("keyterms", [])) for entry in manifest["items"]}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging("INFO")
    out = args.out or RESULTS_DIR / f"{datetime.now():%Y%m%d-%H%M%S}-keyterms"
    out.mkdir(parents=True, exist_ok=True)
    ordinary = select_items(load_corpus(default_corpus_dir()), args.ordinary, ()) if args.ordinary else []
    rows = measure(args.corpus, args.speed, out / "logs", ordinary)
    table = to_markdown(rows, args.speed)
    (out / "results.md").write_text(table, encoding="utf-8")
    (out / "results.json").write_text(json.dumps([asdict(row) for row in rows], indent=2), encoding="utf-8")
    print(table)
    return 0


def measure(
    corpus: Path, speed: float, log_dir: Path, ordinary: Sequence[CorpusItem] = ()
) -> list[KeytermRow]:
    settings = Settings(port=free_port(), bypass_authorization=True, redis_url=None, redis_host=None)
    keyterms = manifest_keyterms(corpus)
    every_term = list(dict.fromkeys(term for terms in keyterms.values() for term in terms))
    keyterms.update({item.name: every_term for item in ordinary})
    rows = []
    with LocalStack(settings, log_dir=log_dir, extra_env={"BYPASS_AUTHORIZATION": "1"}):
        base = f"ws://{settings.host}:{settings.port}"
        for item in [*load_corpus(corpus), *ordinary]:
            track = item.tracks[0]
            tracks = [(track.participant, read_pcm(track.audio))]
            for terms in ([], keyterms[item.name]):
                url = meeting_url(base)
                if terms:
                    url = with_query(url, keyterms=",".join(terms))
                logger.info("streaming %s with %d keyterms", item.name, len(terms))
                result = asyncio.run(_stream(url, tracks, speed, item.duration_s / speed))
                text = result.transcript(track.participant)
                rows.append(
                    KeytermRow(
                        item=item.name,
                        keyterms=terms,
                        score=score_terms(track.reference, text, keyterms[item.name]),
                        finals=len(result.finals(track.participant)),
                        errors=[str(error.get("message", error)) for error in result.errors()],
                        text=text,
                    )
                )
    return rows


async def _stream(url: str, tracks: list[tuple[str, bytes]], speed: float, audio_s: float) -> MeetingResult:
    async with asyncio.timeout(audio_s + STREAM_MARGIN_S):
        return await stream_meeting(url, tracks, lang="en", speed=speed)


def to_markdown(rows: Sequence[KeytermRow], speed: float) -> str:
    lines = [
        f"Keyterms through the websocket (tiny.en, {speed:g}x real time): error rate on the words of the",
        "keyterms and WER on every other word of the reference.",
        "",
        "| item | keyterms | keyterm words | keyterm error rate | other words | WER of the rest | finals |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        score = row.score
        term_rate = f"{score.term_error_rate:.3f}" if score.term_words else "–"
        lines.append(
            f"| {row.item} | {len(row.keyterms) or 'none'} | {score.term_words} | {term_rate}"
            f" | {score.other_words} | {score.other_wer:.3f} | {row.finals} |"
        )
    lines.append("")
    for row in rows:
        lines.append(f"- {row.item}, {'with' if row.keyterms else 'without'} keyterms: {row.text}")
        lines += [f"  - server error: {error}" for error in row.errors]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
