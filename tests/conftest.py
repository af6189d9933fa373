"""Fixtures shared by every test group."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pykka
import pytest

from chatter.database import EmbeddedPostgres, migrate
from supervision import EventKind, EventStream, Registry, SupervisionEvent, Supervisor


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

    def wait(self, kind: EventKind, child: str | None, timeout_s: float = 5.0) -> SupervisionEvent:
        """The first event of `kind` about `child`, waiting for it if needed."""
        return self.wait_for(lambda e: e.kind is kind and e.child == child, timeout_s)

    def kinds(self, child: str | None = None) -> list[str]:
        """The kinds of the events seen so far, for one child or all."""
        with self._condition:
            return [e.kind.value for e in self.events if child is None or e.child == child]


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    """One embedded PostgreSQL 18 for the whole run (it starts in well under a
    second), migrated; integration and browser tests share it."""
    server = EmbeddedPostgres(Path(tmp_path_factory.mktemp("chatter-data")))
    migrate(server.start())
    yield server
    server.close()


@pytest.fixture
def database(postgres: EmbeddedPostgres) -> str:
    """The conninfo of a migrated database with empty tables."""
    conninfo = postgres.conninfo()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("TRUNCATE messages, users RESTART IDENTITY CASCADE")
    return conninfo


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
    stop_every_actor()  # while the loop still runs them
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)
    loop.close()


def stop_every_actor() -> None:
    """Stop supervisors first, oldest (the roots) first, so that each stops its own
    subtree in order; pykka's stop_all alone would stop children under their
    supervisors' feet and have them restarted."""
    for ref in pykka.ActorRegistry.get_by_class(Supervisor):
        ref.stop(block=True, timeout=5)
    pykka.ActorRegistry.stop_all(block=True, timeout=5)


@pytest.fixture(autouse=True)
def _stop_leftover_actors() -> Iterator[None]:
    """Every test leaves no actor running, even when it fails half-way."""
    yield
    stop_every_actor()
