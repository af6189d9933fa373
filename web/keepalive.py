"""Pings: every open WebSocket is pinged every `interval_s`, and one that has
not answered the ping before is closed (docs/PROTOCOL.md: the server pings
every 20 s and drops a peer that does not answer).

Tornado can do this itself (``websocket_ping_interval``), with a task per
connection that sleeps between pings: a task, its coroutine, a future and a
timer, over a kilobyte for every idle connection. Here one timer serves them
all. The sockets are dealt round-robin into `SLICES` slices and the timer
ticks `SLICES` times an interval, each tick pinging one slice, so that ten
thousand pings are spread over the interval rather than sent in one loop turn.
A socket is pinged once an interval, and closed at its next turn if no pong
came meanwhile, as Tornado does with a ping timeout of one interval.

A socket that just opened has shown it is alive, so its first ping comes
between half an interval and one interval after it opens (Tornado: one
interval after): it joins one of the slices whose turn was in the last half
interval, round-robin, so a burst of connections is spread over half the
slices and pings none of them while it lasts.

Used on the event loop's thread only.
"""

from __future__ import annotations

import itertools
from typing import Protocol

from tornado.ioloop import PeriodicCallback
from tornado.websocket import WebSocketClosedError

__all__ = ["SLICES", "Keepalive", "Pingable"]

SLICES = 20
"""Ticks per interval, each pinging a twentieth of the sockets (one a second at 20 s)."""
_HALF = SLICES // 2


class Pingable(Protocol):
    def ping(self, data: str | bytes = b"") -> None: ...

    def close(self, code: int | None = None, reason: str | None = None) -> None: ...


class Keepalive:
    """Pings the sockets it tracks; see the module's docs. An `interval_s` of 0
    pings nothing. The timer runs only while a socket is tracked."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._slices: list[dict[Pingable, bool]] = [{} for _ in range(SLICES)]
        """Per slice, each socket and whether it answered since it was last pinged."""
        self._slice_of: dict[Pingable, int] = {}
        self._deal = itertools.cycle(range(_HALF))
        """How many slices back from the last one pinged a newcomer joins."""
        self._tick = 0
        self._timer: PeriodicCallback | None = None

    def __len__(self) -> int:
        return len(self._slice_of)

    def track(self, socket: Pingable) -> None:
        """Ping `socket` from now on (it opened)."""
        if self.interval_s <= 0 or socket in self._slice_of:
            return
        last_pinged = self._tick - 1  # the slice whose turn comes again last
        index = (last_pinged - next(self._deal)) % SLICES
        self._slice_of[socket] = index
        self._slices[index][socket] = True  # nothing asked of it yet
        if self._timer is None:
            self._timer = PeriodicCallback(self._ping_slice, self.interval_s * 1000 / SLICES)
            self._timer.start()

    def forget(self, socket: Pingable) -> None:
        """Stop pinging `socket` (it closed); the timer stops with the last."""
        index = self._slice_of.pop(socket, None)
        if index is not None:
            self._slices[index].pop(socket, None)
        if not self._slice_of and self._timer is not None:
            self._timer.stop()
            self._timer = None

    def answered(self, socket: Pingable) -> None:
        """`socket` answered a ping (a pong came)."""
        index = self._slice_of.get(socket)
        if index is not None:
            self._slices[index][socket] = True

    def _ping_slice(self) -> None:
        sockets = self._slices[self._tick]
        self._tick = (self._tick + 1) % SLICES
        for socket, answered in list(sockets.items()):
            if not answered:
                self.forget(socket)
                socket.close(reason="ping timed out")
                continue
            sockets[socket] = False
            try:
                socket.ping()
            except WebSocketClosedError:
                self.forget(socket)  # closing already: its on_close says so too
