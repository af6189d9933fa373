"""The embedded server, migrations, seeding, index use, and surviving an outage."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, LiteralString

import psycopg
import pytest

from chatter.database import EmbeddedPostgres, migrate, reset, rollback
from chatter.errors import StorageUnavailable
from chatter.persistence import NAME, Persistence, StoreResult
from chatter.persistence_actor import PersistenceActor
from chatter.seed import DEMO_USERS, seed
from supervision import ChildSpec, EventKind, EventStream, Registry, Supervisor, start_link
from tests.harness.waiting import EventLog

TIMEOUT_S = 10


def _names(conninfo: str, query: LiteralString, *params: str) -> set[str]:
    """The first column of every row `query` returns."""
    with psycopg.connect(conninfo) as conn:
        return {row[0] for row in conn.execute(query, params)}


def _tables(conninfo: str) -> set[str]:
    return _names(conninfo, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")


def _columns(conninfo: str, table: str) -> set[str]:
    query = "SELECT column_name FROM information_schema.columns WHERE table_name = %s"
    return _names(conninfo, query, table)


def _constraints(conninfo: str, table: str) -> set[str]:
    query = "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass"
    return _names(conninfo, query, table)


def test_migrations_go_up_down_and_up_again(empty_database: str) -> None:
    migrate(empty_database)
    assert {"users", "messages", "alembic_version"} <= _tables(empty_database)
    assert "token_version" in _columns(empty_database, "users")
    assert "messages_user_id_client_id_key" in _constraints(empty_database, "messages")
    assert {"node_leases", "name_claims"} <= _tables(empty_database)
    assert "posted" in _columns(empty_database, "users")
    assert "ended" in _columns(empty_database, "name_claims")
    rollback(empty_database)
    assert "posted" not in _columns(empty_database, "users")
    assert "ended" not in _columns(empty_database, "name_claims")
    rollback(empty_database)
    assert not {"node_leases", "name_claims"} & _tables(empty_database)
    rollback(empty_database)
    constraints = _constraints(empty_database, "messages")
    assert "messages_client_id_key" in constraints
    assert "messages_user_id_client_id_key" not in constraints
    rollback(empty_database)
    assert "token_version" not in _columns(empty_database, "users")
    rollback(empty_database)
    assert not {"users", "messages"} & _tables(empty_database)
    migrate(empty_database)
    reset(empty_database)
    assert {"users", "messages"} <= _tables(empty_database)


def test_shared_names_go_down_to_one_holder_and_posters_are_marked_going_up(
    empty_database: str,
) -> None:
    migrate(empty_database)
    rollback(empty_database)  # to 0004: no `posted`, one holder per look-alike
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (username, username_key) VALUES ('ann', 'ann'), ('bob', 'bob')"
        )
        conn.execute(
            "INSERT INTO messages (user_id, body) SELECT id, 'hi' FROM users WHERE username = 'ann'"
        )
    migrate(empty_database)
    with psycopg.connect(empty_database, autocommit=True) as conn:
        posted = conn.execute("SELECT username, posted FROM users ORDER BY username").fetchall()
        assert posted == [("ann", True), ("bob", False)]
        conn.execute(
            "INSERT INTO node_leases (lease_id, node_id, expires_at) "
            "VALUES (gen_random_uuid(), 'node-1', now() + interval '1 minute')"
        )
        for session, ended in (("s1", None), ("s2", None), ("s3", "left")):
            conn.execute(
                "INSERT INTO name_claims (look_alike, username_key, username, lease_id, "
                "session_id, ended, claimed_at) SELECT 'ann', 'ann', 'ann', lease_id, %s, %s, "
                "now() + make_interval(secs => %s) FROM node_leases",
                (session, ended, int(session[1])),
            )
    rollback(empty_database)
    with psycopg.connect(empty_database) as conn:
        holders = conn.execute("SELECT look_alike, session_id FROM name_claims").fetchall()
    assert holders == [("ann", "s1")]  # the oldest live claim keeps the name
    assert "ended" not in _columns(empty_database, "name_claims")
    assert "posted" not in _columns(empty_database, "users")


def test_client_ids_per_user_go_down_to_room_wide_and_up_again(empty_database: str) -> None:
    """Migration 0003 with rows the room-wide rule refuses: going down keeps
    every message and the earliest holder of each client_id; up again, the
    same client_id from two users is allowed once more."""
    migrate(empty_database)

    def store(conn: psycopg.Connection[Any], user: str, body: str, client_id: str | None) -> None:
        conn.execute(
            "INSERT INTO messages (user_id, body, client_id) "
            "SELECT id, %s, %s FROM users WHERE username = %s",
            (body, client_id, user),
        )

    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (username, username_key) VALUES ('ann', 'ann'), ('bob', 'bob')"
        )
        store(conn, "bob", "bob x", "x")
        store(conn, "ann", "ann x", "x")
        store(conn, "ann", "ann y", "y")
        store(conn, "bob", "bob none", None)
        with pytest.raises(psycopg.errors.UniqueViolation):
            store(conn, "ann", "ann x again", "x")
    rollback(empty_database, steps=3)  # below 0005, 0004, then 0003
    query = (
        "SELECT m.body, m.client_id FROM messages m JOIN users u ON u.id = m.user_id ORDER BY seq"
    )
    with psycopg.connect(empty_database, autocommit=True) as conn:
        assert conn.execute(query).fetchall() == [
            ("bob x", "x"),
            ("ann x", None),
            ("ann y", "y"),
            ("bob none", None),
        ]
        with pytest.raises(psycopg.errors.UniqueViolation):
            store(conn, "ann", "ann x again", "x")  # room-wide again
    migrate(empty_database)
    with psycopg.connect(empty_database, autocommit=True) as conn:
        store(conn, "ann", "ann x again", "x")
        assert len(conn.execute(query).fetchall()) == 5


def test_seeding_twice_adds_messages_but_not_users(database: str) -> None:
    reports: list[tuple[int, int]] = []
    seed(database, 250_000, progress=lambda done, total: reports.append((done, total)))
    seed(database, 10)
    with psycopg.connect(database) as conn:
        users = conn.execute("SELECT count(*) FROM users").fetchone()
        messages = conn.execute("SELECT count(*), min(seq), max(seq) FROM messages").fetchone()
    assert users == (len(DEMO_USERS),)
    assert messages == (250_010, 1, 250_010)
    with psycopg.connect(database) as conn:  # they posted: welcomes list them (#17)
        posters = conn.execute("SELECT count(*) FROM users WHERE posted").fetchone()
    assert posters == (len(DEMO_USERS),)
    assert reports == [(100_000, 250_000), (200_000, 250_000), (250_000, 250_000)]


def _plan(conn: psycopg.Connection[Any], query: str) -> str:
    rows = conn.execute(f"EXPLAIN {query}").fetchall()
    return "\n".join(row[0] for row in rows)


@pytest.mark.slow
def test_reads_use_indexes_with_a_million_messages(empty_database: str) -> None:
    migrate(empty_database)
    seed(empty_database, 1_000_000)
    with psycopg.connect(empty_database) as conn:
        conn.execute("ANALYZE")
        join = "FROM messages m JOIN users u ON u.id = m.user_id"
        newest = _plan(conn, f"SELECT m.seq {join} ORDER BY m.seq DESC LIMIT 501")
        before = _plan(
            conn, f"SELECT m.seq {join} WHERE m.seq < 500000 ORDER BY m.seq DESC LIMIT 101"
        )
        after = _plan(conn, f"SELECT m.seq {join} WHERE m.seq > 995000 ORDER BY m.seq LIMIT 5001")
    for plan in (newest, before, after):
        assert "Index Scan" in plan, plan
        assert "messages_seq_key" in plan, plan
        assert "Seq Scan on messages" not in plan, plan


# -- an outage ----------------------------------------------------------------------------


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    """A server of this test's own, to stop and start without disturbing others."""
    server = EmbeddedPostgres(tmp_path / "data")
    migrate(server.start())
    yield server
    server.close()


def _store_until_stored(
    persistence: Persistence, user_id: Any, body: str, client_id: str, deadline_s: float
) -> tuple[StoreResult, int]:
    """Store as a client would: on `unavailable`, retry with the same client_id
    after a short backoff. Returns the result and how many attempts failed."""
    failures = 0
    give_up = time.monotonic() + deadline_s
    while True:
        try:
            return persistence.store(user_id, "alice", body, client_id).get(timeout=TIMEOUT_S), (
                failures
            )
        except StorageUnavailable:
            failures += 1
            if time.monotonic() > give_up:
                raise
            time.sleep(0.1)  # the client's retry backoff, as the browser's would be


def test_stores_fail_cleanly_while_the_database_is_down_and_work_after(
    own_server: EmbeddedPostgres, events: EventStream, event_log: EventLog
) -> None:
    registry = Registry()
    conninfo = own_server.conninfo()
    spec = ChildSpec(NAME, lambda: PersistenceActor.start(conninfo), name=NAME)
    root = start_link(Supervisor.child_spec("root", [spec], registry=registry, events=events))
    persistence = Persistence(registry)
    alice = persistence.upsert_user("alice").get(timeout=TIMEOUT_S)
    persistence.store(alice.id, "alice", "before").get(timeout=TIMEOUT_S)

    own_server.stop(mode="immediate")
    started = time.monotonic()
    with pytest.raises(StorageUnavailable):
        persistence.store(alice.id, "alice", "during", "c-during").get(timeout=TIMEOUT_S)
    assert time.monotonic() - started < 5.0  # bounded: a few seconds at most
    with pytest.raises(StorageUnavailable):
        persistence.newest().get(timeout=TIMEOUT_S)

    own_server.start_again()
    back = time.monotonic()
    result, _ = _store_until_stored(persistence, alice.id, "during", "c-during", deadline_s=10)
    assert time.monotonic() - back < 5.0
    assert not result.duplicate
    again, _ = _store_until_stored(persistence, alice.id, "during", "c-during", deadline_s=10)
    assert again.duplicate
    assert again.message.id == result.message.id
    bodies = [m.body for m in persistence.newest().get(timeout=TIMEOUT_S).messages]
    assert bodies == ["before", "during"]
    assert not [e for e in event_log.events if e.kind is EventKind.RESTARTED]  # no crash loop
    root.stop(timeout=TIMEOUT_S)
