"""The commit listener: how a node hears that messages were committed, by any
node sharing the database.

Each committed batch notifies `queries.MESSAGES_CHANNEL` with its highest seq
(`queries.insert_batch`). A notification is only a wake-up: the messages table
is the log, and whoever is woken reads it after the last seq it has. So a lost
notification costs latency, never a message, and the listener also wakes its
recipient on a tick (`TICK_S`) as the safety net.

The listener holds a connection of its own, in autocommit and outside the pool
(a LISTEN belongs to one session of the server). It waits for notifications in
short polls, each a message to itself, so that a stop is served between them.
When the connection fails it crashes, and its supervisor starts it again: a
fresh connection LISTENs, then wakes the recipient to catch up on whatever
committed while nobody listened.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from chatter.database import CONNECT_TIMEOUT_S
from chatter.queries import MESSAGES_CHANNEL
from chatter.reply import Recipient, tell_quietly
from supervision import ThreadActor

__all__ = ["POLL_S", "TICK_S", "CommitListener", "Wake"]

logger = logging.getLogger(__name__)

TICK_S = 1.0
"""How often the recipient is woken with no notification, as a safety net."""

POLL_S = 0.2
"""The longest one wait for notifications lasts: a stop waits at most this."""


@dataclass(frozen=True)
class Wake:
    """To the recipient: read the log after the last seq you have. `seq` is the
    highest seq notified since the last wake-up, or None for a tick or a
    (re)start, which say only that something may have been missed."""

    seq: int | None


@dataclass(frozen=True)
class _Poll:
    """To itself: wait a while for notifications."""


class CommitListener(ThreadActor):
    """LISTENs on `queries.MESSAGES_CHANNEL` and tells `recipient` `Wake`."""

    def __init__(
        self,
        conninfo: str,
        recipient: Recipient,
        *,
        tick_s: float = TICK_S,
        poll_s: float = POLL_S,
    ) -> None:
        super().__init__()
        self._conninfo = conninfo
        self._recipient = recipient
        self._tick_s = tick_s
        self._poll_s = min(poll_s, tick_s)
        self._conn: psycopg.Connection[Any] | None = None
        self._next_tick = 0.0

    def on_start(self) -> None:
        self._conn = psycopg.connect(
            self._conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
        )
        self._conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(MESSAGES_CHANNEL)))
        self._next_tick = time.monotonic() + self._tick_s
        tell_quietly(self._recipient, Wake(None))  # what committed while nobody listened
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

    def _poll(self) -> None:
        """Wait up to `poll_s` for notifications; wake the recipient with the
        highest seq among them, or on the tick. A broken connection raises:
        the listener crashes and is started again."""
        assert self._conn is not None, "on_start connected"
        highest: int | None = None
        # stop_after=1: back as soon as one arrives (with any that came in
        # the same packet), so a wake-up is never held for the rest of the poll.
        for notify in self._conn.notifies(timeout=self._poll_s, stop_after=1):
            try:
                seq = int(notify.payload)
            except ValueError:
                logger.warning("Ignoring a notification that is not a seq: %r", notify.payload)
                continue
            highest = seq if highest is None else max(highest, seq)
        now = time.monotonic()
        if highest is not None:
            tell_quietly(self._recipient, Wake(highest))
            self._next_tick = now + self._tick_s
        elif now >= self._next_tick:
            tell_quietly(self._recipient, Wake(None))
            self._next_tick = now + self._tick_s

    def _close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()
