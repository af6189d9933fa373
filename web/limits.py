"""Connection caps: in total and per client address, checked before a
WebSocket is upgraded, so a refused client costs no actor at all.

A connection holds a `Slot` from the moment it passes the caps; every way it
can end (refused, aborted, upgraded and closed) gives the slot back, and a
slot is given back exactly once, so the counts are the sockets really open.
The slots of one address also share a bound on the output they may leave
unread, so one address cannot pin more memory than that however many
connections it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter
from collections.abc import Callable
from typing import Protocol

__all__ = ["MAX_PENDING_OUTPUT_PER_ADDRESS", "Closable", "ConnectionLimits", "Slot"]

MAX_PENDING_OUTPUT_PER_ADDRESS = 32 * 1024 * 1024
"""Unread output all the connections of one address may leave, together."""


class Closable(Protocol):
    def close(self, code: int | None = None, reason: str | None = None) -> None: ...


def _nothing_pending() -> int:
    return 0


class Slot:
    """One connection's place under the caps, held until `release`."""

    __slots__ = ("_limits", "_released", "address", "pending_output")

    def __init__(self, limits: ConnectionLimits, address: str) -> None:
        self._limits = limits
        self._released = False
        self.address = address
        self.pending_output: Callable[[], int] = _nothing_pending
        """The bytes this connection has queued and the client has not read:
        set by the connection once it can tell."""

    @property
    def released(self) -> bool:
        return self._released

    def release(self) -> None:
        """Give the slot back; a second call does nothing."""
        if not self._released:
            self._released = True
            self._limits._release(self)


class ConnectionLimits:
    """Counts open connections. Used on the event loop thread only."""

    def __init__(
        self,
        max_total: int,
        max_per_address: int,
        max_output_per_address: int = MAX_PENDING_OUTPUT_PER_ADDRESS,
    ) -> None:
        self.max_total = max_total
        self.max_per_address = max_per_address
        self.max_output_per_address = max_output_per_address
        self._by_address: dict[str, set[Slot]] = {}
        self._total = 0
        self._ids = itertools.count(1)
        self._open: set[Closable] = set()
        self._all_closed: asyncio.Event | None = None

    @property
    def total(self) -> int:
        """Slots held now: the connections open (or being upgraded)."""
        return self._total

    def held_by(self, address: str) -> int:
        return len(self._by_address.get(address, ()))

    def by_address(self) -> Counter[str]:
        """Slots held per address."""
        return Counter({address: len(slots) for address, slots in self._by_address.items()})

    def acquire(self, address: str) -> Slot | None:
        """A slot for `address`; None when a cap is reached."""
        held = self._by_address.get(address)
        if self._total >= self.max_total or (
            held is not None and len(held) >= self.max_per_address
        ):
            return None
        slot = Slot(self, address)
        self._total += 1
        if held is None:
            held = self._by_address[address] = set()
        held.add(slot)
        return slot

    def _release(self, slot: Slot) -> None:
        self._total -= 1
        held = self._by_address.get(slot.address)
        if held is not None:
            held.discard(slot)
            if not held:
                del self._by_address[slot.address]

    def output_over_budget(self, address: str) -> bool:
        """Whether the connections of `address` together leave more unread
        output than `max_output_per_address`. It sums over that address's
        connections, so callers ask only when one of them has a backlog."""
        total = 0
        for slot in self._by_address.get(address, ()):
            total += slot.pending_output()
            if total > self.max_output_per_address:
                return True
        return False

    def opened(self, socket: Closable) -> None:
        """Remember an open socket, to close it on shutdown."""
        self._open.add(socket)

    def closed(self, socket: Closable) -> None:
        self._open.discard(socket)
        if not self._open and self._all_closed is not None:
            self._all_closed.set()

    async def close_all(self, code: int, reason: str, timeout_s: float) -> None:
        """Close every open socket and wait, up to `timeout_s`, until all have closed."""
        if not self._open:
            return
        self._all_closed = asyncio.Event()
        for socket in list(self._open):
            socket.close(code, reason)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_closed.wait(), timeout_s)

    def next_session_id(self) -> str:
        return f"session-{next(self._ids)}"
