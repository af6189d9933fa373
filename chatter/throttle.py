"""Token buckets: how fast one connection may post, send frames, and claim names.

A bucket holds up to ``capacity`` tokens and gains ``refill_per_s`` tokens a
second, starting full. Each action takes one token; with none left the action
is refused, nothing is taken, and the bucket says how long until a token is
there. So a connection may burst up to ``capacity`` actions at once and keep
up ``refill_per_s`` a second for ever, and in any stretch of ``t`` seconds no
more than ``capacity + refill_per_s * t`` actions get through.

Each session owns three: one for posts (an excess post is answered with
``rate_limited`` and its ``retry_after_ms``), a generous one for every other
frame, which a well-behaved client never meets (an abusive one is closed with
1008), and one for name claims. A name claim (a ``join``, or a ``post`` with a
``username`` that is not the connection's name) creates a user row and sends a
presence frame to everyone, so it is far scarcer than a post; and since one
address may open many connections, the presence actor also keeps a bucket per
client address (`BucketsByKey`), which every connection from it shares.

The clock is injected so that tests step it by hand; it must not go backwards
(``time.monotonic``), and if it does, no time passes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

__all__ = [
    "ADDRESS_NAME_CLAIM_BURST",
    "ADDRESS_NAME_CLAIM_RATE_PER_S",
    "FRAME_BURST",
    "FRAME_RATE_PER_S",
    "NAME_CLAIM_BURST",
    "NAME_CLAIM_RATE_PER_S",
    "POST_BURST",
    "POST_RATE_PER_S",
    "BucketsByKey",
    "Limit",
    "NameClaimLimits",
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

NAME_CLAIM_BURST = 3
"""Names one connection may take at once (tokens): a name, and a second thought or two."""
NAME_CLAIM_RATE_PER_S = 1 / 20
"""Names a second one connection may keep taking: 3 a minute. Each claim writes a
user row and sends every client a presence frame (a leave and a join when it
switches), so it costs what hundreds of posts cost; people rarely rename."""
ADDRESS_NAME_CLAIM_BURST = 12
"""Names every connection from one client address may take at once, together
(tokens): a household or a small office behind one address joining together,
while a script with many connections still gets no more than a handful."""
ADDRESS_NAME_CLAIM_RATE_PER_S = 1 / 10
"""Names a second one address may keep taking: 6 a minute, twice a connection's."""

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
        _check(capacity, refill_per_s)
        self.capacity = capacity
        self.refill_per_s = refill_per_s
        self._clock = clock
        self._tokens = float(capacity)
        self._last = clock()

    def take(self) -> float:
        """0.0 when allowed (a token is taken); else the seconds until one is there.

        A refusal takes nothing, so asking again at once gives the same answer,
        and asking after the returned number of seconds is allowed.
        """
        wait_s = self.wait()
        if wait_s == 0.0:
            self._tokens = max(0.0, self._tokens - 1)
        return wait_s

    def wait(self) -> float:
        """0.0 when a token is there now, else the seconds until one is; takes
        nothing. For an action that may still fail for another reason: ask
        first, and `take` only once it is done (time only adds tokens, so a
        `take` after a `wait` of 0.0 is allowed)."""
        self._refill()
        if self._tokens >= 1 - _ROUNDING_TOKENS:
            return 0.0
        return (1 - self._tokens) / self.refill_per_s

    def full(self) -> bool:
        """Whether the bucket is full again, and so no different from a new one."""
        self._refill()
        return self._tokens >= self.capacity - _ROUNDING_TOKENS

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


def _check(capacity: float, refill_per_s: float) -> None:
    if not capacity >= 1:
        raise ValueError(f"capacity must be at least 1 token, got {capacity!r}")
    if not refill_per_s > 0:
        raise ValueError(f"refill_per_s must be more than 0, got {refill_per_s!r}")


@dataclass(frozen=True)
class Limit:
    """A rate limit as a token bucket's two numbers."""

    burst: float
    """Actions allowed at once: the bucket's capacity, in tokens (at least 1)."""
    per_s: float
    """Actions a second, sustained: the bucket's refill rate (more than 0)."""

    def __post_init__(self) -> None:
        _check(self.burst, self.per_s)

    def bucket(self, clock: Callable[[], float] = time.monotonic) -> TokenBucket:
        """A new, full bucket for this limit."""
        return TokenBucket(self.burst, self.per_s, clock)


@dataclass(frozen=True)
class NameClaimLimits:
    """How fast names may be claimed: by one connection (its session's bucket)
    and by every connection from one client address together (presence's).
    The defaults are the contract's; tests and load generators, which make
    many names from one address, pass their own."""

    per_connection: Limit = Limit(NAME_CLAIM_BURST, NAME_CLAIM_RATE_PER_S)
    """One connection's name claims; the session holds the bucket."""
    per_address: Limit = Limit(ADDRESS_NAME_CLAIM_BURST, ADDRESS_NAME_CLAIM_RATE_PER_S)
    """All name claims from one client address; presence holds the buckets."""


class BucketsByKey:
    """A token bucket per key (a client address), made full on first use.

    A bucket that has filled up again is no different from a new one, so it
    is dropped: the map holds only the keys active within the last
    ``burst / per_s`` seconds (two minutes for addresses' name claims). The
    sweep runs when the map has doubled since the last one (and holds at
    least `min_sweep` keys), so it costs O(1) per new key, amortized, and the
    map never exceeds twice the recently active keys (or `min_sweep`).
    """

    __slots__ = ("_buckets", "_clock", "_limit", "_min_sweep", "_sweep_at")

    def __init__(
        self,
        limit: Limit,
        clock: Callable[[], float] = time.monotonic,
        *,
        min_sweep: int = 1024,
    ) -> None:
        self._limit = limit
        self._clock = clock
        self._buckets: dict[Hashable, TokenBucket] = {}
        self._min_sweep = min_sweep
        self._sweep_at = min_sweep

    def wait(self, key: Hashable) -> float:
        """As `TokenBucket.wait` for `key`'s bucket; takes nothing, makes nothing."""
        bucket = self._buckets.get(key)
        return 0.0 if bucket is None else bucket.wait()

    def take(self, key: Hashable) -> float:
        """As `TokenBucket.take` for `key`'s bucket, made full if there is none."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._sweep_at:
                self._sweep()
            bucket = self._buckets[key] = self._limit.bucket(self._clock)
        return bucket.take()

    def __len__(self) -> int:
        return len(self._buckets)

    def _sweep(self) -> None:
        self._buckets = {key: b for key, b in self._buckets.items() if not b.full()}
        self._sweep_at = max(self._min_sweep, 2 * len(self._buckets))
