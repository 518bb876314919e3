"""The browser demo (`demos/web/`: static HTML, JS and CSS, no build step) served at /demo/."""

from __future__ import annotations

import logging
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette import status
from starlette.staticfiles import StaticFiles

logger = logging.getLogger(__name__)

DEMO_PATH = "/demo"


def demo_directory() -> Path:
    """`demos/web` beside the installed `demos` package (shipped as its package data)."""
    return Path(str(files("demos").joinpath("web")))


def mount_demo(app: FastAPI, directory: Path | None = None) -> None:
    """Serve the demo at /demo/, with / and /demo sending browsers there."""
    directory = directory or demo_directory()
    if not (directory / "index.html").is_file():
        # The transcription service works without its demo page; say why the page is missing.
        logger.warning("no demo page at %s: /demo/ is not served", directory)
        return

    app.add_api_route("/", to_demo_page, include_in_schema=False)
    app.add_api_route(DEMO_PATH, to_demo_page, include_in_schema=False)
    app.mount(DEMO_PATH, StaticFiles(directory=directory, html=True), name="demo")


async def to_demo_page() -> RedirectResponse:
    # Relative ("demo/" from both "/" and "/demo"), so it also works behind a proxy that adds a prefix.
    return RedirectResponse("demo/", status.HTTP_307_TEMPORARY_REDIRECT)
