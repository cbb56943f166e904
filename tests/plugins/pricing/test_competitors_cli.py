"""``shopgraph pricing import-competitors FILE.csv --competitor NAME [--dry-run]`` on a real
database: major units to minor, the unmatched rows' line numbers, a dry run writing nothing, a
second import recording duplicates only, a bad line stopping the import whole."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from plugins.pricing.models import Competitor, CompetitorPrice, ObservationSource, PriceAlert
from server.cli import main as cli
from tests.plugins.pricing.competitor_shop import EAN13, UPC_A, make_catalogue

GOOD = f"""gtin,sku,amount,currency,observed_at
{EAN13},,89.90,CNY,2026-03-01T08:00:00+08:00
,sku-single,79.9,cny,2026-03-01
,NOBODY,10.00,CNY,2026-03-01
{UPC_A},,49.00,CNY,2026-03-01T00:00:00Z
,SKU-MULTI,59.00,CNY,2026-03-01
,SKU-SINGLE,12.00,USD,2026-03-02
"""


def run(url: str, path: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli,
        ["pricing", "import-competitors", str(path), "--competitor", "京东自营", *extra],
        env={"SHOPGRAPH_DATABASE_URL": url},
    )
    return result.exit_code, result.output


async def counts(session: AsyncSession) -> tuple[int, int, int]:
    await session.commit()
    return (
        int(await session.scalar(select(func.count()).select_from(Competitor)) or 0),
        int(await session.scalar(select(func.count()).select_from(CompetitorPrice)) or 0),
        int(await session.scalar(select(func.count()).select_from(PriceAlert)) or 0),
    )


async def test_a_csv_file_is_imported_and_its_unmatched_lines_named(
    database_url: str, session: AsyncSession, tmp_path: Path
) -> None:
    shop = await make_catalogue(session)
    path = tmp_path / "jd.csv"
    path.write_text(GOOD, encoding="utf-8")

    code, output = run(database_url, path, "--dry-run")
    assert code == 0, output
    assert "6 rows, 3 matched, 3 unmatched (dry run: nothing written)" in output
    assert await counts(session) == (0, 0, 0)

    code, output = run(database_url, path)
    assert code == 0, output
    assert "京东自营: 6 rows, 3 recorded, 0 duplicates, 3 unmatched, 1 alerts raised" in output
    # Lines count from the header (line 1).
    assert "AMBIGUOUS_SKU: lines 6" in output
    assert "CURRENCY_MISMATCH: lines 7" in output
    assert "UNKNOWN_SKU: lines 4" in output
    assert await counts(session) == (1, 3, 1)  # 89.90 is 10.1% under our 100.00
    rows = {
        (p.variant_id, p.amount, p.observed_at.isoformat(), p.source)
        for p in await session.scalars(select(CompetitorPrice))
    }
    assert rows == {
        # 89.90 → 8990 fen; 08:00 in UTC+8 is midnight UTC; a date alone is midnight UTC.
        (shop.ean_variant, 8990, "2026-03-01T00:00:00+00:00", ObservationSource.CSV),
        (shop.single_variant, 7990, "2026-03-01T00:00:00+00:00", ObservationSource.CSV),
        (shop.upc_variant, 4900, "2026-03-01T00:00:00+00:00", ObservationSource.CSV),
    }

    code, output = run(database_url, path)
    assert code == 0, output
    assert "0 recorded, 3 duplicates, 3 unmatched, 0 alerts raised" in output
    assert await counts(session) == (1, 3, 1)


async def test_a_bad_line_stops_the_import_and_writes_nothing(
    database_url: str, session: AsyncSession, tmp_path: Path
) -> None:
    await make_catalogue(session)
    bad = {
        "amount": f"gtin,sku,amount,currency,observed_at\n{EAN13},,12.999,CNY,2026-03-01\n",
        "currency": f"gtin,sku,amount,currency,observed_at\n{EAN13},,1,CNY,2026-03-01\n"
        f"{EAN13},,12.00,RMB1,2026-03-02\n",
        "observed_at": f"gtin,sku,amount,currency,observed_at\n{EAN13},,12.00,CNY,last week\n",
    }
    for column, text in bad.items():
        path = tmp_path / f"{column}.csv"
        path.write_text(text, encoding="utf-8")
        code, output = run(database_url, path)
        assert code != 0
        line = 3 if column == "currency" else 2
        assert f"line {line}, column {column}" in output, output
    header = tmp_path / "header.csv"
    header.write_text("code,price\nA,1\n", encoding="utf-8")
    code, output = run(database_url, header)
    assert code != 0 and "line 1" in output
    empty = tmp_path / "empty.csv"
    empty.write_text("gtin,sku,amount,currency,observed_at\n", encoding="utf-8")
    code, output = run(database_url, empty)
    assert code != 0 and "holds no prices" in output
    assert await counts(session) == (0, 0, 0)
