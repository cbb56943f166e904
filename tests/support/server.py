"""A real uvicorn serving an app on a free loopback port, in a background thread."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from tests.support.postgres import free_port


class _Server(uvicorn.Server):
    """uvicorn's server, stopped as soon as it is told to.

    uvicorn polls its exit flag every 0.1 s and, when stopping, waits a fixed 0.1 s for open
    connections to wind down: with a server per test, these waits added up to minutes. Here
    the stop request wakes the main loop at once, and the wait is skipped when no connection
    or task is open (otherwise uvicorn's own graceful shutdown runs unchanged).
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.wake: asyncio.Event | None = None

    async def main_loop(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.wake = asyncio.Event()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            # on_tick refreshes the Date header when the counter is a multiple of 10 (1 s).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=1.0)
            counter = (counter + 10) % 864000
            should_exit = await self.on_tick(counter)

    def request_exit(self) -> None:
        """Ask the server to stop (from any thread)."""
        self.should_exit = True
        loop, wake = self.loop, self.wake
        if loop is not None and wake is not None and not loop.is_closed():
            # RuntimeError: the loop closed in between, so the server has stopped already.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.server_state.connections or self.server_state.tasks:
            await super().shutdown(sockets)
            return
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for server in self.servers:
            await server.wait_closed()
        if not self.force_exit:
            await self.lifespan.shutdown()


class LiveServer:
    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
        self.server = _Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.002)
        return self

    def stop(self) -> None:
        self.server.request_exit()
        self.thread.join(timeout=15)


ROOT = Path(__file__).resolve().parents[2]


def serve_process(env: dict[str, str], *args: str) -> tuple[subprocess.Popen[bytes], str]:
    """``shopgraph serve`` in a process of its own (``env`` over this one's), once it answers
    ``/healthz``: the process and its base URL. The caller terminates it."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--port", str(port), *args],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120  # a busy machine starts Python processes slowly
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("shopgraph serve did not start")
