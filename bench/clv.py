"""The CLV benchmark: how long `shopgraph insights fit-clv` takes on a large transaction log.

    python -m bench.clv [--customers N] [--seed S] [--keep FILE]

It simulates N customers (default 231,000: about a million transactions) from the BG/NBD and
Gamma-Gamma processes with known parameters over two years (tests/support/clv.py), writes their
purchases, shuffled, to a CSV file (order id, customer, day, amount), then runs each step of
the command — read, summarise, fit BG/NBD, fit Gamma-Gamma, compare the holdout — timing each
(wall clock and CPU), and prints a markdown table with the fitted parameters against the true
ones. The calibration period is the first year.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import TypeVar

import numpy as np

from server.services import clv
from server.services.transaction_log import read_transactions_csv
from tests.support.clv import simulate

TRUTH = {"r": 0.8, "alpha": 10.0, "a": 0.8, "b": 2.5, "p": 6.0, "q": 4.0, "v": 15.0}
T = TypeVar("T")
START = date(2023, 1, 1)
CALIBRATION_END = date(2023, 12, 31)


def write_log(path: Path, customers: int, seed: int) -> int:
    """Simulate ``customers`` over 104 weeks (first purchases in the first 26) and write their
    purchases, shuffled, to ``path``; returns the number of rows."""
    cohort = simulate(customers, **TRUTH, horizon=104.0, cohort_weeks=26.0, seed=seed)
    days = np.floor(cohort.time * 7).astype(np.int64)
    order = np.random.default_rng(seed).permutation(days.shape[0])
    with path.open("w") as handle:
        handle.write("order_id,customer,created_at,total\n")
        handle.writelines(
            f"{i},C{cohort.customer[i]:07d},{START + timedelta(days=int(days[i]))},"
            f"{cohort.value[i]:.2f}\n"
            for i in order
        )
    return int(days.shape[0])


def timed(step: str, work: Callable[[], T], rows: list[tuple[str, float, float]]) -> T:
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    rows.append((step, time.perf_counter() - wall, time.process_time() - cpu))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=231_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, default=None, help="Write the log here and keep it.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = args.keep or Path(folder) / "transactions.csv"
        count = write_log(path, args.customers, args.seed)
        size = path.stat().st_size / 2**20
        steps: list[tuple[str, float, float]] = []
        log = timed(
            "read the CSV",
            lambda: read_transactions_csv(
                path, customer="customer", date="created_at", amount="total"
            ),
            steps,
        )
        summary = timed(
            "summarise",
            lambda: clv.summarize_transactions(
                log.customers, log.dates, log.amounts, calibration_end=CALIBRATION_END
            ),
            steps,
        )
        bgnbd = timed(
            "fit BG/NBD",
            lambda: clv.fit_bgnbd(summary.frequency, summary.recency, summary.age),
            steps,
        )
        assert summary.monetary is not None
        monetary = summary.monetary
        spend = timed(
            "fit Gamma-Gamma", lambda: clv.fit_gamma_gamma(summary.frequency, monetary), steps
        )
        holdout = timed(
            "compare the holdout", lambda: clv.compare_holdout(bgnbd.model, summary), steps
        )
    print(f"{count:,} transactions ({size:.0f} MiB), {summary.size:,} customers\n")
    print("| step | wall clock (s) | CPU (s) |\n|---|---:|---:|")
    for step, wall, cpu in steps:
        print(f"| {step} | {wall:.2f} | {cpu:.2f} |")
    total_wall, total_cpu = sum(s[1] for s in steps), sum(s[2] for s in steps)
    print(f"| **total** | **{total_wall:.2f}** | **{total_cpu:.2f}** |\n")
    fitted = {**vars(bgnbd.model), **vars(spend.model)}
    print("| parameter | true | fitted |\n|---|---:|---:|")
    for name, true in TRUTH.items():
        print(f"| {name} | {true:g} | {fitted[name]:.4g} |")
    print(
        f"\nholdout ({holdout.length:.1f} weeks): actual {holdout.actual_total:,.0f}, "
        f"BG/NBD {holdout.predicted['bgnbd']:,.0f}; MAE per customer "
        + ", ".join(f"{k} {v:.3f}" for k, v in holdout.mae.items())
    )


if __name__ == "__main__":
    main()
