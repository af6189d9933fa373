"""The room: fans out committed messages and presence changes to every live session.

A post's one path is session -> persistence (commit) -> room -> sessions. The
persistence actor tells the room each committed batch (`Committed`), in commit
order; the room is the one place that orders messages by seq for the clients:
it sends each batch's messages in seq order and never one at or below a seq it
has already sent. Each frame is encoded once, as bytes. Frames gather into a
round while the room has messages waiting (`_FanOut`, as group commit gathers
stores), and one `Deliver` holding the whole round is told to every session,
so a burst of posts costs each session one message and one socket write, not
one per post.

The room keeps no list of its own: the live sessions are the members of the
registry group `SESSIONS_GROUP`, which each session joins as it starts and
leaves as it ends. So a restarted room has nothing to rebuild; it serves the
same sessions from its first message. A room that crashes or is stopped
with a round gathered sends that round first (`on_failure`, `on_stop`), so a
crash loses no message for the clients that stay connected; messages still in
its inbox wait in the registry for the next incarnation.

Several nodes may share the database, each with its own room; the messages
table is the log, and every room delivers it in seq order. seq becomes visible
in commit order (`chatter.queries.insert_batch`), so reading "after the last
seq I sent" never skips one. A node's own commits go out at once when they
follow on from what the room has sent (the one-node fast path); otherwise, and
whenever the commit listener wakes it (`Wake`: another node committed, or a
tick), the room reads the log after its last seq and sends what it finds. Not
every seq is a message (a refused or duplicate post spends one), so a gap only
says "read", never "wait".

A room starts at the newest page of the log (its highest seq is where the
room begins) and tells every live session to catch up (`CatchUp`): a
restarted room does not know what the last one sent, and each session knows
what it has, so each reads from there itself.

The room also remembers the newest `WELCOME_MESSAGES` messages it has sent,
which are the newest of the log up to its last seq, and answers a welcome's
messages from them (`Recall`): no read of the database and no thread woken for
each connection. That page is as fresh as a read begun after the session joined
the sessions group, which every session does before it asks: a message
committed before the join and not yet sent is sent to it by the room later, as
to every member. A resume whose missed messages are not all remembered is
declined (`NotRemembered`), and the session reads the log instead. A welcome
shows each author by their current spelling, as the log does: a name that
comes online spelt anew (``Ann`` reclaiming ``ann``) re-spells the remembered
messages of that user.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pykka

from chatter.commit_listener import Wake
from chatter.errors import RoomUnavailable
from chatter.messages import Page, StoredMessage
from chatter.metrics import ChatMetrics
from chatter.persistence import Persistence, ReadDone, ReadFailed, read_after, read_newest
from chatter.protocol import message_frame, presence_frame
from chatter.reply import Failed, Recipient, Request, ServerClient, tell_quietly
from chatter.usernames import username_key
from chatter.welcome import WELCOME_MESSAGES, recalled_backlog
from supervision import LoopActor, NameNotRegisteredError, NameUnavailableError, Registry

__all__ = [
    "CATCH_UP_LIMIT",
    "NAME",
    "SESSIONS_GROUP",
    "CatchUp",
    "Committed",
    "Deliver",
    "Delivery",
    "NotRemembered",
    "PresenceChanged",
    "Recall",
    "Room",
    "RoomActor",
]

logger = logging.getLogger(__name__)

NAME = "room"
SESSIONS_GROUP = "live-sessions"
"""The registry group of the live session actors (apart from `tree.SESSIONS`,
the id of the supervisor that starts them)."""

CATCH_UP_LIMIT = 1000
"""The most messages one read of the log brings; more are read at once after."""

BASELINE_RETRY_S = 0.5
"""How soon a room that could not read where the log ends asks again."""


@dataclass(frozen=True)
class Committed:
    """From persistence: messages just committed, to send to everyone."""

    messages: tuple[StoredMessage, ...]


@dataclass(frozen=True)
class PresenceChanged:
    """Tell everyone who came online and who left."""

    joins: tuple[str, ...]
    leaves: tuple[str, ...]
    total_users: int | None = None
    unlisted: tuple[str, ...] = ()
    """Those of `leaves` who never posted: no longer listed (issue #17)."""


@dataclass(frozen=True)
class Delivery:
    """One encoded frame, shared by all receivers. `seq` is the message's seq,
    or None for a frame that is not a message."""

    frame: bytes
    seq: int | None


@dataclass(frozen=True)
class Deliver:
    """To a session: a round of frames to send its client, in order.

    One `Deliver` goes to every session, so what they all need is worked out
    once, here: `frames` (one tuple, which the connections may frame and join
    once for all) and the lowest and highest message seq of the round. A
    session whose last seq is below `first_seq` sends `frames` as they are."""

    deliveries: tuple[Delivery, ...]
    frames: tuple[bytes, ...] = field(init=False, repr=False, compare=False)
    first_seq: int | None = field(init=False, repr=False, compare=False)
    """The round's lowest message seq, or None if it holds no message."""
    last_seq: int | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        seqs = [delivery.seq for delivery in self.deliveries if delivery.seq is not None]
        object.__setattr__(self, "frames", tuple(d.frame for d in self.deliveries))
        object.__setattr__(self, "first_seq", min(seqs) if seqs else None)
        object.__setattr__(self, "last_seq", max(seqs) if seqs else None)


@dataclass(frozen=True)
class CatchUp:
    """To a session, from a room that just started: you may have missed
    messages while no room ran; read the log after the last seq you have."""


@dataclass(frozen=True)
class NotRemembered(Failed):
    """The room cannot answer a `Recall`: it does not remember every message
    the client missed, or it cannot be reached. Read the log instead."""


@dataclass(frozen=True, kw_only=True)
class Recall(Request):
    """Ask the room for a welcome's messages from those it remembers: the
    newest `WELCOME_MESSAGES` (`after` None), or those after `after` for a
    client resuming. Answered with ``ReadDone(tag, welcome.Backlog)``, as a
    read of the log would be, or with `NotRemembered`. Ask only once joined
    to `SESSIONS_GROUP`: what the room sends after it answers reaches you."""

    failed = NotRemembered
    after: int | None = None


@dataclass(frozen=True)
class _FanOut:
    """To itself: send the round gathered so far."""


@dataclass(frozen=True)
class _Baseline:
    """The tag of the read of the highest seq committed, when the room starts.
    `room` is the asking incarnation's urn: an answer to a room that died
    reaches its successor (with what was left in its inbox), which ignores it."""

    room: str


@dataclass(frozen=True)
class _LogRead:
    """The tag of a read of the log after the last seq sent, by `room`."""

    room: str


class Room(ServerClient):
    """The room's client API, by name. A `Recall` it cannot deliver is
    answered at once with `NotRemembered`."""

    unavailable = RoomUnavailable

    def __init__(self, registry: Registry, name: str = NAME) -> None:
        super().__init__(registry, name)

    def recall(self, after: int | None, reply_to: Recipient, tag: Any = None) -> None:
        """Ask for a welcome's messages; see `Recall`."""
        self.tell(Recall(after=after, reply_to=reply_to, tag=tag))

    def committed(self, messages: tuple[StoredMessage, ...]) -> None:
        self._tell(Committed(messages))

    def presence_changed(
        self,
        joins: tuple[str, ...],
        leaves: tuple[str, ...],
        total_users: int | None = None,
        unlisted: tuple[str, ...] = (),
    ) -> None:
        if joins or leaves:
            self._tell(PresenceChanged(joins, leaves, total_users, unlisted))

    def _tell(self, message: Any) -> None:
        try:
            self._registry.tell(self._name, message)
        except (NameNotRegisteredError, NameUnavailableError) as error:
            # Clients that miss it get it on resume: the message is stored.
            logger.error("Room unavailable, %r not fanned out: %s", message, error)


class RoomActor(LoopActor):
    """Fans frames out to the members of the sessions group, messages in seq order."""

    def __init__(
        self, registry: Registry, *, metrics: ChatMetrics | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._registry = registry
        self._persistence = Persistence(registry)
        self._metrics = metrics if metrics is not None else ChatMetrics()
        self._last_seq: int | None = None
        """The highest seq queued: nothing at or below it is sent again. None
        until the room knows where the log ends."""
        self._early: list[tuple[StoredMessage, ...]] = []
        """Commits told before that: sorted out once it is known."""
        self._reading = False
        """A read of the log is on its way."""
        self._read_again = False
        """Something new was heard during that read: read again after it."""
        self._round: list[Delivery] = []
        """Frames that arrived since the last fan-out, in order."""
        self._fan_out_told = False
        self._recent: deque[StoredMessage] = deque(maxlen=WELCOME_MESSAGES)
        """The newest messages of the log up to the last seq sent, in seq order."""
        self._older = False
        """Whether the log holds messages older than `_recent`."""
        self._recent_page: Page | None = None
        """`_recent` as a page, made once for every welcome until the next message."""
        self._spellings: dict[str, str] = {}
        """The spelling of each author in `_recent`, by username key."""
        self._recalls: list[Recall] = []
        """Asked before the room knew where the log ends: answered once it does."""
        self._urn = ""

    def on_start(self) -> None:
        self._urn = self.actor_ref.actor_urn
        self._ask_baseline()

    def on_receive(self, message: Any) -> Any:
        match message:
            case Committed(messages=messages):
                self._committed(messages)
            case Wake(seq=seq):
                self._metrics.wakes.labels("tick" if seq is None else "notify").inc()
                if self._last_seq is not None and (seq is None or seq > self._last_seq):
                    self._read_log()
            case ReadDone(tag=_LogRead(room=urn), value=page) if urn == self._urn:
                self._log_read(page)
            case ReadFailed(tag=_LogRead(room=urn), error=error) if urn == self._urn:
                # The next wake-up (a tick at the latest) reads again.
                self._reading = self._read_again = False
                logger.warning("Room could not read the log: %s", error)
            case PresenceChanged(joins=joins, leaves=leaves, total_users=total):
                self._respell(joins)
                frame = presence_frame(joins, leaves, total, message.unlisted)
                self._queue([Delivery(frame.encode(), None)])
            case _FanOut():
                self._fan_out_told = False
                self._send_round()
            case Recall():
                self._recall(message)
            case ReadDone(tag=_Baseline(room=urn), value=page) if urn == self._urn:
                self._begin_at(page)
            case ReadFailed(tag=_Baseline(room=urn), error=error) if urn == self._urn:
                logger.warning("Room could not read where the log ends: %s", error)
                self.actor_loop.call_later(BASELINE_RETRY_S, self._ask_baseline_again)
            case ReadDone(tag=_Baseline() | _LogRead()) | ReadFailed(tag=_Baseline() | _LogRead()):
                pass  # asked by an incarnation that died since
            case _:
                super().on_receive(message)
        return None

    # -- where the room begins -----------------------------------------------------------

    def _ask_baseline(self) -> None:
        self._persistence.tell(read_newest(WELCOME_MESSAGES, self.actor_ref, _Baseline(self._urn)))

    def _ask_baseline_again(self) -> None:
        if self.actor_ref.is_alive():
            self._ask_baseline()

    def _begin_at(self, newest: Page) -> None:
        """Start sending after the newest page of the log, and remember it.
        Sessions that were connected before (this room is a restarted one)
        catch up on what committed while no room ran, each from what it has."""
        self._last_seq = newest.messages[-1].seq if newest.messages else 0
        self._remember(newest.messages)
        self._older = newest.has_more
        for session in self._registry.members(SESSIONS_GROUP):
            try:
                session.tell(CatchUp())
            except pykka.ActorDeadError:
                self._registry.leave(SESSIONS_GROUP, session)
        early, self._early = self._early, []
        for messages in early:
            self._committed(messages)
        recalls, self._recalls = self._recalls, []
        for recall in recalls:
            self._recall(recall)

    # -- a welcome's messages, from memory -----------------------------------------------

    def _recall(self, recall: Recall) -> None:
        if self._last_seq is None:
            self._recalls.append(recall)
            return
        if self._recent_page is None:
            self._recent_page = Page(tuple(self._recent), self._older)
        backlog = recalled_backlog(self._recent_page, recall.after)
        if backlog is None:
            self._metrics.recalls_not_remembered.inc()
            answer: Any = recall.failure(RoomUnavailable("the room does not remember them all"))
        else:
            self._metrics.recalls_remembered.inc()
            answer = ReadDone(recall.tag, backlog)
        tell_quietly(recall.reply_to, answer)

    def _remember(self, messages: Iterable[StoredMessage]) -> None:
        if len(self._spellings) > 2 * WELCOME_MESSAGES:  # authors gone from `_recent`
            self._spellings.clear()
            messages = [*self._recent, *messages]
            self._recent.clear()
        for message in messages:
            self._recent.append(message)
            self._spellings[username_key(message.username)] = message.username
        self._recent_page = None

    def _respell(self, joins: Iterable[str]) -> None:
        """Show the remembered messages of a user who came online spelt anew
        by that spelling, as a read of the log would."""
        for name in joins:
            key = username_key(name)
            if self._spellings.get(key, name) == name:
                continue
            self._spellings[key] = name
            self._recent = deque(
                (
                    dataclasses.replace(m, username=name) if username_key(m.username) == key else m
                    for m in self._recent
                ),
                maxlen=WELCOME_MESSAGES,
            )
            self._recent_page = None

    # -- messages in seq order -----------------------------------------------------------

    def _committed(self, messages: tuple[StoredMessage, ...]) -> None:
        """This node's commit: out at once if it follows on from the last seq
        sent; after a gap, read the log, which holds what fills it."""
        last = self._last_seq
        if last is None:
            self._early.append(messages)
            return
        fresh = sorted((m for m in messages if m.seq > last), key=lambda m: m.seq)
        if not fresh:
            return
        if fresh[0].seq == last + 1:
            self._send_messages(fresh)
        else:
            self._read_log()

    def _read_log(self) -> None:
        """Read the log after the last seq sent; one read at a time."""
        assert self._last_seq is not None, "reads begin once the baseline is known"
        if self._reading:
            self._read_again = True
            return
        self._reading = True
        self._metrics.log_reads.inc()
        self._persistence.tell(
            read_after(self._last_seq, CATCH_UP_LIMIT, self.actor_ref, _LogRead(self._urn))
        )

    def _log_read(self, page: Page) -> None:
        """Send what the log holds beyond the last seq sent (commits of this
        node may have gone out meanwhile), and read on if there is more."""
        self._reading = False
        assert self._last_seq is not None
        last = self._last_seq
        fresh = [m for m in page.messages if m.seq > last]
        if fresh:
            self._send_messages(fresh)
        if page.has_more or self._read_again:
            self._read_again = False
            self._read_log()

    def _send_messages(self, messages: list[StoredMessage]) -> None:
        """Queue `messages` (sorted, every seq above the last sent) and remember them."""
        self._last_seq = messages[-1].seq
        if len(self._recent) + len(messages) > WELCOME_MESSAGES:
            self._older = True
        self._remember(messages)
        self._queue(Delivery(message_frame(m).encode(), m.seq) for m in messages)

    def on_failure(self, *_: Any) -> None:
        self._send_round()

    def on_stop(self) -> None:
        self._send_round()

    def _send_round(self) -> None:
        """Send what was gathered, if anything (a crash must not lose it)."""
        if self._round:
            deliveries, self._round = tuple(self._round), []
            told = self._fan_out(Deliver(deliveries))
            sent = sum(1 for delivery in deliveries if delivery.seq is not None)
            self._metrics.deliveries.inc(told * sent)  # once per round

    def _queue(self, deliveries: Iterable[Delivery]) -> None:
        """Join the next fan-out round. As group commit does for stores, a
        round goes out once what waits in the inbox now is in it: under load,
        rounds grow, and each session still gets one message and makes one
        write per round."""
        self._round.extend(deliveries)
        if not self._fan_out_told:
            self._fan_out_told = True
            self.actor_ref.tell(_FanOut())

    def _fan_out(self, deliver: Deliver) -> int:
        """Tell every live session; how many were told."""
        told = 0
        for session in self._registry.members(SESSIONS_GROUP):
            try:
                session.tell(deliver)
            except pykka.ActorDeadError:
                self._registry.leave(SESSIONS_GROUP, session)
            else:
                told += 1
        return told
