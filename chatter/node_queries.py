"""The SQL of nodes sharing one database: leases, the names claimed under them,
and the cluster's online set.

A node's lease (`node_leases`) is renewed every `lease.HEARTBEAT_S` and
expires `lease.LEASE_S` after its last renewal, on the database's clock, so
the nodes' clocks never need to agree. Every name held by a connection is a
row of `name_claims` per look-alike key of the name
(`chatter.usernames.confusable_keys`, plus the case-folded key) and holding
connection, under the holder's lease. Claims take an advisory lock per
look-alike key and look under it, so a name and every look-alike of it have
one name among their holders across all nodes; several connections hold one
name together only when each proved with a token that it is theirs (the tabs
of one browser). A claim under an expired lease holds nothing, and the next
claimant takes it over.

Every change to who is online notifies `PRESENCE_CHANNEL`, in the statement
or transaction that makes it; each node then reads the online set again
(`online_claims`) and tells its clients what changed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import psycopg

from chatter import queries
from chatter.usernames import confusable_keys, username_key

__all__ = [
    "ENDED_LEFT",
    "NAME_LOCK_CLASS",
    "PRESENCE_CHANNEL",
    "ClaimOutcome",
    "ClaimRow",
    "LeaseExpiredError",
    "OnlineClaims",
    "claim_name",
    "confirm_name",
    "drop_lease",
    "leave_name",
    "look_alikes",
    "online_claims",
    "release_name",
    "release_sessions",
    "renew_lease",
    "restore_claims",
    "take_lease",
]

ENDED_LEFT = "left"
"""`name_claims.ended` for a connection whose name was let go by a Leave elsewhere."""

PRESENCE_CHANNEL = "chatter_presence"
"""Notified (empty payload) whenever a name comes online or goes offline."""

EXPIRED_LEASES_KEPT_S = 60
"""How long an expired lease and its claims stay, for anyone who looks, before
a node starting up deletes them."""


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
    ended: str | None = None
    """Why the name was let go for this connection elsewhere (`ENDED_LEFT`);
    None while it holds the name."""
    posted: bool = False
    """Whether the user of the name has posted at least once (`users.posted`)."""


@dataclass(frozen=True)
class OnlineClaims:
    """The connections holding names under live leases, and the people count
    (`PEOPLE_COUNT`)."""

    claims: tuple[ClaimRow, ...]
    total_users: int

    def online(self) -> tuple[str, ...]:
        """The confirmed names, each once however many connections hold it,
        sorted case-insensitively."""
        names = {c.username_key: c.username for c in self.claims if c.confirmed and not c.ended}
        return tuple(sorted(names.values(), key=username_key))


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


NAME_LOCK_CLASS = 0x6E616D65  # "name"
"""The first key of the advisory lock a claim takes per look-alike key (the
second is the key's hash): claims of look-alike names wait for each other, on
every node, so at most one name holds a look-alike key at a time."""


def claim_name(
    conn: psycopg.Connection[Any],
    lease_id: uuid.UUID,
    session_id: str,
    username: str,
    *,
    by_token: bool,
    previous_lease: uuid.UUID | None = None,
) -> ClaimOutcome:
    """Hold `username` for the session, in one transaction: granted if no
    other connection holds it or a look-alike under a live lease, or if
    `by_token` (the claimant proved with a token that the name is its own)
    and those holding it hold the very same name: then it holds the name with
    them. The session's earlier name, if any, is let go. A claim of the same
    session under `previous_lease` (this node's last: the names are moving to
    a new lease) is its own, and stays confirmed if it was; and then this
    node's sessions of the same name hold it together.

    Raises `LeaseExpiredError` if this node's lease has expired."""
    keys = look_alikes(username)
    key = username_key(username)
    with conn.transaction():
        live = conn.execute(
            "SELECT 1 FROM node_leases WHERE lease_id = %s AND expires_at > now() FOR SHARE",
            (lease_id,),
        ).fetchone()
        if live is None:
            raise LeaseExpiredError(f"lease {lease_id} has expired")
        for look_alike in keys:  # sorted: two claims never wait for each other in a circle
            conn.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (NAME_LOCK_CLASS, look_alike)
            )
        mine = [m for m in (lease_id, previous_lease) if m is not None]
        holders = conn.execute(
            "SELECT c.username, c.username_key, c.lease_id FROM name_claims c JOIN node_leases l "
            "USING (lease_id) WHERE c.look_alike = ANY(%s) AND l.expires_at > now() "
            "AND c.ended IS NULL AND NOT (c.session_id = %s AND c.lease_id = ANY(%s))",
            (keys, session_id, mine),
        ).fetchall()
        for holder, holder_key, holder_lease in holders:
            # Moving names to a new lease, this node's sessions of one name hold it together.
            restoring = previous_lease is not None and holder_lease in mine
            if not (holder_key == key and (by_token or restoring)):
                return ClaimOutcome(granted=False, holder=holder)
        confirmed = conn.execute(
            "SELECT coalesce(bool_or(confirmed), false) FROM name_claims "
            "WHERE session_id = %s AND lease_id = ANY(%s) AND username_key = %s AND ended IS NULL",
            (session_id, mine, key),
        ).fetchone()
        conn.execute(
            "DELETE FROM name_claims WHERE session_id = %s AND lease_id = ANY(%s)",
            (session_id, mine),
        )
        conn.execute(
            "INSERT INTO name_claims "
            "(look_alike, username_key, username, lease_id, session_id, confirmed) "
            "SELECT k, %s, %s, %s, %s, %s FROM unnest(%s::text[]) k",
            (key, username, lease_id, session_id, bool(confirmed and confirmed[0]), keys),
        )
        _notify(conn)
    return ClaimOutcome(granted=True)


def restore_claims(
    conn: psycopg.Connection[Any],
    lease_id: uuid.UUID,
    previous_lease: uuid.UUID,
    holders: list[tuple[str, str, bool]],
) -> list[str]:
    """Move this node's names from its last lease to a new one: each
    (session, name, confirmed) is claimed again, and kept unless another node
    gave it (or a look-alike) to another connection while the last lease was
    not live, or the name was let go (a Leave in another tab). The sessions
    that lost their names: closed, their clients reconnect (with a token, a
    name still theirs is held with the others again). The last lease goes,
    with whatever else it held."""
    lost = []
    ended = {
        row[0]
        for row in conn.execute(
            "SELECT DISTINCT session_id FROM name_claims WHERE lease_id = %s AND ended IS NOT NULL",
            (previous_lease,),
        )
    }
    for session_id, username, confirmed in holders:
        if session_id in ended:
            lost.append(session_id)
            continue
        outcome = claim_name(
            conn, lease_id, session_id, username, by_token=False, previous_lease=previous_lease
        )
        if not outcome.granted:
            lost.append(session_id)
        elif confirmed:
            confirm_name(conn, lease_id, session_id)
    with conn.transaction():
        conn.execute("DELETE FROM node_leases WHERE lease_id = %s", (previous_lease,))
        _notify(conn)
    return lost


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


def leave_name(
    conn: psycopg.Connection[Any], lease_id: uuid.UUID, session_id: str, username_key: str
) -> None:
    """The session lets its name go for every connection holding it (a Leave):
    its own rows go, and those of the others, on any node, are marked `ended`
    (``left``) so that their node tells them why; they hold nothing now."""
    with conn.transaction():
        conn.execute(
            "DELETE FROM name_claims WHERE lease_id = %s AND session_id = %s",
            (lease_id, session_id),
        )
        conn.execute(
            "UPDATE name_claims SET ended = %s WHERE username_key = %s AND ended IS NULL",
            (ENDED_LEFT, username_key),
        )
        _notify(conn)


def online_claims(conn: psycopg.Connection[Any]) -> OnlineClaims:
    """Every connection holding a name under a live lease (one row each, those
    whose name was let go elsewhere included, marked), and the people count."""
    rows = conn.execute(
        "SELECT DISTINCT ON (c.lease_id, c.session_id) "
        "c.username, c.username_key, c.lease_id, c.session_id, c.confirmed, c.ended, "
        "coalesce(u.posted, false) "
        "FROM name_claims c JOIN node_leases l USING (lease_id) "
        "LEFT JOIN users u ON u.username_key = c.username_key "
        "WHERE l.expires_at > now() ORDER BY c.lease_id, c.session_id"
    ).fetchall()
    total = conn.execute(queries.PEOPLE_COUNT).fetchone()
    return OnlineClaims(tuple(ClaimRow(*row) for row in rows), total[0] if total else 0)


def _notify(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SELECT pg_notify(%s, '')", (PRESENCE_CHANNEL,))
