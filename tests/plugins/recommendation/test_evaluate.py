"""``shopgraph recommend evaluate`` on a demo shop (built once for the module) and on an order
log in a CSV file: the hybrid beats every baseline on recall@10, the JSON report, the tuning
of the blend, the import of an external log into a scratch database; and
``shopgraph recommend rebuild``."""

from __future__ import annotations

import asyncio
import csv
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from plugins.recommendation.models import BuildStatus, RecommendationBuild
from plugins.recommendation.service import evaluation, order_log
from plugins.recommendation.service.data import TrainingData, load_training_data
from plugins.recommendation.service.hybrid import diversify
from plugins.recommendation.service.settings import BlendWeights, RecommendationSettings
from server.cli import main as cli
from server.config import Settings
from server.demo import load
from server.migrate import run_async
from server.models import Category, Customer, Order, OrderLine, Product
from server.plugin import run_in_session, scratch_database
from server.plugins import load_plugins
from tests.support.catalog import make_category, make_product

# Writes a demo shop: started first (tests/conftest.py).
pytestmark = pytest.mark.heavy

AS_OF = datetime(2025, 3, 1, tzinfo=UTC)
# Small enough to build in seconds, large enough that the result holds: with 120 customers
# and 60 products (seed 7) the frequency baselines tie the hybrid on the last-order split;
# with these, the hybrid wins on both splits, for seeds 1, 2 and 3 as well.
SHOP = {"customers": 150, "products": 80, "seed": 7}
SETTINGS = RecommendationSettings()


@pytest.fixture(scope="module")
def demo_shop(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("evaluate") / "demo.db"
    shutil.copyfile(sqlite_template, path)
    url = f"sqlite+aiosqlite:///{path}"
    run_async(lambda: load(url, as_of=AS_OF, **SHOP))  # type: ignore[arg-type]
    return url


@pytest.fixture(scope="module")
def demo_data(demo_shop: str) -> TrainingData:
    return run_in_session(
        lambda session: load_training_data(session, SETTINGS), database_url=demo_shop
    )


@pytest.mark.parametrize("kind", ["last", "time"])
def test_the_hybrid_beats_every_baseline_on_the_demo_shop(
    demo_data: TrainingData, kind: str
) -> None:
    report = asyncio.run(evaluation.evaluate(demo_data, SETTINGS, kind=kind))
    assert set(report.models) == set(evaluation.MODELS)
    recall = {model: metrics["recall@10"] for model, metrics in report.models.items()}
    hybrid = recall.pop(evaluation.HYBRID)
    assert all(hybrid > other for other in recall.values()), (hybrid, recall)
    # The repeat baselines find repeat items and nothing new; the hybrid finds both.
    models = report.models
    assert models[evaluation.TOP_FREQUENCY]["recall@10_new"] == 0.0
    assert models[evaluation.HYBRID]["recall@10_new"] > models[evaluation.POPULAR]["recall@10_new"]
    assert models[evaluation.HYBRID]["recall@10_repeat"] > 0.8
    assert report.customers >= 30


def test_the_tuning_reblends_exactly_what_rank_ranks(demo_data: TrainingData) -> None:
    """Tuning scores each blend by re-weighing the components' parts of one ranking under
    unit weights: it must give the very lists :func:`hybrid.rank` gives that blend."""
    split = evaluation.split_last_order(demo_data, SETTINGS)
    models, store = evaluation.fit_in_memory(split.train, SETTINGS)
    cases = split.cases[:40]
    blend = BlendWeights(repeat=1.0, bought_with=0.1, similar=0.5, popular=0.25, new=0.3)
    parts = asyncio.run(evaluation.component_parts(store, models, cases, SETTINGS))
    weights = {"REPEAT": 1.0, "BOUGHT_WITH": 0.1, "SIMILAR": 0.5, "POPULAR": 0.25, "NEW": 0.3}
    categories = evaluation.category_map(models)
    direct = asyncio.run(evaluation.hybrid_rankings(store, models, cases, blend, SETTINGS))
    for case, candidates in zip(cases, parts, strict=True):
        top = diversify(
            evaluation.reblend(candidates, weights), categories, 10, SETTINGS.max_category_share
        )
        assert [s.product_id for s in top] == direct[case.customer]


def test_evaluate_prints_every_model_and_metric_as_json(
    demo_shop: str, demo_data: TrainingData
) -> None:
    env = {"SHOPGRAPH_DATABASE_URL": demo_shop}
    result = CliRunner().invoke(cli, ["recommend", "evaluate", "--json"], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert list(report) == list(evaluation.MODELS)
    assert all(list(metrics) == list(evaluation.METRICS) for metrics in report.values())
    # What the command measured is what the service measures.
    expected = asyncio.run(evaluation.evaluate(demo_data, SETTINGS)).as_dict()
    assert report.keys() == expected.keys()
    for model, metrics in report.items():
        assert metrics == pytest.approx(expected[model]), model
    progress = [line for line in result.stderr.splitlines() if line]
    assert progress[0].startswith("recommend evaluate: ") and progress[-1].endswith("(5/5)")

    table = CliRunner().invoke(cli, ["recommend", "evaluate", "--split", "time"], env=env)
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].startswith("split time: ")
    assert lines[1].split()[:3] == ["model", "recall@10", "recall@10"]
    assert [line.split()[0] for line in lines[2:]] == list(evaluation.MODELS)
    # A cut of one's own: the test customers are those who bought before it and after it.
    cut = CliRunner().invoke(
        cli, ["recommend", "evaluate", "--split", "time", "--cut", "2024-12-01"], env=env
    )
    assert cut.exit_code == 0, cut.output
    split = evaluation.split_time(
        demo_data, SETTINGS, datetime(2024, 12, 1, tzinfo=UTC).timestamp()
    )
    assert cut.stdout.startswith(f"split time: {len(split.cases)} test customers")


def test_tune_prints_the_best_blend_of_the_grid(demo_shop: str) -> None:
    env = {"SHOPGRAPH_DATABASE_URL": demo_shop}
    result = CliRunner().invoke(cli, ["recommend", "evaluate", "--tune"], env=env)
    assert result.exit_code == 0, result.output
    best = result.stdout.splitlines()[-1]
    assert best.startswith("best: SHOPGRAPH_RECOMMENDATION_WEIGHTS='")
    weights = BlendWeights.model_validate_json(best.split("'")[1])
    assert weights.repeat == 1.0
    assert weights.similar in evaluation.GRID["similar"]
    # Its recall heads the table (rows: the blend, recall, NDCG).
    first = result.stdout.splitlines()[1]
    assert first.startswith(
        f"{weights.repeat:g}, {weights.bought_with:g}, {weights.similar:g}, "
        f"{weights.popular:g}, {weights.new:g} "
    )


def _write_log(path: Path, rows: list[tuple[str, str, str, str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["household", "basket", "day", "item", "aisle"])
        writer.writerows(rows)


async def test_an_order_log_is_imported_into_a_scratch_database(
    database_url: str, session: AsyncSession, tmp_path: Path
) -> None:
    """The shop's products (by SKU, of the product or a variant) are copied with their
    category; others become placeholders in the log's categories; customers and orders come
    from the columns; a number is days, the order's time its rows' earliest."""
    food = await make_category(session, "食品")
    await make_product(session, "牛奶", sku="MILK", category=food, brand="光明")
    await make_product(session, "其他", sku="OTHER")
    rows = [
        ("h1", "b1", "3", "MILK", "dairy"),
        ("h1", "b1", "3", "X-9", "snacks"),
        ("h1", "b1", "3", "X-9", "snacks"),  # two rows of one product: quantity 2
        ("h1", "b2", "10", "MILK", "dairy"),
        ("h2", "b3", "7.5", "X-9", "snacks"),
        ("h2", "b3", "7", "Y-1", ""),  # the order's time: its earliest row's
    ]
    path = tmp_path / "log.csv"
    _write_log(path, rows)
    log = order_log.read_order_log(
        path,
        customer="household",
        order="basket",
        sequence="day",
        product="item",
        category="aisle",
    )
    assert (log.rows, len(log.orders), log.customers) == (6, 3, ["h1", "h2"])
    assert log.orders["b3"] == ("h2", datetime(2000, 1, 8, tzinfo=UTC))
    catalogue = await order_log.shop_catalogue(session, sorted(log.products))
    assert [p.row["sku"] for p in catalogue.products] == ["MILK"]
    assert [c["name"] for c in catalogue.categories] == ["食品"]

    plugins = load_plugins(Settings())
    with scratch_database(plugins) as url:
        imported = run_in_session(
            lambda s: order_log.write_order_log(s, log, catalogue), write=True, database_url=url
        )
        assert (imported.customers, imported.orders, imported.lines) == (2, 3, 5)
        assert (imported.products, imported.matched) == (3, 1)

        async def read(s: AsyncSession) -> tuple[object, ...]:
            products = {
                p.sku: (p.name, p.category_id, p.brand)
                for p in (await s.execute(select(Product))).scalars()
            }
            categories = {c.id: c.name for c in (await s.execute(select(Category))).scalars()}
            quantities = sorted(
                (line.sku, line.quantity) for line in (await s.execute(select(OrderLine))).scalars()
            )
            customers = await s.scalar(select(func.count()).select_from(Customer))
            placed = sorted(o.placed_at for o in (await s.execute(select(Order))).scalars())
            return products, categories, quantities, customers, placed

        products, categories, quantities, customers, placed = run_in_session(read, database_url=url)
        data = run_in_session(
            lambda s: load_training_data(s, SETTINGS, until=log.end.replace(day=9)),
            database_url=url,
        )
    milk = products["MILK"]
    assert (milk[0], categories[milk[1]], milk[2]) == ("牛奶", "食品", "光明")
    assert products["X-9"][0] == "" and categories[products["X-9"][1]] == "snacks"
    assert products["Y-1"][1] is None  # no category in the log
    assert quantities == [("MILK", 1), ("MILK", 1), ("X-9", 1), ("X-9", 2), ("Y-1", 1)]
    assert customers == 2
    assert [p.replace(tzinfo=None) for p in placed] == [
        datetime(2000, 1, 4),
        datetime(2000, 1, 8),
        datetime(2000, 1, 11),
    ]
    # load_training_data reads it as it reads a shop: the two orders before day 9.
    assert data.purchases.order.size == 4


def test_order_log_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    read = dict(customer="household", order="basket", sequence="day", product="item")
    path.write_text("household,basket,item\n", encoding="utf-8")
    with pytest.raises(order_log.InvalidOrderLog, match="has no column 'day'"):
        order_log.read_order_log(path, **read)
    _write_log(path, [("h1", "b1", "2024-03-01", "A", ""), ("h1", "b2", "soon", "B", "")])
    with pytest.raises(order_log.InvalidOrderLog, match="line 3: sequence 'soon' is not an ISO"):
        order_log.read_order_log(path, **read)
    _write_log(path, [("h1", "b1", "1", "A", ""), ("h2", "b1", "1", "B", "")])
    with pytest.raises(order_log.InvalidOrderLog, match="line 3: order 'b1' belongs to"):
        order_log.read_order_log(path, **read)
    _write_log(path, [("h1", "", "1", "A", "")])
    with pytest.raises(order_log.InvalidOrderLog, match="line 2: an empty value"):
        order_log.read_order_log(path, **read)
    _write_log(path, [])
    with pytest.raises(order_log.InvalidOrderLog, match="has no rows"):
        order_log.read_order_log(path, **read)
    # Dates and date-times (ISO), in UTC.
    _write_log(
        path, [("h1", "b1", "2024-03-01 18:30:00", "A", ""), ("h1", "b2", "2024-03-02", "A", "")]
    )
    log = order_log.read_order_log(path, **read)
    assert log.orders["b1"][1] == datetime(2024, 3, 1, 18, 30, tzinfo=UTC)


def test_evaluate_on_an_order_log(demo_shop: str, tmp_path: Path) -> None:
    """The CLI on a CSV file: a synthetic log of 40 households who buy their staples again,
    some of its SKUs the shop's."""

    async def skus(s: AsyncSession) -> list[str]:
        return list((await s.scalars(select(Product.sku).order_by(Product.id).limit(3))).all())

    known = run_in_session(skus, database_url=demo_shop)
    rows = []
    basket = 0
    for h in range(40):
        staples = [known[h % 3], f"S-{h % 7}", f"S-{(h + 1) % 7}"]
        for week in range(5):
            basket += 1
            for item in staples[: 2 + week % 2] + [f"N-{(h * 5 + week) % 23}"]:
                rows.append(
                    (f"h{h}", f"b{basket}", str(week * 7 + h % 3), item, f"aisle-{item[0]}")
                )
    path = tmp_path / "log.csv"
    _write_log(path, rows)
    env = {"SHOPGRAPH_DATABASE_URL": demo_shop}
    args = ["recommend", "evaluate", "--orders", str(path), "--order", "basket"]
    args += ["--sequence", "day", "--product", "item", "--category", "aisle"]
    result = CliRunner().invoke(cli, [*args, "--customer", "household", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert "3 of its products found in the shop's catalogue" in result.stderr
    assert "200 orders of 40 customers imported" in result.stderr
    report = json.loads(result.stdout)
    assert list(report) == list(evaluation.MODELS)
    # Everyone's last basket holds two or three staples: the frequency baselines find them.
    assert report[evaluation.TOP_FREQUENCY]["recall@10_repeat"] == 1.0
    missing = CliRunner().invoke(cli, [*args, "--customer", "nobody"], env=env)
    assert missing.exit_code == 1 and "has no column 'nobody'" in missing.output


def test_rebuild_builds_and_serves_the_models(demo_shop: str, tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    shutil.copyfile(demo_shop.removeprefix("sqlite+aiosqlite:///"), path)
    url = f"sqlite+aiosqlite:///{path}"
    result = CliRunner().invoke(cli, ["recommend", "rebuild"], env={"SHOPGRAPH_DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("recommendation build 1 READY: ")
    assert result.stderr.splitlines()[-1].startswith("recommend rebuild: build 1 READY")

    async def builds(s: AsyncSession) -> list[BuildStatus]:
        return list((await s.scalars(select(RecommendationBuild.status))).all())

    assert run_in_session(builds, database_url=url) == [BuildStatus.READY]
