"""Three nodes on one PostgreSQL act as one room, and survive what befalls
one of them: real ``chatter serve`` processes, real sockets, the fault suite's
verdict (every acked post stored once, every client holding every stored
message once and in order, presence the same everywhere) over all of them."""

from __future__ import annotations

import asyncio
import signal
import time

from chatter.database import EmbeddedPostgres
from chatter.lease import LEASE_S
from chatter.usernames import username_key
from tests.faults._traffic import chatting
from tests.harness.client import Client
from tests.harness.cluster import claims_of, cut_listeners, lease_expired, start_nodes
from tests.harness.process import ServeProcess, StartServe
from tests.harness.waiting import eventually

CLOSE_SERVICE_RESTART = 1012

NAME_FREED_WITHIN_S = LEASE_S + 5.0
"""A dead node's names are free once its lease expires and a node's next
read of the online set notices (a tick): about 15 s, as the contract says."""


def ws_urls(nodes: list[ServeProcess]) -> list[str]:
    return [node.ws_url for node in nodes]


def test_steady_traffic_over_three_nodes_reaches_every_client_once_in_order(
    start_serve: StartServe, database: str
) -> None:
    nodes = start_nodes(start_serve)

    async def scenario() -> None:
        async with chatting(ws_urls(nodes), posters=6, viewers=3, acked=30) as crowd:
            await crowd.lost_nothing(database, nodes[0].url, more_acks=30)

    asyncio.run(scenario())


def test_a_killed_node_loses_nothing_and_its_clients_resume_on_another(
    start_serve: StartServe, database: str
) -> None:
    nodes = start_nodes(start_serve)
    doomed = nodes[2]

    async def scenario() -> None:
        async with chatting(ws_urls(nodes), posters=6, viewers=3, acked=20) as crowd:
            on_doomed = [u.name for u in crowd.users if u.url == doomed.ws_url]
            doomed.kill(signal.SIGKILL)
            await crowd.until(
                lambda: all(u.connected and u.url != doomed.ws_url for u in crowd.users),
                "the killed node's clients back on another",
            )
            await crowd.lost_nothing(database, nodes[0].url, reconnects_allowed=on_doomed)

    asyncio.run(scenario())


def test_a_killed_nodes_names_are_free_within_its_lease(
    start_serve: StartServe, database: str
) -> None:
    nodes = start_nodes(start_serve, 2)

    async def scenario() -> None:
        gone = await Client.connect(nodes[1].ws_url)
        await gone.welcome()
        await gone.join("zed")
        other = await Client.connect(nodes[0].ws_url)
        welcome = await other.welcome()
        if {"username": "zed", "online": True} not in welcome["users"]:
            await other.expect("presence", joins=["zed"])  # node-1 had not read it yet
        nodes[1].kill(signal.SIGKILL)
        killed_at = time.monotonic()
        await other.expect("presence", leaves=["zed"], timeout_s=NAME_FREED_WITHIN_S)
        assert (await other.join("zed"))["username"] == "zed"
        assert time.monotonic() - killed_at < NAME_FREED_WITHIN_S

    asyncio.run(scenario())


def test_a_cut_listener_connection_misses_nothing(start_serve: StartServe, database: str) -> None:
    nodes = start_nodes(start_serve)

    async def scenario() -> None:
        async with chatting(ws_urls(nodes), posters=6, viewers=3, acked=20) as crowd:
            assert await asyncio.to_thread(cut_listeners, database) == 3
            await crowd.lost_nothing(database, nodes[0].url, more_acks=30)

    asyncio.run(scenario())


def test_fifty_simultaneous_claims_of_one_name_over_three_nodes_have_one_winner(
    start_serve: StartServe, database: str
) -> None:
    nodes = start_nodes(start_serve)

    async def scenario() -> None:
        claimants = [await Client.connect(nodes[n % 3].ws_url) for n in range(50)]
        await asyncio.gather(*(c.welcome() for c in claimants))
        await asyncio.gather(
            *(c.send({"type": "join", "username": "Highlander"}) for c in claimants)
        )
        answers = await asyncio.gather(*(c.answer("joined", "error") for c in claimants))
        winners = [a for a in answers if a["type"] == "joined"]
        assert len(winners) == 1, answers
        assert {a.get("code") for a in answers if a["type"] == "error"} == {"username_taken"}
        holders = {(node, session) for node, session, _ in claims_of(database, "highlander")}
        assert len(holders) == 1
        for client in claimants:
            client.close()

    asyncio.run(scenario())


def test_a_node_paused_past_its_lease_loses_its_names_and_none_has_two_holders(
    start_serve: StartServe, database: str
) -> None:
    nodes = start_nodes(start_serve, 2)
    paused = nodes[1]

    async def scenario() -> None:
        first = await Client.connect(paused.ws_url)
        await first.welcome()
        await first.join("ann")
        paused.kill(signal.SIGSTOP)
        try:
            await eventually(
                lambda: lease_expired(database, "node-2"), "node-2's lease expired", LEASE_S + 5
            )
            second = await Client.connect(nodes[0].ws_url)
            await second.welcome()
            assert (await second.join("ann"))["username"] == "ann"
            # While node-2 sleeps thinking it holds "ann", the table says who does:
            # node-2's rows stay (one per connection) but hold nothing.
            holders = claims_of(database, username_key("ann"))
            assert {(node, live) for node, _, live in holders} <= {
                ("node-1", True),
                ("node-2", False),
            }
            assert {node for node, _, live in holders if live} == {"node-1"}
        finally:
            paused.kill(signal.SIGCONT)
        # Awake, node-2 finds its lease gone: its session loses the name and
        # is closed (1012, fenced); its client would reconnect.
        assert await first.closed(timeout_s=LEASE_S) == CLOSE_SERVICE_RESTART
        holders = claims_of(database, username_key("ann"))
        assert {node for node, _, live in holders if live} == {"node-1"}
        # node-2 takes a new lease and serves again.
        again = await Client.connect(paused.ws_url)
        await again.welcome()
        assert (await again.join("bob"))["username"] == "bob"

    asyncio.run(scenario())


def test_a_database_restart_is_survived_by_every_node_and_loses_nothing(
    start_serve: StartServe, database: str, postgres: EmbeddedPostgres
) -> None:
    nodes = start_nodes(start_serve)

    async def scenario() -> None:
        async with chatting(ws_urls(nodes), posters=6, viewers=3, acked=20) as crowd:
            await asyncio.to_thread(postgres.stop, "fast")
            try:
                await crowd.until(lambda: crowd.unavailable >= 3, "posts refused as unavailable")
            finally:
                await asyncio.to_thread(postgres.start_again)
            await crowd.lost_nothing(database, nodes[0].url, more_acks=30)

    asyncio.run(scenario())
