"""A clock for the unit tests that moves only when the test moves it."""

from __future__ import annotations


class FakeClock:
    """A monotonic clock the test moves by hand (`now` is what it reads)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
