"""Demo data: a believable Chinese online shop, reproducible from a seed.

The whole shop is planned in memory first (so that, say, a customer's membership tier can
follow from the orders they will place) and then written with multi-row INSERTs, a few
statements per table; then each plugin adds its own demo data through the ``demo_data`` hook.
Same seed and same ``as_of``, same rows, in a fresh database on either backend.

Customers are not random clicks. Each has hidden preferences — favourite categories and brands,
price sensitivity, how much they browse — and a buying rhythm drawn from an archetype (loyal,
regular, seasonal, one-time, big-ticket, churner, new, browser: ``plan_rhythms``), with their
own purchase rate, dropout and spend per order as the lifetime-value models tell it. None of it
is stored, but it drives 18 months of orders and behaviour events, so that segmentation,
lifetime value, recommendation and churn analysis have something real to find.

The modules, one job each:

- ``catalogue``, ``places``, ``people``: the literal data the shop is drawn from;
- ``plan``: what a plan is (its rows and how they refer to each other);
- ``seasons``: the shopping calendar (618, Double 11, the Spring Festival) as day weights;
- ``planner`` with ``plan_catalogue``, ``plan_customers``, ``plan_rhythms``, ``plan_orders``
  and ``plan_behaviour``: the plan, drawn from one seeded ``random.Random``, no database;
- ``writer``: a plan written through a session;
- ``plugin_data``: each plugin's demo data, through the ``demo_data`` hook;
- ``loader``: the command's work — an empty shop, plan, write, plugins, commit.
"""

from __future__ import annotations

from server.demo.loader import (
    POPULATE_STEPS,
    DemoReport,
    default_as_of,
    demo_steps,
    load,
    populate,
)
from server.demo.plan import DEMO_PASSWORD, OPEN_STATUSES, Preferences, ShopPlan
from server.demo.planner import plan_shop
from server.demo.writer import DEMO_STAFF_EMAIL, write_plan

__all__ = [
    "DEMO_PASSWORD",
    "DEMO_STAFF_EMAIL",
    "OPEN_STATUSES",
    "POPULATE_STEPS",
    "DemoReport",
    "Preferences",
    "ShopPlan",
    "default_as_of",
    "demo_steps",
    "load",
    "plan_shop",
    "populate",
    "write_plan",
]
