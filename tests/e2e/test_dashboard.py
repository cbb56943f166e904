"""The /admin dashboard in a real headless Chromium with every request off this machine refused,
against a live server holding a demo shop: staff sign in and every panel draws its figures,
the very figures the API answers; a wrong password, a customer or staff without the permission
see none; a panel that fails says so and leaves the others be; an analyst sees product health
without cost prices (never asked for); the demand forecast follows the category or SKU chosen,
kept in the URL; the KPI trends, the funnel, the cohorts and satisfaction are the API's
figures, alert rules' thresholds drawn on their KPIs; an alert acknowledged in the browser
leaves the open list; a year of the dashboard stays within the staff's query-cost budget;
production serves no dashboard unless told to. And the dashboard's GraphQL documents are
valid against the schema, so that renaming a field fails here rather than on an operator's
screen."""

from __future__ import annotations

import base64
import hashlib
import json
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
from sqlalchemy import select

from server import admin, migrate
from server.app import create_app
from server.config import Settings
from server.db import create_engine, session_factory
from server.demo import DEMO_PASSWORD, DEMO_STAFF_EMAIL, load
from server.demo import alerts as demo_alerts
from server.graphql.limits import cost_buckets
from server.models import Alert, StaffRole
from server.plugins import load_plugins
from server.services import accounts, kpi_aggregates
from server.services.forecasts import shop_day
from server.services.kpi_registry import registered_kpis
from tests.support.browser import Offline, chromium_path, launch
from tests.support.server import LiveServer

SDL = Path(__file__).resolve().parents[2] / "schema" / "schema.graphql"
QUERIES = admin.ADMIN_DIR / "queries"
JS = admin.ADMIN_DIR / "js"
SUPPORT_EMAIL = "support@shopgraph.example"
ANALYST_EMAIL = "analyst@shopgraph.example"
# Searches the fixture records today, every one finding nothing: a rising, unmet demand.
UNMET_SEARCH = "露营 天幕"
UNMET_SEARCHES = 5
# Every panel of the registry (js/panels.js) and how it draws; a chart's series that the demo
# shop fills.
CHART_SERIES = {
    "kpi-trends": "GMV",
    "segment-sizes": "customers",
    "segment-movements": "moved",
    "searches-without-results": "searches without results",
    "sell-rate": "SKUs that sold",
    "demand-forecast": "units sold",
    "shopping-funnel": "visitors",
    "satisfaction-carriers": "CSAT (1–5)",
    "satisfaction-channels": "CSAT (1–5)",
}
CHART_PANELS = tuple(CHART_SERIES)
HEATMAP_PANELS = ("segment-flows", "cohort-retention")
TABLE_PANELS = (
    "alerts",
    "low-click-through",
    "new-products",
    "slow-movers",
    "stock-outs",
    "rising-searches",
    "channel-attribution",
    "alert-rules",
)
PANELS = CHART_PANELS + HEATMAP_PANELS + TABLE_PANELS
# The panels of insights.read (the others read customers).
INSIGHT_PANELS = (
    "kpi-trends",
    "alerts",
    "segment-sizes",
    "segment-movements",
    "segment-flows",
    "sell-rate",
    "new-products",
    "slow-movers",
    "stock-outs",
    "rising-searches",
    "demand-forecast",
    "channel-attribution",
    "shopping-funnel",
    "cohort-retention",
    "satisfaction-carriers",
    "satisfaction-channels",
    "alert-rules",
)
# The headline KPIs of the KPI trends (js/panels.js KPI_KEYS), in their order.
KPI_KEYS = (
    "gmv",
    "orders",
    "aov",
    "visitors",
    "conversion_rate",
    "repurchase_rate",
    "refund_rate",
    "csat",
    "nps",
    "private_domain_share",
)
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
# A panel's chart as Chart.js holds it: its labels and each dataset's values.
CHART = """(id) => {
  const canvas = document.querySelector(`[data-panel="${id}"] canvas`);
  const chart = canvas && Chart.getChart(canvas);
  if (!chart) return null;
  return {labels: chart.data.labels,
          datasets: Object.fromEntries(chart.data.datasets.map((d) => [d.label, d.data]))};
}"""
# A panel's table: its header and its rows' cells, and the rows marked.
TABLE = """(id) => {
  const table = document.querySelector(`[data-panel="${id}"] table`);
  if (!table) return null;
  const cells = (row) => [...row.cells].map((c) => c.textContent);
  return {head: cells(table.tHead.rows[0]),
          rows: [...table.tBodies[0].rows].map(cells),
          flagged: [...table.tBodies[0].rows].map((r) => r.classList.contains('flagged'))};
}"""
# A panel's headline figures: label → value.
FIGURES = """(id) => Object.fromEntries([...document.querySelectorAll(
  `[data-panel="${id}"] dl.figures > div`)].map((d) => [
    d.querySelector('dt').textContent, d.querySelector('dd').textContent]))"""
# One KPI's chart of the KPI trends, and its figures (label → [text, tone]).
KPI_CHART = """(key) => {
  const canvas = document.querySelector(`[data-panel="kpi-trends"] [data-kpi="${key}"] canvas`);
  const chart = canvas && Chart.getChart(canvas);
  if (!chart) return null;
  return {labels: chart.data.labels,
          datasets: Object.fromEntries(chart.data.datasets.map((d) => [d.label, d.data]))};
}"""
KPI_FIGURES = """(key) => Object.fromEntries([...document.querySelectorAll(
  `[data-panel="kpi-trends"] [data-kpi="${key}"] dl.figures > div`)].map((d) => [
    d.querySelector('dt').textContent,
    [d.querySelector('dd').textContent, d.querySelector('dd').dataset.tone ?? null]]))"""
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
    # A SKU sold in the last 30 days whose stock the fixture took away.
    sold_out_sku: str = ""

    @property
    def url(self) -> str:
        return f"{self.server.url}/admin"


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """A live server on a demo shop (its history up to today, its segments' history
    replayed), with the demo's admin, a support agent and an analyst; its KPI aggregates built
    as the job core.kpis builds them at its first run, and the alerts the demo's rules and the
    anomaly detector raise on them. Over the API, the fixture then records today's searches
    for a text the shop lacks and sells out a SKU that sold this month (the demo shop has
    neither)."""
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('dashboard') / 'shop.db'}"
    settings = Settings(database_url=url, env="test", run_jobs=False, cost_bucket_size=10**6)
    plugins = load_plugins(settings)
    migrate.upgrade(url, plugins=plugins)

    async def fill() -> str:
        report = await load(url, customers=400, products=60, seed=11)
        assert report is not None
        engine = create_engine(url)
        try:
            sessions = session_factory(engine)
            await kpi_aggregates.rebuild(sessions, settings)
            async with sessions() as session:
                # load() without plugins offers its rules no KPI (only its stock-outs are
                # raised): the last four weeks evaluated on the KPIs, now that they have data.
                raised = await demo_alerts.raise_history(
                    session,
                    registered_kpis(plugins),
                    as_of=report.as_of,
                    actor="demo",
                    settings=settings,
                )
                assert raised > 3  # more than the stock-outs the demo raised without KPIs
                await accounts.create_staff(
                    session,
                    email=SUPPORT_EMAIL,
                    password=DEMO_PASSWORD,
                    name="客服小张",
                    role=StaffRole.SUPPORT,
                )
                await accounts.create_staff(
                    session,
                    email=ANALYST_EMAIL,
                    password=DEMO_PASSWORD,
                    name="分析师小王",
                    role=StaffRole.ANALYST,
                )
                await session.commit()
        finally:
            await engine.dispose()
        return report.demo_email

    customer_email = migrate.run_async(fill)
    server = LiveServer(create_app(settings, plugins)).start()
    try:
        shop = Shop(server, url, customer_email)
        for i in range(UNMET_SEARCHES):
            recorded = gql(
                shop,
                "mutation($i: RecordEventInput!) { recordEvent(input: $i) { __typename } }",
                {
                    "i": {
                        "kind": "SEARCH",
                        "query": UNMET_SEARCH,
                        "resultCount": 0,
                        "sessionId": f"camper-{i}",
                    }
                },
            )
            assert recorded["recordEvent"]["__typename"] == "RecordEventSuccess"
        shop.sold_out_sku = sell_out_a_recent_sku(shop)
        yield shop
    finally:
        server.stop()


def gql(
    shop: Shop, query: str, variables: dict[str, Any] | None = None, token: str | None = None
) -> dict[str, Any]:
    """POST a document to the live server; its data (no errors expected)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = httpx.post(
        f"{shop.server.url}/graphql",
        json={"query": query, "variables": variables or {}},
        headers=headers,
        timeout=60,
    ).json()
    assert "errors" not in answer, answer["errors"]
    data: dict[str, Any] = answer["data"]
    return data


def staff_token(shop: Shop, email: str = DEMO_STAFF_EMAIL) -> str:
    data = gql(
        shop,
        "mutation($i: LoginInput!) { staffLogin(input: $i) { "
        "... on StaffLoginSuccess { accessToken } } }",
        {"i": {"email": email, "password": DEMO_PASSWORD}},
    )
    token: str = data["staffLogin"]["accessToken"]
    return token


def sell_out_a_recent_sku(shop: Shop) -> str:
    """Take every available unit of a SKU of a recent purchase away (a stock take that finds
    only what is reserved): the demo shop then has a stock-out."""
    token = staff_token(shop)
    since = datetime.now(UTC) - timedelta(days=20)
    orders = gql(
        shop,
        "query($f: OrderFilter) { orders(first: 20, filter: $f) { edges { node { status "
        "lines { sku variant { id } } } } } }",
        {"f": {"placedFrom": since.isoformat()}},
        token,
    )["orders"]["edges"]
    bought = [
        line
        for edge in orders
        if edge["node"]["status"] not in ("PENDING_PAYMENT", "CANCELLED")
        for line in edge["node"]["lines"]
        if line["variant"] is not None
    ]
    assert bought, "the demo shop sold nothing in 20 days"
    line = bought[0]
    levels = gql(
        shop,
        "query($v: ID!) { stockLevels(first: 50, filter: {variantId: $v}) { edges { node { "
        "reserved warehouse { id } } } } }",
        {"v": line["variant"]["id"]},
        token,
    )["stockLevels"]["edges"]
    for edge in levels:
        level = edge["node"]
        taken = gql(
            shop,
            "mutation($i: SetStockLevelInput!) { setStockLevel(input: $i) { __typename } }",
            {
                "i": {
                    "warehouseId": level["warehouse"]["id"],
                    "variantId": line["variant"]["id"],
                    "onHand": level["reserved"],
                }
            },
            token,
        )
        assert taken["setStockLevel"]["__typename"] == "SetStockLevelSuccess"
    sku: str = line["sku"]
    return sku


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
        named |= set(re.findall(r'\b(?:query|loadDocument|ask|act)\("(\w+)"', source))
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

    for panel, series in CHART_SERIES.items():
        datasets = {d["label"]: d for d in page.evaluate(DATASETS, panel)}
        assert datasets, panel
        assert all(d["points"] > 0 for d in datasets.values()), (panel, datasets)
        assert datasets[series]["sum"] > 0, (panel, datasets)
        # Every chart of the panel is painted (the KPI trends draw one a KPI).
        canvases = page.locator(f'[data-panel="{panel}"] canvas').element_handles()
        assert canvases, panel
        for canvas in canvases:
            assert page.evaluate(PAINTED, canvas) > 2000, panel
    assert page.locator('[data-panel="kpi-trends"] canvas').count() == len(KPI_KEYS)
    # The demo shop's customers fill its segments; the weekly recomputations moved some.
    sizes = {d["label"]: d for d in page.evaluate(DATASETS, "segment-sizes")}
    assert sizes["customers"]["points"] == 8 and sizes["customers"]["sum"] > 300
    moves = {d["label"]: d for d in page.evaluate(DATASETS, "segment-movements")}
    assert moves["moved"]["points"] == 30 and moves["moved"]["sum"] > 0
    cells = page.locator('[data-panel="segment-flows"] td[data-value]')
    assert cells.count() > 3
    assert sum(int(v) for v in cells.evaluate_all("(cs) => cs.map((c) => c.dataset.value)")) > 0
    for panel in TABLE_PANELS:
        assert page.locator(f'[data-panel="{panel}"] tbody tr').count() > 0, panel
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
    # The catalogue was there before the first order: its SKUs sold nothing then. The
    # forecast is from today whatever the period.
    # Alerts and rules are not of a period: the open ones are there whatever the period.
    assert states == {
        "kpi-trends": "empty",
        "alerts": "ready",
        "segment-sizes": "ready",
        "segment-movements": "empty",
        "segment-flows": "empty",
        "searches-without-results": "empty",
        "low-click-through": "empty",
        "sell-rate": "ready",
        "new-products": "ready",
        "slow-movers": "ready",
        "stock-outs": "empty",
        "rising-searches": "empty",
        "demand-forecast": "ready",
        "channel-attribution": "empty",
        "shopping-funnel": "empty",
        "cohort-retention": "empty",
        "satisfaction-carriers": "empty",
        "satisfaction-channels": "empty",
        "alert-rules": "ready",
    }
    assert page.evaluate(FIGURES, "sell-rate")["sell rate"] == "0%"
    assert set(column(page.evaluate(TABLE, "slow-movers"), "sold")) == {"0"}
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
        **dict.fromkeys(INSIGHT_PANELS, "error"),
        "searches-without-results": "ready",
        "low-click-through": "ready",
    }
    for panel in INSIGHT_PANELS:
        assert panel_text(page, panel).startswith("FORBIDDEN: "), panel
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


PRODUCT_HEALTH = """query($i: ProductHealthInput!) { productHealth(input: $i) {
  ... on ProductHealth {
    sellRate { skus sellingSkus rate categoryCount categories { name skus sellingSkus } }
    newProducts { createdFrom products items { sku name } }
    slowMovers { count items { sku stockValue { amount currency } } }
    stockOuts { count items { sku available } } } } }"""
RISING = """query($i: RisingSearchTermsInput!) { risingSearchTerms(input: $i) {
  ... on RisingSearchTerms { terms { query searches previousSearches score zeroResultShare
                                    unmetDemand } } } }"""
FORECAST = """query($i: DemandForecastInput!) { demandForecast(input: $i) {
  ... on DemandForecast { actuals { day units }
                          points { day mean intervals { level lower upper } } } } }"""


def percent(ratio: float) -> str:
    """A ratio as the page shows it (Intl, at most one decimal)."""
    return f"{100 * ratio:.1f}".removesuffix(".0") + "%"


def column(table: dict[str, Any], label: str) -> list[str]:
    index = table["head"].index(label)
    return [row[index] for row in table["rows"]]


def test_product_health_and_rising_searches_show_what_the_api_answers(shop: Shop, tab: Tab) -> None:
    """The last 30 days (the default period): the panels hold the API's rows, in its order."""
    page = tab.page
    page.goto(shop.url, wait_until="load")
    sign_in(page, DEMO_STAFF_EMAIL, DEMO_PASSWORD)
    assert settle(page) == dict.fromkeys(PANELS, "ready")
    to = shop_today()
    start = to - timedelta(days=29)
    assert page.locator("#period-from").input_value() == start.isoformat()
    token = staff_token(shop)
    period = {"from": start.isoformat(), "to": to.isoformat()}
    health = gql(shop, PRODUCT_HEALTH, {"i": {**period, "newWithinDays": 30, "limit": 20}}, token)[
        "productHealth"
    ]

    # Sell rate: per category, the SKUs that sold and those that did not, stacked.
    sell_rate = health["sellRate"]
    chart = page.evaluate(CHART, "sell-rate")
    categories = sell_rate["categories"]
    assert 0 < len(categories) <= 20
    assert [label.split(" · ")[0] for label in chart["labels"]] == [
        c["name"] if c["name"] is not None else "(no category)" for c in categories
    ]
    assert chart["datasets"]["SKUs that sold"] == [c["sellingSkus"] for c in categories]
    assert chart["datasets"]["SKUs that sold nothing"] == [
        c["skus"] - c["sellingSkus"] for c in categories
    ]
    assert page.evaluate(FIGURES, "sell-rate") == {
        "sell rate": percent(sell_rate["sellingSkus"] / sell_rate["skus"]),
        "SKUs that sold": f"{sell_rate['sellingSkus']:,} of {sell_rate['skus']:,}",
        "categories": f"{sell_rate['categoryCount']:,}",
    }

    # New products: those created from the period's first day.
    news = health["newProducts"]
    assert news["createdFrom"] == start.isoformat()
    table = page.evaluate(TABLE, "new-products")
    assert column(table, "SKU") == [item["sku"] for item in news["items"]]
    assert column(table, "product") == [item["name"] for item in news["items"]]
    assert page.evaluate(FIGURES, "new-products")[f"new since {start}"] == f"{news['products']:,}"

    # Slow movers, with their stock value for an admin (who may see cost prices).
    slow = health["slowMovers"]
    table = page.evaluate(TABLE, "slow-movers")
    assert len(table["rows"]) == 20 < slow["count"]
    assert column(table, "SKU") == [item["sku"] for item in slow["items"]]
    values = column(table, "stock value")
    for item, shown in zip(slow["items"], values, strict=True):
        assert f"{float(item['stockValue']['amount']):,.2f}" in shown, (item, shown)

    # Stock-outs: the SKU the fixture sold out is there, with nothing available.
    outs = health["stockOuts"]
    table = page.evaluate(TABLE, "stock-outs")
    assert shop.sold_out_sku in column(table, "SKU")
    assert column(table, "SKU") == [item["sku"] for item in outs["items"]]
    assert column(table, "available") == [str(item["available"]) for item in outs["items"]]
    assert page.evaluate(FIGURES, "stock-outs") == {"SKUs sold out": str(outs["count"])}

    # Rising searches: the API's terms in its order, unmet demand marked.
    terms = gql(shop, RISING, {"i": {**period, "limit": 20}}, token)["risingSearchTerms"]["terms"]
    table = page.evaluate(TABLE, "rising-searches")
    assert column(table, "search") == [t["query"] for t in terms]
    assert table["flagged"] == [t["unmetDemand"] for t in terms]
    unmet = [row for row, flagged in zip(table["rows"], table["flagged"], strict=True) if flagged]
    # Five searches after none: growth (5 + ½) / (0 + ½) = 11 times, and a score of
    # ln 11 − z · √(1/5.5 + 1/0.5) = 2.39790 − 1.28155 × 1.47710 = 0.50492.
    assert unmet == [[UNMET_SEARCH, "5", "0", "×11", "0.5", "100%", "unmet demand"]]
    camping = next(t for t in terms if t["query"] == UNMET_SEARCH)
    assert camping["score"] == pytest.approx(0.50492, abs=1e-5)
    assert tab.problems == []


def test_an_analyst_sees_product_health_without_cost_prices(shop: Shop, tab: Tab) -> None:
    """stockValue needs pricing.manage or catalog.manage: the dashboard does not ask it of an
    analyst, who would get a FORBIDDEN error; the rest of product health is drawn."""
    page = tab.page
    posted: list[str] = []
    page.on(
        "request",
        lambda r: posted.append(r.post_data or "") if r.url.endswith("/graphql") else None,
    )
    page.goto(shop.url, wait_until="load")
    sign_in(page, ANALYST_EMAIL, DEMO_PASSWORD)
    assert settle(page) == dict.fromkeys(PANELS, "ready")
    assert page.locator("#who-role").inner_text() == "ANALYST"
    table = page.evaluate(TABLE, "slow-movers")
    assert "stock value" not in table["head"] and len(table["rows"]) == 20
    # Alerts read, but not acknowledged (alerts.manage): no button to press.
    alerts = page.evaluate(TABLE, "alerts")
    assert alerts["rows"] and alerts["head"] == ["when", "kind", "KPI or product", "alert", ""]
    assert page.locator('[data-panel="alerts"] button').count() == 0
    health = [body for body in posted if "query ProductHealth(" in body]
    assert len(health) == 1 and '"costs":false' in health[0]
    # Asked anyway, the API would refuse the costs: what the dashboard spares the analyst.
    answer = httpx.post(
        f"{shop.server.url}/graphql",
        json={
            "query": "{ productHealth { ... on ProductHealth { slowMovers { items { "
            "stockValue { amount } } } } } }"
        },
        headers={"Authorization": f"Bearer {staff_token(shop, ANALYST_EMAIL)}"},
    ).json()
    assert answer["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    # Twelve months: product health reads up to 366 days, rising searches compare up to 183.
    page.get_by_role("button", name="12 months").click()
    states = settle(page)
    assert states["rising-searches"] == "error"
    assert panel_text(page, "rising-searches") == (
        "VALIDATION_FAILED: a period spans at most 183 days (from)"
    )
    assert all(states[p] == "ready" for p in ("sell-rate", "slow-movers", "demand-forecast"))
    assert tab.problems == []


def forecast_panel(page: Page) -> dict[str, Any]:
    chart: dict[str, Any] = page.evaluate(CHART, "demand-forecast")
    return chart


def assert_draws(chart: dict[str, Any], forecast: dict[str, Any]) -> None:
    """The chart is the API's forecast: 56 days of actual units, then 28 of the expected units
    inside their 80% and 95% intervals."""
    actuals, points = forecast["actuals"], forecast["points"]
    assert (len(actuals), len(points)) == (56, 28)
    assert chart["labels"] == [a["day"] for a in actuals] + [p["day"] for p in points]
    assert points[0]["day"] == shop_today().isoformat()
    data = chart["datasets"]
    assert data["units sold"] == [a["units"] for a in actuals] + [None] * 28
    assert data["forecast"] == [None] * 56 + [p["mean"] for p in points]

    def bound(level: int, side: str) -> list[float]:
        return [next(i[side] for i in p["intervals"] if i["level"] == level) for p in points]

    for level in (80, 95):
        assert data[f"{level}% interval (lower)"] == [None] * 56 + bound(level, "lower")
        assert data[f"{level}% interval"] == [None] * 56 + bound(level, "upper")
    # The 95% band holds the 80% one.
    for lo95, lo80, hi80, hi95 in zip(
        bound(95, "lower"), bound(80, "lower"), bound(80, "upper"), bound(95, "upper"), strict=True
    ):
        assert lo95 <= lo80 <= hi80 <= hi95


def forecast_of(shop: Shop, token: str, target: dict[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = gql(
        shop, FORECAST, {"i": {**target, "days": 28, "historyDays": 56}}, token
    )["demandForecast"]
    return found


def wait_forecast(page: Page, hash_part: str) -> str:
    page.wait_for_function(
        "(part) => location.hash.includes(part) && !['idle', 'loading'].includes("
        "document.querySelector('[data-panel=demand-forecast]').dataset.state)",
        arg=hash_part,
        timeout=30_000,
    )
    state: str = page.evaluate(STATES)["demand-forecast"]
    return state


def test_the_demand_forecast_follows_the_category_or_sku_chosen_and_keeps_it_in_the_url(
    shop: Shop, tab: Tab
) -> None:
    page = tab.page
    token = staff_token(shop)
    categories = gql(shop, "{ categories { id name slug children { id name slug } } }")[
        "categories"
    ]
    top = categories[0]
    page.goto(shop.url, wait_until="load")
    sign_in(page, DEMO_STAFF_EMAIL, DEMO_PASSWORD)
    settle(page)
    panel = page.locator('[data-panel="demand-forecast"]')
    select = panel.locator("select")
    sku = panel.locator("input[name=sku]")

    # By default: the first top-level category, with the categories below it.
    assert select.input_value() == top["slug"]
    options = select.locator("option").evaluate_all("(os) => os.map((o) => o.value)")
    assert options == [
        "",
        *[slug for c in categories for slug in (c["slug"], *(k["slug"] for k in c["children"]))],
    ]
    assert_draws(forecast_panel(page), forecast_of(shop, token, {"categoryId": top["id"]}))
    assert page.evaluate(FIGURES, "demand-forecast")["forecast of"] == f"{top['name']} (category)"
    assert forecast_panel(page)["datasets"]["units sold"].count(None) == 28

    # A category below: kept in the URL.
    child = top["children"][0]
    select.select_option(child["slug"])
    assert wait_forecast(page, f"forecast=category:{child['slug']}") == "ready"
    # Only what was chosen: the period is still "the last 30 days", whenever the link opens.
    assert page.evaluate("() => location.hash") == f"#forecast=category:{child['slug']}"
    assert_draws(forecast_panel(page), forecast_of(shop, token, {"categoryId": child["id"]}))

    # A product by SKU (a variant's SKU names its product; case does not matter).
    product = gql(
        shop,
        "query($s: String!) { productBySku(sku: $s) { id name sku } }",
        {"s": shop.sold_out_sku},
    )["productBySku"]
    sku.fill(shop.sold_out_sku.lower())
    panel.get_by_role("button", name="Forecast").click()
    assert wait_forecast(page, f"forecast=sku:{shop.sold_out_sku}") == "ready"
    assert select.input_value() == ""
    assert page.evaluate(FIGURES, "demand-forecast")["forecast of"] == (
        f"{product['name']} ({product['sku']})"
    )
    by_product = forecast_of(shop, token, {"productId": product["id"]})
    assert_draws(forecast_panel(page), by_product)

    # A reload (or a shared link) shows the same; a new period keeps the choice.
    page.reload(wait_until="load")
    assert settle(page)["demand-forecast"] == "ready"
    assert sku.input_value() == shop.sold_out_sku
    assert_draws(forecast_panel(page), by_product)
    page.get_by_role("button", name="7 days").click()
    week = settle(page)
    assert week["demand-forecast"] == "ready"
    url = page.evaluate("() => location.hash")
    assert f"from={(shop_today() - timedelta(days=6)).isoformat()}" in url
    assert url.endswith(f"&forecast=sku:{shop.sold_out_sku}")

    # A SKU nobody sells is this panel's error alone; one that is no SKU is never sent.
    sku.fill("NO-SUCH-SKU-1")
    panel.get_by_role("button", name="Forecast").click()
    assert wait_forecast(page, "forecast=sku:NO-SUCH-SKU-1") == "error"
    assert panel_text(page, "demand-forecast") == "no product has the SKU NO-SUCH-SKU-1"
    assert settle(page) == {**week, "demand-forecast": "error"}
    sku.fill("not a sku!")
    panel.get_by_role("button", name="Forecast").click()
    assert panel.locator(".message").inner_text().startswith("a SKU is letters, digits")
    assert page.evaluate("() => location.hash").endswith("forecast=sku:NO-SUCH-SKU-1")

    # Back to a category: the SKU field empties.
    select.select_option(top["slug"])
    assert wait_forecast(page, f"forecast=category:{top['slug']}") == "ready"
    assert sku.input_value() == ""
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


def test_the_forecast_spec_the_url_hash_and_the_table_marks(shop: Shop, tab: Tab) -> None:
    """What the new panels are built of, by the page's own modules: a forecast drawn as the
    actuals then the mean inside its bands (the widest first, so the narrower shades over
    it), the URL hash shared by the period and a panel's choice, and a table's marked rows."""
    page = tab.page
    page.goto(shop.url, wait_until="load")
    page.wait_for_function("() => window.Chart !== undefined")
    drawn: dict[str, Any] = page.evaluate(
        """async () => {
      const charts = await import('/admin/static/js/charts.js');
      const panels = await import('/admin/static/js/panels.js');
      const hash = await import('/admin/static/js/hash.js');
      const place = () => {
        const el = document.createElement('div');
        el.className = 'panel';
        document.body.append(el);
        return el;
      };
      const chart = charts.lineChart(place(), panels.forecastSpec({
        levels: [80, 95],
        actuals: [{day: '2026-11-28', units: 3}, {day: '2026-11-29', units: 5}],
        points: [{day: '2026-11-30', mean: 4, intervals: [
          {level: 80, lower: 2, upper: 6}, {level: 95, lower: 1, upper: 8}]}],
      }));
      const marked = charts.table(place(), {
        columns: [{label: 'q', value: (r) => r.q}],
        rows: [{q: 'a', unmet: false}, {q: 'b', unmet: true}],
        rowClass: (r) => (r.unmet ? 'flagged' : null),
      });
      const shown = charts.figures(place(), [{label: 'sell rate', value: '39%'}]);
      const period = '#to=2026-11-30&from=2026-11-01&by=DAY';
      return {
        labels: chart.data.labels,
        datasets: chart.data.datasets.map((d) => [d.label, d.data, d.fill, d.borderDash ?? null]),
        marked: [...marked.tBodies[0].rows].map((r) => r.className),
        figures: [...shown.querySelectorAll('dt, dd')].map((e) => e.textContent),
        hashes: [
          hash.hashWith({forecast: 'sku:AB-1'}, period),
          hash.hashWith({forecast: 'category:baby-toys', from: '2026-10-01'},
                        '#forecast=sku:AB-1&to=2026-11-30&by=WEEK'),
          hash.hashWith({forecast: null}, '#from=2026-11-01&forecast=sku:AB-1'),
          hash.hashWith({forecast: 'sku:A&B=C'}, ''),
        ],
        targets: ['sku:ab-1', 'sku:a b', 'category:baby-toys', 'category:Baby', 'toys', null]
          .map(panels.parseForecastTarget),
      };
    }"""
    )
    assert drawn["labels"] == ["2026-11-28", "2026-11-29", "2026-11-30"]
    assert drawn["datasets"] == [
        ["95% interval (lower)", [None, None, 1], False, None],
        ["95% interval", [None, None, 8], "-1", None],
        ["80% interval (lower)", [None, None, 2], False, None],
        ["80% interval", [None, None, 6], "-1", None],
        ["units sold", [3, 5, None], False, []],
        ["forecast", [None, None, 4], False, [6, 4]],
    ]
    assert drawn["marked"] == ["", "flagged"]
    assert drawn["figures"] == ["sell rate", "39%"]
    assert drawn["hashes"] == [
        "#from=2026-11-01&to=2026-11-30&by=DAY&forecast=sku:AB-1",
        "#from=2026-10-01&to=2026-11-30&by=WEEK&forecast=category:baby-toys",
        "#from=2026-11-01",
        "#forecast=sku:A%26B%3DC",
    ]
    assert drawn["targets"] == [
        {"kind": "sku", "sku": "ab-1"},
        None,
        {"kind": "category", "slug": "baby-toys"},
        None,
        None,
        None,
    ]
    assert tab.problems == []


# --- KPIs, funnel, cohorts, satisfaction, alerts ----------------------------------------------

SHOP_KPIS = """query($i: ShopKpisInput!) { shopKpis(input: $i) {
  ... on ShopKpis { granularity kpis { key label unit higherIsBetter total previousTotal
    lastYearTotal change lastYearChange points { start value previous lastYear } } } } }"""
FUNNEL = """query($i: ShoppingFunnelInput!) { shoppingFunnel(input: $i) {
  ... on ShoppingFunnel { visitors overallConversionRate
    steps { step visitors stepConversionRate } } } }"""
COHORTS = """query($i: CohortRetentionInput!) { cohortRetention(input: $i) {
  ... on CohortRetention { cohorts { month size retention { offset share } } } } }"""
SATISFACTION = """query($i: SatisfactionInput!) { satisfaction(input: $i) {
  ... on SatisfactionReport {
    total { sent responseRate csatAverage csatSatisfiedShare nps }
    groups { label responseRate csatAverage nps } } } }"""
OPEN_ALERTS = """{ alerts(first: 20, filter: {state: OPEN}) { totalCount
  nodes { id message badNews kind } } }"""
# The demo's rules (server/demo/alerts.py) as the rules panel shows them.
DEMO_RULES = [
    ["日 GMV 比前一天跌七成", "GMV", "day", "falls by 70%", "on"],
    ["日订单不足 2 单", "Orders", "day", "below 2", "on"],
    ["周访客比上周少三成", "Visitors", "week", "falls by 30%", "on"],
    ["周退款率超过 10%", "Refund rate", "week", "above 10%", "on"],
    ["支付成功率低于 90%", "Payment success rate", "day", "below 90%", "on"],
    ["月 GMV 破 5 万", "GMV", "month", "above CN¥50,000.00", "on"],
    ["日转化率低于 1%（暂停）", "Conversion rate", "day", "below 1%", "paused"],
]


def shown_number(text: str) -> float:
    """The number a figure shows: "CN¥1,234.50" → 1234.5, "+9.9%" → 9.9, "-40" → -40."""
    return float(re.sub(r"[^0-9.+-]", "", text))


def assert_figure(shown: str, value: float | None, *, scale: float = 1, places: int) -> None:
    """A figure is the API's value, rounded to what the page shows (Intl: at most ``places``
    decimals), with its sign for a change."""
    if value is None:
        assert shown == "–"
        return
    assert shown_number(shown) == pytest.approx(value * scale, abs=0.5 * 10**-places + 1e-9)


def kpis_of(shop: Shop, token: str, start: date, end: date, by: str) -> dict[str, Any]:
    found: dict[str, Any] = gql(
        shop,
        SHOP_KPIS,
        {
            "i": {
                "from": start.isoformat(),
                "to": end.isoformat(),
                "granularity": by,
                "keys": list(KPI_KEYS),
            }
        },
        token,
    )["shopKpis"]
    return found


def iso_weeks(start: date, last: date) -> int:
    """The ISO weeks (Monday to Sunday) the days from ``start`` to ``last`` touch."""
    first_monday = start - timedelta(days=start.weekday())
    last_monday = last - timedelta(days=last.weekday())
    return (last_monday - first_monday).days // 7 + 1


def test_the_kpi_trends_are_the_apis_series_with_the_rules_thresholds(shop: Shop, tab: Tab) -> None:
    """The last 30 days by day: every headline KPI drawn against the period before and last
    year, its total and changes as figures, good and bad news marked; an enabled rule's
    threshold at the chart's granularity is a line on its KPI. A year asked by day is drawn by
    week, and says so."""
    page = tab.page
    posted: list[str] = []
    page.on(
        "request",
        lambda r: posted.append(r.post_data or "") if r.url.endswith("/graphql") else None,
    )
    page.goto(shop.url, wait_until="load")
    sign_in(page, DEMO_STAFF_EMAIL, DEMO_PASSWORD)
    assert settle(page)["kpi-trends"] == "ready"
    token = staff_token(shop)
    to = shop_today()
    start = to - timedelta(days=29)
    # One request for every KPI.
    assert len([body for body in posted if "query ShopKpis(" in body]) == 1
    report = kpis_of(shop, token, start, to, "DAY")
    assert [k["key"] for k in report["kpis"]] == list(KPI_KEYS)
    assert panel_text(page, "kpi-trends").startswith("By day; figures as of ")
    for kpi in report["kpis"]:
        key, points = kpi["key"], kpi["points"]
        # The last day is included: 30 days, 30 points.
        assert len(points) == 30 and points[0]["start"] == start.isoformat(), key
        chart = page.evaluate(KPI_CHART, key)
        assert chart["labels"] == [p["start"] for p in points], key
        data = chart["datasets"]
        assert data[kpi["label"]] == [p["value"] for p in points], key
        assert data["previous period"] == [p["previous"] for p in points], key
        assert data["last year"] == [p["lastYear"] for p in points], key
        # "日订单不足 2 单" (orders, DAY, BELOW 2) is the only enabled ABOVE/BELOW rule by day on
        # these KPIs; the paused rule on conversion is not drawn.
        thresholds = {label: v for label, v in data.items() if label.startswith(("日", "周", "月"))}
        if key == "orders":
            assert thresholds == {"日订单不足 2 单": [2] * 30}
        else:
            assert thresholds == {}, key
        shown = page.evaluate(KPI_FIGURES, key)
        total = kpi["total"]
        if kpi["unit"] == "MONEY":
            assert shown["total"][0].startswith("CN¥")
            assert_figure(shown["total"][0], total, scale=0.01, places=2)
        elif kpi["unit"] == "RATIO":
            assert_figure(shown["total"][0], total, scale=100, places=1)
        else:
            assert_figure(shown["total"][0], total, places=2)
        for label, change, earlier in (
            ("vs previous", kpi["change"], kpi["previousTotal"]),
            ("vs last year", kpi["lastYearChange"], kpi["lastYearTotal"]),
        ):
            text, tone = shown[label]
            if kpi["unit"] == "SCORE":
                # A score's difference (NPS may be 0 or below: a share of it means nothing).
                moved = None if total is None or earlier is None else total - earlier
                assert_figure(text, moved, places=2)
                shown_as = None if moved is None else round(moved, 2)
            else:
                moved = change
                assert_figure(text, moved, scale=100, places=1)
                shown_as = None if moved is None else round(moved * 100, 1)
            # A move the figure shows as zero ("0%") is neither good nor bad news.
            if shown_as:
                assert moved is not None
                assert text.startswith("+" if moved > 0 else "-"), (key, label, text)
                good = (moved > 0) == kpi["higherIsBetter"]
                assert tone == ("good" if good else "bad"), (key, label)
            else:
                assert tone is None, (key, label)

    # Twelve months, by week: the weekly refund-rate ceiling (10%) is drawn on its KPI.
    page.get_by_role("button", name="12 months").click()
    page.wait_for_function(
        "() => document.querySelector('[data-panel=kpi-trends]').dataset.state !== 'ready'"
    )
    settle(page)
    year_start = to - timedelta(days=364)
    weekly = kpis_of(shop, token, year_start, to, "WEEK")
    refunds = next(k for k in weekly["kpis"] if k["key"] == "refund_rate")
    chart = page.evaluate(KPI_CHART, "refund_rate")
    weeks = iso_weeks(year_start, to)
    assert (
        chart["labels"] == [p["start"] for p in refunds["points"]] and len(chart["labels"]) == weeks
    )
    assert chart["datasets"]["周退款率超过 10%"] == [0.1] * weeks
    assert "日订单不足 2 单" not in page.evaluate(KPI_CHART, "orders")["datasets"]

    # The same year asked by day: drawn by week (a point a day would be 3,660 points).
    posted.clear()
    page.locator("#period-granularity").select_option("DAY")
    page.get_by_role("button", name="Show").click()
    page.wait_for_function(
        "() => document.querySelector('[data-panel=kpi-trends]').dataset.state !== 'ready'"
    )
    assert settle(page)["kpi-trends"] == "ready"
    [asked] = [body for body in posted if "query ShopKpis(" in body]
    assert '"granularity":"WEEK"' in asked
    assert panel_text(page, "kpi-trends").startswith(
        "Drawn by week: over 92 days, a point a day would spend too much of the query-cost "
        "budget. By week; figures as of "
    )
    assert len(page.evaluate(KPI_CHART, "gmv")["labels"]) == weeks

    # By month: the month's GMV target (¥50,000.00, in fen) on the GMV chart.
    page.locator("#period-granularity").select_option("MONTH")
    page.get_by_role("button", name="Show").click()
    page.wait_for_function(
        "() => document.querySelector('[data-panel=kpi-trends]').dataset.state !== 'ready'"
    )
    settle(page)
    gmv = page.evaluate(KPI_CHART, "gmv")
    assert gmv["datasets"]["月 GMV 破 5 万"] == [5_000_000] * len(gmv["labels"])
    assert tab.problems == []


def test_the_funnel_cohorts_and_satisfaction_are_the_apis_figures(shop: Shop, tab: Tab) -> None:
    page = tab.page
    page.goto(shop.url, wait_until="load")
    sign_in(page, DEMO_STAFF_EMAIL, DEMO_PASSWORD)
    assert settle(page) == dict.fromkeys(PANELS, "ready")
    token = staff_token(shop)
    to = shop_today()
    period = {"from": (to - timedelta(days=29)).isoformat(), "to": to.isoformat()}

    # The funnel: the visitors at each step, each bar with its share of the first and of the
    # step before (the API's step conversion).
    funnel = gql(shop, FUNNEL, {"i": period}, token)["shoppingFunnel"]
    steps = funnel["steps"]
    assert [s["step"] for s in steps] == ["VIEW", "ADD_TO_CART", "ORDER", "PAID"]
    chart = page.evaluate(CHART, "shopping-funnel")
    assert chart["datasets"]["visitors"] == [s["visitors"] for s in steps]
    first = steps[0]["visitors"]
    assert first > steps[-1]["visitors"] > 0
    names = ["viewed a product", "added to cart", "ordered", "paid"]
    assert chart["labels"] == [names[0]] + [
        f"{name} · {100 * s['visitors'] / first:.1f}% of first, "
        f"{100 * s['stepConversionRate']:.1f}% of previous"
        for name, s in zip(names[1:], steps[1:], strict=True)
    ]
    shown = page.evaluate(FIGURES, "shopping-funnel")
    assert shown["visitors"] == f"{funnel['visitors']:,}"
    assert shown["conversion (paid / viewed)"] == percent(funnel["overallConversionRate"])

    # Cohorts: the 12 months up to the period's last, each month's share who bought again.
    first_month = date(to.year - (1 if to.month < 12 else 0), to.month % 12 + 1, 1)
    cohorts = gql(
        shop, COHORTS, {"i": {"fromMonth": first_month.isoformat(), "months": 12}}, token
    )["cohortRetention"]["cohorts"]
    assert len(cohorts) == 12 and sum(c["size"] for c in cohorts) > 0
    rows = page.evaluate(
        """() => [...document.querySelectorAll('[data-panel="cohort-retention"] tbody tr')].map(
        (tr) => [tr.querySelector('th').textContent,
                 [...tr.querySelectorAll('td')].map((td) => td.dataset.value ?? null)])"""
    )
    assert [label for label, _ in rows] == [f"{c['month'][:7]} · {c['size']:,}" for c in cohorts]
    for (_, cells), cohort in zip(rows, cohorts, strict=True):
        shares = {r["offset"]: r["share"] for r in cohort["retention"]}
        assert [None if v is None else float(v) for v in cells] == [
            shares.get(offset) for offset in range(1, len(cells) + 1)
        ]
    # The oldest cohort has eleven months after it; the current month's, none yet.
    assert len(cohorts[0]["retention"]) == 11 and cohorts[-1]["retention"] == []

    # Satisfaction: the period's figures, and CSAT per carrier and per channel.
    for panel, by in (("satisfaction-carriers", "CARRIER"), ("satisfaction-channels", "CHANNEL")):
        report = gql(shop, SATISFACTION, {"i": {**period, "by": by}}, token)["satisfaction"]
        rated = [g for g in report["groups"] if g["csatAverage"] is not None]
        assert rated, by
        chart = page.evaluate(CHART, panel)
        assert chart["labels"] == [
            f"{g['label']} · {percent(g['responseRate'])} answered" for g in rated
        ]
        assert chart["datasets"]["CSAT (1–5)"] == [g["csatAverage"] for g in rated]
        total = report["total"]
        shown = page.evaluate(FIGURES, panel)
        assert shown["surveys sent"] == f"{total['sent']:,}"
        assert shown["response rate"] == percent(total["responseRate"])
        assert_figure(shown["CSAT (1–5)"], total["csatAverage"], places=2)
        assert_figure(shown["NPS"], total["nps"], places=2)
        # NPS is asked after no order: no carrier or channel has NPS answers in the demo.
        assert all(g["nps"] is None for g in report["groups"])
        assert "NPS: no NPS answer in these groups" in panel_text(page, panel)
    assert tab.problems == []


def alert_state(shop: Shop, alert_id: str) -> tuple[str, str | None]:
    """The alert's state and who acknowledged it, as the database holds them."""
    number = int(base64.b64decode(alert_id).decode().split(":")[1])

    async def read() -> tuple[str, str | None]:
        engine = create_engine(shop.database_url)
        try:
            async with session_factory(engine)() as session:
                row = (await session.execute(select(Alert).where(Alert.id == number))).scalar_one()
                return row.state.value, row.acknowledged_by
        finally:
            await engine.dispose()

    return migrate.run_async(read)


def test_an_alert_acknowledged_in_the_browser_leaves_the_open_list(shop: Shop, tab: Tab) -> None:
    page = tab.page
    page.goto(shop.url, wait_until="load")
    sign_in(page, DEMO_STAFF_EMAIL, DEMO_PASSWORD)
    settle(page)
    token = staff_token(shop)
    before = gql(shop, OPEN_ALERTS, token=token)["alerts"]
    assert before["totalCount"] >= 2
    table = page.evaluate(TABLE, "alerts")
    assert table["head"] == ["when", "kind", "KPI or product", "alert", "", ""]
    # Newest first, as the API lists them; bad news marked.
    assert column(table, "alert") == [a["message"] for a in before["nodes"]]
    assert table["flagged"] == [a["badNews"] for a in before["nodes"]]
    assert [row[4] for row in table["rows"]] == [
        "bad news" if a["badNews"] else "" for a in before["nodes"]
    ]
    assert {row[1] for row in table["rows"]} >= {"stock-out"}
    assert page.evaluate(FIGURES, "alerts")["open alerts"] == str(before["totalCount"])

    # The rules, with their conditions in the KPI's unit.
    rules = page.evaluate(TABLE, "alert-rules")
    assert rules["head"] == ["rule", "KPI", "by", "when", "state"]
    assert rules["rows"] == DEMO_RULES

    first = before["nodes"][0]
    buttons = page.locator('[data-panel="alerts"] tbody button')
    assert buttons.count() == len(before["nodes"])
    with page.expect_response(lambda r: "acknowledgeAlert" in (r.request.post_data or "")) as done:
        buttons.first.click()
    assert done.value.json()["data"]["acknowledgeAlert"]["__typename"] == (
        "AcknowledgeAlertSuccess"
    )
    page.wait_for_function(
        "(n) => document.querySelector('[data-panel=alerts]').dataset.state === 'ready'"
        " && document.querySelectorAll('[data-panel=alerts] tbody tr').length === n",
        arg=len(before["nodes"]) - (1 if before["totalCount"] <= 20 else 0),
    )
    after = gql(shop, OPEN_ALERTS, token=token)["alerts"]
    assert after["totalCount"] == before["totalCount"] - 1
    assert first["id"] not in [a["id"] for a in after["nodes"]]
    assert column(page.evaluate(TABLE, "alerts"), "alert") == [a["message"] for a in after["nodes"]]
    assert page.evaluate(FIGURES, "alerts")["open alerts"] == str(after["totalCount"])
    # Signed with whoever pressed the button: the session's staff member.
    session = page.evaluate("() => JSON.parse(sessionStorage.getItem('shopgraph.admin.session'))")
    claims = session["token"].split(".")[1]
    subject = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))["sub"]
    assert alert_state(shop, first["id"]) == ("ACKNOWLEDGED", subject)
    assert subject.startswith("staff:")
    assert tab.problems == []


def test_a_year_of_the_dashboard_stays_within_the_staffs_query_cost_budget(
    shop: Shop, tab: Tab
) -> None:
    """With the shipped cost settings (everyone: 1,000 points, 50 restored a second; ADMIN and
    ANALYST: 10,000 and 500): a year asked by day has the KPI trends drawn by week, a query of
    1 + 10 × (1 + weeks) points plus the rules; the whole dashboard costs more than everyone's
    bucket holds, and an analyst's holds it, again right after."""
    settings = Settings(database_url=shop.database_url, env="test", run_jobs=False)
    analysts = cost_buckets(settings).for_role("ANALYST")
    assert (analysts.size, settings.cost_bucket_size, settings.max_query_cost) == (
        10_000,
        1000,
        1000,
    )
    server = LiveServer(create_app(settings, load_plugins(settings))).start()
    try:
        page = tab.page
        responses: list[Any] = []
        page.on("response", lambda r: responses.append(r) if r.url.endswith("/graphql") else None)
        to = shop_today()
        start = to - timedelta(days=364)
        page.goto(f"{server.url}/admin#from={start}&to={to}&by=DAY", wait_until="load")
        sign_in(page, ANALYST_EMAIL, DEMO_PASSWORD)
        page.locator("#dashboard").wait_for(state="visible")

        def refresh_costs() -> list[dict[str, Any]]:
            # Rising searches compare at most 183 days: its error is the only one.
            assert settle(page) == {**dict.fromkeys(PANELS, "ready"), "rising-searches": "error"}
            answered = []
            for response in responses:
                if "authorization" not in response.request.headers:
                    continue  # the sign-in: charged to the address, not the analyst
                body = response.json()
                codes = [e.get("extensions", {}).get("code") for e in body.get("errors", [])]
                assert not {"THROTTLED", "MAX_COST_EXCEEDED"} & set(codes), codes
                answered.append({"query": response.request.post_data, **body["extensions"]["cost"]})
            responses.clear()
            return answered

        first = refresh_costs()
        [kpis] = [c for c in first if "query ShopKpis(" in c["query"]]
        assert '"granularity":"WEEK"' in kpis["query"]
        weeks = iso_weeks(start, to)
        # shopKpis (1) + 10 KPIs × (1 + a point a week), and alertRules: 2 + the 7 rules.
        assert kpis["actualQueryCost"] == 1 + 10 * (1 + weeks) + 2 + len(DEMO_RULES)
        assert kpis["actualQueryCost"] <= settings.max_query_cost
        spent = sum(c["actualQueryCost"] for c in first)
        assert settings.cost_bucket_size < spent <= analysts.size
        assert {c["throttleStatus"]["maximumAvailable"] for c in first} == {analysts.size}

        # Again at once: the bucket holds a second refresh.
        page.get_by_role("button", name="Show").click()
        page.wait_for_function(
            "() => document.querySelector('[data-panel=kpi-trends]').dataset.state !== 'ready'"
        )
        second = refresh_costs()
        assert len(second) == len(first)
        assert sum(c["actualQueryCost"] for c in second) <= analysts.size - spent + 500 * 60
    finally:
        server.stop()
    assert tab.problems == []


def test_the_kpi_and_alert_helpers(shop: Shop, tab: Tab) -> None:
    """What the KPI trends and the alerts panels are built of, by the page's own modules: the
    granularity asked, the cohorts' window, which rules draw a threshold, a rule's condition in
    its KPI's unit, a comparison as good or bad news, two thresholds on one chart and a
    button in a table's cell."""
    page = tab.page
    page.goto(shop.url, wait_until="load")
    page.wait_for_function("() => window.Chart !== undefined")
    got: dict[str, Any] = page.evaluate(
        """async () => {
      const charts = await import('/admin/static/js/charts.js');
      const panels = await import('/admin/static/js/panels.js');
      const period = await import('/admin/static/js/period.js');
      const place = () => {
        const el = document.createElement('div');
        el.className = 'panel';
        document.body.append(el);
        return el;
      };
      const rule = (name, kpi, granularity, condition, threshold, active = true) =>
        ({name, kpi, granularity, condition, threshold, active});
      const rules = [
        rule('floor', 'orders', 'DAY', 'BELOW', 2), rule('ceiling', 'orders', 'DAY', 'ABOVE', 90),
        rule('weekly', 'orders', 'WEEK', 'ABOVE', 400), rule('fall', 'orders', 'DAY', 'FALLS_BY', 0.5),
        rule('paused', 'orders', 'DAY', 'ABOVE', 50, false), rule('gmv', 'gmv', 'DAY', 'ABOVE', 1)];
      const kpi = {key: 'orders', label: 'Orders', unit: 'COUNT', points: [
        {start: '2026-11-01', value: 3, previous: 4, lastYear: null},
        {start: '2026-11-02', value: 5, previous: 2, lastYear: 1}]};
      const chart = charts.lineChart(place(), {
        ...panels.kpiLineSpec(kpi, {thresholds: panels.kpiThresholds(rules, 'orders', 'DAY')}),
        compact: true});
      const button = document.createElement('button');
      button.textContent = 'Acknowledge';
      const withButton = charts.table(place(), {
        columns: [{label: 'q', value: (r) => r.q, className: 'nowrap'}, {label: '', value: () => button}],
        rows: [{q: '<i>x</i>'}]});
      const nps = {unit: 'SCORE', total: -40, higherIsBetter: true};
      const refunds = {unit: 'RATIO', total: 0.04, higherIsBetter: false};
      return {
        granularities: [[1, 'DAY'], [92, 'DAY'], [93, 'DAY'], [93, 'MONTH'], [400, 'WEEK']].map(
          ([days, by]) => panels.kpiGranularity(period.makePeriod(
            period.addDays('2026-11-30', 1 - days), '2026-11-30', by))),
        windows: [['2026-11-01', '2026-11-30'], ['2026-01-15', '2026-03-02'],
                  ['2024-06-01', '2026-11-30'], ['2023-01-01', '2026-11-30']].map(
          ([from, to]) => panels.cohortWindow({from, to})),
        conditions: [
          {condition: 'ABOVE', threshold: 5000000, kpiUnit: 'MONEY'},
          {condition: 'BELOW', threshold: 0.9, kpiUnit: 'RATIO'},
          {condition: 'BELOW', threshold: 2, kpiUnit: 'COUNT'},
          {condition: 'FALLS_BY', threshold: 0.7, kpiUnit: 'MONEY'},
          {condition: 'RISES_BY', threshold: 0.25, kpiUnit: null},
          {condition: 'ABOVE', threshold: 4.5, kpiUnit: null}].map(panels.ruleCondition),
        comparisons: [
          panels.kpiComparison(nps, 'vs previous', -1.93, 43),
          panels.kpiComparison(nps, 'vs last year', null, null),
          panels.kpiComparison(refunds, 'vs previous', 0.25, 0.032),
          panels.kpiComparison(refunds, 'vs last year', -0.5, 0.08)],
        datasets: chart.data.datasets.map((d) => [d.label, d.data]),
        legend: chart.options.plugins.legend.display,
        cell: [...withButton.querySelectorAll('td')].map((td) => [td.className, td.textContent,
                                                                  td.children.length]),
      };
    }"""
    )
    assert got["granularities"] == ["DAY", "DAY", "WEEK", "MONTH", "WEEK"]
    assert got["windows"] == [
        {"fromMonth": "2025-12-01", "months": 12},
        {"fromMonth": "2025-04-01", "months": 12},
        {"fromMonth": "2024-06-01", "months": 30},
        {"fromMonth": "2023-12-01", "months": 36},
    ]
    assert got["conditions"] == [
        "above CN¥50,000.00",
        "below 90%",
        "below 2",
        "falls by 70%",
        "rises by 25%",
        "above 4.5",
    ]
    # NPS -40 after 43: 83 points down (not -193%); refunds up a quarter: bad news.
    assert got["comparisons"] == [
        {"label": "vs previous", "value": "-83", "tone": "bad"},
        {"label": "vs last year", "value": "–", "tone": None},
        {"label": "vs previous", "value": "+25%", "tone": "bad"},
        {"label": "vs last year", "value": "-50%", "tone": "good"},
    ]
    # The enabled ABOVE and BELOW rules by day on orders: a floor and a ceiling.
    assert got["datasets"] == [
        ["Orders", [3, 5]],
        ["previous period", [4, 2]],
        ["last year", [None, 1]],
        ["floor", [2, 2]],
        ["ceiling", [90, 90]],
    ]
    assert got["legend"] is False
    assert got["cell"] == [["nowrap", "<i>x</i>", 0], ["", "Acknowledge", 1]]
    assert tab.problems == []
