"""The welcome: the first frame on every connection, and what goes into it.

A welcome carries the newest `WELCOME_MESSAGES` messages, or, for a client
resuming with ``after``, every message it missed (up to `MAX_RESUME`; beyond,
the newest, and the client pages back); who is online; and the most recently
active offline users among those who posted, with the people count (everyone
who posted, and whoever is online: a name typed and let go without a word is
not listed, issue #17). Its parts come from two actors on the session's own
loop and arrive in either order: the messages from the room, which remembers
the newest it has sent (`chatter.room.Recall`), and who is online with the
recent users from presence, which keeps them (`chatter.recent_users`). Neither
reads the database for a welcome; when one cannot answer (a resuming client
missed more than the room remembers, the users could not be read), the session
reads that part from persistence. It gathers the parts in a `WelcomeParts` and
sends `welcome_frame` once all are in.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg

from chatter import queries
from chatter.messages import Page
from chatter.persistence import Persistence, Read, read_newest, read_recent_users
from chatter.presence import Online, Presence
from chatter.protocol import page_frame
from chatter.queries import UsersPage
from chatter.reply import Recipient
from chatter.usernames import username_key

if TYPE_CHECKING:
    from chatter.room import Room

__all__ = [
    "MAX_RESUME",
    "RECENT_OFFLINE_USERS",
    "RECENT_USERS_READ",
    "WELCOME_MESSAGES",
    "Backlog",
    "Part",
    "WelcomeParts",
    "newest_backlog",
    "read_backlog",
    "recalled_backlog",
    "welcome_frame",
]

WELCOME_MESSAGES = 500
"""Messages in a welcome: the newest ones."""

MAX_RESUME = 5000
"""Most missed messages a resume sends; beyond it, the newest `WELCOME_MESSAGES`."""

RECENT_OFFLINE_USERS = 50
"""Offline users listed in a welcome (who posted), most recently active first."""

RECENT_USERS_READ = RECENT_OFFLINE_USERS * 2
"""Recent users read for a welcome, online ones among them."""


@dataclass(frozen=True)
class Backlog:
    """The welcome's messages, and the seq up to which the client has every
    message (live ones at or below it are not sent again)."""

    page: Page
    seen_up_to: int


def newest_backlog(page: Page) -> Backlog:
    """A welcome of the newest messages: the client has everything up to the last."""
    return Backlog(page, _last_seq_of(page))


def read_backlog(conn: psycopg.Connection[Any], after: int) -> Backlog:
    """What a client resuming after `after` is sent: the messages it missed,
    or the newest if it missed more than `MAX_RESUME`. An `after` beyond the
    newest seq is capped at it, so it hides none of the messages to come."""
    missed = queries.after(conn, after, MAX_RESUME)
    if not missed.messages:
        latest = queries.newest(conn, 1)
        return Backlog(Page((), False), min(after, _last_seq_of(latest)))
    if not missed.has_more:
        return Backlog(Page(missed.messages, False), _last_seq_of(missed))
    return newest_backlog(queries.newest(conn, WELCOME_MESSAGES))


def recalled_backlog(recent: Page, after: int | None) -> Backlog | None:
    """What `read_backlog` (or, without `after`, `newest_backlog`) would give,
    worked out from `recent`, the newest messages of the log (at most
    `WELCOME_MESSAGES`; `has_more` when older ones exist). None when a client
    resuming may have missed messages older than those."""
    if after is None:
        return newest_backlog(recent)
    messages = recent.messages
    if recent.has_more and (not messages or after < messages[0].seq - 1):
        return None  # what lies between is not in `recent`
    missed = tuple(m for m in messages if m.seq > after)
    if not missed:
        return Backlog(Page((), False), min(after, _last_seq_of(recent)))
    return Backlog(Page(missed, False), missed[-1].seq)


def welcome_frame(
    backlog: Backlog, online: tuple[str, ...], users: UsersPage, you: str | None
) -> str:
    """The welcome frame: messages, the online names, then the most recently
    active offline users; `you` is the name the connection holds already."""
    online_keys = {username_key(name) for name in online}
    offline = [u.username for u in users.users if u.key not in online_keys]
    listed = [{"username": name, "online": True} for name in online]
    listed += [{"username": name, "online": False} for name in offline[:RECENT_OFFLINE_USERS]]
    page = backlog.page
    return page_frame(
        "welcome",
        page,
        has_more=page.has_more,
        users=listed,
        total_users=users.total,
        you={"username": you} if you is not None else None,
    )


@dataclass(frozen=True)
class Part:
    """The tag of an answer that is a part of the welcome: `RECALL` (the
    messages, from the room), `NEWEST` or `RESUME` (the messages, read from
    the log), `USERS`, or `ONLINE`."""

    name: str


RECALL, NEWEST, RESUME, USERS, ONLINE = (
    Part(name) for name in ("recall", "newest", "resume", "users", "online")
)


class WelcomeParts:
    """The three parts of a welcome as they arrive, in any order."""

    def __init__(self, after: int | None = None) -> None:
        self.after = after
        """The seq the client resumes after (``?after=``), or None."""
        self.backlog: Backlog | None = None
        self.online: tuple[str, ...] | None = None
        self.users: UsersPage | None = None

    def ask(
        self, room: Room, persistence: Persistence, presence: Presence, reply_to: Recipient
    ) -> None:
        """Ask for every part; each answer comes to `reply_to` tagged with its
        `Part`. Ask once joined to the sessions group: the room's answer is
        as fresh as that (`chatter.room.Recall`)."""
        room.recall(self.after, reply_to, RECALL)
        presence.tell(Online(reply_to=reply_to, tag=ONLINE))

    def read_messages(self, persistence: Persistence, reply_to: Recipient) -> None:
        """Ask for the messages from the log: the room did not remember them."""
        if self.after is None:
            persistence.tell(read_newest(WELCOME_MESSAGES, reply_to, NEWEST))
        else:
            query = functools.partial(read_backlog, after=self.after)
            persistence.tell(Read(query, reply_to=reply_to, tag=RESUME))

    def read_users(self, persistence: Persistence, reply_to: Recipient) -> None:
        """Ask for the recent users from the database: presence had none."""
        persistence.tell(read_recent_users(RECENT_USERS_READ, reply_to, USERS))

    def take(self, part: Part, value: Any) -> bool:
        """Keep an answer (for `ONLINE`, presence's `OnlineNow`, which carries
        the recent users too); True once every part is in."""
        if part == NEWEST:
            self.backlog = newest_backlog(value)
        elif part in (RECALL, RESUME):
            self.backlog = value
        elif part == USERS:
            self.users = value
        else:
            self.online = value.names
            if value.users is not None:
                self.users = value.users
        return self.backlog is not None and self.online is not None and self.users is not None

    def frame(self, you: str | None) -> str:
        assert self.backlog is not None
        assert self.online is not None
        assert self.users is not None
        return welcome_frame(self.backlog, self.online, self.users, you)


def _last_seq_of(page: Page) -> int:
    return page.messages[-1].seq if page.messages else 0
