"""The soak: random faults of every kind under live traffic for a given time,
then the suite's verdict. The default run is short so it never rots;
``make soak`` runs it for ``CHATTER_SOAK_SECONDS`` (default 600)."""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter

import pytest

from chatter.database import EmbeddedPostgres
from supervision import EventKind, inject_crash
from tests.faults._traffic import chatting
from tests.harness.cluster import cut_listeners, start_nodes
from tests.harness.http import request
from tests.harness.process import ServeProcess, StartServe
from tests.harness.server import ChatServer

SOAK_SECONDS = float(os.environ.get("CHATTER_SOAK_SECONDS", "15"))
FAULT_SPACING_S = (2.0, 3.5)
"""Between faults: never more than the root's intensity (3 restarts in 5 s)
allows, since each fault restarts at most one child."""
MAX_FAULTS = 1000
MAX_OUTAGE_S = 8.0


async def inject_random_fault(
    server: ChatServer, postgres: EmbeddedPostgres, rng: random.Random
) -> str:
    """One fault, chosen at random; what it was."""
    kind = rng.choice(["room", "presence", "persistence", "session", "outage", "db-crash"])
    if kind in ("room", "presence", "persistence"):
        ref = server.tree.registry.whereis(kind)
        if ref is not None:  # None while it restarts
            inject_crash(ref, "soak")
    elif kind == "session":
        live = await server.live_sessions()
        if live:
            inject_crash(rng.choice(live), "soak")
    elif kind == "outage":
        await asyncio.to_thread(postgres.stop, "fast")
        try:
            await asyncio.sleep(rng.uniform(0.5, MAX_OUTAGE_S))  # the outage's length
        finally:
            await asyncio.to_thread(postgres.start_again)
    else:
        await asyncio.to_thread(postgres.stop, "immediate")
        await asyncio.to_thread(postgres.start_again)
    return kind


@pytest.mark.timeout(SOAK_SECONDS + 180)
def test_random_faults_for_the_soak_duration_lose_nothing(
    server: ChatServer, database: str, postgres: EmbeddedPostgres
) -> None:
    rng = random.Random(os.environ.get("CHATTER_SOAK_SEED", "chatter"))
    done: Counter[str] = Counter()

    async def scenario() -> None:
        async with chatting(server.ws_url, posters=8, viewers=2) as crowd:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + SOAK_SECONDS
            try:
                while loop.time() < deadline and sum(done.values()) < MAX_FAULTS:
                    done[await inject_random_fault(server, postgres, rng)] += 1
                    await asyncio.sleep(rng.uniform(*FAULT_SPACING_S))  # the faults' pace
            finally:
                await asyncio.to_thread(postgres.start_again)
            everyone = [u.name for u in crowd.users]
            await crowd.lost_nothing(database, server.url, reconnects_allowed=everyone)
            assert crowd.acks > 0

    asyncio.run(scenario())
    print(f"soak: {SOAK_SECONDS:.0f} s, faults {dict(done)}")
    assert sum(done.values()) >= 1
    assert server.log.count(EventKind.GAVE_UP) == 0


CLUSTER_ACTORS = ("room", "presence", "persistence", "listener", "lease")


async def inject_random_cluster_fault(
    nodes: list[ServeProcess], database: str, postgres: EmbeddedPostgres, rng: random.Random
) -> str:
    """One fault to one node of a cluster (or to the database they share),
    chosen at random; what it was."""
    kind = rng.choice(["node-kill", "actor", "listener-cut", "db-crash"])
    node = rng.choice(nodes)
    if kind == "node-kill":
        node.kill()
        await asyncio.to_thread(node.wait)
        await asyncio.to_thread(node.start)  # its clients went to the others meanwhile
    elif kind == "actor":
        actor = rng.choice(CLUSTER_ACTORS)
        url = f"{node.url}/api/supervision/kill"
        await asyncio.to_thread(request, url, "POST", {"id": actor}, timeout_s=5)
        kind = f"actor:{actor}"
    elif kind == "listener-cut":
        await asyncio.to_thread(cut_listeners, database, 1)
    else:
        await asyncio.to_thread(postgres.stop, "immediate")
        await asyncio.to_thread(postgres.start_again)
    return kind


@pytest.mark.timeout(SOAK_SECONDS + 240)
def test_random_node_faults_over_three_nodes_lose_nothing(
    start_serve: StartServe, database: str, postgres: EmbeddedPostgres
) -> None:
    """The soak over a cluster: nodes killed and started again, actors of a
    node killed, listeners cut, the database crashed, while a crowd spread
    over the nodes chats; then the verdict over all of them."""
    rng = random.Random(os.environ.get("CHATTER_SOAK_SEED", "chatter"))
    done: Counter[str] = Counter()
    nodes = start_nodes(start_serve)

    async def scenario() -> None:
        urls = [node.ws_url for node in nodes]
        async with chatting(urls, posters=8, viewers=3) as crowd:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + SOAK_SECONDS
            try:
                while loop.time() < deadline and sum(done.values()) < MAX_FAULTS:
                    done[await inject_random_cluster_fault(nodes, database, postgres, rng)] += 1
                    await asyncio.sleep(rng.uniform(*FAULT_SPACING_S))  # the faults' pace
            finally:
                await asyncio.to_thread(postgres.start_again)
            everyone = [u.name for u in crowd.users]
            await crowd.lost_nothing(database, nodes[0].url, reconnects_allowed=everyone)
            assert crowd.acks > 0

    asyncio.run(scenario())
    print(f"cluster soak: {SOAK_SECONDS:.0f} s, faults {dict(done)}")
    assert sum(done.values()) >= 1
    for node in nodes:
        assert node.process is not None
        assert node.process.poll() is None, node.log()
