"""The persistence actor on a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import re
import threading
from typing import Any

import psycopg
import pykka
import pytest

from chatter.errors import InvalidBody, StorageError
from chatter.persistence import NAME, Persistence, Store, StoreResult, TouchUser, User
from chatter.persistence_actor import PersistenceActor
from chatter.reply import FutureRecipient
from supervision import ChildSpec, Registry, Supervisor, start_link
from tests.harness.waiting import eventually

TIMEOUT_S = 10


@pytest.fixture
def alice(persistence: Persistence) -> User:
    return persistence.upsert_user("alice").get(timeout=TIMEOUT_S)


def _count(conninfo: str) -> int:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT count(*) FROM messages").fetchone()
    assert row is not None
    return int(row[0])


def test_a_stored_message_comes_back_with_id_seq_and_time(
    persistence: Persistence, alice: User
) -> None:
    result = persistence.store(alice.id, "alice", "  hello  ", "c-1").get(timeout=TIMEOUT_S)
    assert not result.duplicate
    message = result.message
    assert (message.username, message.body, message.client_id) == ("alice", "hello", "c-1")
    assert message.seq >= 1
    assert message.inserted_at.tzinfo is not None
    page = persistence.newest().get(timeout=TIMEOUT_S)
    assert page.messages == (message,)
    assert not page.has_more
    wire = message.to_wire()
    assert wire["id"] == str(message.id)
    assert wire["inserted_at"].endswith("Z")


def test_a_repeated_client_id_is_stored_once_and_returns_the_stored_message(
    persistence: Persistence, alice: User, database: str
) -> None:
    first = persistence.store(alice.id, "alice", "once", "same").get(timeout=TIMEOUT_S)
    again = persistence.store(alice.id, "alice", "twice?", "same").get(timeout=TIMEOUT_S)
    assert again.duplicate
    assert again.message == first.message
    assert _count(database) == 1


def test_duplicates_inside_one_batch_are_stored_once(
    persistence: Persistence, alice: User, database: str
) -> None:
    replies = [persistence.store(alice.id, "alice", f"try {n}", "dup") for n in range(20)]
    results = [reply.get(timeout=TIMEOUT_S) for reply in replies]
    assert sum(not r.duplicate for r in results) == 1
    assert len({r.message.id for r in results}) == 1
    assert _count(database) == 1


def test_the_same_client_id_from_another_user_is_another_message(
    persistence: Persistence, alice: User, database: str
) -> None:
    bob = persistence.upsert_user("bob").get(timeout=TIMEOUT_S)
    alices = persistence.store(alice.id, "alice", "from alice", "x").get(timeout=TIMEOUT_S)
    bobs = persistence.store(bob.id, "bob", "from bob", "x").get(timeout=TIMEOUT_S)
    assert not alices.duplicate
    assert not bobs.duplicate
    assert (bobs.message.username, bobs.message.body) == ("bob", "from bob")
    assert bobs.message.id != alices.message.id
    assert persistence.store(alice.id, "alice", "?", "x").get(timeout=TIMEOUT_S) == (
        StoreResult(alices.message, duplicate=True)
    )
    assert persistence.store(bob.id, "bob", "?", "x").get(timeout=TIMEOUT_S) == (
        StoreResult(bobs.message, duplicate=True)
    )
    assert _count(database) == 2


def test_repeats_inside_one_batch_resolve_to_their_own_users_message(
    persistence: Persistence, alice: User, database: str
) -> None:
    """Interleaved, unanswered stores land in few batches: in each, a user's
    repeats resolve to that user's one stored message, never another's."""
    bob = persistence.upsert_user("bob").get(timeout=TIMEOUT_S)
    users = [(alice, "alice"), (bob, "bob")]
    replies = [
        (name, persistence.store(user.id, name, f"{name} {n}", "same"))
        for n in range(20)
        for user, name in users
    ]
    results = [(name, reply.get(timeout=TIMEOUT_S)) for name, reply in replies]
    for user_name in ("alice", "bob"):
        own = [result for name, result in results if name == user_name]
        assert sum(not result.duplicate for result in own) == 1
        assert {result.message for result in own} == {own[0].message}
        assert (own[0].message.username, own[0].message.body) == (user_name, f"{user_name} 0")
    assert _count(database) == 2


def test_concurrent_stores_are_group_committed(
    tree: tuple[Persistence, pykka.ActorRef[Any]], alice: User, database: str
) -> None:
    persistence, root = tree
    replies = [persistence.store(alice.id, "alice", f"m{n}") for n in range(300)]
    seqs = [reply.get(timeout=TIMEOUT_S).message.seq for reply in replies]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 300
    actor = pykka.ActorRegistry.get_by_class(PersistenceActor)[0]
    batches: int = actor.proxy().batches.get(timeout=TIMEOUT_S)
    assert batches < 300
    assert _count(database) == 300
    assert root.is_alive()


def test_unicode_bodies_round_trip_exactly(persistence: Persistence, alice: User) -> None:
    bodies = [
        "emoji 👩🏽‍💻🎉",
        "שלום עולם",
        "مرحبا",
        "mixed עברית and English",
        "tab\tand\nnewline",
    ]
    for body in bodies:
        persistence.store(alice.id, "alice", body).get(timeout=TIMEOUT_S)
    stored = [m.body for m in persistence.newest().get(timeout=TIMEOUT_S).messages]
    assert stored == bodies


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("nul\x00byte", "U+0000"),
        ("lone \ud800 surrogate", "unpaired surrogate"),
        ("x" * 2001, "at most 2000"),
        ("   \n\t ", "empty"),
        ("bell\x07", "U+0007"),
        (42, "must be a string"),
    ],
)
def test_bad_bodies_are_refused_before_any_sql(
    persistence: Persistence, alice: User, database: str, body: Any, reason: str
) -> None:
    with pytest.raises(InvalidBody, match=re.escape(reason)):
        persistence.store(alice.id, "alice", body)
    assert _count(database) == 0


def test_a_body_the_database_refuses_fails_alone_and_the_actor_lives(
    tree: tuple[Persistence, pykka.ActorRef[Any]], alice: User, database: str
) -> None:
    persistence, root = tree
    actor = pykka.ActorRegistry.get_by_class(PersistenceActor)[0]
    bad = FutureRecipient()
    # Straight to the actor, past the client's validation: a NUL reaches SQL.
    actor.tell(Store(alice.id, "alice", "bad\x00", None, reply_to=bad))
    good = persistence.store(alice.id, "alice", "good")
    with pytest.raises(StorageError):
        bad.future.get(timeout=TIMEOUT_S)
    assert good.get(timeout=TIMEOUT_S).message.body == "good"
    assert actor.is_alive()
    assert root.is_alive()


def test_a_stop_commits_the_stores_queued_before_it(alice: User, database: str) -> None:
    actor = PersistenceActor.start(database)
    answers = [FutureRecipient() for _ in range(3)]
    with psycopg.connect(database) as holder:
        # Hold alice's row so that the actor's next write waits on it; what is
        # told meanwhile queues up in its inbox, in order, ahead of the stop.
        holder.execute("SELECT 1 FROM users WHERE id = %s FOR UPDATE", (alice.id,))
        actor.tell(TouchUser(alice.id))
        asyncio.run(eventually(lambda: _lock_waits(database) > 0, "the actor waits on the row"))
        for n, answer in enumerate(answers):
            actor.tell(Store(alice.id, "alice", f"queued {n}", None, reply_to=answer))
        stopped = actor.stop(block=False)
    stopped.get(timeout=TIMEOUT_S)
    stored = [answer.future.get(timeout=TIMEOUT_S) for answer in answers]
    assert [s.result.message.body for s in stored] == ["queued 0", "queued 1", "queued 2"]
    assert _count(database) == 3


def _lock_waits(conninfo: str) -> int:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()
    assert row is not None
    return int(row[0])


# -- cursors ---------------------------------------------------------------------------


def test_cursors_on_an_empty_table(persistence: Persistence) -> None:
    for page in (
        persistence.newest().get(timeout=TIMEOUT_S),
        persistence.before(1).get(timeout=TIMEOUT_S),
        persistence.after(0).get(timeout=TIMEOUT_S),
    ):
        assert page.messages == ()
        assert not page.has_more


def _fill(database: str, user: User, count: int) -> None:
    with (
        psycopg.connect(database) as conn,
        conn.cursor().copy("COPY messages (user_id, body) FROM STDIN") as copy,
    ):
        for n in range(count):
            copy.write_row((user.id, f"m{n + 1}"))


@pytest.mark.parametrize(("count", "has_more"), [(499, False), (500, False), (501, True)])
def test_newest_500_says_whether_older_ones_exist(
    persistence: Persistence, alice: User, database: str, count: int, has_more: bool
) -> None:
    _fill(database, alice, count)
    page = persistence.newest(500).get(timeout=TIMEOUT_S)
    assert len(page.messages) == min(count, 500)
    assert page.has_more is has_more
    assert page.messages[-1].body == f"m{count}"
    seqs = [m.seq for m in page.messages]
    assert seqs == sorted(seqs)


def test_pages_before_walk_back_to_the_first_message(
    persistence: Persistence, alice: User, database: str
) -> None:
    _fill(database, alice, 250)
    newest = persistence.newest(100).get(timeout=TIMEOUT_S)
    bodies = [m.body for m in newest.messages]
    cursor, has_more = newest.messages[0].seq, newest.has_more
    while has_more:
        page = persistence.before(cursor, 100).get(timeout=TIMEOUT_S)
        bodies = [m.body for m in page.messages] + bodies
        cursor, has_more = page.messages[0].seq, page.has_more
    assert bodies == [f"m{n}" for n in range(1, 251)]
    first = persistence.before(cursor).get(timeout=TIMEOUT_S)
    assert first.messages == ()
    assert not first.has_more


def test_after_the_last_message_there_is_nothing_and_after_is_bounded(
    persistence: Persistence, alice: User, database: str
) -> None:
    _fill(database, alice, 30)
    everything = persistence.after(0).get(timeout=TIMEOUT_S)
    assert [m.body for m in everything.messages] == [f"m{n}" for n in range(1, 31)]
    last = everything.messages[-1].seq
    assert persistence.after(last).get(timeout=TIMEOUT_S).messages == ()
    bounded = persistence.after(0, limit=10).get(timeout=TIMEOUT_S)
    assert len(bounded.messages) == 10
    assert bounded.has_more


# -- users --------------------------------------------------------------------------------


def test_a_name_in_another_case_is_the_same_user(persistence: Persistence) -> None:
    first = persistence.upsert_user("Alice").get(timeout=TIMEOUT_S)
    again = persistence.upsert_user("ALICE").get(timeout=TIMEOUT_S)
    assert again.id == first.id
    assert again.username == "ALICE"
    wide = persistence.upsert_user("Ａｌｉｃｅ").get(timeout=TIMEOUT_S)  # noqa: RUF001
    assert wide.id == first.id


def test_recent_users_are_posters_most_recent_first_with_the_total(
    persistence: Persistence,
) -> None:
    for name in ["ann", "bob", "cy"]:
        user = persistence.upsert_user(name).get(timeout=TIMEOUT_S)
        persistence.store(user.id, name, f"hi from {name}").get(timeout=TIMEOUT_S)
    persistence.upsert_user("dee").get(timeout=TIMEOUT_S)  # typed, never posted
    persistence.upsert_user("ann").get(timeout=TIMEOUT_S)
    page = persistence.recent_users(2).get(timeout=TIMEOUT_S)
    assert [u.username for u in page.users] == ["ann", "cy"]
    assert page.total == 3  # dee is not counted: not posted, not online
    assert all(u.posted for u in page.users)


# -- seq in commit order -------------------------------------------------------------------


def test_a_reader_following_seq_never_skips_a_message_under_concurrent_writers(
    database: str, alice: User
) -> None:
    """Two persistence actors (as two nodes would) and many writing threads; a
    reader that keeps asking for everything after the last seq it saw must end
    up with every message: seq becomes visible in commit order."""
    registry = Registry()
    nodes = [
        ChildSpec(f"node{n}", lambda: PersistenceActor.start(database), name=f"node{n}")
        for n in range(2)
    ]
    root = start_link(Supervisor.child_spec("root", nodes, registry=registry))
    writers = [Persistence(registry, f"node{n}") for n in range(2)]
    reader = Persistence(registry, "node0")
    per_thread, threads = 60, 8
    done = threading.Event()
    seen: list[int] = []

    def write(n: int) -> None:
        node = writers[n % 2]
        replies = [node.store(alice.id, "alice", f"w{n}-{k}") for k in range(per_thread)]
        for reply in replies:
            reply.get(timeout=TIMEOUT_S)

    def follow() -> None:
        last = 0
        while True:
            finished = done.is_set()
            page = reader.after(last).get(timeout=TIMEOUT_S)
            seen.extend(m.seq for m in page.messages)
            if page.messages:
                last = page.messages[-1].seq
            if finished and not page.messages:
                return

    follower = threading.Thread(target=follow)
    follower.start()
    workers = [threading.Thread(target=write, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(TIMEOUT_S * 3)
    done.set()
    follower.join(TIMEOUT_S * 3)
    root.stop(timeout=TIMEOUT_S)

    with psycopg.connect(database) as conn:
        stored = [row[0] for row in conn.execute("SELECT seq FROM messages ORDER BY seq")]
    assert len(stored) == per_thread * threads
    assert seen == stored


def test_seq_advisory_lock_is_held_until_commit(database: str, alice: User) -> None:
    """While one writer holds the seq lock, another writer's insert waits for it."""
    with psycopg.connect(database) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (0x63686174,))
        registry = Registry()
        spec = ChildSpec(NAME, lambda: PersistenceActor.start(database), name=NAME)
        root = start_link(Supervisor.child_spec("root", [spec], registry=registry))
        reply = Persistence(registry).store(alice.id, "alice", "waits")
        with pytest.raises(pykka.Timeout):
            reply.get(timeout=0.3)
        holder.rollback()
        assert reply.get(timeout=TIMEOUT_S).message.body == "waits"
        root.stop(timeout=TIMEOUT_S)
