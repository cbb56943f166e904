"""Driving ``wrk``, the compiled HTTP load generator, and reading what it reports.

The load generator runs in its own process, written in C, so what is measured is the server:
a Python client tops out at a few hundred requests a second, below what the server answers.
Every run is bounded by ``--duration`` and stops by itself; its own CPU time is taken from the
kernel when it exits, so each measurement can show that the instrument had CPU to spare.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "wrk"
# Time units as wrk prints them (src/units.c): microseconds up to seconds, then minutes, hours.
_TIME_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_TIME = r"([0-9.]+)(us|ms|s|m|h)"
_PERCENTILE = re.compile(rf"^\s*([0-9.]+)%\s+{_TIME}\s*$", re.MULTILINE)
_TOTAL = re.compile(rf"^\s*(\d+) requests in {_TIME},", re.MULTILINE)
_RATE = re.compile(r"^Requests/sec:\s*([0-9.]+)\s*$", re.MULTILINE)
_SOCKET = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.MULTILINE
)
_STATUS = re.compile(r"Non-2xx or 3xx responses: (\d+)")


class WrkMissing(RuntimeError):
    """wrk is not installed."""


class WrkOutputError(ValueError):
    """wrk's report lacks a figure the benchmark needs (an unexpected version or a failed run)."""


@dataclass(frozen=True)
class WrkReport:
    """The figures of one wrk run (``--latency``)."""

    requests: int
    seconds: float
    requests_per_second: float
    # Latency percentiles in milliseconds, keyed by percentile (50.0, 75.0, 90.0, 99.0).
    percentiles_ms: dict[float, float]
    socket_errors: int
    bad_statuses: int

    @property
    def p50_ms(self) -> float:
        return self.percentiles_ms[50.0]

    @property
    def p99_ms(self) -> float:
        return self.percentiles_ms[99.0]

    @property
    def failures(self) -> int:
        """Requests that did not get a 2xx/3xx answer (socket errors, timeouts, statuses)."""
        return self.socket_errors + self.bad_statuses


def to_ms(value: str, unit: str) -> float:
    """A wrk duration (``"512.00us"`` is ``("512.00", "us")``) in milliseconds."""
    return float(value) * _TIME_UNITS_MS[unit]


def parse(output: str) -> WrkReport:
    """The figures of wrk's text report, as printed with ``--latency``."""
    total = _TOTAL.search(output)
    rate = _RATE.search(output)
    percentiles = {float(p): to_ms(v, u) for p, v, u in _PERCENTILE.findall(output)}
    if total is None or rate is None or 50.0 not in percentiles or 99.0 not in percentiles:
        raise WrkOutputError(f"unexpected wrk output (was --latency given?):\n{output}")
    socket = _SOCKET.search(output)
    status = _STATUS.search(output)
    return WrkReport(
        requests=int(total.group(1)),
        seconds=to_ms(total.group(2), total.group(3)) / 1000,
        requests_per_second=float(rate.group(1)),
        percentiles_ms=percentiles,
        socket_errors=sum(int(n) for n in socket.groups()) if socket else 0,
        bad_statuses=int(status.group(1)) if status else 0,
    )


def post_script(body: str, content_type: str = "application/json") -> str:
    """A wrk Lua script that sends every request as a POST of ``body``.

    Only wrk's request table is set: no per-request Lua function runs, so the script does not
    slow the load generator down.
    """
    return (
        'wrk.method = "POST"\n'
        f"wrk.body = {_lua_string(body)}\n"
        f'wrk.headers["Content-Type"] = {_lua_string(content_type)}\n'
    )


def _lua_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def executable() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise WrkMissing(
            f"the benchmark needs wrk, the compiled HTTP load generator: install the Debian "
            f"package {PACKAGE} (apt-get install {PACKAGE}); `make bench` does it when run as "
            "root"
        )
    return found


@dataclass(frozen=True)
class WrkRun:
    report: WrkReport
    output: str
    # The wall time of the run and the CPU time (user + system, all threads) wrk itself used.
    wall_seconds: float
    cpu_seconds: float

    @property
    def cpu_share(self) -> float:
        """wrk's own CPU as a fraction of one core over its run."""
        return self.cpu_seconds / self.wall_seconds


def run(
    url: str,
    *,
    duration: int,
    threads: int,
    connections: int,
    script: Path | None = None,
) -> WrkRun:
    """Run wrk against ``url`` for ``duration`` seconds and return what it measured."""
    args = [executable(), f"--threads={threads}", f"--connections={connections}"]
    args += [f"--duration={duration}s", "--latency", "--timeout=10s"]
    if script is not None:
        args += [f"--script={script}"]
    started = time.monotonic()
    proc = subprocess.Popen(args + [url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    # wrk stops by itself after --duration; this only guards against a hung run.
    guard = threading.Timer(duration + 30, proc.kill)
    guard.start()
    try:
        assert proc.stdout is not None
        output = proc.stdout.read().decode(errors="replace")
        # wait4 rather than wait: it returns the exited process's own resource usage.
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        guard.cancel()
    wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited with {proc.returncode}:\n{output}")
    return WrkRun(parse(output), output, wall, usage.ru_utime + usage.ru_stime)
