"""The presence actor: who is online, across every node sharing the
database, and which session of this node holds which name (its messages
and client API are `chatter.presence`).

The rules of who may hold a name are `chatter.names.NameTable`'s, applied
here to this node's sessions, and `chatter.node_queries.claim_name`'s, applied
in the database across the nodes: of two racing claims exactly one wins,
wherever they were made. Holding is two steps: a `Claim` reserves the name
(in the database, under this node's lease; answered `Claimed`), and once the
user is recorded the session `Confirm`s it, and it is online. A reserved name
is already taken for others; an unconfirmed one is not shown. Claims of this
node are decided one at a time: other requests wait while one is in the
database.

Who is online is read, not told: every change notifies the nodes
(`node_queries.PRESENCE_CHANNEL`), and on each notification and each tick of
the commit listener (`PresenceWake`) presence reads the online set again and
tells its clients what changed since the last read, so every node sends the
same changes, within a tick. The same read shows a name of this node taken
over on another (`Replaced`), and names this node still holds in the
database for sessions that ended (let go again).

A node's names count only while its lease is live (`chatter.lease`): a node
whose lease is lost (it was cut off from the database, or paused) is fenced:
it claims nothing until it holds a new lease, then claims each of its names
again under it. A name another node took meanwhile is not its any more: that
session is closed (`Fenced`, 1012), and its client reconnects. The others
keep their names and their connections, so an outage of the one database
every node shares disconnects nobody.

Presence also answers the rest of a welcome's people: the most recently seen
users and the count of all, kept as its last read of them found them
(`chatter.recent_users`), so that a welcome reads nothing of the database.

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
row is written and nobody is told. A claim refused as taken, and a claim
with a token (the name is already the claimant's), take nothing. Each session
limits its own connection's claims the same way before asking. The buckets
live only in this actor (and node): a restarted presence starts every address
full again.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka

from chatter import node_queries
from chatter.commit_listener import PresenceWake
from chatter.errors import PresenceUnavailable
from chatter.lease import NAME as LEASE
from chatter.lease import LeaseHeld, LeaseLost, WhatLease
from chatter.metrics import ChatMetrics
from chatter.names import NameTable
from chatter.node_queries import ClaimOutcome, OnlineClaims
from chatter.persistence import Persistence, Read, ReadDone, ReadFailed, read_recent_users
from chatter.presence import (
    REBUILD_TIMEOUT_S,
    Announced,
    Claim,
    Claimed,
    ClaimResult,
    Confirm,
    Fenced,
    IdentityReport,
    LeaveName,
    LeftElsewhere,
    Online,
    OnlineNow,
    Posted,
    Release,
    ReportIdentity,
    SessionsNamed,
    SessionsNamedNow,
)
from chatter.recent_users import RecentUsers, UsersChanged
from chatter.reply import tell_quietly
from chatter.room import SESSIONS_GROUP, Room
from chatter.throttle import BucketsByKey, Limit, NameClaimLimits
from chatter.usernames import username_key
from chatter.welcome import RECENT_USERS_READ
from supervision import LoopActor, NameNotRegisteredError, NameUnavailableError, Registry

__all__ = ["PresenceActor"]

logger = logging.getLogger("chatter.presence")

LEASE_WAIT_S = 2.0
"""How long a starting presence waits to hear which lease its node holds
(the lease actor answers between short waits) before serving without one."""


# -- the actor ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _LeaseTimeout:
    pass


@dataclass(frozen=True)
class _RebuildTimeout:
    pass


@dataclass(frozen=True)
class _ClaimWrite:
    """The tag of a claim's statement in the database."""

    claim: Claim
    presence: str
    """The asking incarnation's urn: an answer to one that died is ignored."""


@dataclass(frozen=True)
class _UsersRead:
    """The tag of a read of the recent users, begun at `generation` (`RecentUsers`)."""

    presence: str
    generation: int


@dataclass(frozen=True)
class _OnlineRead:
    """The tag of a read of the online set. `writes` counts this node's
    writes settled when it was asked (the read shows them all); `grants`
    counts the claims it had granted; `quiet`: none was in the database."""

    presence: str
    writes: int
    grants: int
    quiet: bool
    lease: uuid.UUID | None
    """The lease held when it was asked: a read from before a move to a new
    lease shows names under one the node no longer has."""


@dataclass(frozen=True)
class _Restore:
    """The tag of moving this node's names to a new lease."""

    presence: str
    lease: LeaseHeld


@dataclass(frozen=True)
class _Written:
    """The tag of a write that changes who is online (nobody waits for it):
    `keys`, the names it is about."""

    presence: str
    what: str
    keys: tuple[str, ...] = ()
    counted: bool = False
    """It changes the people count (a name that never posted came or went):
    welcomes wait for it (`_people_writes`)."""


class PresenceActor(LoopActor):
    """This node's name table and the cluster's online set; the only place a
    name is granted on this node.

    `address_claims` is the limit on names taken from one client address
    (default `NameClaimLimits().per_address`, the contract's); `clock` is the
    monotonic clock its buckets and the lease's validity are read on."""

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
        self._persistence = Persistence(registry)
        self._metrics = metrics if metrics is not None else ChatMetrics()
        self._clock = clock
        limit = address_claims if address_claims is not None else NameClaimLimits().per_address
        self._claims_by_address = BucketsByKey(limit, clock)
        self._names = NameTable()
        """The names this node's sessions hold."""
        self._awaiting: set[str] = set()
        self._deferred: collections.deque[Any] = collections.deque()
        self._lease: LeaseHeld | None = None
        self._claiming: Claim | None = None
        """The claim in the database now, if any: the rest waits for it."""
        self._grants = 0
        self._granted_at: dict[str, int] = {}
        """For each holding session, the count of grants when it was granted."""
        self._online: dict[str, str] = {}
        """Who this node's clients have been told is online, by name key."""
        self._read_once = False
        """Whether the online set was read since this actor started."""
        self._online_known = False
        """Whether asks of who is online can be answered: the online set was
        read, or a read failed (then with what this node knows)."""
        self._total: int | None = None
        """The count of users last told (a join carries it when it changed)."""
        self._writes = 0
        """This node's writes of who is online that have settled (answered)."""
        self._posters: set[str] = set()
        """The keys of names told online whose user has posted: when they
        leave they stay listed; the others' leaves say they are `unlisted`."""
        self._people_writes = 0
        """Writes in flight that change the people count (`_counted`): welcomes
        wait for them, and for a read of the recent users after."""
        self._writing = 0
        """Confirms and releases sent to the database and not yet answered."""
        self._unsettled: dict[str, float] = {}
        """Names changed here whose write a read may not show yet: the count
        of settled writes once theirs settled (infinity while in flight)."""
        self._reading = False
        self._read_again = False
        self._online_asks: list[Online] = []
        """Asks of the online set before the first read, or while the recent
        users are being read after a change: answered once both are in."""
        self._users = RecentUsers(self._read_users)
        self._lost_lease: uuid.UUID | None = None
        """The lease this node held last, while it holds none."""
        self._restoring = False
        """Moving this node's names to a new lease."""
        self._claims_before_lease: list[Claim] = []
        self._lease_unknown = True
        """Asked the lease actor which lease this node holds; no answer yet."""
        self._urn = ""

    def on_start(self) -> None:
        self._urn = self.actor_ref.actor_urn
        with contextlib.suppress(NameNotRegisteredError, NameUnavailableError):
            self._registry.tell(LEASE, WhatLease(self.actor_ref))
        self.actor_loop.call_later(LEASE_WAIT_S, self._tell_self, _LeaseTimeout())
        for session in self._registry.members(SESSIONS_GROUP):
            try:
                session.tell(ReportIdentity(self.actor_ref))
            except pykka.ActorDeadError:
                continue
            self._awaiting.add(session.actor_urn)
        if self._awaiting:
            logger.info("Presence rebuilding from %d live sessions", len(self._awaiting))
            self.actor_loop.call_later(REBUILD_TIMEOUT_S, self._rebuild_timed_out)
        self._read_online()
        self._users.refresh()

    def _rebuild_timed_out(self) -> None:
        self._tell_self(_RebuildTimeout())

    def _tell_self(self, message: Any) -> None:
        with contextlib.suppress(pykka.ActorDeadError):
            self.actor_ref.tell(message)

    def on_receive(self, message: Any) -> Any:
        match message:
            case IdentityReport():
                self._add_report(message)
            case _RebuildTimeout() if self._awaiting:
                logger.warning("%d sessions did not report to presence", len(self._awaiting))
                self._awaiting.clear()
                self._serve_deferred()
            case _RebuildTimeout():
                pass
            case LeaseHeld():
                self._lease_held(message)
            case LeaseLost(lease_id=lease_id):
                self._lease_lost(lease_id)
                self._lease_known()
            case ReadDone(tag=_Restore(presence=urn, lease=lease), value=lost) if urn == self._urn:
                self._restored(lease, lost)
            case ReadFailed(tag=_Restore(presence=urn), error=error) if urn == self._urn:
                logger.error("Presence could not move its names to the new lease: %s", error)
                self._restoring = False
                self._serve_deferred()
            case _LeaseTimeout() if self._lease_unknown:
                logger.warning(
                    "Presence heard of no lease: names cannot be taken until one is held"
                )
                self._lease_known()
            case _LeaseTimeout():
                pass
            case PresenceWake():
                self._read_online()
                self._users.refresh()
            case UsersChanged():
                self._users.changed()
            case Posted(session_id=session_id):
                holder = self._names.holder(session_id)
                if holder is not None:
                    self._posters.add(holder.key)
            case ReadDone(tag=_UsersRead(presence=urn, generation=generation), value=page) if (
                urn == self._urn
            ):
                self._users.read_done(generation, page)
                self._serve_online_asks()
            case ReadFailed(tag=_UsersRead(presence=urn, generation=generation), error=error) if (
                urn == self._urn
            ):
                logger.warning("Presence could not read the recent users: %s", error)
                self._users.read_failed(generation)
                self._serve_online_asks()
            case ReadDone(tag=_OnlineRead(presence=urn) as tag, value=value) if urn == self._urn:
                self._online_read(tag, value)
            case ReadFailed(tag=_OnlineRead(presence=urn), error=error) if urn == self._urn:
                self._online_read_failed(error)
            case ReadDone(tag=_ClaimWrite(presence=urn, claim=claim), value=outcome) if (
                urn == self._urn
            ):
                self._claim_written(claim, outcome)
            case ReadFailed(tag=_ClaimWrite(presence=urn, claim=claim), error=error) if (
                urn == self._urn
            ):
                self._claim_failed(claim, error)
            case ReadDone(tag=_Written(presence=urn) as tag) if urn == self._urn:
                self._written(tag)
            case ReadFailed(tag=_Written(presence=urn, what=what) as tag, error=error) if (
                urn == self._urn
            ):
                # The next read of the online set shows what the database holds.
                logger.warning("Presence could not record %s: %s", what, error)
                self._written(tag)
            case (
                ReadDone(tag=_OnlineRead() | _UsersRead() | _ClaimWrite() | _Written() | _Restore())
                | ReadFailed()
            ):
                pass  # asked by an incarnation that died since, or needs no answer
            case _ if self._must_wait(message, behind=bool(self._deferred)):
                self._deferred.append(message)
            case _:
                self._serve(message)
        return None

    def _must_wait(self, message: Any, *, behind: bool) -> bool:
        """Whether `message` waits (`behind`: others wait already, and it
        would overtake them). Asks of who
        is online never do (they read what clients were told). The rest wait
        while presence is rebuilding or moving its names to a new lease; and
        claims and releases wait while a claim, confirm or release is in the
        database (a claim after a release must find the name free, a release
        must find the claim it undoes, and the database runs side by side what
        it is sent)."""
        if isinstance(message, Online | SessionsNamed):
            return False
        if self._awaiting or self._restoring or behind:
            return True
        if isinstance(message, Confirm):
            return False  # its claim was answered: nothing it depends on is pending
        return self._claiming is not None or self._writing > 0

    def _serve_deferred(self) -> None:
        while self._deferred:
            head = self._deferred.popleft()
            if self._must_wait(head, behind=False):
                self._deferred.appendleft(head)
                return
            self._serve(head)

    def _serve(self, message: Any) -> None:
        match message:
            case Claim() if self._lease_unknown:
                self._claims_before_lease.append(message)  # served once it is known
            case Claim():
                self._claim(message)
            case Confirm(session_id=session_id, total_users=total_users):
                confirmed, name = self._names.confirm(session_id)
                holder = self._names.holder(session_id)
                if message.posted and holder is not None:
                    self._posters.add(holder.key)
                if confirmed and holder is not None:
                    keys = (holder.key,) if name is not None else ()
                    self._write("a confirm", node_queries.confirm_name, session_id, keys)
                if name is not None:
                    self._tell_clients((name,), (), total_users)
                    if total_users is not None:
                        self._total = total_users
                self._metrics.online_users_here.set(self._names.online_count())
                if message.reply_to is not None:
                    tell_quietly(message.reply_to, Announced(message.tag))
            case Release(session_id=session_id):
                if self._names.holds(session_id):
                    name = self._names.release(session_id)
                    self._granted_at.pop(session_id, None)
                    keys = (username_key(name),) if name is not None else ()
                    self._write("a release", node_queries.release_name, session_id, keys)
                    if name is not None:
                        self._tell_clients((), (name,))
                self._metrics.online_users_here.set(self._names.online_count())
            case LeaveName(session_id=session_id):
                self._leave(session_id)
            case SessionsNamed(prefix=prefix, limit=limit):
                found = tuple(
                    (h.session_id, h.username, h.confirmed)
                    for h in self._names.named(prefix, limit)
                )
                tell_quietly(message.reply_to, SessionsNamedNow(found, message.tag))
            case Online():
                if not self._can_answer_online():
                    self._online_asks.append(message)
                else:
                    self._answer_online(message)
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
            self._serve_deferred()

    # -- claims --------------------------------------------------------------------------

    def _claim(self, claim: Claim) -> None:
        """Refuse what this node can refuse alone (the address's limit, asked
        first and drawn on only when granted; a name its sessions hold); ask
        the database for the rest."""
        lease = self._live_lease()
        if lease is None:
            error = PresenceUnavailable("this node holds no lease; names cannot be taken here now")
            tell_quietly(claim.reply_to, claim.failure(error))
            return
        address = None if claim.by_token else claim.address
        if address is not None:
            wait_s = self._claims_by_address.wait(address)
            if wait_s > 0:
                self._answer(claim, ClaimResult(granted=False, retry_after_s=wait_s))
                return
        holder = self._names.holder_of(claim.username, claim.session_id)
        if holder is not None and not (
            claim.by_token and holder.key == username_key(claim.username)
        ):
            self._answer(claim, ClaimResult(granted=False, holder=holder.username))
            return
        self._claiming = claim
        query = functools.partial(
            node_queries.claim_name,
            lease_id=lease.lease_id,
            session_id=claim.session_id,
            username=claim.username,
            by_token=claim.by_token,
        )
        self._persistence.tell(
            Read(query, reply_to=self.actor_ref, tag=_ClaimWrite(claim, self._urn))
        )

    def _claim_written(self, claim: Claim, outcome: ClaimOutcome) -> None:
        self._claiming = None
        if not outcome.granted:
            self._answer(claim, ClaimResult(granted=False, holder=outcome.holder))
        else:
            grant = self._names.claim(
                claim.session_id, claim.session, claim.username, by_token=claim.by_token
            )
            self._grants += 1
            self._granted_at[claim.session_id] = self._grants
            if not claim.by_token and claim.address is not None:
                self._claims_by_address.take(claim.address)
            if grant.left is not None:  # the session's earlier name, let go by the claim
                self._settled((username_key(grant.left),))
                self._tell_clients((), (grant.left,))
            self._answer(claim, ClaimResult(granted=True))
            self._metrics.online_users_here.set(self._names.online_count())
        self._serve_deferred()

    def _claim_failed(self, claim: Claim, error: Exception) -> None:
        self._claiming = None
        if isinstance(error, node_queries.LeaseExpiredError):
            error = PresenceUnavailable("this node's lease has expired; names cannot be taken here")
        tell_quietly(claim.reply_to, claim.failure(error))
        self._serve_deferred()

    def _answer(self, claim: Claim, result: ClaimResult) -> None:
        tell_quietly(claim.reply_to, Claimed(result, claim.tag))

    def _live_lease(self) -> LeaseHeld | None:
        lease = self._lease
        if lease is None or self._clock() >= lease.valid_until:
            return None
        return lease

    def _write(
        self,
        what: str,
        statement: Callable[..., None],
        session_id: str,
        keys: tuple[str, ...],
    ) -> None:
        """Write a confirm or a release; until it settles, reads of the online
        set may not show it, so they do not decide about `keys`."""
        lease = self._lease
        if lease is None:
            return  # fenced: the names went with the lease
        for key in keys:
            self._unsettled[key] = math.inf
        self._writing += 1
        tag = _Written(self._urn, what, keys, self._counted(keys))
        query = functools.partial(statement, lease_id=lease.lease_id, session_id=session_id)
        self._persistence.tell(Read(query, reply_to=self.actor_ref, tag=tag))

    def _written(self, tag: _Written) -> None:
        self._writing -= 1
        self._settled(tag.keys)
        if tag.counted:
            # Whoever is online counts among the people (`queries.PEOPLE_COUNT`):
            # welcomes wait for a count read after the write.
            self._people_writes -= 1
            self._users.changed()
        self._serve_deferred()

    def _counted(self, keys: tuple[str, ...]) -> bool:
        """Whether a write bringing or taking `keys` online changes the people
        count: a name that never posted (a poster counts, online or not). Such
        writes are few (joins and leaves of lurkers); welcomes wait for them."""
        counted = any(key not in self._posters for key in keys)
        self._people_writes += 1 if counted else 0
        return counted

    def _settled(self, keys: tuple[str, ...]) -> None:
        """A write about `keys` was answered: reads asked from now on show it."""
        self._writes += 1
        for key in keys:
            self._unsettled[key] = self._writes

    def _tell_clients(
        self, joins: tuple[str, ...], leaves: tuple[str, ...], total_users: int | None = None
    ) -> None:
        """Tell this node's clients who came and went (at once, for a change
        made here: a first post's join goes out before the post)."""
        online = self._online
        joins = tuple(name for name in joins if online.get(username_key(name)) != name)
        leaves = tuple(name for name in leaves if username_key(name) in online)
        unlisted = tuple(name for name in leaves if username_key(name) not in self._posters)
        for name in leaves:
            del online[username_key(name)]
            self._posters.discard(username_key(name))
        for name in joins:
            online[username_key(name)] = name
        if joins or leaves:
            total = total_users if joins else None
            self._room.presence_changed(joins, leaves, total, unlisted)
        self._metrics.online_users.set(len(online))

    def _read_users(self, generation: int) -> None:
        tag = _UsersRead(self._urn, generation)
        self._persistence.tell(read_recent_users(RECENT_USERS_READ, self.actor_ref, tag))

    def _can_answer_online(self) -> bool:
        """Whether the online set was read (or could not be), no write that
        changes the people count is in flight, and the recent users were read
        since the last such write settled: the count shows it."""
        return self._online_known and self._people_writes == 0 and self._users.settled

    def _serve_online_asks(self) -> None:
        """Answer the asks of who is online once `_can_answer_online`."""
        if not self._can_answer_online():
            return
        asks, self._online_asks = self._online_asks, []
        for ask in asks:
            self._answer_online(ask)

    def _answer_online(self, ask: Online) -> None:
        tell_quietly(ask.reply_to, OnlineNow(self._online_names(), ask.tag, self._users.page))

    def _online_names(self) -> tuple[str, ...]:
        return tuple(sorted(self._online.values(), key=username_key))

    # -- the online set, as the database has it --------------------------------------------

    def _read_online(self) -> None:
        """Read who is online, one read at a time."""
        if self._reading:
            self._read_again = True
            return
        self._reading = True
        lease = self._lease.lease_id if self._lease is not None else None
        tag = _OnlineRead(
            self._urn, self._writes, self._grants, quiet=self._claiming is None, lease=lease
        )
        self._persistence.tell(Read(node_queries.online_claims, reply_to=self.actor_ref, tag=tag))

    def _online_read(self, tag: _OnlineRead, now: OnlineClaims) -> None:
        """Tell this node's clients what changed since they were last told,
        leaving out names changed here that the read may not show yet."""
        self._reading = False
        total = now.total_users if self._read_once and now.total_users != self._total else None
        self._total = now.total_users
        self._read_once = self._online_known = True
        told = self._online
        held = {username_key(name): name for name in now.online()}
        self._posters.update(
            c.username_key for c in now.claims if c.posted and c.confirmed and not c.ended
        )
        visible = {key for key, settled in self._unsettled.items() if settled <= tag.writes}

        def decided(key: str) -> bool:
            return key not in self._unsettled or key in visible

        joins = tuple(name for key, name in held.items() if told.get(key) != name and decided(key))
        leaves = tuple(name for key, name in told.items() if key not in held and decided(key))
        for key in visible:
            del self._unsettled[key]
        self._tell_clients(
            tuple(sorted(joins, key=username_key)), tuple(sorted(leaves, key=username_key)), total
        )
        self._serve_online_asks()
        current = self._lease.lease_id if self._lease is not None else None
        if not self._awaiting and not self._restoring and tag.lease == current:
            self._notice_left_elsewhere(tag, now)
            self._let_go_of_leftovers(tag, now)
        if self._read_again:
            self._read_again = False
            self._read_online()

    def _online_read_failed(self, error: Exception) -> None:
        self._reading = self._read_again = False
        logger.warning("Presence could not read who is online: %s", error)
        self._online_known = True
        self._serve_online_asks()  # with what this node knows, rather than nothing

    def _notice_left_elsewhere(self, tag: _OnlineRead, now: OnlineClaims) -> None:
        """A name of this node's sessions that a Leave on another node let go
        (their rows are marked `ended`): tell our sessions, and let go."""
        lease = self._lease
        if lease is None:
            return
        ended = {
            claim.session_id
            for claim in now.claims
            if claim.ended is not None and claim.lease_id == lease.lease_id
        }
        for holder in self._names.holders():
            if holder.session_id not in ended:
                continue
            if self._granted_at.get(holder.session_id, 0) > tag.grants:
                continue  # granted after this read was asked: the mark is older
            name = self._names.release(holder.session_id)
            self._granted_at.pop(holder.session_id, None)
            keys = (holder.key,) if name is not None else ()
            self._write("a release", node_queries.release_name, holder.session_id, keys)
            if name is not None:
                self._tell_clients((), (name,))
            tell_quietly(holder.session, LeftElsewhere(holder.username))

    def _leave(self, session_id: str) -> None:
        """A Leave: the name goes for this session and every other holding
        it, here (told at once) and on other nodes (their rows marked)."""
        holder = self._names.holder(session_id)
        if holder is None:
            return
        letting = self._names.leave(session_id)
        self._granted_at.pop(session_id, None)
        for other in letting.others:
            self._granted_at.pop(other.session_id, None)
            tell_quietly(other.session, LeftElsewhere(other.username))
        keys = (holder.key,) if letting.left is not None else ()
        lease = self._lease
        if lease is not None:
            for key in keys:
                self._unsettled[key] = math.inf
            self._writing += 1
            tag = _Written(self._urn, "a leave", keys, self._counted(keys))
            query = functools.partial(
                node_queries.leave_name,
                lease_id=lease.lease_id,
                session_id=session_id,
                username_key=holder.key,
            )
            self._persistence.tell(Read(query, reply_to=self.actor_ref, tag=tag))
        if letting.left is not None:
            self._tell_clients((), (letting.left,))
        self._metrics.online_users_here.set(self._names.online_count())

    def _let_go_of_leftovers(self, tag: _OnlineRead, now: OnlineClaims) -> None:
        """Names the database holds for sessions of this node that hold none
        (their release could not be written): let them go now."""
        lease = self._lease
        if lease is None or not tag.quiet or self._claiming is not None:
            return
        if tag.grants != self._grants:
            return  # a claim came through since: the read cannot show it
        leftovers = [
            claim.session_id
            for claim in now.claims
            if claim.lease_id == lease.lease_id and not self._names.holds(claim.session_id)
        ]
        if leftovers:
            self._writing += 1
            query = functools.partial(
                node_queries.release_sessions, lease_id=lease.lease_id, session_ids=leftovers
            )
            self._persistence.tell(
                Read(query, reply_to=self.actor_ref, tag=_Written(self._urn, "leftover releases"))
            )

    # -- the lease -------------------------------------------------------------------------

    def _lease_held(self, held: LeaseHeld) -> None:
        """The lease renewed (or learned at start); or a new one, after the
        last was lost (or the lease actor restarted): move the names there."""
        known = self._lease.lease_id if self._lease is not None else self._lost_lease
        if known is None:  # a presence that started while the node had no lease
            known = held.previous
        if known is None or known == held.lease_id:
            self._lease = held
            self._lease_known()
        elif not self._restoring:
            self._restoring = True
            self._lease_known()  # claims wait on for the move
            holders = [(h.session_id, h.username, h.confirmed) for h in self._names.holders()]
            query = functools.partial(
                node_queries.restore_claims,
                lease_id=held.lease_id,
                previous_lease=known,
                holders=holders,
            )
            self._persistence.tell(
                Read(query, reply_to=self.actor_ref, tag=_Restore(self._urn, held))
            )

    def _lease_known(self) -> None:
        """Whether there is a lease or not, it is known: claims are served."""
        self._lease_unknown = False
        waiting, self._claims_before_lease = self._claims_before_lease, []
        self._deferred.extendleft(reversed(waiting))
        self._serve_deferred()

    def _lease_lost(self, lease_id: uuid.UUID) -> None:
        """Fenced: other nodes may take this node's names now, so it takes
        none, until a new lease is held and each name is claimed again."""
        if self._lease is None or self._lease.lease_id != lease_id:
            return  # an older lease: this one holds
        logger.error("Presence fenced: no names are taken here until a new lease is held")
        self._lost_lease, self._lease = lease_id, None

    def _restored(self, held: LeaseHeld, lost: list[str]) -> None:
        """The names are under the new lease, but for those another node took
        meanwhile: their sessions close (1012), and their clients reconnect
        (with a token, a name that is theirs comes back to them)."""
        self._restoring = False
        self._lease, self._lost_lease = held, None
        sessions = {h.session_id: h for h in self._names.holders()}
        for session_id in lost:
            holder = sessions.get(session_id)
            if holder is None:
                continue
            name = self._names.release(session_id)
            self._granted_at.pop(session_id, None)
            if name is not None:
                self._tell_clients((), (name,))
            tell_quietly(holder.session, Fenced())
        if lost:
            logger.warning("%d names were taken elsewhere while this node was fenced", len(lost))
        self._metrics.online_users_here.set(self._names.online_count())
        self._serve_deferred()
