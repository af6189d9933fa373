"""The stream of supervision events: what happened in the tree, as it happened.

Each supervisor publishes to an `EventStream` every start, exit, restart and
surrender of its children as a `SupervisionEvent`; whoever subscribed hears of
it at once, in order. The live supervision page, the metrics and the fault
tests are its observers, and tests wait on events rather than sleep.
"""

from __future__ import annotations

import collections
import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["EventKind", "EventStream", "SupervisionEvent"]

logger = logging.getLogger(__name__)


class EventKind(enum.Enum):
    """What happened to a child."""

    STARTED = "started"
    EXITED = "exited"
    RESTARTED = "restarted"
    GAVE_UP = "gave_up"
    """The supervisor itself exceeded its restart intensity (``child`` is None)."""


@dataclass(frozen=True)
class SupervisionEvent:
    """One thing that happened in the tree."""

    time: float
    """Wall-clock time, seconds since the epoch."""
    supervisor: str
    """The id of the supervisor that saw it."""
    child: str | None
    """The child it happened to; None when it is about the supervisor itself."""
    kind: EventKind
    reason: str | None = None
    """For an exit, why (``normal``, ``shutdown``, ``killed``, ``crashed: ...``);
    for giving up, the intensity that was exceeded."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "supervisor": self.supervisor,
            "child": self.child,
            "kind": self.kind.value,
            "reason": self.reason,
        }


Subscriber = Callable[[SupervisionEvent], None]


class EventStream:
    """Fan-out of supervision events to subscribers, with a short memory.

    Subscribers are called in the thread of the supervisor that publishes, in
    the order events happen; they must be quick and must not block (tell an
    actor, or hand over with ``call_soon_threadsafe``). A subscriber that raises
    is logged and kept. Several supervisors publish from threads of their own
    (the partitions of a `PartitionSupervisor`, say): one event is handed to
    every subscriber before the next is recorded, so every subscriber sees the
    order `recent` keeps.
    """

    def __init__(self, keep: int = 200, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._publishing = threading.RLock()
        """Held from recording an event to handing it to the last subscriber."""
        self._subscribers: list[Subscriber] = []
        self._recent: collections.deque[SupervisionEvent] = collections.deque(maxlen=keep)

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Start calling `subscriber` with every event; returns the unsubscribe."""
        with self._lock:
            self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            with self._lock:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)

        return unsubscribe

    def recent(self) -> list[SupervisionEvent]:
        """The last events, oldest first (as many as `keep`)."""
        with self._lock:
            return list(self._recent)

    def publish(
        self,
        supervisor: str,
        child: str | None,
        kind: EventKind,
        reason: str | None = None,
    ) -> SupervisionEvent:
        with self._publishing:
            event = SupervisionEvent(self.clock(), supervisor, child, kind, reason)
            with self._lock:
                self._recent.append(event)
                subscribers = list(self._subscribers)
            for subscriber in subscribers:
                try:
                    subscriber(event)
                except Exception:
                    logger.exception("Supervision event subscriber %r failed", subscriber)
        return event
