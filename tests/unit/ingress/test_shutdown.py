"""The SIGTERM hook in front of uvicorn's handler, with real signals sent to this process."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Iterator
from types import FrameType

import pytest

from ingress.shutdown import run_before_sigterm

pytestmark = pytest.mark.unit


@pytest.fixture
def previous_handler() -> Iterator[list[str]]:
    """Stands for uvicorn's handler: records each SIGTERM handed to it."""
    calls: list[str] = []

    def handle(signum: int, _frame: FrameType | None) -> None:
        calls.append(signal.Signals(signum).name)

    original = signal.signal(signal.SIGTERM, handle)
    try:
        yield calls
    finally:
        signal.signal(signal.SIGTERM, original)


async def until(condition: Callable[[], object], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.01)


async def nothing() -> None:
    return None


def test_the_first_sigterm_drains_before_the_server_hears_of_it(previous_handler: list[str]) -> None:
    events: list[str] = []

    async def drain() -> None:
        events.append(f"drain starts, server told {len(previous_handler)} time(s)")
        await asyncio.sleep(0.2)
        events.append("drain ends")

    async def scenario() -> None:
        restore = run_before_sigterm(drain)
        os.kill(os.getpid(), signal.SIGTERM)
        await until(lambda: previous_handler)
        restore()

    asyncio.run(scenario())

    assert events == ["drain starts, server told 0 time(s)", "drain ends"]
    assert previous_handler == ["SIGTERM"]


def test_a_second_sigterm_goes_to_the_server_at_once(previous_handler: list[str]) -> None:
    drained = asyncio.Event()

    async def scenario() -> list[str]:
        restore = run_before_sigterm(drained.wait)  # a drain that would never end by itself
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
        await until(lambda: previous_handler)
        told_while_draining = list(previous_handler)
        drained.set()
        await until(lambda: len(previous_handler) == 2)  # the drain, once over, hands its own on
        restore()
        return told_while_draining

    assert asyncio.run(scenario()) == ["SIGTERM"]


def test_restore_puts_the_previous_handler_back(previous_handler: list[str]) -> None:
    before = signal.getsignal(signal.SIGTERM)

    async def scenario() -> None:
        restore = run_before_sigterm(nothing)
        assert signal.getsignal(signal.SIGTERM) is not before
        restore()

    asyncio.run(scenario())

    assert signal.getsignal(signal.SIGTERM) is before


def test_nothing_is_installed_off_the_main_thread(previous_handler: list[str]) -> None:
    before = signal.getsignal(signal.SIGTERM)

    async def in_a_thread() -> None:
        run_before_sigterm(nothing)

    def thread_body() -> None:
        asyncio.run(in_a_thread())

    async def scenario() -> None:
        await asyncio.to_thread(thread_body)

    asyncio.run(scenario())

    assert signal.getsignal(signal.SIGTERM) is before
