"""Connection caps: in total and per client address, checked before a
WebSocket is upgraded, so a refused client costs no actor at all."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter
from typing import Protocol

__all__ = ["Closable", "ConnectionLimits"]


class Closable(Protocol):
    def close(self, code: int | None = None, reason: str | None = None) -> None: ...


class ConnectionLimits:
    """Counts open WebSocket connections. Used on the event loop thread only."""

    def __init__(self, max_total: int, max_per_address: int) -> None:
        self.max_total = max_total
        self.max_per_address = max_per_address
        self._by_address: Counter[str] = Counter()
        self._total = 0
        self._ids = itertools.count(1)
        self._open: set[Closable] = set()
        self._all_closed: asyncio.Event | None = None

    @property
    def total(self) -> int:
        return self._total

    def acquire(self, address: str) -> bool:
        """Take a slot for `address`; False when a cap is reached."""
        if self._total >= self.max_total or self._by_address[address] >= self.max_per_address:
            return False
        self._total += 1
        self._by_address[address] += 1
        return True

    def release(self, address: str) -> None:
        self._total -= 1
        self._by_address[address] -= 1
        if self._by_address[address] <= 0:
            del self._by_address[address]

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
