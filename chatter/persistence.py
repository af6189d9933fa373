"""Persistence: every user and message, stored in PostgreSQL. The messages
the persistence actor takes and the answers it gives, and its client API.

An actor talks to persistence by message (`chatter.reply`): it sends a
request naming itself as `reply_to`, with a tag of its own, and the answer
comes back to its inbox as a typed message carrying that tag.

========================  =====================================================
request                   answer
========================  =====================================================
`Store`                   `Stored`, or `StoreFailed`; and the new message goes
                          to the room (`chatter.room.Committed`) to be fanned
                          out, after the commit and in commit order
`RecordUser`              `UserRecorded`, or `UserRecordFailed`; and presence
                          is told `UsersChanged` first (it keeps the recent
                          users for welcomes)
`Read`                    `ReadDone` with the query's value, or `ReadFailed`
`TouchUser`               none (a cast); presence is told `UsersChanged`
========================  =====================================================

A database outage is not a crash: requests are answered with failures
(`StorageUnavailable`) in bounded time, and storing resumes once the server
answers again (`chatter.persistence_actor`). When the actor itself cannot be
reached (it is restarting), `Persistence.tell` answers the request's failure
at once. Callers that are not actors use the methods returning futures.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from chatter import queries
from chatter.errors import StorageUnavailable
from chatter.messages import Page, validate_body, validate_client_id
from chatter.queries import Joined, StoreResult, User, UsersPage
from chatter.reply import Failed, FutureRecipient, Recipient, Request, ServerClient
from chatter.usernames import validate_username
from supervision import Future, Registry

__all__ = [
    "NAME",
    "Joined",
    "Persistence",
    "Read",
    "ReadDone",
    "ReadFailed",
    "RecordUser",
    "Store",
    "StoreFailed",
    "StoreResult",
    "Stored",
    "TouchUser",
    "User",
    "UserRecordFailed",
    "UserRecorded",
    "UsersPage",
    "find_user",
    "read_after",
    "read_before",
    "read_newest",
    "read_recent_users",
]

logger = logging.getLogger(__name__)

NAME = "persistence"
"""The registered name of the persistence actor."""


# -- requests and answers -------------------------------------------------------------------


@dataclass(frozen=True)
class StoreFailed(Failed):
    """The post was not stored: `error` says why (`StorageUnavailable`: retry)."""


@dataclass(frozen=True)
class UserRecordFailed(Failed):
    """The name was not recorded: `error` says why."""


@dataclass(frozen=True)
class ReadFailed(Failed):
    """The read did not answer: `error` says why."""


@dataclass(frozen=True)
class Store(Request):
    """Store a post (its body and client_id already valid). Answered with
    `Stored` once committed, and fanned out by the room."""

    failed = StoreFailed
    user_id: uuid.UUID
    username: str
    body: str
    client_id: str | None
    queued_at: float = field(default_factory=time.monotonic, compare=False)
    """When it was asked for (monotonic), for the store latency metric."""


@dataclass(frozen=True)
class Stored:
    """The post is committed: its message (the one stored before, for a repeated client_id)."""

    result: StoreResult
    tag: Any = None


@dataclass(frozen=True)
class RecordUser(Request):
    """Record that a (valid) username is in use now, creating the user if new."""

    failed = UserRecordFailed
    username: str


@dataclass(frozen=True)
class UserRecorded:
    joined: Joined
    tag: Any = None


@dataclass(frozen=True)
class TouchUser:
    """Record that the user was seen now (as they go); `revoke_tokens` (on
    Leave) makes the identity tokens issued so far stop working."""

    user_id: uuid.UUID
    revoke_tokens: bool = False


@dataclass(frozen=True)
class Read(Request):
    """Run `query` (a function of `chatter.queries`, its arguments bound) on a
    reader thread. With a `share` key, asks that overlap share one run: asks
    that arrive while a read of that key runs wait for it to end, and the next
    read answers them all, so a crowd costs one query per round, not one per
    asker. That next read starts after each of them asked, so no asker gets an
    answer older than its ask (a session joins the room before it asks for the
    welcome's page: a message committed between would be lost to it). An
    answer equal to the last one of its key is that same object, so what was
    derived from it (a page's encoding, `Page.wire_json`) is reused."""

    failed = ReadFailed
    query: Callable[[psycopg.Connection[Any]], Any] = field(compare=False)
    share: Hashable | None = None


@dataclass(frozen=True)
class ReadDone:
    tag: Any
    value: Any


def read_newest(limit: int, reply_to: Recipient, tag: Any = None) -> Read:
    """The newest `limit` messages (a `Page`), shared: every welcome asks it."""
    query = functools.partial(queries.newest, limit=limit)
    return Read(query=query, reply_to=reply_to, tag=tag, share=("newest", limit))


def read_before(seq: int, limit: int, reply_to: Recipient, tag: Any = None) -> Read:
    """Up to `limit` messages with a seq below `seq` (a `Page`)."""
    query = functools.partial(queries.before, seq=seq, limit=limit)
    return Read(query=query, reply_to=reply_to, tag=tag)


def read_after(seq: int, limit: int, reply_to: Recipient, tag: Any = None) -> Read:
    """Up to `limit` messages with a seq above `seq` (a `Page`), shared: the
    room and every session catching up after a restart ask the same."""
    query = functools.partial(queries.after, seq=seq, limit=limit)
    return Read(query=query, reply_to=reply_to, tag=tag, share=("after", seq, limit))


def read_recent_users(limit: int, reply_to: Recipient, tag: Any = None) -> Read:
    """The most recently seen users (a `UsersPage`), shared: every welcome asks it."""
    query = functools.partial(queries.recent_users, limit=limit)
    return Read(query=query, reply_to=reply_to, tag=tag, share=("recent_users", limit))


def find_user(key: str, reply_to: Recipient, tag: Any = None) -> Read:
    """The user whose name has this key (a `User`, or None)."""
    query = functools.partial(queries.user_by_key, key=key)
    return Read(query=query, reply_to=reply_to, tag=tag)


# -- client API -------------------------------------------------------------------------------


class Persistence(ServerClient):
    """The persistence actor's API, reaching the current incarnation by name.
    A request it cannot deliver fails at once with `StorageUnavailable`."""

    unavailable = StorageUnavailable

    def __init__(self, registry: Registry, name: str = NAME) -> None:
        super().__init__(registry, name)

    def touch_user(self, user_id: uuid.UUID, *, revoke_tokens: bool = False) -> None:
        """Record that the user was seen now; see `TouchUser`."""
        if not self.cast(TouchUser(user_id, revoke_tokens)):
            logger.warning("Persistence unavailable; user %s not marked seen", user_id)

    # For callers that are not actors: each returns a future of the answer.

    def store(
        self, user_id: uuid.UUID, username: str, body: str, client_id: str | None = None
    ) -> Future[StoreResult]:
        """Store a message, validating it first (`InvalidBody` at once); the
        future holds it committed, with its seq. A `client_id` this user stored
        before is not stored again: the result is the stored message, marked
        `duplicate`."""
        text, cid = validate_body(body), validate_client_id(client_id)
        waiting = FutureRecipient()
        self.tell(Store(user_id, username, text, cid, reply_to=waiting))
        return waiting.future.map(lambda stored: stored.result)

    def join_user(self, username: str) -> Future[Joined]:
        """Record that `username` is in use now, counting every user in the same transaction."""
        waiting = FutureRecipient()
        self.tell(RecordUser(validate_username(username), reply_to=waiting))
        return waiting.future.map(lambda recorded: recorded.joined)

    def upsert_user(self, username: str) -> Future[User]:
        """As `join_user`, without the count."""
        return self.join_user(username).map(lambda joined: joined.user)

    def read(self, make: Callable[[Recipient], Read]) -> Future[Any]:
        """Run a read (``make(reply_to)`` builds it); the future holds its value."""
        waiting = FutureRecipient()
        self.tell(make(waiting))
        return waiting.future.map(lambda done: done.value)

    def user_by_key(self, key: str) -> Future[User | None]:
        return self.read(lambda to: find_user(key, to))

    def newest(self, limit: int = 500) -> Future[Page]:
        return self.read(lambda to: read_newest(limit, to))

    def before(self, seq: int, limit: int = 100) -> Future[Page]:
        return self.read(lambda to: read_before(seq, limit, to))

    def after(self, seq: int, limit: int = queries.MAX_AFTER) -> Future[Page]:
        return self.read(lambda to: read_after(seq, limit, to))

    def recent_users(self, limit: int = 50) -> Future[UsersPage]:
        return self.read(lambda to: read_recent_users(limit, to))

    def check(self) -> Future[bool]:
        """Whether the database answers a trivial query now."""
        return self.read(lambda to: Read(query=queries.check, reply_to=to))
