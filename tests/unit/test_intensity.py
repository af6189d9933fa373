"""Restart intensity at its edges, with a fake clock and no sleeping."""

from __future__ import annotations

import pytest

from supervision import RestartIntensity


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_defaults_are_three_restarts_in_five_seconds() -> None:
    intensity = RestartIntensity()
    assert (intensity.max_restarts, intensity.max_seconds) == (3, 5.0)


def test_max_restarts_inside_the_period_are_allowed_and_one_more_is_not() -> None:
    clock = FakeClock()
    intensity = RestartIntensity(3, 5.0, clock)
    for _ in range(3):
        assert intensity.add_restart()
        clock.now += 1.0
    assert not intensity.add_restart()


def test_restarts_older_than_the_period_no_longer_count() -> None:
    clock = FakeClock()
    intensity = RestartIntensity(3, 5.0, clock)
    for _ in range(3):
        assert intensity.add_restart()
    clock.now += 5.001
    assert intensity.add_restart()
    assert intensity.recent() == 1


def test_a_restart_exactly_one_period_old_still_counts_as_in_otp() -> None:
    clock = FakeClock()
    intensity = RestartIntensity(1, 5.0, clock)
    assert intensity.add_restart()
    clock.now += 5.0
    assert not intensity.add_restart()


def test_zero_max_restarts_gives_up_on_the_first() -> None:
    assert not RestartIntensity(0, 5.0, FakeClock()).add_restart()


@pytest.mark.parametrize(("max_restarts", "max_seconds"), [(-1, 5.0), (3, 0), (3, -1.0)])
def test_invalid_intensity_is_refused(max_restarts: int, max_seconds: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        RestartIntensity(max_restarts, max_seconds)
