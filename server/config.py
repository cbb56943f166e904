"""Settings, read from the environment (``SHOPGRAPH_*``) and an optional config file."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRET = "shopgraph-development-secret-change-me"


class CostBudget(BaseModel):
    """A query-cost budget: a bucket of ``size`` points, refilled at ``restore_rate`` points a
    second."""

    size: int = Field(ge=1)
    restore_rate: float = Field(gt=0)


def _staff_cost_budgets() -> dict[str, CostBudget]:
    # Ten times everyone's: a page of the /admin dashboard asks for about 1,000 to 1,700 points
    # (a KPI series is a point a day), a storefront page for tens.
    analytics = CostBudget(size=10_000, restore_rate=500.0)
    return {"ADMIN": analytics, "ANALYST": analytics}


class Settings(BaseSettings):
    """Everything the server reads from its environment.

    A config file (``SHOPGRAPH_CONFIG``, dotenv format) is read before the environment, so the
    environment always wins.
    """

    model_config = SettingsConfigDict(
        env_prefix="SHOPGRAPH_", env_file=os.environ.get("SHOPGRAPH_CONFIG"), extra="ignore"
    )

    env: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite+aiosqlite:///./shopgraph.db"
    secret_key: str = DEFAULT_SECRET
    access_token_minutes: int = 30
    refresh_token_days: int = Field(default=30, ge=1, description="refresh token lifetime")
    registration_link_hours: int = Field(
        default=24, ge=1, description="how long a registration's confirmation link is valid"
    )
    # Extra permissions per staff role, on top of the built-in mapping (docs/security.md),
    # e.g. SHOPGRAPH_ROLE_PERMISSIONS='{"SUPPORT": ["complaints.manage"]}'.
    role_permissions: dict[str, list[str]] = Field(default_factory=dict)
    currency: str = "CNY"
    # The shop's rule of thumb for A/B tests: an experiment's arms need at least this many
    # visitors each before a result can be conclusive (an experiment may set its own).
    experiment_min_sample_size: int = Field(default=1000, ge=30)
    # Customer lifetime value (docs/insights.md, "Lifetime value of the shop's customers"):
    # the horizon it covers, the annual rate its future margins are discounted at, and the
    # margin rate of a customer none of whose purchases has a cost price.
    clv_horizon_days: int = Field(default=365, ge=1, le=3650)
    clv_annual_discount_rate: float = Field(default=0.10, ge=0, lt=1)
    clv_default_margin_rate: float = Field(default=0.30, gt=0, le=1)
    # Channels and attribution (docs/insights.md, "Channels and attribution"): how many days
    # before an order a touch (an event carrying a channel) still counts towards it, and
    # gives an order placed without a channel its channel.
    attribution_lookback_days: int = Field(default=30, ge=1, le=365)

    # Alerts (docs/insights.md, "Alerts"): the KPIs the anomaly detector watches (keys,
    # comma-separated; a key no enabled plugin offers is skipped), the robust z-score beyond
    # which a day is an anomaly, and the days of history before the day it examines.
    anomaly_kpis: str = "visitors,orders,gmv,refund_rate,payment_success_rate"
    anomaly_threshold: float = Field(default=3.5, gt=0)
    anomaly_history_days: int = Field(default=56, ge=42, le=366)
    graphiql: bool = True
    # The /admin dashboard (docs/insights.md, "Dashboard"); unset: on outside production, off
    # in production unless set to true.
    admin_dashboard: bool | None = None
    plugins: str | None = Field(default=None, description="comma-separated allow-list")
    disabled_plugins: str = ""
    # Discover installed plugins through their entry points; false: the built-in plugins only
    # (plus those a caller passes explicitly), whatever else is installed.
    plugin_entry_points: bool = True
    echo_sql: bool = False
    # Database connections kept open per process, and opened beyond that under a burst;
    # unset means the backend's default (server/db.py: 20 and 20 on SQLite, 10 and 20 on
    # PostgreSQL).
    db_pool_size: int | None = Field(default=None, ge=1)
    db_max_overflow: int | None = Field(default=None, ge=0)
    # Request limits (see docs/security.md): checked before a request executes.
    max_depth: int = Field(default=12, ge=1, description="deepest field nesting of a document")
    max_aliases: int = Field(default=30, ge=0, description="aliased fields in a document")
    max_tokens: int = Field(default=5000, ge=1, description="lexical tokens in a document")
    max_body_bytes: int = Field(default=1_048_576, ge=1, description="HTTP request body size")
    max_subscriptions_per_connection: int = Field(
        default=20, ge=1, description="subscriptions open at once on one WebSocket"
    )
    # Query cost (Shopify's leaky bucket): a client holds at most ``cost_bucket_size`` points,
    # refilled at ``cost_restore_rate`` points per second; no single query may cost more than
    # ``max_query_cost`` (nor more than the bucket holds).
    max_query_cost: int = Field(default=1000, ge=1)
    cost_bucket_size: int = Field(default=1000, ge=1)
    cost_restore_rate: float = Field(default=50.0, gt=0)
    # Staff roles that read the shop's analytics get at least this budget (a role's never
    # lowers the above); a JSON object replaces the whole default, e.g.
    # SHOPGRAPH_ROLE_COST_BUDGETS='{"ANALYST": {"size": 20000, "restore_rate": 1000}}'.
    role_cost_budgets: dict[str, CostBudget] = Field(default_factory=_staff_cost_budgets)
    # The response cache of public catalogue reads (docs/api.md, "Response cache"): answers
    # to anonymous queries of public fields only, dropped by the writes that change them.
    response_cache: bool = True
    response_cache_max_entries: int = Field(default=5000, ge=1)
    response_cache_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    # Kept at most this long even when no write invalidates an entry: bounds what a change
    # made without an event (a direct SQL fix, a data import) can leave stale.
    response_cache_ttl_seconds: float = Field(default=300.0, gt=0)
    # ``Cache-Control: public, max-age=…`` of a cacheable GET answer (browsers and CDNs).
    response_cache_max_age: int = Field(default=5, ge=0)
    # Serving processes started together (``shopgraph serve --workers`` sets it): on SQLite,
    # which cannot tell other processes of a commit, more than one turns the cache off.
    workers: int = Field(default=1, ge=1)
    # Operations (docs/operations.md): /metrics is open outside production; in production it
    # needs ``Authorization: Bearer <metrics_token>`` and is closed without a token.
    metrics_token: str | None = None
    # Periodic jobs (the ``jobs`` hook: the core's insights job, the plugins') run by a
    # background task of every serving process, which looks for due jobs every
    # ``jobs_poll_seconds``; one process at a time runs a given job across the cluster. False
    # leaves them to ``shopgraph jobs run``.
    run_jobs: bool = True
    jobs_poll_seconds: float = Field(default=5.0, gt=0)
    # Log lines as JSON objects (with the request id) or as text; unset: JSON in production.
    log_format: Literal["json", "text"] | None = None
    log_level: str = "INFO"
    # OpenTelemetry spans per operation and resolver (server/graphql/operation_metrics.py); unset:
    # on when the package is installed and the process has a tracer provider configured.
    tracing: bool | None = None

    @property
    def effective_log_format(self) -> str:
        if self.log_format is not None:
            return self.log_format
        return "json" if self.env == "production" else "text"

    @property
    def admin_dashboard_enabled(self) -> bool:
        if self.admin_dashboard is not None:
            return self.admin_dashboard
        return self.env != "production"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @cached_property
    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite:
            return None
        return Path(self.database_url.split("///", 1)[1])

    @property
    def disabled_plugin_names(self) -> set[str]:
        return {p.strip() for p in self.disabled_plugins.split(",") if p.strip()}

    @property
    def anomaly_kpi_keys(self) -> list[str]:
        return [k.strip() for k in self.anomaly_kpis.split(",") if k.strip()]

    @property
    def enabled_plugin_names(self) -> set[str] | None:
        if self.plugins is None:
            return None
        return {p.strip() for p in self.plugins.split(",") if p.strip()}


# Where prometheus-client keeps the samples of several worker processes (server/metrics.py);
# `shopgraph serve --workers N` sets it to a fresh directory when it is not set.
METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


class InsecureSettings(ValueError):
    """Settings that must not reach production (the server refuses to start)."""


MIN_SECRET_LENGTH = 32


def check_production(settings: Settings) -> None:
    """Refuse a production start with a known or guessable JWT secret: anyone could mint
    staff tokens with it."""
    if settings.env != "production":
        return
    if settings.secret_key == DEFAULT_SECRET or len(settings.secret_key) < MIN_SECRET_LENGTH:
        raise InsecureSettings(
            "SHOPGRAPH_SECRET_KEY must be set to a random value of at least "
            f"{MIN_SECRET_LENGTH} characters in production (the default or a short secret "
            "lets anyone forge access tokens)"
        )


def get_settings(**overrides: Any) -> Settings:
    return Settings(**overrides)
