"""What a session is given: the connection it writes to, the frames it is
handed, and what every session shares (`SessionContext`).

`web/` implements `Connection` over a Tornado WebSocket; the session only ever
calls it on the event loop's thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from chatter.metrics import ChatMetrics
from chatter.persistence import Persistence
from chatter.presence import Presence
from chatter.room import Room
from chatter.throttle import NameClaimLimits
from supervision import Registry

__all__ = ["Connection", "Inbound", "SessionContext"]


class Connection(Protocol):
    """What a session needs of its socket; `web/` implements it over Tornado.
    Called on the event loop thread only."""

    remote: str
    """The client's address, for logs and the name-claim limit."""

    def send(self, frame: bytes) -> None:
        """Queue one text frame (UTF-8 JSON) to the client; the frames queued
        in one loop turn go out in one write."""

    def send_all(self, frames: Sequence[bytes]) -> None:
        """Write these text frames, after any queued, now and in one write:
        a fan-out round costs each connection one write and no extra turn."""

    def close(self, code: int, reason: str) -> None:
        """Close the connection with a WebSocket close code."""


@dataclass(frozen=True)
class SessionContext:
    """What every session shares: names to reach the other actors, and the
    secret that signs identity tokens."""

    registry: Registry
    secret: bytes
    clock: Callable[[], float] = time.time
    metrics: ChatMetrics = field(default_factory=ChatMetrics)
    """The tree's metrics: sessions count refusals and time post to ack."""
    name_claims: NameClaimLimits = field(default_factory=NameClaimLimits)
    """How fast names may be taken: each session keeps a bucket of
    ``per_connection``; presence keeps those of ``per_address``."""
    persistence: Persistence = field(init=False, repr=False, compare=False)
    """Persistence's client API, by name: one for every session."""
    presence: Presence = field(init=False, repr=False, compare=False)
    """Presence's client API, by name: one for every session."""
    room: Room = field(init=False, repr=False, compare=False)
    """The room's client API, by name: one for every session."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "persistence", Persistence(self.registry))
        object.__setattr__(self, "presence", Presence(self.registry))
        object.__setattr__(self, "room", Room(self.registry))


@dataclass(frozen=True)
class Inbound:
    """A frame the client sent, as received."""

    text: str | bytes
