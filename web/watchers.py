"""The watchers of the live supervision tree, fed together by one `WatcherHub`.

A watcher is a socket on ``/api/supervision/events``. Each used to subscribe to
the tree's event stream itself, so every session start or stop cost one
hand-over to the loop, one JSON encoding and one socket write per watcher, and
a crowd of watchers that never read made every new chat connection slow
(issue #12). The hub makes an event cost the same however many watch:

- it subscribes to the stream once, when the first watcher joins, and
  unsubscribes when the last leaves; each event reaches the loop in one
  ``call_soon_threadsafe``, not one per watcher;
- it encodes each event once, as a whole WebSocket text frame
  (``{"type": "event", "event": {...}}``);
- it writes what gathered to every watcher at most once per
  `WATCHER_FLUSH_INTERVAL_S`: the frames of a burst go out together, in one
  write of the same bytes to each watcher.

The snapshot and the stream meet with no gap and no repeat. The hub keeps the
recent events itself, in the order it received them, and a watcher that joins
is sent those first; it is then sent each event the hub receives after it
joined, and no other. When the hub subscribes it takes the stream's recent
events after subscribing, so an event published in between is in both: that
one is dropped when it arrives.

Everything here runs on the event loop thread, but the subscriber the hub
hands to the stream, which the publishing supervisor's thread calls.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import math
import struct
from collections.abc import Callable
from typing import Protocol

from supervision import EventStream, SupervisionEvent

__all__ = [
    "MAX_WATCHER_PENDING_OUTPUT",
    "WATCHER_FLUSH_INTERVAL_S",
    "WATCHER_RECENT_EVENTS",
    "Watcher",
    "WatcherHub",
    "text_frame",
]

WATCHER_FLUSH_INTERVAL_S = 0.25
"""The shortest time between two writes of events to the watchers: a burst of
session starts and stops costs each watcher a few writes a second, not one per
event, and the page (which redraws at most every 100 ms) still looks live."""

MAX_WATCHER_PENDING_OUTPUT = 1024 * 1024
"""Output a watcher may leave unread before it is dropped: the opening
snapshot (at most `WATCHER_RECENT_EVENTS` events, about 30 KB) many times
over, so only a watcher that stopped reading ever meets it."""

WATCHER_RECENT_EVENTS = 200
"""Events a new watcher is sent first: as many as the event stream keeps."""


def text_frame(payload: bytes) -> bytes:
    """`payload` as one unmasked, final WebSocket text frame (RFC 6455 section
    5.2), ready to write to a socket as it is."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x81, length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, length)
    else:
        header = struct.pack("!BBQ", 0x81, 127, length)
    return header + payload


def _event_frame(event: SupervisionEvent) -> bytes:
    return text_frame(json.dumps({"type": "event", "event": event.to_dict()}).encode())


class Watcher(Protocol):
    """What the hub writes to: one watcher's socket."""

    def send(self, data: bytes) -> None:
        """Write `data` (whole WebSocket frames) to the socket, or drop the
        watcher if it has stopped reading. Never raises."""


class WatcherHub:
    """Feeds the tree's events to every watcher of one application.

    Used on the event loop thread only (`loop`), but for the subscription it
    holds, which the publishing threads call.
    """

    def __init__(
        self,
        events: EventStream,
        loop: asyncio.AbstractEventLoop,
        *,
        flush_interval_s: float = WATCHER_FLUSH_INTERVAL_S,
    ) -> None:
        self._events = events
        self._loop = loop
        self.flush_interval_s = flush_interval_s
        self.flushes = 0
        """How many times events were written to the watchers: with a burst of
        events, far fewer than the events (tests hold the hub to that)."""
        self._watchers: dict[Watcher, int] = {}
        """Each watcher, with the number of the first event it is to be sent."""
        self._unsubscribe: Callable[[], None] | None = None
        self._subscription = 0
        """Which subscription is current: a hand-over from an earlier one is ignored."""
        self._recent: collections.deque[SupervisionEvent] = collections.deque(
            maxlen=WATCHER_RECENT_EVENTS
        )
        self._in_snapshot: dict[int, SupervisionEvent] = {}
        """The stream's recent events when the hub subscribed, by identity: one
        of them that also arrives through the subscription is dropped. The
        values keep the events alive, so that no other event takes the id."""
        self._received = 0
        """Events received through the current subscription (and kept)."""
        self._pending: list[bytes] = []
        """Frames of the events received and not yet written to the watchers:
        those numbered from ``_received - len(_pending)``."""
        self._flush: asyncio.TimerHandle | None = None
        self._last_flush = -math.inf

    @property
    def watchers(self) -> tuple[Watcher, ...]:
        return tuple(self._watchers)

    @property
    def subscribed(self) -> bool:
        """Whether the hub listens to the event stream (while anyone watches)."""
        return self._unsubscribe is not None

    def join(self, watcher: Watcher) -> list[SupervisionEvent]:
        """Start sending `watcher` the events from now on; the recent events,
        oldest first, which the watcher is to be sent first."""
        if self._unsubscribe is None:
            self._subscribe()
        self._watchers[watcher] = self._received
        return list(self._recent)

    def leave(self, watcher: Watcher) -> None:
        """Send `watcher` nothing more; the last to leave ends the subscription.
        Leaving twice, or without having joined, does nothing."""
        if self._watchers.pop(watcher, None) is not None and not self._watchers:
            self._unsubscribe_all()

    def _subscribe(self) -> None:
        self._subscription += 1
        subscription = self._subscription
        loop = self._loop

        def forward(event: SupervisionEvent) -> None:
            # In the publishing supervisor's thread: one hand-over for all watchers.
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody watches
                loop.call_soon_threadsafe(self._receive, subscription, event)

        # Subscribe first, then take the recent events, so that none falls
        # between the two; one in both is dropped when it arrives.
        self._unsubscribe = self._events.subscribe(forward)
        recent = self._events.recent()
        self._recent.extend(recent)
        self._in_snapshot = {id(event): event for event in recent}

    def _unsubscribe_all(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        self._recent.clear()
        self._in_snapshot = {}
        self._pending = []
        self._received = 0

    def _receive(self, subscription: int, event: SupervisionEvent) -> None:
        if subscription != self._subscription or self._unsubscribe is None:
            return  # handed over before the hub unsubscribed
        if self._in_snapshot.pop(id(event), None) is not None:
            return
        self._recent.append(event)
        self._pending.append(_event_frame(event))
        self._received += 1
        if self._flush is None:
            # The first event after a quiet spell goes out at the end of this
            # loop turn; later ones wait for the interval to pass.
            delay_s = max(0.0, self._last_flush + self.flush_interval_s - self._loop.time())
            self._flush = self._loop.call_later(delay_s, self._write_pending)

    def _write_pending(self) -> None:
        self._flush = None
        self._last_flush = self._loop.time()
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        first = self._received - len(pending)
        everything = b"".join(pending)
        self.flushes += 1
        # A copy: a watcher that is dropped may leave while we write.
        for watcher, start in list(self._watchers.items()):
            if start <= first:
                watcher.send(everything)
            elif start < self._received:  # it joined with some of these in its snapshot
                watcher.send(b"".join(pending[start - first :]))
