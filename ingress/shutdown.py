"""Graceful shutdown: on SIGTERM every meeting gets its pending speech as finals, then a 1001 close
(going away: the client reconnects, to another replica), before the server goes.

uvicorn alone would not do it: as soon as its SIGTERM handler has run, it closes every websocket
with 1012, and the app's lifespan shutdown runs only once the sockets are gone, too late to flush
them. So the lifespan puts a handler in front of uvicorn's (`run_before_sigterm`): the first
SIGTERM drains the meetings (`drain`), then hands the signal on to uvicorn, which then finds no
socket left and stops at once. A second SIGTERM, or Ctrl-C (SIGINT, which is left to uvicorn),
stops at once without draining.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from types import FrameType

from ingress.services import Services

logger = logging.getLogger(__name__)

CLOSE_GRACE_S = 2.0
"""Beyond the flush timeout, time for the last finals and the close handshakes to go out."""
POLL_S = 0.1


async def drain(services: Services) -> None:
    """Tell every meeting to flush and close with 1001; return when all are closed, or at the bound."""
    services.stopping.set()
    logger.info(
        "shutting down: flushing %d meeting(s), %g s at most",
        services.open_connections,
        services.settings.shutdown_flush_timeout_s,
    )
    deadline = time.monotonic() + services.settings.shutdown_flush_timeout_s + CLOSE_GRACE_S
    while services.open_connections and time.monotonic() < deadline:
        await asyncio.sleep(POLL_S)
    if services.open_connections:
        logger.warning("shutting down with %d meeting(s) still open", services.open_connections)


def run_before_sigterm(first: Callable[[], Awaitable[object]]) -> Callable[[], None]:
    """Put a SIGTERM handler in front of the current one (uvicorn's): the first SIGTERM runs `first`
    on this event loop, then hands the signal on; a later one is handed on at once.

    Returns what puts the previous handler back. Off the main thread (a test client runs the app
    there) signals cannot be handled: nothing is installed and SIGTERM keeps its handler.
    """
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread() or previous is signal.SIG_IGN:
        return lambda: None
    loop = asyncio.get_running_loop()
    signalled = False
    running: list[asyncio.Task[None]] = []  # a reference keeps the task alive

    def hand_on() -> None:
        if callable(previous):
            previous(signal.SIGTERM, None)
        else:  # SIG_DFL (or a handler not set from Python): let the default action happen
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.raise_signal(signal.SIGTERM)

    async def first_then_hand_on() -> None:
        try:
            await first()
        finally:
            hand_on()

    def start() -> None:
        running.append(loop.create_task(first_then_hand_on(), name="drain"))

    def on_sigterm(_signum: int, _frame: FrameType | None) -> None:
        # A signal handler runs between two bytecodes of whatever the loop was doing: schedule,
        # never act here; call_soon_threadsafe also wakes a loop asleep in select().
        nonlocal signalled
        loop.call_soon_threadsafe(hand_on if signalled else start)
        signalled = True

    signal.signal(signal.SIGTERM, on_sigterm)

    def restore() -> None:
        if signal.getsignal(signal.SIGTERM) is on_sigterm:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)

    return restore
