"""The SQL: every statement Chatter runs on its users and messages, and the
records they return.

Each function takes an open connection and runs on whatever thread holds it
(the persistence actor's writer, one of its readers, the seed command); none
keeps state. Writers of messages take the ``seq`` advisory lock
(`SEQ_LOCK_KEY`) from their insert to their commit, so that ``seq`` becomes
visible in commit order even with several writers (migration 0001).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import psycopg

from chatter.messages import Page, StoredMessage
from chatter.usernames import username_key

__all__ = [
    "MAX_AFTER",
    "MESSAGES_CHANNEL",
    "PEOPLE_COUNT",
    "SEQ_LOCK_KEY",
    "Joined",
    "NewPost",
    "StoreResult",
    "User",
    "UsersPage",
    "after",
    "before",
    "check",
    "insert_batch",
    "newest",
    "recent_users",
    "touch_user",
    "upsert_user",
    "user_by_key",
]

SEQ_LOCK_KEY = 0x63686174  # "chat"
"""The advisory lock every writer of messages holds from its insert to its commit."""

MESSAGES_CHANNEL = "chatter_messages"
"""The channel each committed batch notifies, with its highest seq as the
payload: a wake-up for the nodes sharing the database, which then read the
messages table (the log) after the last seq they have."""

PEOPLE_COUNT = """
SELECT count(*) FROM users u
WHERE u.posted OR u.username_key IN (
    SELECT c.username_key FROM name_claims c JOIN node_leases l USING (lease_id)
    WHERE c.confirmed AND c.ended IS NULL AND l.expires_at > now())
"""
"""The people a welcome lists and counts: everyone who has posted, and whoever
is online on any node (`chatter.node_queries`' claims) without having posted."""

MAX_AFTER = 5000
"""The most messages one `after` read returns."""


# -- records ------------------------------------------------------------------------------


class NewPost(Protocol):
    """A message to insert: its author, and a body and client_id already valid."""

    @property
    def user_id(self) -> uuid.UUID: ...
    @property
    def username(self) -> str: ...
    @property
    def body(self) -> str: ...
    @property
    def client_id(self) -> str | None: ...


@dataclass(frozen=True)
class StoreResult:
    """A committed message, and whether the same user had already stored it
    under its client_id (a client_id is scoped to its poster: the same one
    from another user is another message)."""

    message: StoredMessage
    duplicate: bool


@dataclass(frozen=True)
class User:
    """A person who has joined at least once."""

    id: uuid.UUID
    username: str
    key: str
    last_seen_at: datetime
    token_version: int = 0
    """Identity tokens carry it; Leave bumps it, revoking the earlier ones."""
    posted: bool = False
    """Whether they have posted at least once: welcomes list only those who
    did, and whoever is online (issue #17)."""


@dataclass(frozen=True)
class Joined:
    """A user recorded as in use, and the people count with them (everyone
    who posted, and whoever is online, they included): the count a presence
    frame carries when someone joins."""

    user: User
    total_users: int


@dataclass(frozen=True)
class UsersPage:
    """The most recently active users who posted, and the people count:
    everyone who posted and whoever is online (`node_queries.PEOPLE_COUNT`)."""

    users: tuple[User, ...]
    total: int


# -- writes -------------------------------------------------------------------------------

_MESSAGE_COLUMNS = "m.id, m.seq, u.username, m.body, m.inserted_at, m.client_id"
_USER_COLUMNS = "id, username, username_key, last_seen_at, token_version, posted"

# One statement, run as a transaction of its own: one round trip per batch.
# It takes the seq lock before any row draws its seq, since every row it
# inserts is a row of the join with `seq_lock`, and holds it to its commit.
# When it inserts anything, it notifies `MESSAGES_CHANNEL` with the batch's
# highest seq, delivered to listeners at the commit (the join with `woken` is
# what makes that part run). It marks the authors of a first post as having
# posted (`marked`: a data-modifying CTE runs whether read or not; it writes
# only on a user's first post, so the message and the mark commit together).
_INSERT_BATCH = """
WITH seq_lock AS MATERIALIZED (SELECT pg_advisory_xact_lock(%s)),
inserted AS (
    INSERT INTO messages (id, user_id, body, client_id, inserted_at)
    SELECT t.id, t.user_id, t.body, t.client_id, clock_timestamp()
    FROM seq_lock,
         unnest(%s::uuid[], %s::uuid[], %s::text[], %s::text[])
         WITH ORDINALITY AS t(id, user_id, body, client_id, n)
    ORDER BY t.n
    ON CONFLICT (user_id, client_id) DO NOTHING
    RETURNING id, seq, inserted_at, user_id
),
marked AS (
    UPDATE users SET posted = true
    WHERE id IN (SELECT user_id FROM inserted) AND NOT posted
),
woken AS (
    SELECT pg_notify(%s, max(seq)::text) FROM inserted HAVING count(*) > 0
)
SELECT i.id, i.seq, i.inserted_at FROM inserted i LEFT JOIN woken ON true
"""

# The messages a batch's repeats resolve to: by (user_id, client_id), the
# messages_user_id_client_id_key index. Read once the batch has committed, so
# a repeat of a post earlier in the same batch finds that one (DO NOTHING
# skips a row that conflicts with one the same statement inserted).
_STORED_BY_CLIENT_ID = f"""
SELECT m.user_id, {_MESSAGE_COLUMNS}
FROM messages m JOIN users u ON u.id = m.user_id
WHERE (m.user_id, m.client_id) IN (SELECT * FROM unnest(%s::uuid[], %s::text[]))
"""


def insert_batch(conn: psycopg.Connection[Any], batch: Sequence[NewPost]) -> list[StoreResult]:
    """Insert `batch` in one transaction, in order; one result per post. A
    post whose (user, client_id) is stored already is not inserted again: its
    result is the stored message, marked duplicate."""
    ids = [uuid.uuid4() for _ in batch]
    conn.autocommit = True  # the statement is the transaction
    rows = conn.execute(
        _INSERT_BATCH,
        (
            SEQ_LOCK_KEY,
            ids,
            [post.user_id for post in batch],
            [post.body for post in batch],
            [post.client_id for post in batch],
            MESSAGES_CHANNEL,
        ),
    ).fetchall()
    inserted = {row[0]: (row[1], row[2]) for row in rows}
    repeated = [post for i, post in zip(ids, batch, strict=True) if i not in inserted]
    stored: dict[tuple[uuid.UUID, str], StoredMessage] = {}
    if repeated:
        for row in conn.execute(
            _STORED_BY_CLIENT_ID,
            ([post.user_id for post in repeated], [post.client_id for post in repeated]),
        ):
            message = _message(row[1:])
            assert message.client_id is not None
            stored[(row[0], message.client_id)] = message
    results = []
    for message_id, post in zip(ids, batch, strict=True):
        if message_id in inserted:
            seq, inserted_at = inserted[message_id]
            message = StoredMessage(
                message_id, seq, post.username, post.body, inserted_at, post.client_id
            )
            results.append(StoreResult(message, duplicate=False))
        else:
            assert post.client_id is not None, "only a client_id can conflict"
            results.append(StoreResult(stored[(post.user_id, post.client_id)], duplicate=True))
    return results


def upsert_user(conn: psycopg.Connection[Any], username: str) -> Joined:
    """Record that `username` (valid) was claimed by typing it; the same key is
    the same user. The people count includes them (they are coming online).

    A claim by typing revokes the user's earlier tokens (their version goes up),
    as Leave does: names have no passwords, so whoever typed a name while it
    was offline is its holder now, and a token from before must not make its
    bearer hold the name together with them (docs/PROTOCOL.md §8.5)."""
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO users (username, username_key) VALUES (%s, %s) "
            "ON CONFLICT (username_key) DO UPDATE SET username = EXCLUDED.username, "
            "updated_at = now(), last_seen_at = now(), "
            "token_version = users.token_version + 1 "
            f"RETURNING {_USER_COLUMNS}",
            (username, username_key(username)),
        ).fetchone()
        assert row is not None
        total = conn.execute(f"{PEOPLE_COUNT} OR u.id = %s", (row[0],)).fetchone()
    assert row is not None
    assert total is not None
    return Joined(User(*row), total[0])


def touch_user(
    conn: psycopg.Connection[Any], user_id: uuid.UUID, *, revoke_tokens: bool = False
) -> None:
    """Record that the user was seen now; `revoke_tokens` bumps their token version."""
    bump = ", token_version = token_version + 1" if revoke_tokens else ""
    with conn.transaction():
        conn.execute(f"UPDATE users SET last_seen_at = now(){bump} WHERE id = %s", (user_id,))


# -- reads --------------------------------------------------------------------------------


def user_by_key(conn: psycopg.Connection[Any], key: str) -> User | None:
    """The user whose name has this key, if any."""
    row = conn.execute(
        f"SELECT {_USER_COLUMNS} FROM users WHERE username_key = %s", (key,)
    ).fetchone()
    return User(*row) if row is not None else None


def newest(conn: psycopg.Connection[Any], limit: int) -> Page:
    """The newest `limit` messages, oldest first."""
    return _page_of(conn, "true", (), limit, newest=True)


def before(conn: psycopg.Connection[Any], seq: int, limit: int) -> Page:
    """Up to `limit` messages with a seq below `seq`, the newest of them, oldest first."""
    return _page_of(conn, "m.seq < %s", (seq,), limit, newest=True)


def after(conn: psycopg.Connection[Any], seq: int, limit: int) -> Page:
    """Up to `limit` (at most `MAX_AFTER`) messages with a seq above `seq`, oldest first."""
    return _page_of(conn, "m.seq > %s", (seq,), min(limit, MAX_AFTER), newest=False)


def recent_users(conn: psycopg.Connection[Any], limit: int) -> UsersPage:
    """The `limit` most recently seen users who have posted (a name typed and
    let go without a word is nobody's business), and the people count."""
    rows = conn.execute(
        f"SELECT {_USER_COLUMNS} FROM users WHERE posted ORDER BY last_seen_at DESC LIMIT %s",
        (limit,),
    ).fetchall()
    total_row = conn.execute(PEOPLE_COUNT).fetchone()
    total = total_row[0] if total_row is not None else 0
    return UsersPage(tuple(User(*row) for row in rows), total)


def check(conn: psycopg.Connection[Any]) -> bool:
    """Whether the server answers a trivial query."""
    return conn.execute("SELECT 1").fetchone() == (1,)


def _message(row: Sequence[Any]) -> StoredMessage:
    return StoredMessage(row[0], row[1], row[2], row[3], row[4], row[5])


def _page_of(
    conn: psycopg.Connection[Any], where: str, params: tuple[Any, ...], limit: int, *, newest: bool
) -> Page:
    """Up to `limit` messages matching `where`, oldest first, and whether more
    match: the newest of them when `newest`, else the oldest. One more row than
    asked says whether there are more; the unique index on seq serves every case."""
    order = "DESC" if newest else "ASC"
    rows = conn.execute(
        f"SELECT {_MESSAGE_COLUMNS} FROM messages m JOIN users u ON u.id = m.user_id "
        f"WHERE {where} ORDER BY m.seq {order} LIMIT %s",
        (*params, limit + 1),
    ).fetchall()
    has_more = len(rows) > limit
    rows = rows[:limit]
    if newest:
        rows.reverse()
    return Page(tuple(_message(row) for row in rows), has_more)
