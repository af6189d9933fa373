"""A node's lease on names, on a real PostgreSQL: names are held in the
database under the node's lease, stay held when the lease actor restarts or
the lease is lost and taken again, and go at once when the node stops."""

from __future__ import annotations

import asyncio

import psycopg

from supervision import EventKind, inject_crash
from tests.harness.client import Client
from tests.harness.cluster import claims_of
from tests.harness.contract import error_code
from tests.harness.server import ChatServer
from tests.harness.waiting import TIMEOUT_S, eventually


def leases(conninfo: str) -> list[tuple[str, bool]]:
    with psycopg.connect(conninfo) as conn:
        return [
            (str(lease_id), live)
            for lease_id, live in conn.execute(
                "SELECT lease_id, expires_at > now() FROM node_leases ORDER BY started_at"
            )
        ]


def holding_lease(conninfo: str, key: str) -> set[str]:
    """The leases under which `key`'s claim rows are (live or not)."""
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT DISTINCT lease_id FROM name_claims WHERE username_key = %s", (key,)
        ).fetchall()
    return {str(row[0]) for row in rows}


async def moved_off(database: str, key: str, lease: str) -> None:
    """Wait until `key`'s name is held under a lease other than `lease`."""

    def moved() -> bool:
        held = holding_lease(database, key)
        return bool(held) and lease not in held

    await eventually(moved, f"{key}'s name under a new lease")


async def still_holds(server: ChatServer, holder: Client, name: str) -> None:
    """`holder` keeps `name`: another cannot take it, and `holder` posts on."""
    other = await server.welcomed()
    await other.send({"type": "join", "username": name})
    assert await error_code(other) == "username_taken"
    await holder.post("still here", "still-1")
    await holder.expect("ack", client_id="still-1")
    assert holder.closed_code is None


def test_a_name_is_held_in_the_database_under_the_nodes_lease(
    server: ChatServer, database: str
) -> None:
    async def scenario(server: ChatServer) -> None:
        ann = await server.welcomed()
        await ann.join("Ann")
        ((lease, live),) = leases(database)
        assert live
        await eventually(lambda: holding_lease(database, "ann") == {lease}, "ann's claim")
        rows = claims_of(database, "ann")
        assert rows
        assert {(node, live) for node, _, live in rows} == {(server.settings.node_id, True)}

    server.run(scenario)


def test_a_restarted_lease_actor_moves_the_nodes_names_to_its_new_lease(
    server: ChatServer, database: str
) -> None:
    async def scenario(server: ChatServer) -> None:
        ann = await server.welcomed()
        await ann.join("ann")
        ((first, _),) = leases(database)
        inject_crash(server.whereis("lease"), "test")
        await asyncio.to_thread(server.log.wait, EventKind.RESTARTED, "lease", TIMEOUT_S)

        await moved_off(database, "ann", first)

        # The old lease goes after the names have moved, in a transaction of its own.
        def only_a_new_lease() -> bool:
            rows = leases(database)
            return len(rows) == 1 and rows[0][0] != first and rows[0][1]

        await eventually(only_a_new_lease, "the old lease gone")
        await still_holds(server, ann, "ann")

    server.run(scenario)


def test_a_lost_lease_is_taken_again_and_names_nobody_took_stay_with_their_holders(
    server: ChatServer, database: str
) -> None:
    async def scenario(server: ChatServer) -> None:
        ann = await server.welcomed()
        await ann.join("ann")
        ((first, _),) = leases(database)
        with psycopg.connect(database, autocommit=True) as conn:  # as if paused past it
            conn.execute("UPDATE node_leases SET expires_at = now() - interval '1 second'")

        await moved_off(database, "ann", first)
        await still_holds(server, ann, "ann")
        assert "left" not in ann.kinds()

    server.run(scenario)


def test_a_stopped_node_lets_its_names_go_at_once(server: ChatServer, database: str) -> None:
    async def scenario(server: ChatServer) -> None:
        ann = await server.welcomed()
        await ann.join("ann")
        await eventually(lambda: bool(holding_lease(database, "ann")), "ann's claim")

    server.run(scenario)
    server.stop()
    assert leases(database) == []
    assert holding_lease(database, "ann") == set()
