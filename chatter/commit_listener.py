"""The commit listener: how a node hears that messages were committed, or that
someone came online or went offline, by any node sharing the database.

Each committed batch notifies `queries.MESSAGES_CHANNEL` with its highest seq
(`queries.insert_batch`). A notification is only a wake-up: the messages table
is the log, and whoever is woken reads it after the last seq it has. So a lost
notification costs latency, never a message, and the listener also wakes its
recipient on a tick (`TICK_S`) as the safety net. Presence changes notify
`node_queries.PRESENCE_CHANNEL`; the listener tells presence `PresenceWake`
for them and on each tick too (a node that dies notifies nobody: its names go
offline when its lease expires, which a tick notices).

The listener holds a connection of its own, in autocommit and outside the pool
(a LISTEN belongs to one session of the server). It waits for notifications in
short polls, each a message to itself, so that a stop is served between them.
A lost connection is not a crash: the database is expected to go away now and
then (a restart, a failover, a cut), and an outage must not spend the tree's
restart budget. The listener connects again every `POLL_S` until it can, LISTENs,
and wakes the recipient to catch up on whatever committed while nobody listened.
Anything else it cannot handle crashes it, and its supervisor starts it afresh.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from chatter.database import CONNECT_TIMEOUT_S
from chatter.node_queries import PRESENCE_CHANNEL
from chatter.queries import MESSAGES_CHANNEL
from chatter.reply import Recipient, tell_quietly
from supervision import ThreadActor

__all__ = ["POLL_S", "TICK_S", "CommitListener", "PresenceWake", "Wake"]

logger = logging.getLogger(__name__)

TICK_S = 1.0
"""How often the recipient is woken with no notification, as a safety net."""

POLL_S = 0.05
"""The longest one wait for notifications lasts: a stop waits at most this."""


@dataclass(frozen=True)
class Wake:
    """To the recipient: read the log after the last seq you have. `seq` is the
    highest seq notified since the last wake-up, or None for a tick or a
    (re)start, which say only that something may have been missed."""

    seq: int | None


@dataclass(frozen=True)
class PresenceWake:
    """To presence: read who is online again (someone came or went, or a tick)."""


@dataclass(frozen=True)
class _Poll:
    """To itself: wait a while for notifications."""


class CommitListener(ThreadActor):
    """LISTENs on `queries.MESSAGES_CHANNEL` and tells `recipient` `Wake`;
    with `presence`, also on `PRESENCE_CHANNEL`, and tells it `PresenceWake`."""

    def __init__(
        self,
        conninfo: str,
        recipient: Recipient,
        *,
        presence: Recipient | None = None,
        tick_s: float = TICK_S,
        poll_s: float = POLL_S,
    ) -> None:
        super().__init__()
        self._conninfo = conninfo
        self._recipient = recipient
        self._presence = presence
        self._tick_s = tick_s
        self._poll_s = min(poll_s, tick_s)
        self._conn: psycopg.Connection[Any] | None = None
        self._next_tick = 0.0
        self._down_since: float | None = None
        """When the connection was lost (or could not be made), while it is."""

    def on_start(self) -> None:
        self._connect()
        self.actor_ref.tell(_Poll())

    def on_receive(self, message: Any) -> Any:
        match message:
            case _Poll():
                self._poll()
                self.actor_ref.tell(_Poll())
            case _:
                super().on_receive(message)
        return None

    def on_stop(self) -> None:
        self._close()

    def on_failure(self, *_: Any) -> None:
        self._close()

    def _connect(self) -> None:
        """Connect and LISTEN, then wake the recipient: what committed while
        nobody listened is in the log. If the database cannot be reached,
        wait a poll and leave it to the next."""
        try:
            conn = psycopg.connect(
                self._conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
            )
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(MESSAGES_CHANNEL)))
            if self._presence is not None:
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(PRESENCE_CHANNEL)))
        except psycopg.OperationalError as error:
            if self._down_since is None:
                self._down_since = time.monotonic()
                logger.error("Commit listener cannot reach the database: %s", error)
            time.sleep(self._poll_s)  # a refused connection fails fast: do not spin
            return
        if self._down_since is not None:
            logger.warning(
                "Commit listener listening again after %.1f s",
                time.monotonic() - self._down_since,
            )
            self._down_since = None
        self._conn = conn
        self._next_tick = time.monotonic() + self._tick_s
        self._wake_everyone()

    def _poll(self) -> None:
        """Wait up to `poll_s` for notifications; wake the recipient with the
        highest seq among them, or on the tick. Without a connection, try to
        make one instead."""
        if self._conn is None:
            self._connect()
            return
        try:
            highest, presence_changed = self._notified(self._conn)
        except psycopg.OperationalError as error:
            self._down_since = time.monotonic()
            logger.error("Commit listener lost its connection: %s; connecting again", error)
            self._close()
            return
        now = time.monotonic()
        tick = now >= self._next_tick
        if tick:
            self._next_tick = now + self._tick_s
        if highest is not None:
            tell_quietly(self._recipient, Wake(highest))
        elif tick:
            tell_quietly(self._recipient, Wake(None))
        if self._presence is not None and (presence_changed or tick):
            tell_quietly(self._presence, PresenceWake())

    def _wake_everyone(self) -> None:
        """A tick, or listening (again): something may have been missed."""
        tell_quietly(self._recipient, Wake(None))
        if self._presence is not None:
            tell_quietly(self._presence, PresenceWake())

    def _notified(self, conn: psycopg.Connection[Any]) -> tuple[int | None, bool]:
        """The highest seq notified within a poll (None if none came), and
        whether anyone came online or went offline."""
        highest: int | None = None
        presence_changed = False
        # stop_after=1: back as soon as one arrives (with any that came in
        # the same packet), so a wake-up is never held for the rest of the poll.
        for notify in conn.notifies(timeout=self._poll_s, stop_after=1):
            if notify.channel == PRESENCE_CHANNEL:
                presence_changed = True
                continue
            try:
                seq = int(notify.payload)
            except ValueError:
                logger.warning("Ignoring a notification that is not a seq: %r", notify.payload)
                continue
            highest = seq if highest is None else max(highest, seq)
        return highest, presence_changed

    def _close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(psycopg.Error):
                conn.close()
