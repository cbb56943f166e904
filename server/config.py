"""Settings, read from the environment (``SHOPGRAPH_*``) and an optional config file."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRET = "shopgraph-development-secret-change-me"


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
    currency: str = "CNY"
    graphiql: bool = True
    plugins: str | None = Field(default=None, description="comma-separated allow-list")
    disabled_plugins: str = ""
    echo_sql: bool = False

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
    def enabled_plugin_names(self) -> set[str] | None:
        if self.plugins is None:
            return None
        return {p.strip() for p in self.plugins.split(",") if p.strip()}


def get_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
