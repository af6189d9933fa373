"""Presence: who is online, and which session holds which name.

A name is held by at most one session, and while it is held no other session
may take it, nor a look-alike of it (same confusable key). Holding is two
steps: a `claim` reserves the name atomically (the actor handles one message
at a time, so of two racing claims exactly one wins), and once the user is
recorded in the database the session `confirm`s it, which tells everyone. A
reserved name is already taken for others; an unconfirmed one is not shown.

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

from chatter.metrics import ChatMetrics
from chatter.room import SESSIONS_GROUP, Room
from chatter.throttle import BucketsByKey, Limit, NameClaimLimits
from chatter.usernames import confusable_keys, username_key
from supervision import (
    Future,
    LoopActor,
    NameNotRegisteredError,
    NameUnavailableError,
    Registry,
)

__all__ = [
    "NAME",
    "REBUILD_TIMEOUT_S",
    "Claim",
    "ClaimResult",
    "IdentityReport",
    "Presence",
    "PresenceActor",
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
class Claim:
    session_id: str
    session: pykka.ActorRef[Any]
    username: str
    takeover: bool
    reply: Future[ClaimResult] = field(compare=False)
    address: str | None = None
    """The client's address, whose name-claim bucket a granted claim draws on
    (None: not limited, for claims that come from no client)."""


@dataclass(frozen=True)
class Confirm:
    session_id: str
    total_users: int | None = None
    """Everyone who has ever joined, counted as the name was recorded."""


@dataclass(frozen=True)
class Release:
    session_id: str


@dataclass(frozen=True)
class Online:
    reply: Future[tuple[str, ...]] = field(compare=False)


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


class Presence:
    """Presence's client API, by name."""

    def __init__(self, registry: Registry, name: str = NAME) -> None:
        self._registry = registry
        self._name = name

    def claim(
        self,
        session_id: str,
        session: pykka.ActorRef[Any],
        username: str,
        *,
        takeover: bool,
        address: str | None = None,
    ) -> Future[ClaimResult]:
        """Reserve `username` (already valid) for the session. With `takeover`
        (the client proved with its token that the name is its own) a session
        holding it is replaced instead of the claim being refused. Otherwise
        a granted claim counts against `address`'s name-claim limit, and
        with that limit reached the claim is refused (`retry_after_s`)."""
        reply: Future[ClaimResult] = Future()
        self._send(Claim(session_id, session, username, takeover, reply, address), reply)
        return reply

    def confirm(self, session_id: str, total_users: int | None = None) -> None:
        """The session recorded its claimed name: it is online now. `total_users`,
        when known, goes out with the presence change."""
        self._send(Confirm(session_id, total_users))

    def release(self, session_id: str) -> None:
        self._send(Release(session_id))

    def online(self) -> Future[tuple[str, ...]]:
        """The names of the online users, sorted case-insensitively."""
        reply: Future[tuple[str, ...]] = Future()
        self._send(Online(reply), reply)
        return reply

    def _send(self, message: Any, reply: Future[Any] | None = None) -> None:
        try:
            self._registry.tell(self._name, message)
        except (NameNotRegisteredError, NameUnavailableError) as error:
            if reply is not None:
                reply.set_exception((type(error), error, None))
            else:
                logger.error("Presence unavailable, dropped %r: %s", message, error)


# -- the actor ------------------------------------------------------------------------------


@dataclass
class _Holder:
    session_id: str
    session: pykka.ActorRef[Any]
    username: str
    key: str
    look_alikes: frozenset[str]
    confirmed: bool


class PresenceActor(LoopActor):
    """Holds the map of names to sessions; the only place a name is granted.

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
        self._by_key: dict[str, _Holder] = {}
        self._by_look_alike: dict[str, _Holder] = {}
        self._by_session: dict[str, _Holder] = {}
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
        if isinstance(message, IdentityReport):
            self._add_report(message)
        elif isinstance(message, _RebuildTimeout):
            if self._awaiting:
                logger.warning("%d sessions did not report to presence", len(self._awaiting))
                self._awaiting.clear()
                self._rebuilt()
        elif self._awaiting:
            self._deferred.append(message)
        else:
            self._serve(message)
        return None

    def _serve(self, message: Any) -> None:
        if isinstance(message, Claim):
            message.reply.set(self._claim(message))
        elif isinstance(message, Confirm):
            self._confirm(message.session_id, message.total_users)
        elif isinstance(message, Release):
            self._release(message.session_id)
        elif isinstance(message, Online):
            message.reply.set(self._online())
        else:
            super().on_receive(message)

    # -- rebuilding ------------------------------------------------------------------------

    def _add_report(self, report: IdentityReport) -> None:
        self._awaiting.discard(report.session.actor_urn)
        if report.username is not None and self._accepts(report):
            holder = self._hold(report.session_id, report.session, report.username)
            holder.confirmed = report.confirmed
        if not self._awaiting:
            self._rebuilt()

    def _accepts(self, report: IdentityReport) -> bool:
        """Whether a reported name may be held: a report never displaces another
        session's confirmed name (two sessions cannot both hold one)."""
        assert report.username is not None
        current = self._by_key.get(username_key(report.username)) or self._look_alike_of(
            report.username, report.session_id
        )
        if current is None or current.session_id == report.session_id:
            return True
        if report.confirmed and not current.confirmed:
            self._forget(current)
            return True
        logger.warning(
            "Session %s reported %r, which %s holds; ignored",
            report.session_id,
            report.username,
            current.session_id,
        )
        return False

    def _rebuilt(self) -> None:
        self._announce(self._online(), ())
        deferred, self._deferred = self._deferred, []
        for message in deferred:
            self._serve(message)

    # -- the rules -----------------------------------------------------------------------

    def _claim(self, claim: Claim) -> ClaimResult:
        """Grant or refuse a claim; the address's limit is asked first, and
        drawn on only when the claim is granted (a takeover is not counted)."""
        address = None if claim.takeover else claim.address
        if address is not None:
            wait_s = self._claims_by_address.wait(address)
            if wait_s > 0:
                return ClaimResult(granted=False, retry_after_s=wait_s)
        result = self._grant(claim)
        if address is not None and result.granted:
            self._claims_by_address.take(address)
        return result

    def _grant(self, claim: Claim) -> ClaimResult:
        key = username_key(claim.username)
        holder = self._by_key.get(key) or self._look_alike_of(claim.username, claim.session_id)
        if holder is not None and holder.session_id != claim.session_id:
            if not (claim.takeover and holder.key == key):
                return ClaimResult(granted=False, holder=holder.username)
            # The token proves the name is the claimant's: the old connection
            # (perhaps dead and not yet noticed) becomes a viewer.
            self._forget(holder)
            with contextlib.suppress(pykka.ActorDeadError):
                holder.session.tell(Replaced(holder.username))
            confirmed_before = holder.confirmed
        else:
            confirmed_before = False
        previous = self._by_session.get(claim.session_id)
        if previous is not None and previous.key == key:
            previous.username = claim.username
            return ClaimResult(granted=True)
        if previous is not None:
            self._forget(previous)
            if previous.confirmed:
                self._announce((), (previous.username,))
        new = self._hold(claim.session_id, claim.session, claim.username)
        new.confirmed = confirmed_before  # a takeover keeps the name online throughout
        return ClaimResult(granted=True)

    def _confirm(self, session_id: str, total_users: int | None) -> None:
        holder = self._by_session.get(session_id)
        if holder is not None and not holder.confirmed:
            holder.confirmed = True
            self._announce((holder.username,), (), total_users)

    def _release(self, session_id: str) -> None:
        holder = self._by_session.get(session_id)
        if holder is not None:
            self._forget(holder)
            if holder.confirmed:
                self._announce((), (holder.username,))

    def _announce(
        self, joins: tuple[str, ...], leaves: tuple[str, ...], total_users: int | None = None
    ) -> None:
        """Tell everyone who came and went; the online count changed with it."""
        self._room.presence_changed(joins, leaves, total_users)
        online = sum(1 for holder in self._by_key.values() if holder.confirmed)
        self._metrics.online_users.set(online)

    def _online(self) -> tuple[str, ...]:
        names = (h.username for h in self._by_key.values() if h.confirmed)
        return tuple(sorted(names, key=username_key))

    def _look_alike_of(self, username: str, session_id: str) -> _Holder | None:
        """Another session's name that looks like `username` (UTS #39 skeletons,
        with and without case folding, so capital look-alikes count too)."""
        for look_alike in confusable_keys(username):
            holder = self._by_look_alike.get(look_alike)
            if holder is not None and holder.session_id != session_id:
                return holder
        return None

    def _hold(self, session_id: str, session: pykka.ActorRef[Any], username: str) -> _Holder:
        holder = _Holder(
            session_id, session, username, username_key(username), confusable_keys(username), False
        )
        self._by_key[holder.key] = holder
        for look_alike in holder.look_alikes:
            self._by_look_alike[look_alike] = holder
        self._by_session[session_id] = holder
        return holder

    def _forget(self, holder: _Holder) -> None:
        if self._by_key.get(holder.key) is holder:
            del self._by_key[holder.key]
        for look_alike in holder.look_alikes:
            if self._by_look_alike.get(look_alike) is holder:
                del self._by_look_alike[look_alike]
        if self._by_session.get(holder.session_id) is holder:
            del self._by_session[holder.session_id]
