"""The node's lease: its right to hold names in a database other nodes share.

A node's names count only while its lease is live (`chatter.node_queries`).
The lease actor takes a lease when it starts, renews it every `HEARTBEAT_S`
on a connection of its own (a renewal must not queue behind the posts of a
busy pool), and tells presence (`LeaseHeld`) after each renewal until when,
on this process's monotonic clock, the lease surely holds: counted from
before the renewal was sent, less `SAFETY_S`, so a slow answer only
shortens it. A node that cannot renew in time, or finds its lease expired
(it was paused, or cut off from the database), tells presence `LeaseLost`:
presence takes no names meanwhile, and the lease actor takes a new lease as
soon as it can; presence then claims its names again under it (those taken
by another node meanwhile are lost, and their sessions closed).

A node that stops drops its lease, and every name under it goes offline at
once; a node that dies leaves it to expire, `LEASE_S` later.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg

from chatter import node_queries
from chatter.database import CONNECT_TIMEOUT_S
from chatter.reply import Recipient, tell_quietly
from supervision import ThreadActor

__all__ = [
    "HEARTBEAT_S",
    "LEASE_S",
    "NAME",
    "SAFETY_S",
    "LeaseActor",
    "LeaseHeld",
    "LeaseLost",
    "WhatLease",
]

logger = logging.getLogger(__name__)

NAME = "lease"

HEARTBEAT_S = 2.0
"""How often the lease is renewed."""

LEASE_S = 10.0
"""How long a renewal holds the lease, on the database's clock."""

POLL_S = 0.05
"""The longest one wait between beats lasts: a stop waits at most this."""

SAFETY_S = 2.0
"""How much sooner than the database's expiry the node stops trusting its lease."""


@dataclass(frozen=True)
class LeaseHeld:
    """To presence: the lease `lease_id` holds until `valid_until` (monotonic).
    `previous` is the lease this actor held before it, lost (so that a presence
    that started meanwhile knows whose names to move)."""

    lease_id: uuid.UUID
    valid_until: float
    previous: uuid.UUID | None = None


@dataclass(frozen=True)
class LeaseLost:
    """To presence: the lease `lease_id` no longer holds; fence the node."""

    lease_id: uuid.UUID


@dataclass(frozen=True)
class WhatLease:
    """From a (restarted) presence: tell me the lease you hold, if any."""

    reply_to: Recipient


@dataclass(frozen=True)
class _Wait:
    """To itself: wait a little for the next beat, or beat."""


class LeaseActor(ThreadActor):
    """Takes, renews and drops this node's lease; tells `presence` how it stands."""

    def __init__(
        self,
        conninfo: str,
        node_id: str,
        presence: Recipient,
        *,
        heartbeat_s: float = HEARTBEAT_S,
        lease_s: float = LEASE_S,
        safety_s: float = SAFETY_S,
    ) -> None:
        super().__init__()
        self._conninfo = conninfo
        self._node_id = node_id
        self._presence = presence
        self._heartbeat_s = heartbeat_s
        self._lease_s = lease_s
        self._safety_s = min(safety_s, lease_s / 2)
        self._conn: psycopg.Connection[Any] | None = None
        self._lease_id: uuid.UUID | None = None
        """The lease held, or None while there is none (not yet, or lost)."""
        self._lost: uuid.UUID | None = None
        """The last lease lost, if any."""
        self._valid_until = 0.0
        self._next_beat = 0.0

    def on_start(self) -> None:
        self._beat()
        self.actor_ref.tell(_Wait())

    def on_receive(self, message: Any) -> Any:
        match message:
            case WhatLease(reply_to=reply_to):
                if self._lease_id is not None:
                    tell_quietly(reply_to, LeaseHeld(self._lease_id, self._valid_until, self._lost))
            case _Wait():
                # Short waits, each a message, so that a stop is served between them.
                remaining = self._next_beat - time.monotonic()
                if remaining > 0:
                    time.sleep(min(remaining, POLL_S))
                else:
                    self._beat()
                self.actor_ref.tell(_Wait())
            case _:
                super().on_receive(message)
        return None

    def on_stop(self) -> None:
        if self._lease_id is not None:
            try:
                node_queries.drop_lease(self._connection(), self._lease_id)
            except psycopg.Error as error:
                logger.warning("Could not drop the lease (it expires by itself): %s", error)
        self._close()

    def on_failure(self, *_: Any) -> None:
        self._close()

    def _beat(self) -> None:
        """Renew the lease, or take one."""
        started = time.monotonic()
        self._next_beat = started + self._heartbeat_s
        try:
            self._renew_or_take(started)
        except psycopg.Error as error:
            self._close()
            logger.error("Could not renew the lease: %s", error)
            if self._lease_id is not None and time.monotonic() >= self._valid_until:
                self._lose("it could not be renewed in time")

    def _renew_or_take(self, started: float) -> None:
        conn = self._connection()
        if self._lease_id is not None:
            if node_queries.renew_lease(conn, self._lease_id, self._lease_s):
                self._held(started)
                return
            self._lose("it had expired")
        lease_id = uuid.uuid4()
        node_queries.take_lease(conn, lease_id, self._node_id, self._lease_s)
        self._lease_id = lease_id
        logger.info("Node %s holds lease %s", self._node_id, lease_id)
        self._held(started)

    def _held(self, started: float) -> None:
        assert self._lease_id is not None
        self._valid_until = started + self._lease_s - self._safety_s
        tell_quietly(self._presence, LeaseHeld(self._lease_id, self._valid_until, self._lost))

    def _lose(self, why: str) -> None:
        assert self._lease_id is not None
        logger.error("Node %s lost lease %s: %s", self._node_id, self._lease_id, why)
        tell_quietly(self._presence, LeaseLost(self._lease_id))
        self._lost, self._lease_id = self._lease_id, None

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self._conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
            )
        return self._conn

    def _close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(psycopg.Error):
                conn.close()
