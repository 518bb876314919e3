"""Logging set-up for the entry points (only they configure logging)."""

from __future__ import annotations

import logging
import re

CHATTY_LOGGERS = ("celery.worker.strategy", "celery.app.trace", "faster_whisper", "uvicorn.access")
_SECRET_QUERY = re.compile(r"(auth_token=)[^&\s\"']+", re.IGNORECASE)
_BEARER = re.compile(r"(bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)


def redact(text: str) -> str:
    """Tokens travel in URLs (uvicorn logs them): blank them out of every log line."""
    return _BEARER.sub(r"\1[redacted]", _SECRET_QUERY.sub(r"\1[redacted]", text))


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"))
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # One line per window in each of these: useful when debugging, noise otherwise.
        for name in CHATTY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
