"""The demo page's mount: served when its folder is there, skipped with a warning when not (the
service itself must not depend on it)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ingress.demo import demo_directory, mount_demo

pytestmark = pytest.mark.unit


def test_the_packaged_demo_is_served_and_the_root_sends_browsers_there() -> None:
    app = FastAPI()
    mount_demo(app)
    client = TestClient(app)

    page = client.get("/demo/")
    assert page.status_code == 200 and "Streaming Whisper" in page.text
    assert (demo_directory() / "index.html").is_file()
    redirect = client.get("/", follow_redirects=False)
    assert redirect.status_code == 307 and redirect.headers["location"] == "demo/"


def test_a_missing_demo_folder_is_a_warning_not_a_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = FastAPI()
    with caplog.at_level(logging.WARNING, logger="ingress.demo"):
        mount_demo(app, tmp_path)

    assert "no demo page" in caplog.text
    assert TestClient(app).get("/demo/").status_code == 404
