"""The browser demo end to end: the ingress serves /demo/, real headless Chromium (Debian's, driven by
Playwright) captures a corpus item (as WAV) as its microphone through the page's AudioWorklet, and the finals
that come back from the real worker appear on the page. Also what the page says when the server
refuses it or cannot be reached."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Response, expect, sync_playwright

from bench.scoring import error_rate
from commands.launcher import free_port
from service.pcm_files import write_pcm
from tests.integration.conftest import ARTIFACTS, Service

CHROMIUM = "/usr/bin/chromium"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not Path(CHROMIUM).is_file(),
        reason=f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium); .ci/run installs it",
    ),
]

ITEM = "jfk_ask_not"
ITEM_SECONDS = 11.0
MAX_WER = 0.25
"""The Python client gets ≤ 0.10 on this item; Chromium's fake capture resamples the file to the
device rate and the page back to 16 kHz, so allow more, but a broken resampler or chunking fails."""
FINALS_DEADLINE_S = ITEM_SECONDS + 25.0
"""The file plays in real time from the moment the page opens the microphone."""
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]

Launch = Callable[[Path], Browser]


@pytest.fixture(scope="module")
def microphone_wav(speech: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The item as a WAV file: Chromium's fake capture device reads WAV only, the corpus is FLAC."""
    path = tmp_path_factory.mktemp("microphone") / f"{ITEM}.wav"
    write_pcm(path, speech(ITEM))
    return path


@pytest.fixture
def launch() -> Iterator[Launch]:
    """A fresh Chromium whose microphone plays `wav` once, from when the page opens it."""
    with sync_playwright() as playwright:
        browsers: list[Browser] = []

        def start(wav: Path) -> Browser:
            flags = [*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={wav}%noloop"]
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=flags)
            browsers.append(browser)
            return browser

        try:
            yield start
        finally:
            for browser in browsers:
                browser.close()


@contextmanager
def replica(service: Service, name: str, env: dict[str, str]) -> Iterator[str]:
    """Another ingress process beside the session's, with its own settings; yields its base URL."""
    base = service.stack.start_ingress(name, free_port(), env)
    try:
        yield base
    finally:
        service.stack.stop_process(name)


def open_demo(browser: Browser, base: str) -> tuple[Page, list[str]]:
    """The demo page as a newcomer opens it (the ingress root), and a list collecting the page's
    script errors."""
    context = browser.new_context(permissions=["microphone"], viewport={"width": 1100, "height": 900})
    page = context.new_page()
    errors: list[str] = []

    def failed_request(response: Response) -> None:
        if response.status >= 400:
            errors.append(f"{response.status} {response.url}")

    def console_error(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", console_error)
    page.on("response", failed_request)
    page.goto(base + "/")
    assert page.url == base + "/demo/"
    expect(page.locator("#status")).to_contain_text("Idle")
    return page, errors


def finals_text(page: Page) -> str:
    return " ".join(page.locator("#finals li .text").all_inner_texts())


def status(page: Page) -> str:
    return repr(page.locator("#status").inner_text())


def test_microphone_speech_appears_as_finals(
    service: Service, launch: Launch, microphone_wav: Path, reference: Any
) -> None:
    started = time.monotonic()
    browser = launch(microphone_wav)
    meeting = f"browser-{uuid.uuid4().hex[:8]}"
    with replica(service, "ingress-demo-audio", {"WHISPER_RETURN_TRANSCRIBED_AUDIO": "1"}) as base:
        page, errors = open_demo(browser, base)
        page.fill("#meeting", meeting)
        page.fill("#participant", "jfk")
        # The default URL comes from the page's own location.
        meeting_url = base.replace("http://", "ws://") + f"/streaming-whisper/ws/{meeting}"
        expect(page.locator("#target")).to_have_text(meeting_url)
        page.fill("#keyterms", " Kraków, ,Zabbix ")
        expect(page.locator("#target")).to_have_text(meeting_url + "?keyterms=Kraków%2CZabbix")
        page.fill("#keyterms", "")
        page.check("#words")  # the opt-in extra: finals carry their timed words
        expect(page.locator("#target")).to_have_text(meeting_url + "?words=1")
        page.select_option("#lang", "auto")  # the header asks for the language to be detected

        page.click("#start")
        expect(page.locator("#status")).to_contain_text("Listening", timeout=15_000)
        saw_interim = live_shot = False
        wer = 1.0
        deadline = time.monotonic() + FINALS_DEADLINE_S
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        while time.monotonic() < deadline:
            interims = page.locator("#interims li").count()
            if interims and not live_shot and page.locator("#finals li").count() >= 2:
                # What a newcomer sees mid-sentence: the changing interim and the finals so far.
                page.screenshot(path=str(ARTIFACTS / "browser_demo_live.png"), full_page=True)
                live_shot = True
            saw_interim = saw_interim or interims > 0
            wer = error_rate(reference(ITEM), finals_text(page))
            if wer <= MAX_WER:
                break
            page.wait_for_timeout(250)
        live_text = finals_text(page)
        assert wer <= MAX_WER, f"finals while running, WER {wer:.2f}: {live_text!r}; status {status(page)}"

        page.click("#stop")
        expect(page.locator("#status")).to_contain_text("meeting ended normally", timeout=30_000)

        rows = page.locator("#finals li")
        text = finals_text(page)
        final_wer = error_rate(reference(ITEM), text)
        print(f"browser demo: WER {final_wer:.3f} after stop ({wer:.3f} live): {text!r}")
        assert final_wer <= MAX_WER, text
        assert saw_interim, "no interim was ever shown while speaking"
        assert page.locator("#interims li").count() == 0
        assert set(rows.locator(".who").all_inner_texts()) == {"jfk"}
        assert all(re.fullmatch(r"\d\d:\d\d:\d\d", when) for when in rows.locator(".when").all_inner_texts())
        # tiny.en hears every language as English, and says so with each final.
        assert rows.locator(".language").all_text_contents() == ["en"] * rows.count()
        badges = rows.locator(".confidence").all_inner_texts()
        assert all(re.fullmatch(r"\d{1,3}%", badge) for badge in badges), badges
        assert rows.locator("button.play").count() == rows.count(), "every final carries its audio here"
        words = rows.locator(".text .word")
        assert words.count() == len(text.split()), "with Word times each word is its own span"
        tooltips = words.evaluate_all("spans => spans.map((span) => span.title)")
        assert all(re.fullmatch(r"\+\d+\.\d\d–\d+\.\d\d s, \d{1,3}%", tip) for tip in tooltips), tooltips
        expect(page.locator("#problem")).to_be_hidden()
        expect(page.locator("#server-messages-section")).to_be_hidden()
        page.screenshot(path=str(ARTIFACTS / "browser_demo.png"), full_page=True)

        play = rows.first.locator("button.play")
        play.click()
        expect(play).to_have_class(re.compile(r"\bplaying\b"))
        expect(play).not_to_have_class(re.compile(r"\bplaying\b"), timeout=15_000)  # played to its end
        expect(page.locator("#problem")).to_be_hidden()
        assert errors == []
    print(f"browser demo test took {time.monotonic() - started:.1f} s")


def test_a_refused_connection_is_explained_and_not_retried(
    service: Service, launch: Launch, microphone_wav: Path
) -> None:
    browser = launch(microphone_wav)
    # No key source and no bypass: this ingress refuses every connection with 1008 and a reason.
    with replica(service, "ingress-demo-locked", {"BYPASS_AUTHORIZATION": "0"}) as base:
        page, _ = open_demo(browser, base)
        page.click("#start")

        problem = page.locator("#problem")
        expect(problem).to_contain_text("The server refused the connection", timeout=15_000)
        expect(problem).to_contain_text("close code 1008")
        expect(problem).to_contain_text("ASAP_PUB_KEYS_REPO_URL")  # the server's own reason
        expect(page.locator("#server-messages")).to_contain_text("1008")
        expect(page.locator("#start")).to_be_enabled()
        expect(page.locator("#stop")).to_be_disabled()
        page.wait_for_timeout(2_000)  # longer than the first reconnect delay
        expect(problem).not_to_contain_text("Reconnecting")
        expect(page.locator("#status")).to_have_text("Stopped.")


def test_an_unreachable_server_is_explained_and_retried_with_backoff(
    service: Service, launch: Launch, microphone_wav: Path
) -> None:
    browser = launch(microphone_wav)
    page, _ = open_demo(browser, service.stack.base_http_url)
    nowhere = f"ws://127.0.0.1:{free_port()}/streaming-whisper/ws/"
    page.fill("#url", nowhere)
    page.click("#start")

    problem = page.locator("#problem")
    expect(problem).to_contain_text(f"Could not connect to {nowhere}", timeout=15_000)
    expect(problem).to_contain_text("close code 1006")
    expect(problem).to_contain_text("attempt 1")
    expect(problem).to_contain_text("attempt 2", timeout=5_000)  # the first delay is about 1 s
    page.click("#stop")
    expect(page.locator("#status")).to_contain_text("Stopped", timeout=5_000)
    expect(page.locator("#start")).to_be_enabled()


def test_a_dropped_connection_is_reconnected_and_the_audio_meanwhile_transcribed(
    service: Service, launch: Launch, microphone_wav: Path
) -> None:
    browser = launch(microphone_wav)
    name, port = "ingress-demo-restarted", free_port()
    base = service.stack.start_ingress(name, port, {})
    try:
        page, errors = open_demo(browser, base)
        page.click("#start")
        expect(page.locator("#status")).to_contain_text("Listening", timeout=15_000)

        service.stack.stop_process(name)  # the ingress goes away in mid-sentence
        problem = page.locator("#problem")
        expect(problem).to_contain_text("The connection was lost", timeout=10_000)
        expect(problem).to_contain_text("Reconnecting in")
        service.stack.start_ingress(name, port, {})
        expect(problem).to_contain_text("Reconnected after", timeout=30_000)
        expect(page.locator("#status")).to_contain_text("Listening")
        # The end of the clip, spoken while nobody listened or after, still arrives as finals.
        expect(page.locator("#finals")).to_contain_text("for your country", timeout=30_000)
        page.click("#stop")
        expect(page.locator("#status")).to_contain_text("meeting ended normally", timeout=30_000)
        print(f"after a reconnect: {finals_text(page)!r}; {problem.inner_text()!r}")
        # Chromium logs each refused attempt itself; anything else is the page's fault.
        assert [error for error in errors if not error.startswith("WebSocket connection to")] == []
    finally:
        service.stack.stop_process(name)
