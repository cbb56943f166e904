"""The demo plan's buying rhythms: who buys how often, how much, and when they stop.

Each customer is drawn from one of a few archetypes, and within it gets their own numbers, as
the lifetime-value models (server/services/clv.py) tell the story:

- a purchase rate λ (purchases a week while active) from a Gamma(r, α) and a dropout
  probability p from a Beta(a, b) — BG/NBD: from the first purchase on they buy as a Poisson
  process at λ, and after each repeat purchase drop out with probability p;
- an order value from a Gamma(p, ν), with ν from a Gamma(q, γ) — Gamma-Gamma.

Purchases follow the calendar (server.demo.seasons): everyday buyers a little more on 618 and
Double 11 and less over the Spring Festival, seasonal buyers mostly on the big sales. Churners
were regular buyers who stop for good at a moment 2–9 months before the end of the history.

When the number of orders is given, every purchase rate is scaled by one common factor (a
Gamma(r, α) scaled is a Gamma(r, α/s): still the same story) so that the first purchases and the
repeat purchases that fit add up to exactly that number.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from server.demo.people import EVENING_HOURS
from server.demo.plan import Draft, PlannedCustomer, Rhythm
from server.demo.seasons import Season, is_peak_day


@dataclass(frozen=True)
class Archetype:
    """A kind of customer, by how they buy. Rates are per week, spend in yuan."""

    name: str
    share: int  # percent of the customers
    rate: tuple[float, float]  # λ ~ Gamma(r, α): mean r/α purchases a week
    dropout: tuple[float, float]  # p ~ Beta(a, b): mean a/(a + b)
    spend: tuple[float, float, float]  # Gamma-Gamma (p, q, γ): mean order value p·γ/(q − 1)
    seasonal: bool  # buys on the big sales rather than all year round
    # The first purchase falls this many days before the end of the history, at most / least.
    first: tuple[int, int]
    skew: float  # > 1: first purchases early in that window (long-standing), < 1: late
    browsing: float  # how much they browse, relative to others of the same activity
    # Their chances of browsing a lot, moderately or little (high, medium, low).
    activity: tuple[int, int, int]


# What one order is worth (Gamma-Gamma's p, q, γ): ¥250 on average, the same whatever the
# rhythm — except for big-ticket buyers.
SPEND = (4.0, 4.0, 187.5)

# fmt: off
ARCHETYPES: dict[str, Archetype] = {a.name: a for a in (
    # Loyal frequent buyers: every 2–4 weeks, everyday goods, with the shop from early on.
    Archetype("loyal", 12, (9.0, 27.0), (1.0, 120.0), SPEND, False, (548, 120), 2.0,
              1.3, (50, 40, 10)),
    # Regular buyers: about once a month.
    Archetype("regular", 24, (6.0, 26.0), (0.6, 10.0), SPEND, False, (548, 90), 1.4,
              1.0, (25, 55, 20)),
    # Occasional buyers who wait for 618 and Double 11: a few purchases a year.
    Archetype("seasonal", 17, (3.0, 50.0), (1.0, 3.0), SPEND, True, (548, 60), 1.0,
              0.7, (10, 50, 40)),
    # One-time buyers: one purchase, hardly ever another.
    Archetype("one_time", 13, (1.0, 200.0), (2.0, 2.0), SPEND, False, (548, 30), 1.0,
              0.4, (5, 35, 60)),
    # Big-ticket buyers: a phone, a laptop, a fridge — a purchase or two a year, big spend.
    Archetype("big_ticket", 9, (3.0, 85.0), (1.0, 3.0), (8.0, 8.0, 3675.0), False, (548, 0), 0.5,
              0.8, (15, 55, 30)),
    # Churners: were regular, stopped 2–9 months ago (CHURN_DAYS).
    Archetype("churner", 11, (8.0, 30.0), (1.0, 20.0), SPEND, False, (548, 0), 1.3,
              1.0, (25, 55, 20)),
    # New customers: first bought in the last two months.
    Archetype("new", 9, (2.0, 10.0), (0.8, 2.5), SPEND, False, (60, 0), 1.0,
              1.2, (20, 50, 30)),
    # Browsers: an account, visits, never an order (what they would spend steers their taste).
    Archetype("browser", 5, (1.0, 1.0), (1.0, 1.0), SPEND, False, (0, 0), 1.0,
              0.8, (20, 50, 30)),
)}
# fmt: on
CHURN_DAYS = (61, 270)  # a churner stops this many days before the end of the history
FADE_DAYS = 56  # browsing fades away over the 8 weeks before a customer stops
RECENT_HOURS = 24  # the shop is open: some orders are this recent, so some are still open
RECENT_ORDERS = 4


def archetypes(draft: Draft, count: int) -> list[str]:
    """The archetype of each of ``count`` customers: as close to the shares as whole numbers
    allow (largest remainders), in a random order."""
    quotas = {a.name: count * a.share / 100 for a in ARCHETYPES.values()}
    counts = {name: math.floor(q) for name, q in quotas.items()}
    by_remainder = sorted(quotas, key=lambda n: (counts[n] - quotas[n], list(quotas).index(n)))
    for name in by_remainder[: count - sum(counts.values())]:
        counts[name] += 1
    names = [name for name in ARCHETYPES for _ in range(counts[name])]
    draft.rng.shuffle(names)
    return names


def season_of(draft: Draft, archetype: str) -> Season:
    return draft.promotion_season if ARCHETYPES[archetype].seasonal else draft.shop_season


def draw_rhythm(draft: Draft, archetype: str) -> Rhythm:
    """A customer's own rate, dropout, spend and first purchase, drawn from their archetype."""
    rng, plan = draft.rng, draft.plan
    kind = ARCHETYPES[archetype]
    r, alpha = kind.rate
    rate = rng.gammavariate(r, 1 / alpha)
    dropout = rng.betavariate(*kind.dropout)
    # Repeat purchases before dropping out: after each, gone with probability p (never before
    # the first repeat purchase, as BG/NBD has it).
    repeats = (
        1 + math.floor(math.log(1 - rng.random()) / math.log1p(-dropout)) if dropout > 0 else None
    )
    p, q, gamma = kind.spend
    spend_rate = rng.gammavariate(q, 1 / gamma)
    rhythm = Rhythm(archetype, rate, dropout, repeats, p, spend_rate, first=None)
    if archetype == "browser":
        return rhythm
    latest = plan.as_of - timedelta(days=kind.first[1], hours=1)
    if archetype == "churner":
        rhythm.stop = plan.as_of - timedelta(days=rng.uniform(*CHURN_DAYS))
        latest = min(latest, rhythm.stop - timedelta(days=120))  # a regular for months first
    earliest = max(plan.history_start, plan.as_of - timedelta(days=kind.first[0]))
    # The first purchase follows the calendar too: new buyers come on the big sales.
    season = season_of(draft, archetype)
    low, high = season.position(earliest), season.position(latest)
    rhythm.first = at_hour(draft, season.moment(low + (high - low) * rng.random() ** kind.skew))
    rhythm.first = min(max(rhythm.first, earliest), latest)
    return rhythm


def at_hour(draft: Draft, day: datetime) -> datetime:
    """A moment on ``day`` at an hour people shop at: evenings more than mornings, and
    midnight on the big sales' peak days, when their prices go live."""
    rng = draft.rng
    if is_peak_day(day.date()) and rng.random() < 0.3:
        hour = rng.choice((0, 0, 0, 1))
    else:
        hour = rng.choices(range(24), weights=EVENING_HOURS)[0]
    return day.replace(hour=hour, minute=rng.randint(0, 59), second=rng.randint(0, 59))


@dataclass(eq=False)
class _Clock:
    """One buyer's repeat purchases, drawn lazily: the k-th comes S_k shopping days (a sum of
    k exponential gaps, at rate λ) after the first purchase, and fits into the history when
    S_k ≤ s·λ·span for the common rate scale s; ``threshold`` is the s it needs."""

    customer: PlannedCustomer
    start: float  # the first purchase, in shopping days
    span: float  # shopping days from the first purchase to the end (a churner's stop)
    per_day: float  # λ in purchases a shopping day
    made: int = 0  # repeat purchases drawn so far
    sum_gaps: float = 0.0

    def next_threshold(self, draft: Draft) -> float:
        self.sum_gaps += draft.rng.expovariate(1.0)
        self.made += 1
        return self.sum_gaps / (self.per_day * self.span)


def schedule(draft: Draft, count: int | None) -> None:
    """Every customer's purchase moments (``rhythm.purchases``): all of their rhythm's when
    ``count`` is None, else exactly ``count`` of them, the rates scaled by one common factor.

    Fewer orders than buyers: only ``count`` buyers (drawn at random) buy, once; the others
    become browsers. More orders than the rhythms can give even at a very high scale (a tiny
    shop): dropout is set aside, and everyone buys on.
    """
    rng, plan = draft.rng, draft.plan
    buyers = [c for c in plan.customers if c.rhythm.first is not None]
    if count is not None and count < len(buyers):
        kept = set(rng.sample(range(len(buyers)), count))
        for i, customer in enumerate(buyers):
            if i not in kept:
                customer.rhythm.first = None
                customer.rhythm.archetype = customer.prefs.archetype = "browser"
        buyers = [c for i, c in enumerate(buyers) if i in kept]
    clocks: list[_Clock] = []
    for customer in buyers:
        rhythm = customer.rhythm
        assert rhythm.first is not None
        season = season_of(draft, rhythm.archetype)
        start = season.position(rhythm.first)
        span = season.position(rhythm.stop or plan.as_of) - start
        if span > 0 and rhythm.rate > 0:
            clocks.append(_Clock(customer, start, span, rhythm.rate / 7))
    # Each buyer's repeat purchases in the order they would fit in as the scale grows.
    heap: list[tuple[float, int]] = []
    resting: list[tuple[float, int]] = []  # dropped out, and what would have come next
    for i, clock in enumerate(clocks):
        heapq.heappush(heap, (clock.next_threshold(draft), i))
    taken: list[tuple[float, int]] = []  # (threshold, clock)
    wanted = None if count is None else count - len(buyers)
    while heap:
        threshold, i = heap[0]
        if (wanted is None and threshold > 1.0) or (wanted is not None and len(taken) == wanted):
            break
        heapq.heappop(heap)
        clock = clocks[i]
        taken.append((threshold, i))
        following = (clock.next_threshold(draft), i)
        repeats = clock.customer.rhythm.repeats
        if repeats is not None and clock.made > repeats:
            resting.append(following)
        else:
            heapq.heappush(heap, following)
        if not heap and wanted is not None and len(taken) < wanted:
            # Not enough purchases even with every rate scaled up: nobody drops out.
            for clock in clocks:
                clock.customer.rhythm.repeats = None
            heap = resting
            heapq.heapify(heap)
            resting = []
    scale = 1.0
    if wanted is not None and taken:
        last = max(threshold for threshold, _ in taken)
        after = heap[0][0] if heap else last
        scale = math.sqrt(last * max(after, last))
    plan.rate_scale = scale

    for customer in buyers:
        assert customer.rhythm.first is not None
        customer.rhythm.purchases = [customer.rhythm.first]
    for threshold, i in taken:
        clock = clocks[i]
        rhythm = clock.customer.rhythm
        season = season_of(draft, rhythm.archetype)
        day = season.moment(clock.start + clock.span * threshold / scale)
        day = day.replace(hour=0, minute=0, second=0, microsecond=0)
        end = rhythm.stop or plan.as_of
        assert rhythm.first is not None
        at = min(max(at_hour(draft, day), rhythm.first), end - timedelta(seconds=1))
        rhythm.purchases.append(at)
    for customer in buyers:
        rhythm = customer.rhythm
        rhythm.purchases.sort()
        made = len(rhythm.purchases) - 1
        if rhythm.stop is not None:
            rhythm.lapsed = rhythm.stop
        elif rhythm.repeats is not None and made >= rhythm.repeats:
            rhythm.lapsed = rhythm.purchases[-1]
    _open_for_business(draft, buyers)


def _open_for_business(draft: Draft, buyers: list[PlannedCustomer]) -> None:
    """At least :data:`RECENT_ORDERS` purchases in the last day, so that some orders are
    still open (unpaid, picking, on the way): when the rhythms leave fewer (a small shop),
    the latest purchases of active repeat buyers move into the last day."""
    rng, as_of = draft.rng, draft.plan.as_of
    since = as_of - timedelta(hours=RECENT_HOURS)
    recent = sum(at >= since for c in buyers for at in c.rhythm.purchases)
    movable = [
        c
        for c in buyers
        if c.rhythm.lapsed is None
        and len(c.rhythm.purchases) > 1
        and c.rhythm.purchases[-1] < since
    ]
    movable.sort(key=lambda c: c.rhythm.purchases[-1], reverse=True)
    for customer in movable[: max(0, RECENT_ORDERS - recent)]:
        moved = as_of - timedelta(hours=rng.uniform(0.5, RECENT_HOURS))
        customer.rhythm.purchases[-1] = moved
