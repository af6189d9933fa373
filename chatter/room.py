"""The room: fans out stored messages and presence changes to every live session.

The room keeps no list of its own: the live sessions are the members of the
registry group `SESSIONS_GROUP`, which each session joins as it starts and
leaves as it ends. So a restarted room has nothing to rebuild; it serves the
same sessions from its first message. Each frame is encoded once, as bytes,
and the same object is told to every session.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pykka

from chatter.messages import StoredMessage
from chatter.metrics import ChatMetrics
from chatter.protocol import message_frame, presence_frame
from supervision import LoopActor, NameNotRegisteredError, NameUnavailableError, Registry

__all__ = ["NAME", "SESSIONS_GROUP", "Broadcast", "Deliver", "PresenceChanged", "Room", "RoomActor"]

logger = logging.getLogger(__name__)

NAME = "room"
SESSIONS_GROUP = "sessions"


@dataclass(frozen=True)
class Broadcast:
    """Send a stored message to everyone."""

    message: StoredMessage


@dataclass(frozen=True)
class PresenceChanged:
    """Tell everyone who came online and who left."""

    joins: tuple[str, ...]
    leaves: tuple[str, ...]
    total_users: int | None = None


@dataclass(frozen=True)
class Deliver:
    """To a session: one encoded frame, shared by all receivers. `seq` is the
    message's seq, or None for a frame that is not a message."""

    frame: bytes
    seq: int | None


class Room:
    """The room's client API, by name."""

    def __init__(self, registry: Registry, name: str = NAME) -> None:
        self._registry = registry
        self._name = name

    def broadcast(self, message: StoredMessage) -> None:
        self._tell(Broadcast(message))

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

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Broadcast):
            frame = message_frame(message.message).encode()
            told = self._fan_out(Deliver(frame, message.message.seq))
            self._metrics.deliveries.inc(told)  # once per fan-out, not per session
        elif isinstance(message, PresenceChanged):
            frame = presence_frame(message.joins, message.leaves, message.total_users).encode()
            self._fan_out(Deliver(frame, None))
        else:
            super().on_receive(message)
        return None

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
