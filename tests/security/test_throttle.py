"""The leaky bucket itself, on a clock the tests move by hand."""

from __future__ import annotations

import pytest

from server.throttle import LeakyBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_a_new_client_has_a_full_bucket(clock: FakeClock) -> None:
    bucket = LeakyBucket(100, 10, clock=clock)
    status = bucket.status("ip:1.2.3.4")
    assert (status.maximum_available, status.currently_available, status.restore_rate) == (
        100,
        100,
        10,
    )


def test_taking_more_than_available_is_refused_and_takes_nothing(clock: FakeClock) -> None:
    bucket = LeakyBucket(100, 10, clock=clock)
    assert bucket.take("a", 70) == (True, bucket.status("a"))
    assert bucket.status("a").currently_available == 30
    ok, status = bucket.take("a", 31)
    assert not ok
    assert status.currently_available == 30
    assert bucket.take("a", 30)[0]
    assert bucket.status("a").currently_available == 0


def test_the_bucket_refills_at_the_restore_rate_up_to_its_size(clock: FakeClock) -> None:
    bucket = LeakyBucket(100, 10, clock=clock)
    bucket.take("a", 100)
    clock.advance(2.5)
    assert bucket.status("a").currently_available == pytest.approx(25)
    assert not bucket.take("a", 26)[0]
    assert bucket.seconds_until("a", 26) == pytest.approx(0.1)
    clock.advance(0.1)
    assert bucket.take("a", 26)[0]
    clock.advance(3600)
    assert bucket.status("a").currently_available == 100


def test_settling_refunds_unspent_points_and_charges_overspending(clock: FakeClock) -> None:
    bucket = LeakyBucket(100, 10, clock=clock)
    bucket.take("a", 60)
    assert bucket.settle("a", taken=60, actual=15).currently_available == 85
    bucket.take("a", 50)
    # More was spent than estimated: charged, but never below empty.
    assert bucket.settle("a", taken=50, actual=200).currently_available == 0
    clock.advance(1)
    assert bucket.status("a").currently_available == pytest.approx(10)


def test_clients_have_separate_buckets(clock: FakeClock) -> None:
    bucket = LeakyBucket(10, 1, clock=clock)
    assert bucket.take("customer:1", 10)[0]
    assert not bucket.take("customer:1", 1)[0]
    assert bucket.take("customer:2", 10)[0]
    assert bucket.take("ip:127.0.0.1", 10)[0]


def test_memory_is_bounded_by_forgetting_the_least_recent_client(clock: FakeClock) -> None:
    bucket = LeakyBucket(10, 1, clock=clock, max_clients=2)
    bucket.take("a", 10)
    bucket.take("b", 10)
    bucket.take("a", 0)  # a was seen again: b is now the least recent
    bucket.take("c", 10)
    assert bucket.status("a").currently_available == 0
    assert bucket.status("b").currently_available == 10  # forgotten == full
    assert bucket.status("c").currently_available == 0


def test_a_bucket_needs_a_positive_size_and_rate() -> None:
    with pytest.raises(ValueError):
        LeakyBucket(0, 1)
    with pytest.raises(ValueError):
        LeakyBucket(10, 0)
