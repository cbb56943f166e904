"""``scratch_database``: a throwaway SQLite database migrated like the shop's, for command
lines that import a file to analyse it."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncSession

from server import migrate
from server.config import Settings
from server.plugin import run_in_session, scratch_database
from server.plugins import load_plugins


def test_a_scratch_database_is_at_every_head_and_gone_after() -> None:
    plugins = load_plugins(Settings())
    with scratch_database(plugins) as url:
        path = Path(make_url(url).database or "")
        assert path.is_file()
        assert migrate.current(url) == set(migrate.heads(plugins))

        async def write(session: AsyncSession) -> None:
            await session.execute(
                text(
                    "INSERT INTO category (name, slug, description, position) VALUES ('x', 'x', '', 0)"
                )
            )

        async def count(session: AsyncSession) -> int:
            return int(await session.scalar(text("SELECT count(*) FROM category")) or 0)

        run_in_session(write, write=True, database_url=url)
        assert run_in_session(count, database_url=url) == 1
    assert not path.exists() and not path.parent.exists()
