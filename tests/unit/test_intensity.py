"""Restart intensity at its edges, with a fake clock and no sleeping."""

from __future__ import annotations

import pytest

from supervision import RestartIntensity
from tests.unit._clock import FakeClock


def answers(max_restarts: int, *at_s: float) -> tuple[list[bool], RestartIntensity]:
    """What an intensity of `max_restarts` in 5 s answers to a restart at each
    of `at_s` (seconds from the first), and the intensity afterwards."""
    clock = FakeClock()
    intensity = RestartIntensity(max_restarts, 5.0, clock)
    start = clock.now
    said = []
    for offset in at_s:
        clock.now = start + offset
        said.append(intensity.add_restart())
    return said, intensity


def test_defaults_are_three_restarts_in_five_seconds() -> None:
    intensity = RestartIntensity()
    assert (intensity.max_restarts, intensity.max_seconds) == (3, 5.0)


def test_max_restarts_inside_the_period_are_allowed_and_one_more_is_not() -> None:
    said, _ = answers(3, 0.0, 1.0, 2.0, 3.0)
    assert said == [True, True, True, False]


def test_restarts_older_than_the_period_no_longer_count() -> None:
    said, intensity = answers(3, 0.0, 0.0, 0.0, 5.001)
    assert said == [True, True, True, True]
    assert intensity.recent() == 1


def test_a_restart_exactly_one_period_old_still_counts_as_in_otp() -> None:
    said, _ = answers(1, 0.0, 5.0)
    assert said == [True, False]


def test_zero_max_restarts_gives_up_on_the_first() -> None:
    said, _ = answers(0, 0.0)
    assert said == [False]


@pytest.mark.parametrize(("max_restarts", "max_seconds"), [(-1, 5.0), (3, 0), (3, -1.0)])
def test_invalid_intensity_is_refused(max_restarts: int, max_seconds: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        RestartIntensity(max_restarts, max_seconds)


def test_ages_say_how_long_ago_each_counting_restart_was_oldest_first() -> None:
    """What a live page needs to show the budget coming back: each age grows
    with the clock, and a restart past the period is no longer listed."""
    clock = FakeClock()
    intensity = RestartIntensity(3, 5.0, clock)
    start = clock.now
    for offset in (0.0, 1.5):
        clock.now = start + offset
        intensity.add_restart()
    clock.now = start + 2.0
    assert intensity.ages() == pytest.approx((2.0, 0.5))
    clock.now = start + 5.5
    assert intensity.ages() == pytest.approx((4.0,))
    assert intensity.recent() == 1
