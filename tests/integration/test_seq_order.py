"""`seq` becomes visible in commit order, across processes: what lets several
nodes read the `messages` table as one log (`seq > last_seen`) and never skip
a message. Two processes insert batches at once, as two nodes' persistence
actors would; a reader polls for `seq > last` meanwhile, and must never see a
seq at or below one it has already seen appear later."""

from __future__ import annotations

import multiprocessing
import uuid
from multiprocessing.synchronize import Event

import psycopg

from chatter import queries
from tests.harness.data import Post, seed_user

WRITERS = 2
BATCHES = 150
"""Batches each writer commits."""
BATCH_SIZE = 20
TIMEOUT_S = 10.0


def _write(conninfo: str, writer: int, user_id: uuid.UUID, start: Event) -> None:
    """In a process of its own: insert `BATCHES` batches, one transaction each."""
    start.wait(30)
    with psycopg.connect(conninfo) as conn:
        for batch in range(BATCHES):
            posts = [
                Post(user_id, "writer", f"w{writer} b{batch} p{n}", f"w{writer}-{batch}-{n}")
                for n in range(BATCH_SIZE)
            ]
            queries.insert_batch(conn, posts)


def test_two_writing_processes_make_seq_visible_in_commit_order(database: str) -> None:
    writer_id = seed_user(database, "writer")
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    writers = [
        context.Process(target=_write, args=(database, n, writer_id, start)) for n in range(WRITERS)
    ]
    for writer in writers:
        writer.start()

    seen: set[int] = set()
    late: list[tuple[int, int]] = []
    """(seq, the highest seen before it): a seq that became visible after a higher one."""
    with psycopg.connect(database, autocommit=True) as reader:

        def read() -> None:
            rows = reader.execute("SELECT seq FROM messages").fetchall()
            fresh = {seq for (seq,) in rows} - seen
            highest = max(seen, default=0)
            late.extend((seq, highest) for seq in sorted(fresh) if seq < highest)
            seen.update(fresh)

        start.set()
        while any(writer.is_alive() for writer in writers):
            read()
        for writer in writers:
            writer.join(60)
            assert writer.exitcode == 0
        read()

    assert len(seen) == WRITERS * BATCHES * BATCH_SIZE
    assert late == []  # without the seq lock in insert_batch, a few hundred of them


def test_each_committed_batch_notifies_its_highest_seq(database: str) -> None:
    """The wake-up for other nodes: one notification per batch that stored
    anything, at its commit, carrying the batch's highest seq; none for a batch
    of repeats only."""
    ann = seed_user(database, "ann")
    with (
        psycopg.connect(database, autocommit=True) as listener,
        psycopg.connect(database) as writer,
    ):
        listener.execute(f"LISTEN {queries.MESSAGES_CHANNEL}")
        first = queries.insert_batch(writer, [Post(ann, "ann", "one", "c-1")])
        second = queries.insert_batch(
            writer, [Post(ann, "ann", "two", "c-2"), Post(ann, "ann", "three", None)]
        )
        repeat = queries.insert_batch(writer, [Post(ann, "ann", "one", "c-1")])
        queries.insert_batch(writer, [Post(ann, "ann", "four", "c-4")])  # the end marker

        payloads = []
        for notify in listener.notifies(timeout=TIMEOUT_S):
            assert notify.channel == queries.MESSAGES_CHANNEL
            payloads.append(int(notify.payload))
            if len(payloads) == 3:
                break

    assert repeat[0].duplicate
    assert payloads[:2] == [first[0].message.seq, max(r.message.seq for r in second)]
    assert payloads[2] > payloads[1]  # the end marker's: nothing came for the repeat
