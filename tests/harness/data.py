"""What tests put straight into the database, and read back from it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from chatter.queries import MESSAGES_CHANNEL
from chatter.usernames import username_key

__all__ = [
    "Post",
    "commit_as_another_node",
    "seed_messages",
    "seed_user",
    "seed_users",
    "stored",
    "user_names",
]

_UPSERT_USER = (
    "INSERT INTO users (username, username_key, last_seen_at, posted) "
    "VALUES (%s, %s, now() - interval '1 hour', %s) "
    "ON CONFLICT (username_key) DO UPDATE SET updated_at = now(), "
    "posted = users.posted OR EXCLUDED.posted RETURNING id"
)
"""A user who was last seen an hour ago (offline now), and has posted or not."""


@dataclass(frozen=True)
class Post:
    """A post as `chatter.queries.insert_batch` takes it (a `NewPost`)."""

    user_id: uuid.UUID
    username: str
    body: str
    client_id: str | None


def seed_user(conninfo: str, username: str) -> uuid.UUID:
    """The id of `username`, an offline user, made if new."""
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(_UPSERT_USER, (username, username_key(username), True)).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def seed_users(conninfo: str, usernames: Sequence[str], *, posted: bool = True) -> None:
    """Users who joined once and are offline now: who took part (`posted`,
    as welcomes list them), or names typed and let go without a word."""
    with psycopg.connect(conninfo) as conn:
        for username in usernames:
            conn.execute(_UPSERT_USER, (username, username_key(username), posted))


def seed_messages(
    conninfo: str, username: str, bodies: Sequence[str], at: datetime | None = None
) -> int:
    """Store `bodies`, in order, as messages of `username` (an offline user,
    made if new), sent `at` a time (default: now), and notify running servers
    as a commit does: their rooms read them from the log soon after (a
    welcome holds them once `ChatServer.heard` says so). The last seq."""
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(_UPSERT_USER, (username, username_key(username), True)).fetchone()
        assert row is not None
        columns = "user_id, body" + (", inserted_at" if at is not None else "")
        with conn.cursor().copy(f"COPY messages ({columns}) FROM STDIN") as copy:
            for body in bodies:
                copy.write_row((row[0], body) if at is None else (row[0], body, at))
        last = conn.execute(
            "SELECT pg_notify(%s, max(seq)::text), max(seq) FROM messages", (MESSAGES_CHANNEL,)
        ).fetchone()
    assert last is not None
    return int(last[1])


def commit_as_another_node(conninfo: str, username: str, bodies: Sequence[str]) -> list[int]:
    """Commit `bodies` in one batch as another node sharing the database would
    (the same statement, so the same lock and notification); their seqs."""
    from chatter.queries import insert_batch  # the code under test, not a test double

    user_id = seed_user(conninfo, username)
    with psycopg.connect(conninfo) as conn:
        results = insert_batch(conn, [Post(user_id, username, body, None) for body in bodies])
    return [result.message.seq for result in results]


def stored(conninfo: str, *columns: str) -> list[Any]:
    """`columns` of every stored message with its user's (``username``,
    ``body``, ``client_id``, ``seq``...), in seq order: a value each for one
    column, a tuple each for more."""
    query = sql.SQL(
        "SELECT {} FROM messages JOIN users ON users.id = messages.user_id ORDER BY messages.seq"
    ).format(sql.SQL(", ").join(map(sql.Identifier, columns)))
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(query).fetchall()
    return [row[0] for row in rows] if len(columns) == 1 else [tuple(row) for row in rows]


def user_names(conninfo: str) -> list[str]:
    """Every user ever recorded, by name, sorted."""
    with psycopg.connect(conninfo) as conn:
        return [row[0] for row in conn.execute("SELECT username FROM users ORDER BY username")]
