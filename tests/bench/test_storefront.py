"""The benchmark's parts that need no server: reading wrk's report, the cache check, the
ratios against their targets, and where the results go in the docs. No timing is asserted."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from bench import storefront, wrk
from bench.storefront import Database, Outcome, Setup, Window

WRK_OUTPUT = """\
Running 10s test @ http://127.0.0.1:8000/handwritten/products
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.64ms  512.00us  12.95ms   79.88%
    Req/Sec     2.20k   148.11     2.41k    80.00%
  Latency Distribution
     50%  845.00us
     75%    3.88ms
     90%    6.03ms
     99%    1.25s
  22021 requests in 10.01s, 96.59MB read
Requests/sec:   2199.80
Transfer/sec:      9.65MB
"""


def test_wrk_report_is_read_into_numbers_in_milliseconds() -> None:
    report = wrk.parse(WRK_OUTPUT)

    assert report.requests == 22021
    assert report.seconds == pytest.approx(10.01)
    assert report.requests_per_second == pytest.approx(2199.80)
    assert report.p50_ms == pytest.approx(0.845)
    assert report.percentiles_ms[75.0] == pytest.approx(3.88)
    assert report.p99_ms == pytest.approx(1250.0)
    assert report.failures == 0


def test_wrk_minutes_are_milliseconds_too() -> None:
    assert wrk.to_ms("1.50", "m") == pytest.approx(90_000.0)
    assert wrk.to_ms("2.00", "s") == pytest.approx(2_000.0)


def test_wrk_failures_count_socket_errors_and_bad_statuses() -> None:
    output = WRK_OUTPUT.replace(
        "  22021 requests in 10.01s, 96.59MB read\n",
        "  22021 requests in 10.01s, 96.59MB read\n"
        "  Socket errors: connect 0, read 2, write 0, timeout 3\n"
        "  Non-2xx or 3xx responses: 7\n",
    )

    report = wrk.parse(output)

    assert (report.socket_errors, report.bad_statuses, report.failures) == (5, 7, 12)


def test_a_report_without_latency_percentiles_is_refused() -> None:
    without = "\n".join(line for line in WRK_OUTPUT.splitlines() if "%  " not in line)

    with pytest.raises(wrk.WrkOutputError):
        wrk.parse(without)


def test_the_post_script_quotes_the_body_for_lua() -> None:
    script = wrk.post_script('{"query": "{ a }"}\n')

    assert 'wrk.method = "POST"' in script
    assert 'wrk.body = "{\\"query\\": \\"{ a }\\"}\\n"' in script
    assert 'wrk.headers["Content-Type"] = "application/json"' in script


@pytest.mark.parametrize(
    ("mode", "seen", "fits"),
    [
        ("cold", [None, None, None], True),
        ("cold", ["BYPASS", "BYPASS", "BYPASS"], True),
        ("cold", ["MISS", "HIT", "MISS"], False),
        ("warm", ["HIT", "HIT", "HIT"], True),
        ("warm", ["HIT", "MISS", "HIT"], False),
        ("warm", [None, None, None], False),
        ("warm", ["BYPASS", "BYPASS", "BYPASS"], False),
    ],
)
def test_cache_headers_must_fit_the_mode(mode: str, seen: list[str | None], fits: bool) -> None:
    assert (storefront.cache_problem(mode, seen) is None) is fits


def test_a_warm_run_without_a_cache_says_so() -> None:
    problem = storefront.cache_problem("warm", [None, None])

    assert problem is not None and "never answered X-Cache: HIT" in problem


def _window(
    endpoint: str, rps: float, server_cpu_ms: float, *, wrk_cpu: float = 0.5, others: float = 0.0
) -> Window:
    """A 10 s window; with the defaults, the server uses a whole core and wrk 5% of one."""
    requests = int(rps * 10)
    report = wrk.WrkReport(requests, 10.0, rps, {50.0: 1.0, 99.0: 2.0}, 0, 0)
    run = wrk.WrkRun(report, "", wall_seconds=10.0, cpu_seconds=wrk_cpu)
    return Window(endpoint, run, server_cpu_ms * requests / 1000, None, others)


def _outcome(mode: str, pairs: list[tuple[float, float]]) -> Outcome:
    setup = Setup(Database("SQLite", "sqlite://"), mode, "none", "", "POST")
    outcome = Outcome(setup)
    for graphql, hand in pairs:
        outcome.windows["graphql"].append(_window("graphql", graphql, 2.0))
        outcome.windows["handwritten"].append(_window("handwritten", hand, 0.5))
    return outcome


def test_the_ratio_is_the_median_of_the_rounds_each_paired_in_its_own_round() -> None:
    outcome = _outcome("cold", [(500, 2000), (600, 2000), (300, 600)])

    assert outcome.ratios() == pytest.approx([0.25, 0.3, 0.5])
    assert outcome.ratio == pytest.approx(0.3)
    assert outcome.cpu_ratios() == pytest.approx([0.25, 0.25, 0.25])


@pytest.mark.parametrize(
    ("ratio", "target", "expected"),
    [(0.3, 0.25, "met"), (0.25, 0.25, "met"), (0.249, 0.25, "not met"), (0.79, 0.8, "not met")],
)
def test_targets_are_met_at_or_above(ratio: float, target: float, expected: str) -> None:
    assert storefront.verdict(ratio, target) == expected


def test_a_skipped_setup_has_no_ratio_and_is_reported_as_not_measured() -> None:
    outcome = _outcome("warm", [])
    outcome.skipped = "no response cache to measure"

    table = storefront.ratios_table([outcome])

    assert outcome.ratio is None
    assert "n/a" in table and "not measured" in table and "≥ 0.80×" in table
    assert "no response cache to measure" in storefront.measurements_table([outcome])


def test_the_ratios_table_shows_whether_each_target_is_met() -> None:
    cold = _outcome("cold", [(500, 2000)])
    warm = _outcome("warm", [(1500, 2000)])

    rows = storefront.ratios_table([cold, warm]).splitlines()[2:]

    assert rows[0].endswith("| ≥ 0.25× | met |")
    assert rows[1].endswith("| ≥ 0.80× | not met |")


def test_results_replace_only_what_lies_between_the_markers() -> None:
    text = f"# Benchmarks\n\nIntro.\n\n{storefront.START_MARK}\nold\n{storefront.END_MARK}\nTail.\n"

    updated = storefront.replace_results(text, "new table")

    assert updated == (
        f"# Benchmarks\n\nIntro.\n\n{storefront.START_MARK}\nnew table\n"
        f"{storefront.END_MARK}\nTail.\n"
    )


def test_results_are_appended_where_the_markers_are_missing() -> None:
    updated = storefront.replace_results("# Benchmarks\n", "table")

    assert updated.endswith(f"{storefront.START_MARK}\ntable\n{storefront.END_MARK}\n")


def _page(price: str) -> dict[str, Any]:
    node = {"id": "UHJvZHVjdDox", "name": "Tea", "price": {"amount": price, "currency": "CNY"}}
    return {"data": {"products": {"edges": [{"node": node}] * storefront.PAGE}}}


def test_the_two_endpoints_must_agree_prices_aside_where_plugins_may_change_them() -> None:
    storefront.check_equivalent(_page("9.90"), _page("8.00"), compare_prices=False)

    with pytest.raises(RuntimeError, match="disagree"):
        storefront.check_equivalent(_page("9.90"), _page("8.00"), compare_prices=True)


def test_option_lists_are_checked() -> None:
    assert storefront.comma_list("postgresql, sqlite", ["sqlite", "postgresql"], "x") == [
        "postgresql",
        "sqlite",
    ]
    with pytest.raises(argparse.ArgumentTypeError):
        storefront.comma_list("mysql", ["sqlite", "postgresql"], "x")


def test_database_cpu_counts_new_processes_and_leaves_out_exited_ones() -> None:
    before = {100: 5.0, 101: 2.0, 102: 9.0}
    # 102 exited (its time is gone), 103 started.
    after = {100: 5.5, 101: 2.25, 103: 0.5}

    assert storefront.cpu_between(before, after) == pytest.approx(1.25)


def test_a_quiet_run_reports_the_instrument_without_warnings() -> None:
    notes = storefront.instrument_notes([_outcome("cold", [(500, 2000), (500, 2000)])])

    assert len(notes) == 1
    assert "wrk used at most 5% of a core" in notes[0]
    assert "100%–100% of a core" in notes[0]


def test_a_busy_instrument_or_machine_is_warned_about() -> None:
    outcome = _outcome("cold", [])
    # wrk at 60% of a core, the server at half a core, other processes at 1.5 cores.
    outcome.windows["handwritten"] = [_window("handwritten", 1000, 0.5, wrk_cpu=6.0, others=15.0)]
    outcome.windows["graphql"] = [_window("graphql", 250, 2.0, others=15.0)]

    warnings = storefront.instrument_notes([outcome])[1:]

    assert len(warnings) == 3
    assert "wrk went above 50% of a core" in warnings[0]
    assert "server was below 90% of a core" in warnings[1]
    assert "other processes used 1.50 cores" in warnings[2]
