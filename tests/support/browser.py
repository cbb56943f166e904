"""Headless Debian Chromium driven by Playwright, as an admin's browser on a machine without
internet access: every request off the loopback address is refused (and remembered)."""

from __future__ import annotations

import os
import shutil

import pytest
from playwright.sync_api import Browser, Playwright, Route

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LOOPBACK = ("http://127.0.0.1:", "ws://127.0.0.1:", "data:", "blob:", "about:")


def chromium_path() -> str:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing in CI: install the chromium package")
        pytest.skip("no chromium on this machine")
    return CHROMIUM


def launch(pw: Playwright, executable: str) -> Browser:
    return pw.chromium.launch(
        executable_path=executable,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            # No name resolves but the loopback address: as on an offline admin machine.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        ],
    )


class Offline:
    """A route handler letting loopback requests through and refusing the rest."""

    def __init__(self) -> None:
        self.refused: list[str] = []

    def __call__(self, route: Route) -> None:
        if route.request.url.startswith(LOOPBACK):
            route.continue_()
        else:
            self.refused.append(route.request.url)
            route.abort("internetdisconnected")
