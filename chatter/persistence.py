"""The persistence actor: every user and message, stored in PostgreSQL.

It owns the connection pool. Writes run on its own thread, one transaction at a
time, which is what makes group commit work: a store does not commit at once,
it joins the pending batch and the actor tells itself to flush; every store
that arrives while a commit is in flight lands in the next batch, committed in
one transaction. Each batch takes the ``seq`` advisory lock before inserting
and holds it to the commit, so ``seq`` becomes visible in commit order even with
several writers (see docs and migration 0001). Reads run on a few reader
threads, so that a slow page does not hold up a commit; asks for the newest
page that overlap share one read (`SharedRead`), so a crowd joining at once
costs a query per round, not one per person.

Every request carries the future its answer goes to; callers use the
`Persistence` client below and never see the messages. A database outage is
not a crash: requests fail with `StorageUnavailable` in bounded time, the
actor probes the server at most every `PROBE_INTERVAL_S`, and once it answers
again the pool is rebuilt and storing resumes, with no restart of anything.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
import uuid
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from chatter.database import CONNECT_TIMEOUT_S, open_pool, pool_size
from chatter.errors import ChatError, StorageError, StorageUnavailable
from chatter.messages import Page, StoredMessage, validate_body, validate_client_id
from chatter.metrics import ChatMetrics
from chatter.usernames import username_key, validate_username
from supervision import Future, NameNotRegisteredError, NameUnavailableError, Registry, ThreadActor

__all__ = [
    "NAME",
    "SEQ_LOCK_KEY",
    "Joined",
    "Persistence",
    "PersistenceActor",
    "StoreResult",
    "User",
    "UsersPage",
]

logger = logging.getLogger(__name__)

NAME = "persistence"
"""The registered name of the persistence actor."""

SEQ_LOCK_KEY = 0x63686174  # "chat"
"""The advisory lock every writer of messages holds from its insert to its commit."""

PROBE_INTERVAL_S = 0.5
"""While the database is down, how often a request may try to reach it."""

MAX_AFTER = 5000
"""The most messages one `after` read returns."""

T = TypeVar("T")


# -- results ----------------------------------------------------------------------------


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


@dataclass(frozen=True)
class Joined:
    """A user recorded as in use, and how many users there are with it: the
    count a presence frame carries when someone joins."""

    user: User
    total_users: int


@dataclass(frozen=True)
class UsersPage:
    """The most recently active users, and how many there are in all."""

    users: tuple[User, ...]
    total: int


# -- messages ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreMessage:
    user_id: uuid.UUID
    username: str
    body: str
    client_id: str | None
    reply: Future[StoreResult] = field(compare=False)
    queued_at: float = field(default_factory=time.monotonic, compare=False)
    """When it was asked for (monotonic), for the store latency metric."""


@dataclass(frozen=True)
class UpsertUser:
    username: str
    reply: Future[Joined] = field(compare=False)


@dataclass(frozen=True)
class TouchUser:
    user_id: uuid.UUID
    revoke_tokens: bool = False


@dataclass(frozen=True)
class Read:
    """A read: `query` runs on a reader thread with a connection, `reply` gets its result."""

    query: Callable[[psycopg.Connection[Any]], Any]
    reply: Future[Any] = field(compare=False)


@dataclass(frozen=True)
class SharedRead:
    """A read whose answer every asker of the same `key` shares. Asks that
    arrive while a read of that key runs wait for it to end, and the next read
    answers them all at once: as group commit does for stores, a crowd costs
    one query per round, not one per asker. An answer equal to the last one
    is replaced by that same object, so a page is encoded once for as long as
    it does not change (`Page.wire_json`).
    That next read starts after each of them asked, so no asker gets an
    answer older than its ask (a session joins the room before it asks for
    the welcome's page: a message committed between would be lost to it)."""

    key: Hashable
    query: Callable[[psycopg.Connection[Any]], Any]
    reply: Future[Any] = field(compare=False)


@dataclass(frozen=True)
class _SharedReadDone:
    key: Hashable


@dataclass(frozen=True)
class _Flush:
    pass


@dataclass(frozen=True)
class _ReadFailed:
    error: Exception


# -- client API -------------------------------------------------------------------------


class Persistence:
    """The persistence actor's API, reaching the current incarnation by name.

    Every method returns a `supervision.Future`; input is validated here too,
    so a bad body fails at once with `InvalidBody` and nothing is sent.
    """

    def __init__(self, registry: Registry, name: str = NAME) -> None:
        self._registry = registry
        self._name = name

    def store(
        self, user_id: uuid.UUID, username: str, body: str, client_id: str | None = None
    ) -> Future[StoreResult]:
        """Store a message; the future holds it committed, with its seq. A
        `client_id` this user stored before is not stored again: the result
        is the stored message, marked `duplicate` (migration 0003)."""
        text, cid = validate_body(body), validate_client_id(client_id)
        return self._send(lambda reply: StoreMessage(user_id, username, text, cid, reply))

    def upsert_user(self, username: str) -> Future[User]:
        """Record that `username` is in use now; the same key is the same user."""
        return self.join_user(username).map(lambda joined: joined.user)

    def join_user(self, username: str) -> Future[Joined]:
        """As `upsert_user`, counting every user in the same transaction."""
        name = validate_username(username)
        return self._send(lambda reply: UpsertUser(name, reply))

    def touch_user(self, user_id: uuid.UUID, *, revoke_tokens: bool = False) -> None:
        """Record that the user was seen now (as they go); with `revoke_tokens`
        (on Leave), the identity tokens issued so far stop working."""
        self._tell(TouchUser(user_id, revoke_tokens))

    def user_by_key(self, key: str) -> Future[User | None]:
        """The user whose name has this key, if any."""
        return self._read(lambda conn: _user_by_key(conn, key))

    def newest(self, limit: int = 500) -> Future[Page]:
        """The newest `limit` messages, oldest first. Every welcome asks this:
        asks that overlap share one read (`SharedRead`)."""
        return self._send(
            lambda reply: SharedRead(("newest", limit), lambda conn: _newest(conn, limit), reply)
        )

    def before(self, seq: int, limit: int = 100) -> Future[Page]:
        """Up to `limit` messages with a seq below `seq`, oldest first."""
        return self._read(lambda conn: _before(conn, seq, limit))

    def after(self, seq: int, limit: int = MAX_AFTER) -> Future[Page]:
        """Up to `limit` messages with a seq above `seq`, oldest first."""
        return self._read(lambda conn: _after(conn, seq, min(limit, MAX_AFTER)))

    def check(self) -> Future[bool]:
        """Whether the database answers a trivial query now."""
        return self._read(lambda conn: conn.execute("SELECT 1").fetchone() == (1,))

    def recent_users(self, limit: int = 50) -> Future[UsersPage]:
        """The `limit` most recently seen users, and the count of all users.
        Every welcome asks this too: asks that overlap share one read."""
        return self._send(
            lambda reply: SharedRead(
                ("recent_users", limit), lambda conn: _recent_users(conn, limit), reply
            )
        )

    def _read(self, query: Callable[[psycopg.Connection[Any]], T]) -> Future[T]:
        return self._send(lambda reply: Read(query, reply))

    def _send(self, make: Callable[[Future[Any]], Any]) -> Future[Any]:
        reply: Future[Any] = Future()
        try:
            self._registry.tell(self._name, make(reply))
        except (NameNotRegisteredError, NameUnavailableError) as error:
            failure = StorageUnavailable(f"storage is not available: {error}")
            reply.set_exception((type(failure), failure, None))
        return reply

    def _tell(self, message: Any) -> None:
        try:
            self._registry.tell(self._name, message)
        except (NameNotRegisteredError, NameUnavailableError):
            logger.warning("Persistence unavailable; dropped %r", message)


# -- the actor --------------------------------------------------------------------------


class PersistenceActor(ThreadActor):
    """Owns the pool; writes on its own thread with group commit, reads on readers."""

    def __init__(
        self,
        conninfo: str,
        *,
        max_connections: int | None = None,
        metrics: ChatMetrics | None = None,
    ) -> None:
        super().__init__()
        self._conninfo = conninfo
        self._metrics = metrics if metrics is not None else ChatMetrics()
        self._size = max_connections or pool_size()
        self._pool: ConnectionPool | None = None
        self._readers: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending: list[StoreMessage] = []
        self._flush_told = False
        self._shared_running: set[Hashable] = set()
        """Keys of the shared reads running now."""
        self._shared_waiting: dict[Hashable, list[SharedRead]] = {}
        """Asks of each key that arrived while its read ran: the next read's."""
        self._shared_last: dict[Hashable, Any] = {}
        """The last answer of each key (only one read of a key runs at a time)."""
        self._down_since: float | None = None
        self._last_probe = 0.0
        self.batches = 0
        """How many write transactions committed, for tests and metrics."""

    def on_start(self) -> None:
        self._pool = open_pool(self._conninfo, max_size=self._size, name="persistence")
        self._metrics.watch_pool(self._pool)
        self._readers = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, self._size - 1), thread_name_prefix="persistence-read"
        )

    def on_stop(self) -> None:
        self._close()

    def on_failure(self, *_: Any) -> None:
        self._close()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, StoreMessage):
            self._pending.append(message)
            if not self._flush_told:
                self._flush_told = True
                self.actor_ref.tell(_Flush())
        elif isinstance(message, _Flush):
            self._flush_told = False
            batch, self._pending = self._pending, []
            self._commit(batch)
        elif isinstance(message, Read):
            self._dispatch_read(message)
        elif isinstance(message, SharedRead):
            if message.key in self._shared_running:
                self._shared_waiting.setdefault(message.key, []).append(message)
            else:
                self._share_read(message.key, [message])
        elif isinstance(message, _SharedReadDone):
            self._shared_running.discard(message.key)
            waiting = self._shared_waiting.pop(message.key, None)
            if waiting:
                self._share_read(message.key, waiting)
        elif isinstance(message, UpsertUser):
            _answer(message.reply, lambda: self._write(lambda conn: _upsert_user(conn, message)))
        elif isinstance(message, TouchUser):
            try:
                self._write(lambda conn: _touch_user(conn, message))
            except ChatError as error:
                logger.warning("Could not record last seen: %s", error)
        elif isinstance(message, _ReadFailed):
            self._mark_down(message.error)
        else:
            super().on_receive(message)
        return None

    # -- writes ----------------------------------------------------------------------

    def _commit(self, batch: list[StoreMessage]) -> None:
        """One transaction for the whole batch; a batch the database refuses for
        a reason of its own is retried message by message, to isolate the bad one."""
        try:
            results = self._write(lambda conn: _insert_batch(conn, batch))
        except StorageError:
            if len(batch) > 1:
                for single in batch:
                    self._commit([single])
                return
            _fail(batch, StorageError("the database refused the message"))
        except StorageUnavailable as error:
            _fail(batch, error)
        else:
            self.batches += 1
            self._count(batch, results)
            for request, result in zip(batch, results, strict=True):
                request.reply.set(result)

    def _count(self, batch: list[StoreMessage], results: list[StoreResult]) -> None:
        """One committed batch in the metrics: each counter once per batch."""
        metrics, now = self._metrics, time.monotonic()
        metrics.commit_batch_size.observe(len(batch))
        metrics.messages_stored.inc(sum(1 for result in results if not result.duplicate))
        for request in batch:
            metrics.store_seconds.observe(now - request.queued_at)

    def _write(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        pool = self._usable_pool()
        try:
            with pool.connection() as conn:
                return work(conn)
        except (PoolTimeout, psycopg.OperationalError) as error:
            self._mark_down(error)
            raise StorageUnavailable("the database is unavailable; retry shortly") from error
        except psycopg.Error as error:
            raise StorageError(f"the database refused the write: {error}") from error

    def _usable_pool(self) -> ConnectionPool:
        """The pool, or `StorageUnavailable` while the database is down. Once a
        probe reaches it again, the pool is rebuilt: a fresh one has no broken
        connections and no reconnection backoff to sit out."""
        assert self._pool is not None, "on_start opened it"
        if self._down_since is None:
            return self._pool
        now = time.monotonic()
        if now - self._last_probe < PROBE_INTERVAL_S:
            raise StorageUnavailable("the database is unavailable; retry shortly")
        self._last_probe = now
        try:
            psycopg.connect(self._conninfo, connect_timeout=CONNECT_TIMEOUT_S).close()
        except psycopg.Error as error:
            raise StorageUnavailable("the database is unavailable; retry shortly") from error
        logger.warning(
            "Database reachable again after %.1f s; rebuilding the pool", now - self._down_since
        )
        old, self._pool = self._pool, open_pool(self._conninfo, max_size=self._size)
        self._metrics.watch_pool(self._pool)
        old.close(timeout=1.0)
        self._down_since = None
        return self._pool

    def _mark_down(self, error: Exception) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            self._last_probe = self._down_since
            logger.error("Database unavailable: %s", error)

    # -- reads ---------------------------------------------------------------------------

    def _dispatch_read(self, request: Read) -> None:
        assert self._readers is not None, "on_start opened them"
        try:
            pool = self._usable_pool()
        except StorageUnavailable as error:
            request.reply.set_exception((type(error), error, None))
            return
        self._readers.submit(self._run_read, pool, request)

    def _share_read(self, key: Hashable, askers: list[SharedRead]) -> None:
        """One read answers every asker; asks of `key` meanwhile wait for the next."""
        self._shared_running.add(key)
        answer: Future[Any] = Future()

        def settle(done: Future[Any]) -> None:
            # On the reader thread, or on this one if the read failed at once.
            try:
                value = done.get(timeout=0)
            except Exception as error:
                for asker in askers:
                    asker.reply.set_exception((type(error), error, error.__traceback__))
            else:
                if value == self._shared_last.get(key):
                    # Unchanged: answer with the same object, and so with what
                    # was derived from it already (a page's encoding).
                    value = self._shared_last[key]
                else:
                    self._shared_last[key] = value
                for asker in askers:
                    asker.reply.set(value)
            with _suppress_dead():
                self.actor_ref.tell(_SharedReadDone(key))

        answer.add_done_callback(settle)
        self._dispatch_read(Read(askers[0].query, answer))

    def _run_read(self, pool: ConnectionPool, request: Read) -> None:
        # On a reader thread: touches only the pool and the request.
        try:
            with pool.connection() as conn:
                conn.autocommit = True
                result = request.query(conn)
        except (PoolTimeout, psycopg.OperationalError) as error:
            with _suppress_dead():
                self.actor_ref.tell(_ReadFailed(error))
            failure = StorageUnavailable("the database is unavailable; retry shortly")
            request.reply.set_exception((type(failure), failure, None))
        except Exception as error:
            request.reply.set_exception((type(error), error, error.__traceback__))
        else:
            request.reply.set(result)

    def _close(self) -> None:
        unavailable = StorageUnavailable("storage restarted before storing this; retry")
        _fail(self._pending, unavailable)
        self._pending = []
        for askers in self._shared_waiting.values():
            for asker in askers:
                asker.reply.set_exception((type(unavailable), unavailable, None))
        self._shared_waiting = {}
        if self._readers is not None:
            self._readers.shutdown(wait=False, cancel_futures=True)
        if self._pool is not None:
            self._metrics.watch_pool(None)
            self._pool.close(timeout=1.0)


class _suppress_dead:  # noqa: N801  (a context manager, named like contextlib's)
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, *_: Any) -> bool:
        import pykka

        return exc_type is not None and issubclass(exc_type, pykka.ActorDeadError)


def _answer(reply: Future[T], work: Callable[[], T]) -> None:
    try:
        value = work()
    except Exception as error:
        reply.set_exception((type(error), error, error.__traceback__))
    else:
        reply.set(value)


def _fail(requests: Sequence[StoreMessage], error: Exception) -> None:
    for request in requests:
        if not request.reply.done():
            request.reply.set_exception((type(error), error, None))


# -- SQL ------------------------------------------------------------------------------------

_MESSAGE_COLUMNS = "m.id, m.seq, u.username, m.body, m.inserted_at, m.client_id"
_USER_COLUMNS = "id, username, username_key, last_seen_at, token_version"

_INSERT_BATCH = """
INSERT INTO messages (id, user_id, body, client_id, inserted_at)
SELECT t.id, t.user_id, t.body, t.client_id, clock_timestamp()
FROM unnest(%s::uuid[], %s::uuid[], %s::text[], %s::text[])
     WITH ORDINALITY AS t(id, user_id, body, client_id, n)
ORDER BY t.n
ON CONFLICT (user_id, client_id) DO NOTHING
RETURNING id, seq, inserted_at
"""

# The messages a batch's repeats resolve to: by (user_id, client_id), the
# messages_user_id_client_id_key index. Within the batch's transaction, so a
# repeat of a post earlier in the same batch finds that one (DO NOTHING skips
# a row that conflicts with one the same statement inserted).
_STORED_BY_CLIENT_ID = f"""
SELECT m.user_id, {_MESSAGE_COLUMNS}
FROM messages m JOIN users u ON u.id = m.user_id
WHERE (m.user_id, m.client_id) IN (SELECT * FROM unnest(%s::uuid[], %s::text[]))
"""


def _insert_batch(
    conn: psycopg.Connection[Any], batch: Sequence[StoreMessage]
) -> list[StoreResult]:
    ids = [uuid.uuid4() for _ in batch]
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SEQ_LOCK_KEY,))
        rows = conn.execute(
            _INSERT_BATCH,
            (
                ids,
                [r.user_id for r in batch],
                [r.body for r in batch],
                [r.client_id for r in batch],
            ),
        ).fetchall()
        inserted = {row[0]: (row[1], row[2]) for row in rows}
        repeated = [r for i, r in zip(ids, batch, strict=True) if i not in inserted]
        stored: dict[tuple[uuid.UUID, str], StoredMessage] = {}
        if repeated:
            for row in conn.execute(
                _STORED_BY_CLIENT_ID,
                ([r.user_id for r in repeated], [r.client_id for r in repeated]),
            ):
                message = _message(row[1:])
                assert message.client_id is not None
                stored[(row[0], message.client_id)] = message
    results = []
    for message_id, request in zip(ids, batch, strict=True):
        if message_id in inserted:
            seq, inserted_at = inserted[message_id]
            message = StoredMessage(
                message_id, seq, request.username, request.body, inserted_at, request.client_id
            )
            results.append(StoreResult(message, duplicate=False))
        else:
            assert request.client_id is not None, "only a client_id can conflict"
            original = stored[(request.user_id, request.client_id)]
            results.append(StoreResult(original, duplicate=True))
    return results


def _upsert_user(conn: psycopg.Connection[Any], request: UpsertUser) -> Joined:
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO users (username, username_key) VALUES (%s, %s) "
            "ON CONFLICT (username_key) DO UPDATE SET username = EXCLUDED.username, "
            "updated_at = now(), last_seen_at = now() "
            f"RETURNING {_USER_COLUMNS}",
            (request.username, username_key(request.username)),
        ).fetchone()
        total = conn.execute("SELECT count(*) FROM users").fetchone()
    assert row is not None
    assert total is not None
    return Joined(User(*row), total[0])


def _touch_user(conn: psycopg.Connection[Any], request: TouchUser) -> None:
    bump = ", token_version = token_version + 1" if request.revoke_tokens else ""
    with conn.transaction():
        conn.execute(
            f"UPDATE users SET last_seen_at = now(){bump} WHERE id = %s", (request.user_id,)
        )


def _user_by_key(conn: psycopg.Connection[Any], key: str) -> User | None:
    row = conn.execute(
        f"SELECT {_USER_COLUMNS} FROM users WHERE username_key = %s", (key,)
    ).fetchone()
    return User(*row) if row is not None else None


def _message(row: tuple[Any, ...]) -> StoredMessage:
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


def _newest(conn: psycopg.Connection[Any], limit: int) -> Page:
    return _page_of(conn, "true", (), limit, newest=True)


def _before(conn: psycopg.Connection[Any], seq: int, limit: int) -> Page:
    return _page_of(conn, "m.seq < %s", (seq,), limit, newest=True)


def _after(conn: psycopg.Connection[Any], seq: int, limit: int) -> Page:
    return _page_of(conn, "m.seq > %s", (seq,), limit, newest=False)


def _recent_users(conn: psycopg.Connection[Any], limit: int) -> UsersPage:
    rows = conn.execute(
        f"SELECT {_USER_COLUMNS} FROM users ORDER BY last_seen_at DESC LIMIT %s",
        (limit,),
    ).fetchall()
    total_row = conn.execute("SELECT count(*) FROM users").fetchone()
    total = total_row[0] if total_row is not None else 0
    return UsersPage(tuple(User(*row) for row in rows), total)
