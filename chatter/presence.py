"""Presence's messages and client API: who is online, across every node
sharing the database, and which session of this node holds which name.

The actor that answers them, and the rules it keeps, are in
`chatter.presence_actor`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import pykka

from chatter.errors import PresenceUnavailable
from chatter.queries import UsersPage
from chatter.reply import Failed, Request, ServerClient
from supervision import Registry

__all__ = [
    "NAME",
    "REBUILD_TIMEOUT_S",
    "Announced",
    "Claim",
    "ClaimFailed",
    "ClaimResult",
    "Claimed",
    "Confirm",
    "Fenced",
    "IdentityReport",
    "LeaveName",
    "LeftElsewhere",
    "Online",
    "OnlineFailed",
    "OnlineNow",
    "Posted",
    "Presence",
    "Release",
    "ReportIdentity",
    "SessionsNamed",
    "SessionsNamedNow",
]

logger = logging.getLogger(__name__)

NAME = "presence"

REBUILD_TIMEOUT_S = 1.0
"""How long a restarted presence waits for sessions to say which names they hold."""


# -- messages -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimResult:
    """The answer to a claim: granted; or taken (by whom, as they spelled it);
    or refused by the address's name-claim limit (`retry_after_s` set)."""

    granted: bool
    holder: str | None = None
    retry_after_s: float | None = None
    """When refused by the limit: seconds until the address may claim again."""


@dataclass(frozen=True)
class ClaimFailed(Failed):
    """Presence could not be asked (it is restarting); nothing is held."""


@dataclass(frozen=True)
class OnlineFailed(Failed):
    """Presence could not be asked (it is restarting)."""


@dataclass(frozen=True)
class Claim(Request):
    """Hold `username` (valid) for the session; answered `Claimed`."""

    failed = ClaimFailed
    session_id: str
    session: pykka.ActorRef[Any] = field(compare=False)
    username: str
    by_token: bool
    """The claimant proved with a token that the name is its own: it holds
    the name with whoever holds it already (the same person's other tabs)."""
    address: str | None = None
    """The client's address, whose name-claim bucket a granted claim draws on
    (None: not limited, for claims that come from no client)."""


@dataclass(frozen=True)
class Claimed:
    result: ClaimResult
    tag: Any = None


@dataclass(frozen=True)
class Confirm:
    session_id: str
    total_users: int | None = None
    """The people count (everyone who posted, and whoever is online, this
    name included), counted as the name was recorded."""
    reply_to: Any = field(default=None, compare=False)
    """Told `Announced` once the join has gone to the room (None: nobody)."""
    tag: Any = None
    posted: bool = False
    """Whether the user has posted before: when the name leaves, it stays listed."""


@dataclass(frozen=True)
class Announced:
    """To a session that asked: its join has gone to the room, so whatever it
    posts now reaches everyone after the join."""

    tag: Any = None


@dataclass(frozen=True)
class Release:
    """The session lets its name go (it closed, or took another name); the
    name stays online while another session holds it."""

    session_id: str


@dataclass(frozen=True)
class Posted:
    """The session's user posted (their first post on this connection was
    stored): when the name leaves, it stays listed (offline)."""

    session_id: str


@dataclass(frozen=True)
class LeaveName:
    """The session lets its name go for every session holding it, on every
    node (a Leave): the others are told `LeftElsewhere`."""

    session_id: str


@dataclass(frozen=True)
class Online(Request):
    """Which names are online? Answered `OnlineNow`."""

    failed = OnlineFailed


@dataclass(frozen=True)
class OnlineNow:
    names: tuple[str, ...]
    """Sorted case-insensitively."""
    tag: Any = None
    users: UsersPage | None = None
    """The most recently seen users and the count of all, as presence last
    read them (`chatter.recent_users`); None if it could not."""


@dataclass(frozen=True)
class SessionsNamedFailed(Failed):
    """Presence could not be asked (it is restarting)."""


@dataclass(frozen=True)
class SessionsNamed(Request):
    """Which of this node's sessions hold a name that starts with `prefix`
    (compared as names are: case-insensitively, after NFKC)? At most `limit`,
    by name; answered `SessionsNamedNow`. For finding a session in the
    supervision tree by its user's name."""

    failed = SessionsNamedFailed
    prefix: str
    limit: int = 50


@dataclass(frozen=True)
class SessionsNamedNow:
    sessions: tuple[tuple[str, str, bool], ...]
    """``(session_id, username, online)`` for each, sorted by name; `online`
    is false while the name is claimed and not yet recorded."""
    tag: Any = None


@dataclass(frozen=True)
class ReportIdentity:
    """To a session, from a restarted presence: say which name you hold."""

    presence: pykka.ActorRef[Any]


@dataclass(frozen=True)
class IdentityReport:
    """A session's answer: its name, if any, and whether it was confirmed."""

    session_id: str
    session: pykka.ActorRef[Any]
    username: str | None
    confirmed: bool


@dataclass(frozen=True)
class LeftElsewhere:
    """To a session: another connection holding your name with you let it go
    (Leave in another tab); you hold it no more."""

    username: str


@dataclass(frozen=True)
class Fenced:
    """To a session: while this node had no lease, another node took your
    name; close (1012), and let the client reconnect and resume."""


# -- client API -----------------------------------------------------------------------------


class Presence(ServerClient):
    """Presence's client API, by name. A request it cannot deliver fails at
    once with `PresenceUnavailable`."""

    unavailable = PresenceUnavailable

    def __init__(self, registry: Registry, name: str = NAME) -> None:
        super().__init__(registry, name)

    def confirm(
        self,
        session_id: str,
        total_users: int | None = None,
        *,
        reply_to: Any = None,
        tag: Any = None,
        posted: bool = False,
    ) -> bool:
        """The session recorded its claimed name: it is online now. `total_users`,
        when known, goes out with the presence change; `reply_to` is told
        `Announced` once it has; `posted`: the user has posted before. False
        if presence could not be told."""
        return self._cast(Confirm(session_id, total_users, reply_to, tag, posted))

    def posted(self, session_id: str) -> None:
        """The session's user has posted (see `Posted`)."""
        self._cast(Posted(session_id))

    def release(self, session_id: str) -> None:
        self._cast(Release(session_id))

    def leave(self, session_id: str) -> None:
        """Let the session's name go for every session holding it (a Leave)."""
        self._cast(LeaveName(session_id))

    def _cast(self, message: Confirm | Release | LeaveName | Posted) -> bool:
        if not self.cast(message):
            # A restarting presence rebuilds from the sessions themselves.
            logger.error("Presence unavailable, dropped %r", message)
            return False
        return True
