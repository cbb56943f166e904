"""GraphiQL in a real headless Chromium with every request off this machine refused: the
playground must load, run a typed query and show the plugins' fields in its docs."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from server import graphiql, migrate
from server.app import create_app
from server.config import Settings
from tests.support.browser import Offline, chromium_path, launch
from tests.support.plugins import with_example
from tests.support.server import LiveServer


@pytest.fixture
def chromium() -> str:
    return chromium_path()


@pytest.fixture
def playground(tmp_path: Path) -> Iterator[LiveServer]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"
    settings = Settings(database_url=url, env="development", graphiql=True)
    plugins = with_example(settings)  # the docs explorer shows a plugin's fields too
    migrate.upgrade(url, plugins=plugins)
    server = LiveServer(create_app(settings, plugins)).start()
    try:
        yield server
    finally:
        server.stop()


def test_the_vendored_assets_are_the_pinned_ones() -> None:
    manifest = (graphiql.ASSETS_DIR / "MANIFEST").read_text().splitlines()
    entries = [line.split() for line in manifest if line and not line.startswith("#")]
    assert len(entries) == 6
    page = (graphiql.STATIC / "graphiql.html").read_text()
    for file, _package, _path, integrity in entries:
        digest = hashlib.sha384((graphiql.ASSETS_DIR / file).read_bytes()).digest()
        assert f"sha384-{base64.b64encode(digest).decode()}" == integrity, file
        # The page loads each asset from the package, checked by the same hash.
        assert f'{{{{assets}}}}/{file}"' in page and integrity in page
    assert "https://" not in page and "http://" not in page


def test_graphiql_runs_a_query_offline_and_documents_plugin_fields(
    chromium: str, playground: LiveServer
) -> None:
    offline = Offline()
    with sync_playwright() as pw:
        browser = launch(pw, chromium)
        try:
            page = browser.new_page()
            page.route("**/*", offline)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{playground.url}/graphql", wait_until="load")

            editor = page.locator(".graphiql-query-editor .CodeMirror")
            editor.wait_for(timeout=30_000)
            editor.click()
            page.keyboard.press("Control+A")
            page.keyboard.press("Delete")
            page.keyboard.insert_text("{ products(first: 1) { totalCount } }")
            page.locator(".graphiql-execute-button").click()
            response = page.locator(".graphiql-response")
            response.get_by_text('"totalCount": 0').wait_for(timeout=30_000)
            assert '"data"' in response.inner_text()

            page.get_by_role("button", name="Show Documentation Explorer").click()
            docs = page.locator(".graphiql-doc-explorer")
            docs.get_by_text("Query", exact=True).first.click()
            # A field the installed example plugin adds to the root query type.
            docs.get_by_text("loyaltyAccount", exact=True).wait_for(timeout=10_000)
            assert errors == []
        finally:
            browser.close()
    assert offline.refused == []
