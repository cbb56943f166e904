"""``shopgraph demo-data``'s work: into an empty shop, the core's demo shop (planned, then
written), each plugin's demo data, and the alerts all of it raises, committed together — or
nothing at all."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from server.db import create_engine, mark_write, session_factory
from server.demo.alerts import write_alerts
from server.demo.plan import DEMO_PASSWORD, Preferences
from server.demo.planner import PLAN_STEPS, plan_shop
from server.demo.plugin_data import fill_plugins, plugin_steps
from server.demo.writer import WRITE_STEPS, has_products, write_plan
from server.plugins import PluginRuntime
from server.progress import Progress
from server.services import kpi_aggregates, rfm
from server.services.kpi_registry import registered_kpis

# The core's steps: three planning steps, one per table written, one for the staff user, and
# one for the alerts (after the plugins' demo data).
POPULATE_STEPS = PLAN_STEPS + WRITE_STEPS + 1
DEMO_CURRENCY = "CNY"


@dataclass
class DemoReport:
    """What was generated: row counts, logins to try, each customer's hidden preferences (their
    buying archetype among them), and the row counts each plugin reported."""

    seed: int
    as_of: datetime
    counts: dict[str, int]
    demo_email: str
    demo_password: str
    staff_email: str | None
    preferences: dict[str, Preferences] = field(default_factory=dict)
    plugins: dict[str, dict[str, int]] = field(default_factory=dict)

    def summary(self) -> str:
        shown: tuple[str, ...] = (
            "categories",
            "products",
            "variants",
            "warehouses",
            "stock levels",
            "customers",
            "addresses",
        )
        shown += ("orders", "order lines", "payments", "shipments", "tracking events")
        shown += (
            "behaviour events",
            "carts",
            "marketing costs",
            "surveys",
            "alert rules",
            "alerts",
        )
        parts = [f"{self.counts[k]} {k}" for k in shown if k in self.counts]
        lines = [
            f"demo data (seed {self.seed}, as of {self.as_of:%Y-%m-%d}): " + ", ".join(parts),
        ]
        for plugin, counts in self.plugins.items():
            made = ", ".join(f"{n} {what}" for what, n in counts.items()) or "done"
            lines.append(f"plugin {plugin}: {made}")
        lines.append(f"customer login: {self.demo_email} / {self.demo_password}")
        if self.staff_email:
            lines.append(f"staff login:    {self.staff_email} / {self.demo_password}")
        return "\n".join(lines)


def demo_steps(plugins: PluginRuntime | None = None) -> int:
    """How many progress steps :func:`load` reports: the core's and one per plugin that
    implements ``demo_data``."""
    return POPULATE_STEPS + plugin_steps(plugins)


def default_as_of() -> datetime:
    """Midnight (UTC) today: a demo shop's history ends when it is made, so that "last 30
    days", recency and churn read naturally. Pass an explicit date for identical rows."""
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


async def populate(
    session: AsyncSession,
    *,
    customers: int = 500,
    products: int = 300,
    orders: int | None = None,
    seed: int = 2024,
    as_of: datetime,
    plugins: PluginRuntime | None = None,
    progress: Progress | None = None,
) -> DemoReport:
    """Plan a shop from ``seed``, write it in the session's transaction (not committed), let
    each of ``plugins`` that implements ``demo_data`` add its own, then raise the alerts the
    history gives (server.demo.alerts). ``orders`` is exactly how many orders it gets; None: as
    many as its customers' buying rhythms give (about six a customer).

    ``progress`` (of :func:`demo_steps` steps) hears of each planned part, each table written,
    each plugin's demo data and the alerts. A plugin that fails raises
    :class:`server.plugins.PluginFailed`, naming it.
    """

    def planned(what: str) -> None:
        if progress is not None:
            progress.advance(what)

    plan = plan_shop(
        seed=seed,
        as_of=as_of,
        customers=customers,
        products=products,
        orders=orders,
        on_planned=planned,
    )
    written = await write_plan(session, plan, progress=progress)
    first_order = min((o.row["placed_at"] for o in plan.orders), default=plan.as_of)
    await segment_history(session, first_order, plan.as_of)
    filled: dict[str, dict[str, int]] = {}
    if plugins is not None:
        filled = await fill_plugins(session, plugins, written.shop, progress=progress)
    kpis = registered_kpis(plugins) if plugins is not None else {}
    # The alerts read the KPIs, which read the aggregates: build them from the history first.
    await kpi_aggregates.rebuild_in(session, DEMO_CURRENCY)
    counts = written.counts | await write_alerts(session, kpis, as_of=plan.as_of)
    planned("alerts")
    demo = plan.demo_customer()
    return DemoReport(
        seed=seed,
        as_of=plan.as_of,
        counts=counts,
        demo_email=demo.row["email"] if demo else "",
        demo_password=DEMO_PASSWORD,
        staff_email=written.staff_email,
        preferences={c.row["email"]: c.prefs for c in plan.customers},
        plugins=filled,
    )


async def segment_history(session: AsyncSession, since: datetime, as_of: datetime) -> None:
    """Replay the RFM recomputation once a week from the week of ``since`` (the first order)
    up to ``as_of`` (the last replay), as a weekly job would have run it: the segments'
    history (``customer_segment_change``) then shows customers entering the shop and moving
    between segments week by week, for the dashboard to draw. The periodic job, run the same
    day, finds the figures current."""
    weeks = max(0, (as_of - since) // timedelta(weeks=1))
    for back in range(weeks, -1, -1):
        moment = as_of - timedelta(weeks=back)
        await rfm.rebuild(session, currency=DEMO_CURRENCY, as_of=moment, force=True)


async def load(
    database_url: str,
    *,
    customers: int = 500,
    products: int = 300,
    orders: int | None = None,
    seed: int = 2024,
    as_of: datetime | None = None,
    if_empty: bool = False,
    plugins: PluginRuntime | None = None,
    progress: Progress | None = None,
) -> DemoReport | None:
    """Fill the (migrated) database at ``database_url`` and commit: the core's demo shop, then
    the demo data of each of ``plugins`` that implements ``demo_data`` (none without them).

    Returns None when ``if_empty`` and the shop already has products (no plugin is called);
    raises ``ValueError`` for a shop that has products otherwise (demo rows would collide with
    real ones). When a plugin fails, :class:`server.plugins.PluginFailed` names it and nothing
    is committed: the database is left as it was, empty, so that the command can run again.
    """
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            await mark_write(session)
            if await has_products(session):
                if if_empty:
                    return None
                raise ValueError(
                    "the database already has products: demo data goes into an empty shop "
                    "(--if-empty leaves a populated shop alone)"
                )
            report = await populate(
                session,
                customers=customers,
                products=products,
                orders=orders,
                seed=seed,
                as_of=as_of or default_as_of(),
                plugins=plugins,
                progress=progress,
            )
            await session.commit()
            return report
    finally:
        await engine.dispose()
