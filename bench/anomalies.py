"""The anomaly detector measured: false alarms and catches on simulated shops.

    python -m bench.anomalies [--series N] [--seed S]

Each simulated KPI is 57 days of negative binomial counts around 200 a day times a weekly
pattern (Saturday 30% above Monday), one past day multiplied by 0.2 or 3 (a flash sale, an
outage), with or without a 50% growth over the eight weeks, and noise of about 10% (size 200)
or 25% (size 20). The 57th day is examined as it is (a false alarm if flagged) and multiplied
by 0.5, 1.5 and 2 (caught if flagged). Four detectors at |z| > 3.5:

- the shop's (server.services.anomalies.examine): a median-by-weekday forecast, the day's
  miss against the misses of the days before;
- STL, history: statsmodels' STL (period 7, robust) fitted on the 56 days before, the day's
  miss from its trend and weekday against the MAD of the fit's residuals;
- STL, with the day: STL fitted on all 57 days, the day's residual against the MAD of the
  others';
- plain: server.services.anomalies.plain_zscore (weekday means, mean and standard deviation).

Prints a markdown table (docs/insights.md, "Alerts", shows it) and the time one examination
takes.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from statsmodels.tsa.seasonal import STL

from server.services.anomalies import MAD_SCALE, examine, plain_zscore

WEEKLY = np.array([1.0, 0.9, 0.92, 0.95, 1.05, 1.3, 1.25])
DAYS = 57
THRESHOLD = 3.5
FACTORS = (0.5, 1.5, 2.0)
Array = npt.NDArray[np.float64]


def simulate(rng: np.random.Generator, size: float, growth: float) -> Array:
    t = np.arange(DAYS)
    mean = 200.0 * (1 + growth * t / DAYS) * WEEKLY[t % 7]
    series = rng.negative_binomial(size, size / (size + mean)).astype(np.float64)
    series[rng.integers(5, DAYS - 8)] *= rng.choice([0.2, 3.0])
    return series


def _mad_z(residuals: Array, value: float) -> float:
    centre = float(np.median(residuals))
    mad = float(np.median(np.abs(residuals - centre)))
    return (value - centre) / (MAD_SCALE * mad) if mad > 0 else 0.0


def shop(series: Array) -> float:
    found = examine(list(series))
    return found.score if found is not None else 0.0


def stl_history(series: Array) -> float:
    fit = STL(series[:-1], period=7, robust=True).fit()
    forecast = fit.trend[-1] + fit.seasonal[-7]
    return _mad_z(np.asarray(fit.resid), float(series[-1] - forecast))


def stl_with_the_day(series: Array) -> float:
    residuals = np.asarray(STL(series, period=7, robust=True).fit().resid)
    return _mad_z(residuals[:-1], float(residuals[-1]))


def plain(series: Array) -> float:
    return plain_zscore(list(series)) or 0.0


DETECTORS: dict[str, Callable[[Array], float]] = {
    "the shop's (median by weekday)": shop,
    "STL, history": stl_history,
    "STL, with the day": stl_with_the_day,
    "plain (mean, sd)": plain,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print("| noise | growth | detector | false alarms | ×0.5 caught | ×1.5 caught | ×2 caught |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    timings: dict[str, float] = {}
    for size, noise in ((200.0, "10%"), (20.0, "25%")):
        for growth in (0.0, 0.5):
            rng = np.random.default_rng(args.seed)
            data = [simulate(rng, size, growth) for _ in range(args.series)]
            for name, detect in DETECTORS.items():
                started = time.process_time()
                alarms = sum(abs(detect(s)) > THRESHOLD for s in data)
                timings[name] = (time.process_time() - started) / len(data)
                caught = [
                    sum(abs(detect(np.r_[s[:-1], s[-1] * f])) > THRESHOLD for s in data)
                    for f in FACTORS
                ]
                shares = " | ".join(f"{c / len(data):.0%}" for c in caught)
                print(f"| {noise} | {growth:+.0%} | {name} | {alarms / len(data):.1%} | {shares} |")
    print()
    for name, seconds in timings.items():
        print(f"{name}: {seconds * 1000:.1f} ms of CPU per examination")


if __name__ == "__main__":
    main()
