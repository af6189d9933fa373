"""The SQL of nodes sharing one database: leases, the names claimed under them,
and the cluster's online set.

A node's lease (`node_leases`) is renewed every `lease.HEARTBEAT_S` and
expires `lease.LEASE_S` after its last renewal, on the database's clock, so
the nodes' clocks never need to agree. Every name held by a connection is a
row of `name_claims` per look-alike key of the name
(`chatter.usernames.confusable_keys`, plus the case-folded key), under the
holder's lease: one primary key per look, so a name and every look-alike of
it have one holder across all nodes. A claim under an expired lease holds
nothing, and the next claimant takes it over.

Every change to who is online notifies `PRESENCE_CHANNEL`, in the statement
or transaction that makes it; each node then reads the online set again
(`online_claims`) and tells its clients what changed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import psycopg

from chatter.usernames import confusable_keys, username_key

__all__ = [
    "PRESENCE_CHANNEL",
    "ClaimOutcome",
    "ClaimRow",
    "LeaseExpiredError",
    "OnlineClaims",
    "claim_name",
    "confirm_name",
    "drop_lease",
    "look_alikes",
    "online_claims",
    "release_name",
    "release_sessions",
    "renew_lease",
    "restore_claims",
    "take_lease",
]

PRESENCE_CHANNEL = "chatter_presence"
"""Notified (empty payload) whenever a name comes online or goes offline."""

EXPIRED_LEASES_KEPT_S = 60
"""How long an expired lease and its claims stay, for anyone who looks, before
a node starting up deletes them."""


CLAIM_ATTEMPTS = 3
"""Tries of a claim that met another claim of a look-alike at the same moment."""


class LeaseExpiredError(Exception):
    """The node's lease has expired: it may not claim names until it takes a new one."""


@dataclass(frozen=True)
class ClaimRow:
    """One held name, as the claims table has it (one per name, whatever its looks)."""

    username: str
    username_key: str
    lease_id: uuid.UUID
    session_id: str
    confirmed: bool


@dataclass(frozen=True)
class OnlineClaims:
    """The names held under live leases, and the count of users ever recorded."""

    claims: tuple[ClaimRow, ...]
    total_users: int

    def online(self) -> tuple[str, ...]:
        """The confirmed names, sorted case-insensitively."""
        return tuple(sorted((c.username for c in self.claims if c.confirmed), key=username_key))


@dataclass(frozen=True)
class ClaimOutcome:
    """Granted, or taken by `holder` (as they spelled it)."""

    granted: bool
    holder: str | None = None


def look_alikes(username: str) -> list[str]:
    """Every key the name is claimed under, sorted (claims lock rows in this
    order, so two claims never wait for each other in a circle)."""
    return sorted({username_key(username), *confusable_keys(username)})


# -- leases ---------------------------------------------------------------------------------


def take_lease(
    conn: psycopg.Connection[Any], lease_id: uuid.UUID, node_id: str, lease_s: float
) -> None:
    """Hold a new lease, and delete leases (and their claims) long expired."""
    with conn.transaction():
        conn.execute(
            "DELETE FROM node_leases WHERE expires_at < now() - make_interval(secs => %s)",
            (EXPIRED_LEASES_KEPT_S,),
        )
        conn.execute(
            "INSERT INTO node_leases (lease_id, node_id, expires_at) "
            "VALUES (%s, %s, now() + make_interval(secs => %s))",
            (lease_id, node_id, lease_s),
        )


def renew_lease(conn: psycopg.Connection[Any], lease_id: uuid.UUID, lease_s: float) -> bool:
    """Push the lease's expiry on; False if it had expired already (then it
    stays expired: names held under it may have been taken meanwhile)."""
    row = conn.execute(
        "UPDATE node_leases SET expires_at = now() + make_interval(secs => %s) "
        "WHERE lease_id = %s AND expires_at > now() RETURNING 1",
        (lease_s, lease_id),
    ).fetchone()
    return row is not None


def drop_lease(conn: psycopg.Connection[Any], lease_id: uuid.UUID) -> None:
    """A node stopping lets its lease and every name under it go at once."""
    with conn.transaction():
        conn.execute("DELETE FROM node_leases WHERE lease_id = %s", (lease_id,))
        _notify(conn)


# -- names ----------------------------------------------------------------------------------


def claim_name(
    conn: psycopg.Connection[Any],
    lease_id: uuid.UUID,
    session_id: str,
    username: str,
    *,
    takeover: bool,
    previous_lease: uuid.UUID | None = None,
) -> ClaimOutcome:
    """Hold `username` for the session, in one transaction: granted if nobody
    else holds it or a look-alike under a live lease, or if `takeover` (the
    claimant proved with a token that the name is its own) and the holder has
    the very same name. The session's earlier name, if any, is let go. A claim
    of the same session under `previous_lease` (this node's last) is its own.

    Raises `LeaseExpiredError` if this node's lease has expired."""
    for _ in range(CLAIM_ATTEMPTS - 1):
        try:
            return _claim_once(conn, lease_id, session_id, username, takeover, previous_lease)
        except (_TakenMeanwhileError, psycopg.errors.DeadlockDetected):
            continue  # look again: the new holder is seen now
    return _claim_once(conn, lease_id, session_id, username, takeover, previous_lease)


def restore_claims(
    conn: psycopg.Connection[Any],
    lease_id: uuid.UUID,
    previous_lease: uuid.UUID,
    holders: list[tuple[str, str, bool]],
) -> list[str]:
    """Move this node's names from its last lease to a new one: each
    (session, name, confirmed) is claimed again, and kept unless another
    node took it while the last lease was not live. The sessions that lost
    their names. The last lease goes, with whatever else it held."""
    lost = []
    for session_id, username, confirmed in holders:
        outcome = claim_name(
            conn, lease_id, session_id, username, takeover=False, previous_lease=previous_lease
        )
        if not outcome.granted:
            lost.append(session_id)
        elif confirmed:
            confirm_name(conn, lease_id, session_id)
    with conn.transaction():
        conn.execute("DELETE FROM node_leases WHERE lease_id = %s", (previous_lease,))
        _notify(conn)
    return lost


def _claim_once(
    conn: psycopg.Connection[Any],
    lease_id: uuid.UUID,
    session_id: str,
    username: str,
    takeover: bool,
    previous_lease: uuid.UUID | None,
) -> ClaimOutcome:
    keys = look_alikes(username)
    key = username_key(username)
    with conn.transaction():
        live = conn.execute(
            "SELECT 1 FROM node_leases WHERE lease_id = %s AND expires_at > now() FOR SHARE",
            (lease_id,),
        ).fetchone()
        if live is None:
            raise LeaseExpiredError(f"lease {lease_id} has expired")
        holders = conn.execute(
            "SELECT c.look_alike, c.username, c.username_key, c.lease_id, c.session_id, "
            "coalesce(l.expires_at > now(), false) "
            "FROM name_claims c LEFT JOIN node_leases l USING (lease_id) "
            "WHERE c.look_alike = ANY(%s) ORDER BY c.look_alike FOR UPDATE OF c",
            (keys,),
        ).fetchall()
        for _, holder, holder_key, holder_lease, holder_session, alive in holders:
            mine = holder_session == session_id and holder_lease in (lease_id, previous_lease)
            if alive and not mine and not (takeover and holder_key == key):
                return ClaimOutcome(granted=False, holder=holder)
        conn.execute(
            "DELETE FROM name_claims WHERE lease_id = %s AND session_id = %s "
            "AND look_alike <> ALL(%s)",
            (lease_id, session_id, keys),
        )
        # Rows are overwritten only where they were just inspected (and locked):
        # a look-alike claimed meanwhile by someone else is left alone, and then
        # fewer rows come back than keys were asked.
        written = conn.execute(
            "INSERT INTO name_claims (look_alike, username_key, username, lease_id, session_id) "
            "SELECT k, %(key)s, %(name)s, %(lease)s, %(session)s FROM unnest(%(keys)s::text[]) k "
            "ON CONFLICT (look_alike) DO UPDATE SET username = EXCLUDED.username, "
            "  confirmed = coalesce(name_claims.confirmed AND name_claims.username_key = %(key)s "
            "    AND (%(takeover)s OR (name_claims.lease_id IN (%(lease)s, %(previous)s) "
            "                          AND name_claims.session_id = %(session)s)), false), "
            "  username_key = EXCLUDED.username_key, lease_id = EXCLUDED.lease_id, "
            "  session_id = EXCLUDED.session_id, claimed_at = now() "
            "WHERE name_claims.look_alike = ANY(%(inspected)s) "
            "RETURNING 1",
            {
                "key": key,
                "name": username,
                "lease": lease_id,
                "session": session_id,
                "keys": keys,
                "inspected": [row[0] for row in holders],
                "takeover": takeover,
                "previous": previous_lease,
            },
        ).fetchall()
        if len(written) < len(keys):
            raise _TakenMeanwhileError()
        _notify(conn)
    return ClaimOutcome(granted=True)


class _TakenMeanwhileError(Exception):
    """A look-alike was claimed by someone else between the look and the write."""


def confirm_name(conn: psycopg.Connection[Any], lease_id: uuid.UUID, session_id: str) -> None:
    """The session's name is recorded: online now, for every node."""
    with conn.transaction():
        conn.execute(
            "UPDATE name_claims SET confirmed = true WHERE lease_id = %s AND session_id = %s",
            (lease_id, session_id),
        )
        _notify(conn)


def release_name(conn: psycopg.Connection[Any], lease_id: uuid.UUID, session_id: str) -> None:
    """The session lets its name go."""
    release_sessions(conn, lease_id, [session_id])


def release_sessions(
    conn: psycopg.Connection[Any], lease_id: uuid.UUID, session_ids: list[str]
) -> None:
    """Let the names of these sessions of this node go (those that ended
    while the database could not be told)."""
    with conn.transaction():
        conn.execute(
            "DELETE FROM name_claims WHERE lease_id = %s AND session_id = ANY(%s)",
            (lease_id, session_ids),
        )
        _notify(conn)


def online_claims(conn: psycopg.Connection[Any]) -> OnlineClaims:
    """Every name held under a live lease (one row each), and the user count."""
    rows = conn.execute(
        "SELECT DISTINCT ON (c.lease_id, c.session_id) "
        "c.username, c.username_key, c.lease_id, c.session_id, c.confirmed "
        "FROM name_claims c JOIN node_leases l USING (lease_id) "
        "WHERE l.expires_at > now() ORDER BY c.lease_id, c.session_id"
    ).fetchall()
    total = conn.execute("SELECT count(*) FROM users").fetchone()
    return OnlineClaims(tuple(ClaimRow(*row) for row in rows), total[0] if total else 0)


def _notify(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SELECT pg_notify(%s, '')", (PRESENCE_CHANNEL,))
