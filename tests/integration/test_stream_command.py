"""`streaming-whisper stream` against the real service (Redis, worker, tiny.en, ingress): the raw
JSON lines a script reads (from the corpus's FLAC), and the live view a person watches (from a WAV)."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from bench.scoring import error_rate
from demos.stream_file import main
from service.pcm_files import write_pcm
from tests.integration.conftest import Service

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
JFK = "jfk_ask_not"
MAX_WER = 0.10
CLI_TIMEOUT_S = 120
STREAM_COMMAND = (sys.executable, "-m", "commands.cli", "stream")
JSON_OPTIONS = ("--fast", "--json", "--participant", "jfk")


def base_url(service: Service) -> str:
    return service.stack.base_http_url.replace("http://", "ws://")


def test_stream_json_prints_each_server_message_as_a_line(
    service: Service, corpus_audio: Callable[[str], Path], reference: Any
) -> None:
    completed = subprocess.run(  # the corpus's FLAC, as the README streams it
        [*STREAM_COMMAND, str(corpus_audio(JFK)), "--url", base_url(service), *JSON_OPTIONS],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    messages = [json.loads(line) for line in completed.stdout.splitlines()]
    assert {message["type"] for message in messages} == {"interim", "final"}
    assert {message["participant_id"] for message in messages} == {"jfk"}
    finals = " ".join(message["text"].strip() for message in messages if message["type"] == "final")
    wer = error_rate(reference(JFK), finals)
    print(f"stream --json WER {wer:.3f}: {finals!r}")
    assert wer <= MAX_WER
    assert f"jfk: {finals}" in completed.stderr  # the transcript summary stays off stdout


def test_stream_of_a_wav_draws_the_finals_live(
    service: Service, speech: Any, reference: Any, tmp_path: Path
) -> None:
    wav = tmp_path / "kennedy.wav"
    write_pcm(wav, speech(JFK))
    console = Console(file=io.StringIO(), record=True, force_terminal=True, width=160, height=40)
    errors = Console(file=io.StringIO(), record=True)

    code = main([str(wav), "--url", base_url(service), "--fast"], console=console, err_console=errors)

    drawn = console.export_text()
    assert code == 0, errors.export_text()
    assert "speaking" in drawn and "finals" in drawn
    summary = drawn.split("== transcripts ==")[1].strip()
    assert summary.startswith("kennedy: ")
    transcript = summary.removeprefix("kennedy: ")
    wer = error_rate(reference(JFK), transcript)
    print(f"live view of a WAV, WER {wer:.3f}: {transcript!r}")
    assert wer <= MAX_WER
    final_row = re.compile(r"│ \d\d:\d\d\.\d │ kennedy +│ .*country.*│ \d\.\d\d │")
    assert any(final_row.search(line) for line in drawn.splitlines()), "no final row in the live view"
    assert errors.export_text() == ""
