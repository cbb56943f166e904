"""Waiting for what happens after a response: outbox deliveries, background work."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


async def eventually(check: Callable[[], bool | Awaitable[bool]], seconds: float = 5.0) -> None:
    """Return once ``check()`` (plain or async) is true; fail the test after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        outcome = check()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {seconds} s")
        await asyncio.sleep(0.02)
