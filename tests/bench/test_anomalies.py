"""The anomaly benchmark's parts: the simulated KPI has the shape described, and every detector
it compares scores a tenfold day far beyond the threshold. No timing is asserted."""

from __future__ import annotations

import numpy as np

from bench import anomalies as bench


def test_the_simulated_kpi_and_the_detectors_compared() -> None:
    rng = np.random.default_rng(3)
    series = bench.simulate(rng, 200.0, 0.5)
    assert series.shape == (bench.DAYS,) and (series >= 0).all()
    # The weekly pattern shows: Saturdays (day 5 of each week) above Mondays, on average.
    clean = bench.simulate(np.random.default_rng(4), 1e9, 0.0)
    assert np.median(clean[5::7]) > np.median(clean[0::7])
    spike = np.r_[series[:-1], series[-1] * 10]
    for name, detect in bench.DETECTORS.items():
        assert np.isfinite(detect(series)), name
        assert detect(spike) > bench.THRESHOLD, name
