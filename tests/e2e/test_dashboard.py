"""The /admin dashboard in a real headless Chromium with every request off this machine refused,
against a live server holding a demo shop: staff sign in and every panel draws its figures;
a wrong password, a customer or staff without the permission see none; a panel that fails
says so and leaves the others be; production serves no dashboard unless told to. And the
dashboard's GraphQL documents are valid against the schema, so that renaming a field fails
here rather than on an operator's screen."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import graphql
import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from server import admin, migrate
from server.app import create_app
from server.config import Settings
from server.db import create_engine, session_factory
from server.demo import DEMO_PASSWORD, DEMO_STAFF_EMAIL, load
from server.models import StaffRole
from server.plugins import load_plugins
from server.services import accounts
from server.services.forecasts import shop_day
from tests.support.browser import Offline, chromium_path, launch
from tests.support.server import LiveServer

SDL = Path(__file__).resolve().parents[2] / "schema" / "schema.graphql"
QUERIES = admin.ADMIN_DIR / "queries"
JS = admin.ADMIN_DIR / "js"
SUPPORT_EMAIL = "support@shopgraph.example"
# Every panel of the registry (js/panels.js) and how it draws.
CHART_PANELS = ("segment-sizes", "segment-movements", "searches-without-results")
HEATMAP_PANELS = ("segment-flows",)
TABLE_PANELS = ("low-click-through", "channel-attribution")
PANELS = CHART_PANELS + HEATMAP_PANELS + TABLE_PANELS
SETTLED = """() => [...document.querySelectorAll('[data-panel]')].every(
    (p) => !['idle', 'loading'].includes(p.dataset.state))"""
STATES = "() => Object.fromEntries([...document.querySelectorAll('[data-panel]')].map((p) => [p.dataset.panel, p.dataset.state]))"
# What Chart.js holds for a panel's chart: each dataset's points and their sum.
DATASETS = """(id) => {
  const canvas = document.querySelector(`[data-panel="${id}"] canvas`);
  const chart = canvas && Chart.getChart(canvas);
  if (!chart) return null;
  return chart.data.datasets.map((d) => ({
    label: d.label, points: d.data.length,
    sum: d.data.reduce((a, v) => a + (typeof v === 'number' ? v : 0), 0)}));
}"""
# Painted pixels of a canvas (Chart.js draws on a transparent one).
PAINTED = """(canvas) => {
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) painted += 1;
  return painted;
}"""


@dataclass
class Shop:
    server: LiveServer
    database_url: str
    customer_email: str

    @property
    def url(self) -> str:
        return f"{self.server.url}/admin"


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """A live server on a demo shop (its history up to today, its segments' history
    replayed), with the demo's admin and a support agent."""
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('dashboard') / 'shop.db'}"
    settings = Settings(database_url=url, env="test", run_jobs=False, cost_bucket_size=10**6)
    plugins = load_plugins(settings)
    migrate.upgrade(url, plugins=plugins)

    async def fill() -> str:
        report = await load(url, customers=400, products=60, seed=11)
        assert report is not None
        engine = create_engine(url)
        try:
            async with session_factory(engine)() as session:
                await accounts.create_staff(
                    session,
                    email=SUPPORT_EMAIL,
                    password=DEMO_PASSWORD,
                    name="客服小张",
                    role=StaffRole.SUPPORT,
                )
                await session.commit()
        finally:
            await engine.dispose()
        return report.demo_email

    customer_email = migrate.run_async(fill)
    server = LiveServer(create_app(settings, plugins)).start()
    try:
        yield Shop(server, url, customer_email)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = chromium_path()
    with sync_playwright() as pw:
        chromium = launch(pw, executable)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Tab:
    page: Page
    offline: Offline
    problems: list[str]


@pytest.fixture
def tab(browser: Browser) -> Iterator[Tab]:
    """A fresh tab (its own sessionStorage) that notes script errors and console errors (a
    Content-Security-Policy violation is one) and refuses every request off this machine."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    offline = Offline()
    page.route("**/*", offline)
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda msg: problems.append(f"console: {msg.text}") if msg.type == "error" else None,
    )
    try:
        yield Tab(page, offline, problems)
    finally:
        context.close()
    assert offline.refused == []


def sign_in(page: Page, email: str, password: str) -> None:
    page.locator("#email").fill(email)
    page.locator("#password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def settle(page: Page) -> dict[str, str]:
    page.wait_for_function(SETTLED, timeout=30_000)
    states: dict[str, str] = page.evaluate(STATES)
    return states


def panel_text(page: Page, panel: str) -> str:
    return page.locator(f'[data-panel="{panel}"] .panel-body').inner_text()


def shop_today() -> date:
    return shop_day(datetime.now(UTC))


# --- the files -------------------------------------------------------------------------------


def test_the_vendored_chart_library_is_the_pinned_one() -> None:
    manifest = (admin.ADMIN_DIR / "MANIFEST").read_text().splitlines()
    entries = [line.split() for line in manifest if line and not line.startswith("#")]
    assert [(file, package) for file, package, _, _ in entries] == [
        ("chart.umd.min.js", "chart.js@4.6.1")
    ]
    page = (admin.ADMIN_DIR / "index.html").read_text()
    licences = (admin.ADMIN_DIR / "LICENSES.md").read_text()
    for file, package, _path, integrity in entries:
        content = (admin.ADMIN_DIR / file).read_bytes()
        digest = base64.b64encode(hashlib.sha256(content).digest()).decode()
        assert f"sha256-{digest}" == integrity, file
        # The page loads it from the package, checked by the same hash; its licence ships.
        assert f'src="{{{{assets}}}}/{file}"' in page and f'integrity="{integrity}"' in page
        assert f"## {package}" in licences and "MIT License" in licences
        assert content.startswith(b"/*!\n * Chart.js v4.6.1")


def test_nothing_is_fetched_from_elsewhere_and_no_html_is_written_by_script() -> None:
    own = [admin.ADMIN_DIR / "index.html", admin.ADMIN_DIR / "admin.css", *JS.glob("*.js")]
    for path in own:
        text = path.read_text()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text), path
        # Text goes in as text (search texts are typed by customers).
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in text, (path, sink)


class _Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        given = dict(attrs)
        if tag == "script":
            self.scripts.append(given)
        if tag == "style":
            self.inline.append("<style>")
        self.inline += [name for name in given if name == "style" or name.startswith("on")]

    def handle_data(self, data: str) -> None:
        if self.lasttag == "script" and data.strip():
            self.inline.append(f"script: {data.strip()[:40]}")


def test_the_page_comes_with_a_strict_policy_and_no_inline_code(shop: Shop) -> None:
    answer = httpx.get(shop.url)
    assert answer.status_code == 200
    policy = answer.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'none'"
    for fetched in ("script-src", "style-src", "connect-src", "img-src"):
        assert directives[fetched] == "'self'", fetched
    assert directives["frame-ancestors"] == "'none'"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-store"
    markup = _Markup()
    markup.feed(answer.text)
    assert markup.inline == []
    assert [s.get("src") for s in markup.scripts] == [
        "/admin/static/chart.umd.min.js",
        "/admin/static/js/main.js",
    ]
    assert '<meta name="shopgraph-graphql" content="/graphql"' in answer.text
    module = httpx.get(f"{shop.url}/static/js/main.js")
    assert module.status_code == 200
    assert module.headers["content-type"].split(";")[0] in (
        "text/javascript",
        "application/javascript",
    )
    assert module.headers["x-content-type-options"] == "nosniff"
    document = httpx.get(f"{shop.url}/static/queries/customerSegments.graphql")
    assert document.headers["content-type"] == "application/graphql; charset=utf-8"
    assert document.text.startswith("query CustomerSegments(")
    missing = httpx.get(f"{shop.url}/static/queries/nothing.graphql")
    assert missing.status_code == 404 and "graphql" not in missing.headers["content-type"]


def test_the_dashboards_documents_are_valid_against_the_schema() -> None:
    schema = graphql.build_schema(SDL.read_text(encoding="utf-8"))
    documents = {path.stem: path.read_text() for path in QUERIES.glob("*.graphql")}
    for name, text in documents.items():
        errors = graphql.validate(schema, graphql.parse(text))
        assert errors == [], (name, [e.message for e in errors])
    # Every document the modules name exists, and every document is used.
    named: set[str] = set()
    for path in JS.glob("*.js"):
        # The code, not its comments (the registry's comment shows a panel to come).
        source = re.sub(r"^\s*//.*$", "", path.read_text(), flags=re.MULTILINE)
        named |= set(re.findall(r'\bquery: "(\w+)"', source))
        named |= set(re.findall(r'\b(?:query|loadDocument)\("(\w+)"', source))
    assert named == set(documents), (named, set(documents))


def test_production_serves_no_dashboard_unless_a_setting_turns_it_on(shop: Shop) -> None:
    url = shop.database_url
    secret = "a-production-secret-of-at-least-32-characters"
    for enabled, expected in ((None, 404), (False, 404), (True, 200)):
        settings = Settings(
            database_url=url,
            env="production",
            secret_key=secret,
            run_jobs=False,
            admin_dashboard=enabled,
        )
        server = LiveServer(create_app(settings, load_plugins(settings))).start()
        try:
            for path in ("/admin", "/admin/static/js/main.js", "/admin/static/chart.umd.min.js"):
                assert httpx.get(f"{server.url}{path}").status_code == expected, (enabled, path)
        finally:
            server.stop()
    development = Settings(database_url=url, env="development", admin_dashboard=False)
    assert not development.admin_dashboard_enabled
    assert Settings(database_url=url, env="development").admin_dashboard_enabled


# --- in the browser --------------------------------------------------------------------------


def test_staff_sign_in_and_every_panel_draws_the_demo_shop(shop: Shop, tab: Tab) -> None:
    page = tab.page
    page.goto(shop.url, wait_until="load")
    page.locator("#sign-in").wait_for(state="visible")
    assert page.locator("#dashboard").is_hidden()
    sign_in(page, DEMO_STAFF_EMAIL, DEMO_PASSWORD)
    page.locator("#dashboard").wait_for(state="visible")
    assert settle(page) == dict.fromkeys(PANELS, "ready")
    assert page.locator("#who-role").inner_text() == "ADMIN"

    for panel in CHART_PANELS:
        datasets = page.evaluate(DATASETS, panel)
        assert datasets, panel
        assert all(d["points"] > 0 for d in datasets), (panel, datasets)
        assert datasets[0]["sum"] > 0, (panel, datasets)
        canvas = page.locator(f'[data-panel="{panel}"] canvas')
        assert page.evaluate(PAINTED, canvas.element_handle()) > 2000, panel
    # The demo shop's customers fill its segments; the weekly recomputations moved some.
    sizes = {d["label"]: d for d in page.evaluate(DATASETS, "segment-sizes")}
    assert sizes["customers"]["points"] == 8 and sizes["customers"]["sum"] > 300
    moves = {d["label"]: d for d in page.evaluate(DATASETS, "segment-movements")}
    assert moves["moved"]["points"] == 30 and moves["moved"]["sum"] > 0
    cells = page.locator('[data-panel="segment-flows"] td[data-value]')
    assert cells.count() > 3
    assert sum(int(v) for v in cells.evaluate_all("(cs) => cs.map((c) => c.dataset.value)")) > 0
    rows = page.locator('[data-panel="low-click-through"] tbody tr')
    assert rows.count() > 0
    # The demo's channels: the app and the mini program sell, paid ads and the groups cost.
    channels = page.locator('[data-panel="channel-attribution"] tbody tr').all_inner_texts()
    assert any(row.startswith("App\t") for row in channels), channels
    assert any(row.startswith("付费广告 Paid ads\t") for row in channels), channels
    assert page.evaluate("() => sessionStorage.length") == 1

    # A period before the shop opened: the period's panels say so; segments are as of now.
    first = shop_today() - timedelta(days=1000)
    page.locator("#period-from").fill(first.isoformat())
    page.locator("#period-to").fill((first + timedelta(days=60)).isoformat())
    page.locator("#period-granularity").select_option("WEEK")
    page.get_by_role("button", name="Show").click()
    page.wait_for_function(
        "() => document.querySelector('[data-panel=segment-movements]').dataset.state !== 'ready'"
    )
    states = settle(page)
    assert states == {
        "segment-sizes": "ready",
        "segment-movements": "empty",
        "segment-flows": "empty",
        "searches-without-results": "empty",
        "low-click-through": "empty",
        "channel-attribution": "empty",
    }
    assert panel_text(page, "segment-movements") == "no data"
    assert f"from={first.isoformat()}" in page.url and "by=WEEK" in page.url

    # A reload keeps the session (this tab's sessionStorage) and the period (the URL).
    page.reload(wait_until="load")
    assert settle(page)["segment-flows"] == "empty"
    assert page.locator("#period-from").input_value() == first.isoformat()

    # Signing out ends the token on the server too.
    token = page.evaluate(
        "() => JSON.parse(sessionStorage.getItem('shopgraph.admin.session')).token"
    )
    with page.expect_response(lambda r: r.url.endswith("/graphql")) as logout:
        page.get_by_role("button", name="Sign out").click()
    assert logout.value.json()["data"]["logout"]["signedOut"] is True
    page.locator("#sign-in").wait_for(state="visible")
    page.wait_for_function("() => sessionStorage.length === 0")
    assert page.locator("#sign-in-message").inner_text() == "Signed out."
    assert page.locator("canvas").count() == 0

    assert segments_with(shop, token).status_code == 401

    # A token revoked elsewhere (or expired) ends the session at the next request.
    sign_in(page, DEMO_STAFF_EMAIL, DEMO_PASSWORD)
    settle(page)
    token = page.evaluate(
        "() => JSON.parse(sessionStorage.getItem('shopgraph.admin.session')).token"
    )
    logout = httpx.post(
        f"{shop.server.url}/graphql",
        json={"query": "mutation { logout { ... on LogoutSuccess { signedOut } } }"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert logout.json()["data"]["logout"] == {"signedOut": True}
    page.get_by_role("button", name="Show").click()
    page.locator("#sign-in").wait_for(state="visible")
    assert page.locator("#sign-in-message").inner_text() == (
        "Your session has ended: sign in again."
    )
    assert page.evaluate("() => sessionStorage.length") == 0
    # 401s are what ended it: the browser logs them, nothing else went wrong.
    assert {p for p in tab.problems if "401" not in p} == set()


def segments_with(shop: Shop, token: str) -> httpx.Response:
    return httpx.post(
        f"{shop.server.url}/graphql",
        json={"query": "{ customerSegments { count } }"},
        headers={"Authorization": f"Bearer {token}"},
    )


def test_a_wrong_password_or_a_customer_sees_no_figures(shop: Shop, tab: Tab) -> None:
    page = tab.page
    posted: list[str] = []
    page.on(
        "request",
        lambda r: posted.append(r.post_data or "") if r.url.endswith("/graphql") else None,
    )
    page.goto(shop.url, wait_until="load")
    sign_in(page, DEMO_STAFF_EMAIL, "not-the-password")
    message = page.locator("#sign-in-message")
    message.get_by_text("AUTHENTICATION_FAILED").wait_for()
    # A customer's e-mail and password do not open a staff session either.
    sign_in(page, shop.customer_email, DEMO_PASSWORD)
    page.wait_for_function("() => !document.querySelector('#sign-in button').disabled")
    assert "AUTHENTICATION_FAILED" in message.inner_text()
    assert page.locator("#dashboard").is_hidden()
    assert page.evaluate("() => sessionStorage.length") == 0
    assert len(posted) == 2 and all("staffLogin" in body for body in posted)

    # A customer's own access token, put where the dashboard keeps its session: every panel
    # is refused by the API, and nothing is drawn.
    login = httpx.post(
        f"{shop.server.url}/graphql",
        json={
            "query": "mutation($e: String!, $p: String!) { login(input: {email: $e, "
            "password: $p}) { ... on LoginSuccess { accessToken } } }",
            "variables": {"e": shop.customer_email, "p": DEMO_PASSWORD},
        },
    ).json()
    token = login["data"]["login"]["accessToken"]
    page.evaluate(
        "(t) => sessionStorage.setItem('shopgraph.admin.session', JSON.stringify("
        "{token: t, staff: {name: 'x', role: 'CUSTOMER'}, expiresAt: null}))",
        token,
    )
    page.reload(wait_until="load")
    assert settle(page) == dict.fromkeys(PANELS, "error")
    for panel in PANELS:
        assert "FORBIDDEN" in panel_text(page, panel), panel
    assert page.locator("canvas").count() == 0
    assert page.locator("td[data-value]").count() == 0

    # A stored session past its expiry is forgotten: sign in again.
    page.evaluate(
        "() => { const s = JSON.parse(sessionStorage.getItem('shopgraph.admin.session'));"
        " s.expiresAt = Date.now() - 1000;"
        " sessionStorage.setItem('shopgraph.admin.session', JSON.stringify(s)); }"
    )
    page.reload(wait_until="load")
    page.locator("#sign-in").wait_for(state="visible")
    assert page.evaluate("() => sessionStorage.length") == 0
    assert page.locator("#dashboard").is_hidden()


def test_a_panel_refused_shows_why_and_the_others_draw(shop: Shop, tab: Tab) -> None:
    """Support staff read customers (the search panels) but not insights (the segments)."""
    page = tab.page
    page.goto(shop.url, wait_until="load")
    sign_in(page, SUPPORT_EMAIL, DEMO_PASSWORD)
    states = settle(page)
    assert states == {
        "segment-sizes": "error",
        "segment-movements": "error",
        "segment-flows": "error",
        "searches-without-results": "ready",
        "low-click-through": "ready",
        "channel-attribution": "error",
    }
    assert panel_text(page, "segment-sizes").startswith("FORBIDDEN: ")
    assert panel_text(page, "channel-attribution").startswith("FORBIDDEN: ")
    assert page.evaluate(DATASETS, "searches-without-results")[0]["sum"] > 0
    assert page.locator("#who-role").inner_text() == "SUPPORT"
    # Staff tokens cannot be refreshed: a minute before the end, the header says so.
    page.evaluate(
        "() => { const s = JSON.parse(sessionStorage.getItem('shopgraph.admin.session'));"
        " s.expiresAt = Date.now() + 30000;"
        " sessionStorage.setItem('shopgraph.admin.session', JSON.stringify(s)); }"
    )
    page.reload(wait_until="load")
    page.locator("#session-note").get_by_text("session ends in a minute").wait_for()
    settle(page)
    # A period the search report refuses (over a year) is an error in those panels alone.
    page.locator("#period-from").fill("2024-01-01")
    page.locator("#period-to").fill("2025-12-31")
    page.locator("#period-granularity").select_option("MONTH")
    page.get_by_role("button", name="Show").click()
    page.wait_for_function(
        "() => document.querySelector('[data-panel=searches-without-results]')"
        ".dataset.state === 'error'"
    )
    assert "VALIDATION_FAILED" in panel_text(page, "searches-without-results")
    # And a period the picker itself refuses never reaches the server.
    page.locator("#period-to").fill("2023-12-31")
    page.get_by_role("button", name="Show").click()
    assert page.locator("#period-message").inner_text() == "to must not be before from"
    assert tab.problems == []


def test_the_renderers_draw_bands_thresholds_funnels_heatmaps_and_kpi_series(
    shop: Shop, tab: Tab
) -> None:
    """The shapes the next panels need (shopKpis' series against the previous period and last
    year, a forecast's interval, an alert's threshold, the shopping funnel, cohorts), drawn
    by the page's own modules in the browser."""
    page = tab.page
    page.goto(shop.url, wait_until="load")
    page.wait_for_function("() => window.Chart !== undefined")
    drawn: dict[str, Any] = page.evaluate(
        """async () => {
      const charts = await import('/admin/static/js/charts.js');
      const panels = await import('/admin/static/js/panels.js');
      const place = () => {
        const el = document.createElement('div');
        el.className = 'panel';
        document.body.append(el);
        return el;
      };
      const forecast = charts.lineChart(place(), {
        labels: ['d1', 'd2', 'd3', 'd4'],
        series: [{label: 'units', values: [5, 7, null, 6]}],
        band: {label: '80% interval', lower: [3, 4, 4, 3], upper: [8, 9, 10, 9]},
        threshold: {label: 'reorder point', value: 6},
      });
      const kpi = panels.kpiLineSpec({
        key: 'gmv', label: 'GMV', unit: 'MONEY', higherIsBetter: true,
        points: [
          {start: '2026-11-01', end: '2026-11-02', value: 12345, previous: 10000, lastYear: 9000},
          {start: '2026-11-02', end: '2026-11-03', value: 23456, previous: null, lastYear: 8000},
        ]}, {threshold: 15000});
      const kpiChart = charts.lineChart(place(), kpi);
      const funnel = charts.funnelChart(place(), {stages: [
        {label: 'view', value: 1000}, {label: 'cart', value: 250}, {label: 'buy', value: 50}]});
      const cohorts = charts.heatmap(place(), {
        rowLabels: ['2026-09', '2026-10'], columnLabels: ['M0', 'M1', 'M2'],
        values: [[1, 0.4, 0.25], [1, 0.35, null]], format: (v) => `${Math.round(v * 100)}%`});
      const rows = charts.table(place(), {
        columns: [{label: 'name', value: (r) => r.name}, {label: 'n', value: (r) => r.n, numeric: true}],
        rows: [{name: '<b>not markup</b>', n: 3}]});
      const summary = (c) => c.data.datasets.map((d) => ({label: d.label, data: d.data, fill: d.fill ?? null, dash: d.borderDash}));
      return {
        forecast: summary(forecast),
        kpi: summary(kpiChart),
        kpiTick: kpi.format(12345),
        funnel: {labels: funnel.data.labels, data: funnel.data.datasets[0].data, axis: funnel.options.indexAxis},
        cells: [...cohorts.querySelectorAll('td')].map((td) => td.textContent),
        shaded: [...cohorts.querySelectorAll('td[data-value]')].map((td) => td.style.backgroundColor !== ''),
        tableCell: rows.querySelector('tbody td').textContent,
        tableBold: rows.querySelectorAll('b').length,
      };
    }"""
    )
    band_lower, band_upper, units, threshold = drawn["forecast"]
    assert band_lower == {
        "label": "80% interval (lower)",
        "data": [3, 4, 4, 3],
        "fill": False,
        "dash": None,
    }
    assert band_upper["data"] == [8, 9, 10, 9] and band_upper["fill"] == "-1"
    assert units["data"] == [5, 7, None, 6] and units["dash"] == []
    assert threshold["data"] == [6, 6, 6, 6] and threshold["dash"] == [4, 4]
    assert [(d["label"], d["data"], d["dash"]) for d in drawn["kpi"]] == [
        ("GMV", [12345, 23456], []),
        ("previous period", [10000, None], [6, 4]),
        ("last year", [9000, 8000], [6, 4]),
        ("threshold", [15000, 15000], [4, 4]),
    ]
    assert "123.45" in drawn["kpiTick"]
    assert drawn["funnel"] == {
        "labels": [
            "view",
            "cart · 25.0% of first, 25.0% of previous",
            "buy · 5.0% of first, 20.0% of previous",
        ],
        "data": [1000, 250, 50],
        "axis": "y",
    }
    assert drawn["cells"] == ["100%", "40%", "25%", "100%", "35%", ""]
    assert drawn["shaded"] == [True] * 5
    assert (drawn["tableCell"], drawn["tableBold"]) == ("<b>not markup</b>", 0)
    for canvas in page.locator("body > .panel canvas").element_handles():
        assert page.evaluate(PAINTED, canvas) > 1000
    assert tab.problems == []
