"""Tokens never reach a log line, whoever logs them."""

from __future__ import annotations

import logging

import pytest

from service.logs import RedactSecrets, redact

pytestmark = pytest.mark.unit

TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJ4In0.c2lnbmF0dXJl"


def test_query_string_tokens_are_redacted() -> None:
    line = f'127.0.0.1:5000 - "WebSocket /streaming-whisper/ws/m1?auth_token={TOKEN}&x=1" [accepted]'

    cleaned = redact(line)

    assert TOKEN not in cleaned
    assert "auth_token=[redacted]&x=1" in cleaned


def test_bearer_headers_are_redacted() -> None:
    assert TOKEN not in redact(f"Authorization: Bearer {TOKEN}")


def test_the_filter_rewrites_records_formatted_with_arguments() -> None:
    record = logging.LogRecord(
        "uvicorn.error", logging.INFO, __file__, 1, "%s - %s", ("peer", f"?auth_token={TOKEN}"), None
    )

    assert RedactSecrets().filter(record)
    assert TOKEN not in record.getMessage()
    assert "peer" in record.getMessage()
