"""Per-client query-cost throttling: a leaky bucket per client, Shopify's model.

Each client (a signed-in viewer, else an IP address) has a bucket of ``size`` points that
refills at ``restore_rate`` points per second. A request may start only when its *requested*
cost fits in what is available; the requested cost is taken up front and the difference to the
*actual* cost is settled when the request ends.

The buckets live in this process's memory. With several API processes each keeps its own
buckets, so a client gets up to one bucket per process behind the load balancer: a deliberate
trade — a shared bucket would put a database write (or a cache round trip) on every request
for a limit that is about protecting each process from overload, which per-process buckets
already do.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

# The error code of a request refused for its client's spent budget (HTTP 429 when alone).
THROTTLED = "THROTTLED"

Clock = Callable[[], float]


@dataclass(frozen=True)
class ThrottleStatus:
    """What a client may still spend, as reported in ``extensions.cost.throttleStatus``."""

    maximum_available: float
    currently_available: float
    restore_rate: float

    def as_json(self) -> dict[str, float]:
        return {
            "maximumAvailable": self.maximum_available,
            "currentlyAvailable": round(self.currently_available, 2),
            "restoreRate": self.restore_rate,
        }


class LeakyBucket:
    """Cost buckets keyed by client. Thread-safe; every operation is O(1)."""

    def __init__(
        self,
        size: float,
        restore_rate: float,
        *,
        clock: Clock = time.monotonic,
        max_clients: int = 100_000,
    ) -> None:
        if size <= 0 or restore_rate <= 0:
            raise ValueError("bucket size and restore rate must be positive")
        self.size = float(size)
        self.restore_rate = float(restore_rate)
        self.clock = clock
        self.max_clients = max_clients
        # key -> (available points, when they were last computed); least recently used first.
        self._levels: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        entry = self._levels.get(key)
        if entry is None:
            return self.size
        available, since = entry
        return min(self.size, available + max(0.0, now - since) * self.restore_rate)

    def _store(self, key: str, available: float, now: float) -> None:
        self._levels[key] = (available, now)
        self._levels.move_to_end(key)
        # Bounded memory: a forgotten client is indistinguishable from one whose bucket is
        # full, and the least recently seen bucket is the likeliest to have refilled.
        while len(self._levels) > self.max_clients:
            self._levels.popitem(last=False)

    def _status(self, available: float) -> ThrottleStatus:
        return ThrottleStatus(self.size, available, self.restore_rate)

    def status(self, key: str) -> ThrottleStatus:
        with self._lock:
            return self._status(self._level(key, self.clock()))

    def take(self, key: str, cost: float) -> tuple[bool, ThrottleStatus]:
        """Take ``cost`` points if they are available; otherwise take nothing."""
        with self._lock:
            now = self.clock()
            available = self._level(key, now)
            if cost > available:
                return False, self._status(available)
            available -= cost
            self._store(key, available, now)
            return True, self._status(available)

    def settle(self, key: str, taken: float, actual: float) -> ThrottleStatus:
        """Refund what was taken but not spent (or charge what was spent beyond it)."""
        with self._lock:
            now = self.clock()
            available = min(self.size, max(0.0, self._level(key, now) + taken - actual))
            self._store(key, available, now)
            return self._status(available)

    def seconds_until(self, key: str, cost: float) -> float:
        """How long until ``cost`` points are available (for ``Retry-After``)."""
        with self._lock:
            missing = min(cost, self.size) - self._level(key, self.clock())
        return max(0.0, missing / self.restore_rate)


class CostBuckets:
    """Every client's buckets: staff of a role with a budget of its own draw on that role's
    buckets, every other client (and staff of the other roles) on the default ones. A client's
    key (``staff:<id>``) is the same whichever buckets it draws on."""

    def __init__(
        self, default: LeakyBucket, roles: Mapping[str, LeakyBucket] | None = None
    ) -> None:
        self.default = default
        self.roles = dict(roles or {})

    def for_role(self, role: str | None) -> LeakyBucket:
        """The buckets of staff of ``role`` (None: a client that is not staff)."""
        if role is None:
            return self.default
        return self.roles.get(role, self.default)
