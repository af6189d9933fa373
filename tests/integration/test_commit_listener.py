"""The commit listener on a real PostgreSQL: a wake-up for each committed
batch, a tick when nothing comes, and, when its connection is cut, a new
connection that listens again and wakes its recipient to catch up."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from chatter import queries
from chatter.commit_listener import CommitListener, Wake
from supervision import ChildSpec, EventKind, EventStream, Supervisor, start_link
from tests.harness.cluster import cut_listeners
from tests.harness.data import Post, seed_user
from tests.harness.waiting import TIMEOUT_S, EventLog


class Wakes:
    """A recipient that keeps what it is told, for the test thread to take."""

    def __init__(self) -> None:
        self._told: queue.Queue[Any] = queue.Queue()

    def tell(self, message: Any) -> None:
        self._told.put(message)

    def next(self) -> Wake:
        wake = self._told.get(timeout=TIMEOUT_S)
        assert isinstance(wake, Wake)
        return wake

    def until_seq(self, seq: int) -> Wake:
        """The first wake-up naming `seq` or later (ticks before it are skipped)."""
        while True:
            wake = self.next()
            if wake.seq is not None and wake.seq >= seq:
                return wake


@pytest.fixture
def wakes() -> Wakes:
    return Wakes()


@pytest.fixture
def listening(database: str, wakes: Wakes, events: EventStream) -> Iterator[None]:
    """A listener under a supervisor, telling `wakes`; its first wake-up taken."""
    spec = ChildSpec("listener", lambda: CommitListener.start(database, wakes, tick_s=60))
    root = start_link(Supervisor.child_spec("root", [spec], events=events))
    assert wakes.next() == Wake(None)  # on start: catch up on what came before
    yield
    root.stop(timeout=TIMEOUT_S)


def _store(conninfo: str, body: str) -> int:
    """Commit one message, as a node's persistence actor does; its seq."""
    post = Post(seed_user(conninfo, "ann"), "ann", body, None)
    with psycopg.connect(conninfo) as conn:
        (result,) = queries.insert_batch(conn, [post])
    return result.message.seq


@pytest.mark.usefixtures("listening")
def test_each_commit_wakes_the_recipient_with_its_seq(database: str, wakes: Wakes) -> None:
    first = _store(database, "one")
    assert wakes.next() == Wake(first)
    second = _store(database, "two")
    assert wakes.next() == Wake(second)


def test_with_nothing_committed_the_recipient_is_woken_on_the_tick(
    database: str, wakes: Wakes, events: EventStream
) -> None:
    spec = ChildSpec("listener", lambda: CommitListener.start(database, wakes, tick_s=0.05))
    root = start_link(Supervisor.child_spec("root", [spec], events=events))
    try:
        assert [wakes.next() for _ in range(3)] == [Wake(None)] * 3
    finally:
        root.stop(timeout=TIMEOUT_S)


@pytest.mark.usefixtures("listening")
def test_a_cut_connection_is_made_again_and_the_recipient_woken_to_catch_up(
    database: str, wakes: Wakes, event_log: EventLog
) -> None:
    assert cut_listeners(database) == 1

    assert wakes.next() == Wake(None)  # listening again: what committed meanwhile
    seq = _store(database, "after the cut")
    assert wakes.until_seq(seq) == Wake(seq)
    # A lost connection is an outage, not a crash: no restart was spent on it.
    assert not [e for e in event_log.events if e.kind is not EventKind.STARTED]


@pytest.mark.usefixtures("listening")
def test_a_notification_that_is_not_a_seq_wakes_nobody(database: str, wakes: Wakes) -> None:
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("SELECT pg_notify(%s, 'not a seq')", (queries.MESSAGES_CHANNEL,))
    seq = _store(database, "after the stray one")
    assert wakes.next() == Wake(seq)  # nothing came for the stray notification
