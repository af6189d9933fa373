"""The persistence actor: owns the connection pool, commits posts in groups,
and hands each commit to the room.

Writes run on the actor's own thread, one transaction at a time, which is what
makes group commit work: a `Store` does not commit at once, it joins the
pending batch and the actor tells itself to flush; every store that arrives
while a commit is in flight lands in the next batch, committed in one
transaction. After each commit, in commit order, the batch's new messages go to
the room (`Committed`), which fans them out, and each poster gets `Stored`.
Nobody sees a message before it is committed.

Reads run on a few reader threads, so that a slow page does not hold up a
commit; reads with a share key that overlap share one run (`Read`). A reader
thread runs only the query and sends its answer; nothing of the asker's runs
here.

A database outage is not a crash: requests fail with `StorageUnavailable` in
bounded time, the actor probes the server at most every `PROBE_INTERVAL_S`,
and once it answers again the pool is rebuilt and storing resumes, with no
restart of anything.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from chatter import presence, queries
from chatter.database import CONNECT_TIMEOUT_S, open_pool, pool_size
from chatter.errors import ChatError, StorageError, StorageUnavailable
from chatter.metrics import ChatMetrics
from chatter.persistence import (
    Read,
    ReadDone,
    RecordUser,
    Store,
    Stored,
    TouchUser,
    UserRecorded,
)
from chatter.queries import StoreResult
from chatter.recent_users import UsersChanged
from chatter.reply import Named, Recipient, tell_quietly
from chatter.room import Room
from supervision import Registry, ThreadActor

__all__ = ["PROBE_INTERVAL_S", "PersistenceActor"]

logger = logging.getLogger(__name__)

PROBE_INTERVAL_S = 0.5
"""While the database is down, how often a request may try to reach it."""

T = TypeVar("T")


@dataclass(frozen=True)
class _Flush:
    """To itself: commit the pending batch."""


@dataclass(frozen=True)
class _SharedReadDone:
    """To itself, from a reader thread: the shared read of `key` has answered."""

    key: Hashable


@dataclass(frozen=True)
class _ReaderLostDatabase:
    """To itself, from a reader thread: the database stopped answering."""

    error: Exception


class PersistenceActor(ThreadActor):
    """Owns the pool; writes on its own thread with group commit, reads on
    readers. `registry` reaches the room that fans commits out (None: nobody
    is told, for tests of storage alone)."""

    def __init__(
        self,
        conninfo: str,
        *,
        registry: Registry | None = None,
        max_connections: int | None = None,
        metrics: ChatMetrics | None = None,
    ) -> None:
        super().__init__()
        self._conninfo = conninfo
        self._room = Room(registry) if registry is not None else None
        self._presence: Recipient | None = (
            Named(registry, presence.NAME) if registry is not None else None
        )
        """Told `UsersChanged` after each write of a user, before the writer hears."""
        self._metrics = metrics if metrics is not None else ChatMetrics()
        self._size = max_connections or pool_size()
        self._pool: ConnectionPool | None = None
        self._readers: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending: list[Store] = []
        self._flush_told = False
        self._shared_running: set[Hashable] = set()
        """Keys of the shared reads running now."""
        self._shared_waiting: dict[Hashable, list[Read]] = {}
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
        # A stop is queued behind the stores already in the inbox but ahead of
        # the flush they told: commit them now, so that a stop loses no post.
        batch, self._pending = self._pending, []
        if batch:
            self._commit(batch)
        self._close()

    def on_failure(self, *_: Any) -> None:
        self._close()

    def on_receive(self, message: Any) -> Any:
        match message:
            case Store():
                self._pending.append(message)
                if not self._flush_told:
                    self._flush_told = True
                    self.actor_ref.tell(_Flush())
            case _Flush():
                self._flush_told = False
                batch, self._pending = self._pending, []
                self._commit(batch)
            case Read(share=None):
                self._dispatch_read(message)
            case Read(share=key) if key in self._shared_running:
                self._shared_waiting.setdefault(key, []).append(message)
            case Read(share=key):
                self._share_read(key, [message])
            case _SharedReadDone(key=key):
                self._shared_running.discard(key)
                waiting = self._shared_waiting.pop(key, None)
                if waiting:
                    self._share_read(key, waiting)
            case RecordUser():
                self._record_user(message)
            case TouchUser():
                try:
                    self._write(
                        lambda conn: queries.touch_user(
                            conn, message.user_id, revoke_tokens=message.revoke_tokens
                        )
                    )
                except ChatError as error:
                    logger.warning("Could not record last seen: %s", error)
                else:
                    self._users_changed()
            case _ReaderLostDatabase(error=error):
                self._mark_down(error)
            case _:
                super().on_receive(message)
        return None

    # -- writes ----------------------------------------------------------------------

    def _commit(self, batch: list[Store]) -> None:
        """One transaction for the whole batch; a batch the database refuses for
        a reason of its own is retried post by post, to isolate the bad one."""
        try:
            results = self._write(lambda conn: queries.insert_batch(conn, batch))
        except StorageError:
            if len(batch) > 1:
                for single in batch:
                    self._commit([single])
                return
            self._fail(batch, StorageError("the database refused the message"))
        except StorageUnavailable as error:
            self._fail(batch, error)
        else:
            self.batches += 1
            self._count(batch, results)
            fresh = tuple(result.message for result in results if not result.duplicate)
            if fresh and self._room is not None:
                self._room.committed(fresh)
            for request, result in zip(batch, results, strict=True):
                tell_quietly(request.reply_to, Stored(result, request.tag))

    def _count(self, batch: list[Store], results: list[StoreResult]) -> None:
        """One committed batch in the metrics: each counter once per batch."""
        metrics, now = self._metrics, time.monotonic()
        metrics.commit_batch_size.observe(len(batch))
        metrics.messages_stored.inc(sum(1 for result in results if not result.duplicate))
        for request in batch:
            metrics.store_seconds.observe(now - request.queued_at)

    def _record_user(self, request: RecordUser) -> None:
        try:
            joined = self._write(lambda conn: queries.upsert_user(conn, request.username))
        except (StorageError, StorageUnavailable) as error:
            tell_quietly(request.reply_to, request.failure(error))
        else:
            self._users_changed()
            tell_quietly(request.reply_to, UserRecorded(joined, request.tag))

    def _users_changed(self) -> None:
        """Presence keeps the recent users for welcomes: it reads them again."""
        if self._presence is not None:
            self._presence.tell(UsersChanged())

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

    def _fail(self, requests: list[Store], error: Exception) -> None:
        for request in requests:
            tell_quietly(request.reply_to, request.failure(error))

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

    def _dispatch_read(self, request: Read, askers: list[Read] | None = None) -> None:
        """Run `request` on a reader; its answer goes to `askers` (default: itself)."""
        assert self._readers is not None, "on_start opened them"
        to = askers if askers is not None else [request]
        try:
            pool = self._usable_pool()
        except StorageUnavailable as error:
            self._answer_failure(to, error, request.share)
            return
        self._readers.submit(self._run_read, pool, request, to)

    def _share_read(self, key: Hashable, askers: list[Read]) -> None:
        """One read answers every asker; asks of `key` meanwhile wait for the next."""
        self._shared_running.add(key)
        self._dispatch_read(askers[0], askers)

    def _run_read(self, pool: ConnectionPool, request: Read, askers: list[Read]) -> None:
        # On a reader thread: touches only the pool, the query and the answers.
        try:
            with pool.connection() as conn:
                conn.autocommit = True
                value = request.query(conn)
        except (PoolTimeout, psycopg.OperationalError) as error:
            tell_quietly(self.actor_ref, _ReaderLostDatabase(error))
            failure = StorageUnavailable("the database is unavailable; retry shortly")
            self._answer_failure(askers, failure, request.share)
        except Exception as error:
            self._answer_failure(askers, error, request.share)
        else:
            key = request.share
            if key is not None:
                # Only one read of a key runs at a time, so this thread alone
                # touches the key's last answer now.
                if value == self._shared_last.get(key):
                    value = self._shared_last[key]  # unchanged: the same object
                else:
                    self._shared_last[key] = value
            for asker in askers:
                tell_quietly(asker.reply_to, ReadDone(asker.tag, value))
            if key is not None:
                tell_quietly(self.actor_ref, _SharedReadDone(key))

    def _answer_failure(self, askers: list[Read], error: Exception, key: Hashable | None) -> None:
        for asker in askers:
            tell_quietly(asker.reply_to, asker.failure(error))
        if key is not None:
            tell_quietly(self.actor_ref, _SharedReadDone(key))

    def _close(self) -> None:
        unavailable = StorageUnavailable("storage restarted before storing this; retry")
        self._fail(self._pending, unavailable)
        self._pending = []
        for askers in self._shared_waiting.values():
            for asker in askers:
                tell_quietly(asker.reply_to, asker.failure(unavailable))
        self._shared_waiting = {}
        if self._readers is not None:
            self._readers.shutdown(wait=False, cancel_futures=True)
        if self._pool is not None:
            self._metrics.watch_pool(None)
            self._pool.close(timeout=1.0)
