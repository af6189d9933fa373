"""Fixtures shared by every test group."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import pykka
import pytest

from supervision import EventStream, Registry, SupervisionEvent


class EventLog:
    """Records supervision events and lets a test wait for one, never sleeping."""

    def __init__(self, stream: EventStream) -> None:
        self.events: list[SupervisionEvent] = []
        self._condition = threading.Condition()
        stream.subscribe(self._record)

    def _record(self, event: SupervisionEvent) -> None:
        with self._condition:
            self.events.append(event)
            self._condition.notify_all()

    def wait_for(
        self, predicate: Callable[[SupervisionEvent], bool], timeout_s: float = 5.0
    ) -> SupervisionEvent:
        """The first recorded event matching `predicate`, waiting for it if needed."""
        with self._condition:
            found: list[SupervisionEvent] = []

            def seen() -> bool:
                found[:] = [e for e in self.events if predicate(e)]
                return bool(found)

            if not self._condition.wait_for(seen, timeout_s):
                raise AssertionError(f"no matching event in {timeout_s} s; saw {self.events}")
            return found[0]

    def kinds(self, child: str | None = None) -> list[str]:
        """The kinds of the events seen so far, for one child or all."""
        with self._condition:
            return [e.kind.value for e in self.events if child is None or e.child == child]


@pytest.fixture
def events() -> EventStream:
    return EventStream()


@pytest.fixture
def event_log(events: EventStream) -> EventLog:
    return EventLog(events)


@pytest.fixture
def registry() -> Registry:
    return Registry()


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An asyncio loop running on a thread of its own, for loop actors."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-loop", daemon=True)
    thread.start()
    yield loop
    pykka.ActorRegistry.stop_all(block=True, timeout=5)  # while the loop still runs them
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)
    loop.close()


@pytest.fixture(autouse=True)
def _stop_leftover_actors() -> Iterator[None]:
    """Every test leaves no actor running, even when it fails half-way."""
    yield
    pykka.ActorRegistry.stop_all(block=True, timeout=5)
