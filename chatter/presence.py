"""Presence: who is online, and which session holds which name.

The rules of who may hold a name are `chatter.names.NameTable`'s; this actor
applies them one message at a time, so of two racing claims exactly one wins,
and carries out what they decide: holding is two steps, a `Claim` reserves the
name (answered `Claimed`), and once the user is recorded in the database the
session `Confirm`s it, which tells everyone. A reserved name is already taken
for others; an unconfirmed one is not shown.

A restarted presence actor knows nothing, so before it serves anyone it asks
every live session (the members of the sessions group) which name it holds,
and defers every other request until all have answered or
`REBUILD_TIMEOUT_S` has passed. There is no moment in which an online name can
be taken. Then everyone gets a fresh picture: a presence frame naming every
online user as joined.

Presence also limits how fast names are taken from one client address, all
its connections together: each `Claim` carries the address, and a claim that
would be granted takes a token from that address's bucket (`BucketsByKey`,
with the `NameClaimLimits.per_address` limit). With none left the claim is
refused with the time until there is one, before anything is held, so no user
row is written and nobody is told. A claim refused as taken, and a takeover
with a token (the name is already the claimant's), take nothing. Each session
limits its own connection's claims the same way before asking. The buckets
live only in this actor: a restarted presence starts every address full again
(at most one extra burst per address per restart, and restarts are rare and
limited by the supervisor's intensity).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pykka

from chatter.errors import PresenceUnavailable
from chatter.metrics import ChatMetrics
from chatter.names import NameTable
from chatter.reply import Failed, Request, ServerClient, tell_quietly
from chatter.room import SESSIONS_GROUP, Room
from chatter.throttle import BucketsByKey, Limit, NameClaimLimits
from supervision import LoopActor, Registry

__all__ = [
    "NAME",
    "REBUILD_TIMEOUT_S",
    "Claim",
    "ClaimFailed",
    "ClaimResult",
    "Claimed",
    "Confirm",
    "IdentityReport",
    "Online",
    "OnlineFailed",
    "OnlineNow",
    "Presence",
    "PresenceActor",
    "Release",
    "Replaced",
    "ReportIdentity",
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
    takeover: bool
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
    """Everyone who has ever joined, counted as the name was recorded."""


@dataclass(frozen=True)
class Release:
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
class Replaced:
    """To a session: another connection took your name with its token."""

    username: str


@dataclass(frozen=True)
class _RebuildTimeout:
    pass


# -- client API -----------------------------------------------------------------------------


class Presence(ServerClient):
    """Presence's client API, by name. A request it cannot deliver fails at
    once with `PresenceUnavailable`."""

    unavailable = PresenceUnavailable

    def __init__(self, registry: Registry, name: str = NAME) -> None:
        super().__init__(registry, name)

    def confirm(self, session_id: str, total_users: int | None = None) -> None:
        """The session recorded its claimed name: it is online now. `total_users`,
        when known, goes out with the presence change."""
        self._cast(Confirm(session_id, total_users))

    def release(self, session_id: str) -> None:
        self._cast(Release(session_id))

    def _cast(self, message: Confirm | Release) -> None:
        if not self.cast(message):
            # A restarting presence rebuilds from the sessions themselves.
            logger.error("Presence unavailable, dropped %r", message)


# -- the actor ------------------------------------------------------------------------------


class PresenceActor(LoopActor):
    """Holds the name table; the only place a name is granted.

    `address_claims` is the limit on names taken from one client address
    (default `NameClaimLimits().per_address`, the contract's); `clock` is the
    monotonic clock its buckets use."""

    def __init__(
        self,
        registry: Registry,
        *,
        metrics: ChatMetrics | None = None,
        address_claims: Limit | None = None,
        clock: Callable[[], float] = time.monotonic,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._registry = registry
        self._room = Room(registry)
        self._metrics = metrics if metrics is not None else ChatMetrics()
        limit = address_claims if address_claims is not None else NameClaimLimits().per_address
        self._claims_by_address = BucketsByKey(limit, clock)
        self._names = NameTable()
        self._awaiting: set[str] = set()
        self._deferred: list[Any] = []

    def on_start(self) -> None:
        for session in self._registry.members(SESSIONS_GROUP):
            try:
                session.tell(ReportIdentity(self.actor_ref))
            except pykka.ActorDeadError:
                continue
            self._awaiting.add(session.actor_urn)
        if self._awaiting:
            logger.info("Presence rebuilding from %d live sessions", len(self._awaiting))
            self.actor_loop.call_later(REBUILD_TIMEOUT_S, self._rebuild_timed_out)
        else:
            self._metrics.online_users.set(0)  # nobody is connected, so nobody is online

    def _rebuild_timed_out(self) -> None:
        with contextlib.suppress(pykka.ActorDeadError):
            self.actor_ref.tell(_RebuildTimeout())

    def on_receive(self, message: Any) -> Any:
        match message:
            case IdentityReport():
                self._add_report(message)
            case _RebuildTimeout() if self._awaiting:
                logger.warning("%d sessions did not report to presence", len(self._awaiting))
                self._awaiting.clear()
                self._rebuilt()
            case _RebuildTimeout():
                pass
            case _ if self._awaiting:
                self._deferred.append(message)
            case _:
                self._serve(message)
        return None

    def _serve(self, message: Any) -> None:
        match message:
            case Claim():
                tell_quietly(message.reply_to, Claimed(self._claim(message), message.tag))
            case Confirm(session_id=session_id, total_users=total_users):
                name = self._names.confirm(session_id)
                if name is not None:
                    self._announce((name,), (), total_users)
            case Release(session_id=session_id):
                name = self._names.release(session_id)
                if name is not None:
                    self._announce((), (name,))
            case Online(reply_to=reply_to, tag=tag):
                tell_quietly(reply_to, OnlineNow(self._names.online(), tag))
            case _:
                super().on_receive(message)

    # -- rebuilding ------------------------------------------------------------------------

    def _add_report(self, report: IdentityReport) -> None:
        self._awaiting.discard(report.session.actor_urn)
        if report.username is not None and not self._names.restore(
            report.session_id, report.session, report.username, confirmed=report.confirmed
        ):
            logger.warning(
                "Session %s reported %r, which another session holds; ignored",
                report.session_id,
                report.username,
            )
        if not self._awaiting:
            self._rebuilt()

    def _rebuilt(self) -> None:
        self._announce(self._names.online(), ())
        deferred, self._deferred = self._deferred, []
        for message in deferred:
            self._serve(message)

    # -- claims --------------------------------------------------------------------------

    def _claim(self, claim: Claim) -> ClaimResult:
        """Grant or refuse a claim; the address's limit is asked first, and
        drawn on only when the claim is granted (a takeover is not counted)."""
        address = None if claim.takeover else claim.address
        if address is not None:
            wait_s = self._claims_by_address.wait(address)
            if wait_s > 0:
                return ClaimResult(granted=False, retry_after_s=wait_s)
        grant = self._names.claim(
            claim.session_id, claim.session, claim.username, takeover=claim.takeover
        )
        if not grant.granted:
            return ClaimResult(granted=False, holder=grant.taken_by)
        if address is not None:
            self._claims_by_address.take(address)
        if grant.replaced is not None:
            # The token proves the name is the claimant's: the old connection
            # (perhaps dead and not yet noticed) becomes a viewer.
            tell_quietly(grant.replaced.session, Replaced(grant.replaced.username))
        if grant.left is not None:
            self._announce((), (grant.left,))
        return ClaimResult(granted=True)

    def _announce(
        self, joins: tuple[str, ...], leaves: tuple[str, ...], total_users: int | None = None
    ) -> None:
        """Tell everyone who came and went; the online count changed with it."""
        self._room.presence_changed(joins, leaves, total_users)
        self._metrics.online_users.set(self._names.online_count())
