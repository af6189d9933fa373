"""Token buckets: how fast one connection may post, and send frames at all.

A bucket holds up to ``capacity`` tokens and gains ``refill_per_s`` tokens a
second, starting full. Each action takes one token; with none left the action
is refused, nothing is taken, and the bucket says how long until a token is
there. So a connection may burst up to ``capacity`` actions at once and keep
up ``refill_per_s`` a second for ever, and in any stretch of ``t`` seconds no
more than ``capacity + refill_per_s * t`` actions get through.

Each session owns two: one for posts (an excess post is answered with
``rate_limited`` and its ``retry_after_ms``), and a generous one for every
other frame, which a well-behaved client never meets (an abusive one is
closed with 1008). The clock is injected so that tests step it by hand; it
must not go backwards (``time.monotonic``), and if it does, no time passes.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = [
    "FRAME_BURST",
    "FRAME_RATE_PER_S",
    "POST_BURST",
    "POST_RATE_PER_S",
    "TokenBucket",
]

POST_BURST = 5
"""Posts a connection may send at once (tokens): a quick exchange of short lines."""
POST_RATE_PER_S = 2.0
"""Posts a second a connection may keep up: faster than anyone types."""
FRAME_BURST = 50
"""Frames other than posts a connection may send at once (tokens): history pages, joins."""
FRAME_RATE_PER_S = 20.0
"""Frames other than posts a second, sustained: ten times the post rate; floods only."""

# Float rounding must not make a client that waited exactly the time it was told
# come back a hair early: a bucket this close to a whole token counts as having it.
_ROUNDING_TOKENS = 1e-9


class TokenBucket:
    """A token bucket: `take` one token now, or learn how long until there is one."""

    __slots__ = ("_clock", "_last", "_tokens", "capacity", "refill_per_s")

    capacity: float
    """The most tokens the bucket holds, and so the longest burst (at least 1)."""
    refill_per_s: float
    """Tokens gained each second, and so the sustained rate (more than 0)."""

    def __init__(
        self,
        capacity: float,
        refill_per_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not capacity >= 1:
            raise ValueError(f"capacity must be at least 1 token, got {capacity!r}")
        if not refill_per_s > 0:
            raise ValueError(f"refill_per_s must be more than 0, got {refill_per_s!r}")
        self.capacity = capacity
        self.refill_per_s = refill_per_s
        self._clock = clock
        self._tokens = float(capacity)
        self._last = clock()

    @classmethod
    def for_posts(cls, clock: Callable[[], float] = time.monotonic) -> TokenBucket:
        """A bucket for one connection's posts: `POST_BURST`, `POST_RATE_PER_S`."""
        return cls(POST_BURST, POST_RATE_PER_S, clock)

    @classmethod
    def for_frames(cls, clock: Callable[[], float] = time.monotonic) -> TokenBucket:
        """A bucket for one connection's other frames: `FRAME_BURST`, `FRAME_RATE_PER_S`."""
        return cls(FRAME_BURST, FRAME_RATE_PER_S, clock)

    def take(self) -> float:
        """0.0 when allowed (a token is taken); else the seconds until one is there.

        A refusal takes nothing, so asking again at once gives the same answer,
        and asking after the returned number of seconds is allowed.
        """
        self._refill()
        if self._tokens >= 1 - _ROUNDING_TOKENS:
            self._tokens = max(0.0, self._tokens - 1)
            return 0.0
        return (1 - self._tokens) / self.refill_per_s

    def _refill(self) -> None:
        now = self._clock()
        if now > self._last:
            gained = (now - self._last) * self.refill_per_s
            self._tokens = min(self.capacity, self._tokens + gained)
            self._last = now

    def __repr__(self) -> str:
        return (
            f"TokenBucket(capacity={self.capacity!r}, refill_per_s={self.refill_per_s!r}, "
            f"tokens={self._tokens:.3f})"
        )
