"""The token bucket, stepped by a fake clock: bursts, sustained rate, retry times;
and the limits built from it, a bucket per address among them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatter.throttle import (
    ADDRESS_NAME_CLAIM_BURST,
    ADDRESS_NAME_CLAIM_RATE_PER_S,
    FRAME_BURST,
    FRAME_RATE_PER_S,
    NAME_CLAIM_BURST,
    NAME_CLAIM_RATE_PER_S,
    POST_BURST,
    POST_RATE_PER_S,
    BucketsByKey,
    Limit,
    NameClaimLimits,
    TokenBucket,
)
from tests.unit._clock import FakeClock


def test_a_full_bucket_allows_a_burst_of_its_capacity_then_refuses() -> None:
    bucket = TokenBucket(5, 2.0, FakeClock())
    assert [bucket.take() for _ in range(5)] == [0.0] * 5
    assert bucket.take() > 0


def test_a_refusal_says_how_long_until_the_next_token() -> None:
    clock = FakeClock()
    bucket = TokenBucket(5, 2.0, clock)
    for _ in range(5):
        bucket.take()
    assert bucket.take() == pytest.approx(0.5)
    clock.now += 0.2
    assert bucket.take() == pytest.approx(0.3)


def test_a_refusal_takes_nothing() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2, 1.0, clock)
    bucket.take()
    bucket.take()
    waits = [bucket.take() for _ in range(10)]
    assert waits == [pytest.approx(1.0)] * 10
    clock.now += 1.0
    assert bucket.take() == 0.0


@pytest.mark.parametrize("rate", [2.0, 3.0, 7.0, 0.1, 20.0])
def test_waiting_exactly_the_time_told_is_enough(rate: float) -> None:
    clock = FakeClock()
    bucket = TokenBucket(3, rate, clock)
    for _ in range(3):
        bucket.take()
    for _ in range(20):
        wait = bucket.take()
        assert wait > 0
        clock.now += wait
        assert bucket.take() == 0.0


def test_the_sustained_rate_is_the_refill_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(5, 2.0, clock)
    allowed = 0
    for step in range(1001):  # ten seconds in steps of 10 ms, trying every step
        clock.now = 1000.0 + step / 100
        allowed += bucket.take() == 0.0
    assert allowed == 5 + 2 * 10  # the burst, then one every 0.5 s


def test_an_idle_bucket_fills_up_to_its_capacity_and_no_further() -> None:
    clock = FakeClock()
    bucket = TokenBucket(5, 2.0, clock)
    for _ in range(5):
        bucket.take()
    clock.now += 3600.0
    assert [bucket.take() for _ in range(5)] == [0.0] * 5
    assert bucket.take() > 0


def test_a_clock_that_steps_back_gives_no_tokens() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1, 1.0, clock)
    bucket.take()
    clock.now -= 100.0
    assert bucket.take() == pytest.approx(1.0)
    clock.now += 100.0  # back where it was: still nothing gained
    assert bucket.take() == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("capacity", "rate", "field"),
    [
        (0, 1.0, "capacity"),
        (0.5, 1.0, "capacity"),
        (5, 0.0, "refill_per_s"),
        (5, -1, "refill_per_s"),
    ],
)
def test_a_bucket_that_could_never_allow_anything_is_refused(
    capacity: float, rate: float, field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        TokenBucket(capacity, rate, FakeClock())


def test_nan_is_refused() -> None:
    with pytest.raises(ValueError, match="capacity"):
        TokenBucket(math.nan, 1.0, FakeClock())
    with pytest.raises(ValueError, match="refill_per_s"):
        TokenBucket(5, math.nan, FakeClock())


def test_posts_burst_five_and_sustain_two_a_second() -> None:
    assert (POST_BURST, POST_RATE_PER_S) == (5, 2.0)
    bucket = Limit(POST_BURST, POST_RATE_PER_S).bucket(FakeClock())
    assert (bucket.capacity, bucket.refill_per_s) == (POST_BURST, POST_RATE_PER_S)
    assert [bucket.take() for _ in range(6)][-1] == pytest.approx(0.5)


def test_the_frame_limit_is_far_more_generous_than_the_post_limit() -> None:
    assert FRAME_BURST >= 10 * POST_BURST
    assert FRAME_RATE_PER_S >= 10 * POST_RATE_PER_S


def test_name_claims_are_three_a_minute_per_connection_and_six_per_address() -> None:
    limits = NameClaimLimits()
    assert limits.per_connection == Limit(NAME_CLAIM_BURST, NAME_CLAIM_RATE_PER_S)
    assert limits.per_address == Limit(ADDRESS_NAME_CLAIM_BURST, ADDRESS_NAME_CLAIM_RATE_PER_S)
    assert NAME_CLAIM_BURST == 3
    assert math.isclose(NAME_CLAIM_RATE_PER_S * 60, 3)  # a minute's worth
    assert ADDRESS_NAME_CLAIM_BURST == 12
    assert math.isclose(ADDRESS_NAME_CLAIM_RATE_PER_S * 60, 6)
    # An address holds several connections, each with a burst of its own.
    assert ADDRESS_NAME_CLAIM_BURST > NAME_CLAIM_BURST
    assert ADDRESS_NAME_CLAIM_RATE_PER_S > NAME_CLAIM_RATE_PER_S
    # A claim is far scarcer than a post.
    assert NAME_CLAIM_RATE_PER_S * 10 <= POST_RATE_PER_S


def test_a_name_claim_refused_at_once_can_be_retried_after_twenty_seconds() -> None:
    clock = FakeClock()
    bucket = NameClaimLimits().per_connection.bucket(clock)
    assert [bucket.take() for _ in range(3)] == [0.0] * 3
    assert bucket.take() == pytest.approx(20.0)
    clock.now += 20.0
    assert bucket.take() == 0.0


@pytest.mark.parametrize(("burst", "per_s", "field"), [(0, 1.0, "capacity"), (1, 0, "refill")])
def test_a_limit_that_could_never_allow_anything_is_refused(
    burst: float, per_s: float, field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        Limit(burst, per_s)


# -- asking without taking ---------------------------------------------------------------


def test_wait_says_what_take_would_and_takes_nothing() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2, 1.0, clock)
    assert [bucket.wait() for _ in range(10)] == [0.0] * 10
    bucket.take()
    bucket.take()
    assert bucket.wait() == pytest.approx(1.0)
    assert bucket.wait() == bucket.take()
    clock.now += 0.25
    assert bucket.wait() == pytest.approx(0.75)
    clock.now += 0.75
    assert bucket.wait() == 0.0
    assert bucket.take() == 0.0


def test_a_bucket_is_full_again_once_it_refilled_to_its_capacity() -> None:
    clock = FakeClock()
    bucket = TokenBucket(3, 0.5, clock)
    assert bucket.full()
    bucket.take()
    assert not bucket.full()
    clock.now += 1.9
    assert not bucket.full()
    clock.now += 0.1
    assert bucket.full()


# -- a bucket per key -----------------------------------------------------------------------


def test_each_key_has_a_bucket_of_its_own() -> None:
    buckets = BucketsByKey(Limit(2, 1.0), FakeClock())
    assert [buckets.take("a") for _ in range(2)] == [0.0, 0.0]
    assert buckets.take("a") == pytest.approx(1.0)
    assert buckets.wait("a") == pytest.approx(1.0)
    assert buckets.take("b") == 0.0


def test_asking_about_an_unknown_key_makes_no_bucket() -> None:
    buckets = BucketsByKey(Limit(2, 1.0), FakeClock())
    assert buckets.wait("a") == 0.0
    assert len(buckets) == 0


def test_full_buckets_are_dropped_so_the_map_stays_bounded() -> None:
    clock = FakeClock()
    buckets = BucketsByKey(Limit(2, 1.0), clock, min_sweep=8)
    for step in range(1000):
        clock.now += 0.1  # a new key every 0.1 s; a used bucket is full again after 1 s
        assert buckets.take(f"addr-{step}") == 0.0
        assert len(buckets) <= max(8, 2 * 11)
    assert len(buckets) >= 10  # the keys of the last second are all still there


def test_a_dropped_bucket_was_full_so_nothing_is_forgiven() -> None:
    clock = FakeClock()
    buckets = BucketsByKey(Limit(2, 1.0), clock, min_sweep=1)
    buckets.take("busy")
    buckets.take("busy")
    for n in range(100):
        buckets.take(f"other-{n}")  # sweeps many times; "busy" is not full
    assert buckets.wait("busy") == pytest.approx(1.0)


def test_the_real_clock_is_the_default() -> None:
    assert TokenBucket(1, 1.0).take() == 0.0


@dataclass
class SteppedBucket:
    """A bucket on a fake clock, and the steps to move the clock by, in turn."""

    capacity: int
    rate: float
    steps: list[float]
    clock: FakeClock = field(default_factory=FakeClock, repr=False)

    def __post_init__(self) -> None:
        self.bucket = TokenBucket(self.capacity, self.rate, self.clock)


stepped_buckets = st.builds(
    SteppedBucket,
    capacity=st.integers(min_value=1, max_value=50),
    rate=st.floats(min_value=0.01, max_value=100.0),
    steps=st.lists(st.floats(min_value=0.0, max_value=5.0), max_size=200),
)


@given(stepped_buckets)
def test_never_more_than_capacity_plus_rate_times_elapsed_get_through(run: SteppedBucket) -> None:
    clock, bucket = run.clock, run.bucket
    start = clock.now
    allowed = 0
    for step in run.steps:
        clock.now += step
        if bucket.take() == 0.0:
            allowed += 1
        assert allowed <= run.capacity + run.rate * (clock.now - start) + 1e-6


@given(stepped_buckets)
def test_a_refused_caller_that_waits_as_told_is_then_allowed(run: SteppedBucket) -> None:
    clock, bucket = run.clock, run.bucket
    for step in run.steps:
        clock.now += step
        wait = bucket.take()
        assert 0.0 <= wait <= 1 / run.rate + 1e-9
        if wait:
            clock.now += wait
            assert bucket.take() == 0.0
