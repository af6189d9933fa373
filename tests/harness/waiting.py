"""Waiting, in tests: on an event where there is one (`EventLog` for the
supervision tree, a frame for a client, a future), and by looking again
(`eventually`) only where nothing announces the change: a count kept on the
server's loop, another process, PostgreSQL. Never a fixed sleep."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Awaitable, Callable

from supervision import EventKind, EventStream, SupervisionEvent

__all__ = ["TIMEOUT_S", "EventLog", "eventually"]

TIMEOUT_S = 10.0
"""How long a test waits for anything that should come at once."""

FIRST_LOOK_S = 0.01
LAST_LOOK_S = 0.1
"""`eventually` looks again after 10 ms, then twice as long each time, up to 100 ms."""


async def eventually(
    holds: Callable[[], bool | Awaitable[bool]],
    what: str | Callable[[], str],
    timeout_s: float = TIMEOUT_S,
) -> None:
    """Return once `holds()` (a function or a coroutine function) is true; fail
    after `timeout_s` saying `what` did not happen (a callable `what` is asked
    then, to describe how things stand)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    pause = FIRST_LOOK_S
    while True:
        held = holds()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return
        if loop.time() > deadline:
            described = what() if callable(what) else what
            raise AssertionError(f"not within {timeout_s} s: {described}")
        await asyncio.sleep(pause)
        pause = min(2 * pause, LAST_LOOK_S)


class EventLog:
    """Every supervision event published on a stream from now on, in order; a
    test waits for the one it needs, woken as each is published.

    `events` is the record; the waits block the calling thread (a coroutine
    waits with `reaches`, which leaves its loop free meanwhile)."""

    def __init__(self, stream: EventStream) -> None:
        self.events: list[SupervisionEvent] = []
        self._condition = threading.Condition()  # re-entrant: a wait's test may read the log
        self._unsubscribe = stream.subscribe(self._record)

    def _record(self, event: SupervisionEvent) -> None:
        with self._condition:
            self.events.append(event)
            self._condition.notify_all()

    def close(self) -> None:
        """Stop recording."""
        self._unsubscribe()

    # -- waiting -------------------------------------------------------------------------------

    def wait_until(
        self, holds: Callable[[], bool], what: str, timeout_s: float = TIMEOUT_S
    ) -> None:
        """Return once `holds()`, asked again as each event comes (it may read
        this log); fail after `timeout_s` saying `what`."""
        with self._condition:
            if not self._condition.wait_for(holds, timeout_s):
                raise AssertionError(f"not within {timeout_s} s: {what}; saw {self.events}")

    async def reaches(
        self, holds: Callable[[], bool], what: str, timeout_s: float = TIMEOUT_S
    ) -> None:
        """`wait_until`, for a coroutine: the wait runs off its loop."""
        await asyncio.to_thread(self.wait_until, holds, what, timeout_s)

    def wait_for(
        self, predicate: Callable[[SupervisionEvent], bool], timeout_s: float = 5.0
    ) -> SupervisionEvent:
        """The first recorded event matching `predicate`, waiting for it if needed."""
        self.wait_until(lambda: any(map(predicate, self.events)), "a matching event", timeout_s)
        with self._condition:
            return next(e for e in self.events if predicate(e))

    def wait(self, kind: EventKind, child: str | None, timeout_s: float = 5.0) -> SupervisionEvent:
        """The first event of `kind` about `child`, waiting for it if needed."""
        return self.wait_for(lambda e: e.kind is kind and e.child == child, timeout_s)

    # -- reading -------------------------------------------------------------------------------

    def kinds(self, child: str | None = None) -> list[str]:
        """The kinds of the events seen so far, for one child or all."""
        with self._condition:
            return [e.kind.value for e in self.events if child is None or e.child == child]

    def count(
        self,
        kind: EventKind,
        *,
        child: str | None = None,
        supervisor: str | Callable[[str | None], bool] | None = None,
    ) -> int:
        """How many events of `kind` (about `child`, seen by `supervisor`, an id
        or a test of one such as `chatter.sessions.is_sessions_partition`) so far."""
        seen_by = supervisor if callable(supervisor) else lambda s: s == supervisor
        with self._condition:
            return sum(
                1
                for e in self.events
                if e.kind is kind
                and (child is None or e.child == child)
                and (supervisor is None or seen_by(e.supervisor))
            )

    def restarts(self) -> list[SupervisionEvent]:
        """Every restart, and every supervisor giving up."""
        with self._condition:
            return [e for e in self.events if e.kind in (EventKind.RESTARTED, EventKind.GAVE_UP)]

    def troubles(self) -> list[SupervisionEvent]:
        """Restarts, surrenders, and exits that were crashes or kills."""
        with self._condition:
            return [
                e
                for e in self.events
                if e.kind in (EventKind.RESTARTED, EventKind.GAVE_UP)
                or (
                    e.kind is EventKind.EXITED
                    and (e.reason or "").startswith(("crashed", "killed"))
                )
            ]
