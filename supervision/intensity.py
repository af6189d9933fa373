"""Restart intensity: how many restarts a supervisor allows in a period.

A supervisor that keeps restarting a child which keeps crashing does no good.
OTP bounds it: at most `max_restarts` restarts within `max_seconds`. One more
and the supervisor gives up: it stops its children and exits itself, so that
its own supervisor, which may restart a larger part of the tree, decides.

The check is pure and its clock injected, so its edges are tested without sleeping.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

__all__ = ["DEFAULT_MAX_RESTARTS", "DEFAULT_MAX_SECONDS", "RestartIntensity"]

DEFAULT_MAX_RESTARTS = 3
"""Elixir's default: three restarts..."""

DEFAULT_MAX_SECONDS = 5.0
"""...within five seconds."""


class RestartIntensity:
    """A sliding window of recent restarts.

    As in OTP's supervisor, a restart counts while it is at most `max_seconds`
    old; when a new restart makes the count exceed `max_restarts`, the
    intensity is exceeded.
    """

    def __init__(
        self,
        max_restarts: int = DEFAULT_MAX_RESTARTS,
        max_seconds: float = DEFAULT_MAX_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(max_restarts, int) or isinstance(max_restarts, bool) or max_restarts < 0:
            raise ValueError(f"max_restarts must be an integer >= 0, got {max_restarts!r}")
        if not isinstance(max_seconds, int | float) or max_seconds <= 0:
            raise ValueError(f"max_seconds must be a positive number, got {max_seconds!r}")
        self.max_restarts = max_restarts
        self.max_seconds = float(max_seconds)
        self._clock = clock
        self._restarts: deque[float] = deque()

    def add_restart(self) -> bool:
        """Record a restart now; return False when it exceeds the intensity."""
        now = self._clock()
        self._forget_older_than(now - self.max_seconds)
        self._restarts.append(now)
        return len(self._restarts) <= self.max_restarts

    def recent(self) -> int:
        """How many restarts still count, as of now."""
        self._forget_older_than(self._clock() - self.max_seconds)
        return len(self._restarts)

    def ages(self) -> tuple[float, ...]:
        """How long ago, in seconds, each restart that still counts happened,
        oldest first: each stops counting when its age passes `max_seconds`
        (a live page shows the budget coming back)."""
        now = self._clock()
        self._forget_older_than(now - self.max_seconds)
        return tuple(now - when for when in self._restarts)

    def _forget_older_than(self, threshold: float) -> None:
        while self._restarts and self._restarts[0] < threshold:
            self._restarts.popleft()
