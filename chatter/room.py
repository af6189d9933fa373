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
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pykka

from chatter.messages import StoredMessage
from chatter.metrics import ChatMetrics
from chatter.protocol import message_frame, presence_frame
from supervision import LoopActor, NameNotRegisteredError, NameUnavailableError, Registry

__all__ = [
    "NAME",
    "SESSIONS_GROUP",
    "Committed",
    "Deliver",
    "Delivery",
    "PresenceChanged",
    "Room",
    "RoomActor",
]

logger = logging.getLogger(__name__)

NAME = "room"
SESSIONS_GROUP = "live-sessions"
"""The registry group of the live session actors (apart from `tree.SESSIONS`,
the id of the supervisor that starts them)."""


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
class _FanOut:
    """To itself: send the round gathered so far."""


class Room:
    """The room's client API, by name."""

    def __init__(self, registry: Registry, name: str = NAME) -> None:
        self._registry = registry
        self._name = name

    def committed(self, messages: tuple[StoredMessage, ...]) -> None:
        self._tell(Committed(messages))

    def presence_changed(
        self, joins: tuple[str, ...], leaves: tuple[str, ...], total_users: int | None = None
    ) -> None:
        if joins or leaves:
            self._tell(PresenceChanged(joins, leaves, total_users))

    def _tell(self, message: Any) -> None:
        try:
            self._registry.tell(self._name, message)
        except (NameNotRegisteredError, NameUnavailableError) as error:
            # Clients that miss it get it on resume: the message is stored.
            logger.error("Room unavailable, %r not fanned out: %s", message, error)


class RoomActor(LoopActor):
    """Fans frames out to the members of the sessions group."""

    def __init__(
        self, registry: Registry, *, metrics: ChatMetrics | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._registry = registry
        self._metrics = metrics if metrics is not None else ChatMetrics()
        self._last_seq = 0
        """The highest seq queued: nothing at or below it is sent again."""
        self._round: list[Delivery] = []
        """Frames that arrived since the last fan-out, in order."""
        self._fan_out_told = False

    def on_receive(self, message: Any) -> Any:
        match message:
            case Committed(messages=messages):
                fresh = sorted((m for m in messages if m.seq > self._last_seq), key=lambda m: m.seq)
                if fresh:
                    self._last_seq = fresh[-1].seq
                    self._queue(Delivery(message_frame(m).encode(), m.seq) for m in fresh)
            case PresenceChanged(joins=joins, leaves=leaves, total_users=total):
                self._queue([Delivery(presence_frame(joins, leaves, total).encode(), None)])
            case _FanOut():
                self._fan_out_told = False
                self._send_round()
            case _:
                super().on_receive(message)
        return None

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
