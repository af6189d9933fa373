"""Connections and the process coming and going: a thousand connections leave
nothing behind, and the real ``chatter serve`` command migrates its database,
answers /healthz and stops gracefully on SIGTERM and SIGINT."""

from __future__ import annotations

import asyncio
import concurrent.futures
import resource
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pykka
import pytest
from alembic.script import ScriptDirectory

from chatter.config import Environment, Settings
from chatter.database import alembic_config, pool_size
from chatter.session import SessionActor
from chatter.throttle import Limit, NameClaimLimits
from tests.harness.client import Client
from tests.harness.http import healthz, request
from tests.harness.process import StartServe
from tests.harness.server import ChatServer, ServerFactory
from tests.harness.waiting import eventually

CONNECTIONS = 1000
BATCH = 100
NAMED_EVERY = 20
"""One connection in this many also joins with a name."""
STOP_TIMEOUT_S = 5.0
"""How long `chatter serve` may take to exit after a stop signal."""


@pytest.fixture
def file_descriptors() -> Iterator[None]:
    """Enough file descriptors for every connection's two ends, restored after."""
    needed = 2 * CONNECTIONS + 512
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"the hard limit on open files ({hard}) is below {needed}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def session_actors() -> list[pykka.ActorRef[Any]]:
    return pykka.ActorRegistry.get_by_class(SessionActor)


async def connect_many(server: ChatServer, count: int) -> list[Client]:
    """`count` connections, in batches, each welcomed."""
    clients: list[Client] = []
    while len(clients) < count:
        size = min(BATCH, count - len(clients))
        clients += await asyncio.gather(*(server.welcomed() for _ in range(size)))
    return clients


async def close_all(clients: list[Client]) -> None:
    """Close from the client side, as a browser tab does, and see each close through."""

    async def close(client: Client) -> None:
        client.close()
        await client.closed()

    for start in range(0, len(clients), BATCH):
        await asyncio.gather(*(close(c) for c in clients[start : start + BATCH]))


# -- a thousand connections ----------------------------------------------------------------


def test_a_thousand_closed_connections_leave_no_session_thread_or_name_behind(
    start_server: ServerFactory, file_descriptors: None
) -> None:
    server = start_server(
        Settings(
            env=Environment.TEST,
            max_connections_per_ip=CONNECTIONS + 100,
            max_pending_per_ip=CONNECTIONS + 100,
        ),
        # Every client has one address: let it take all the names it needs.
        name_claims=NameClaimLimits(per_address=Limit(CONNECTIONS, 1.0)),
    )

    async def scenario(server: ChatServer) -> None:
        # The clients' address lookups run on this loop's executor: a small one,
        # so that the warm-up surely starts all its threads.
        asyncio.get_running_loop().set_default_executor(
            concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="client-lookup")
        )
        # Warm up: the reader pool and the lookups start their threads on
        # first use and keep them; count from after that.
        await close_all(await connect_many(server, BATCH))
        await eventually(lambda: no_sessions(server), "the warm-up sessions end")
        baseline = set(threading.enumerate())

        clients = await connect_many(server, CONNECTIONS)
        named = clients[::NAMED_EVERY]
        await asyncio.gather(*(c.join(f"user-{n}") for n, c in enumerate(named)))
        assert len(await server.live_sessions()) == CONNECTIONS
        assert len(session_actors()) == CONNECTIONS
        assert new_threads(baseline) == []  # a session is no thread
        watcher = await server.connect()
        online = [u["username"] for u in (await watcher.welcome())["users"] if u["online"]]
        assert len(online) == len(named)

        await close_all(clients)
        await eventually(
            lambda: no_sessions(server, extra=1),
            lambda: f"every session ends; {len(session_actors())} registered",
        )
        await eventually(
            lambda: not new_threads(baseline), lambda: f"new threads: {new_threads(baseline)}"
        )
        assert server.open_connections() == 1  # the watcher's
        for n in range(len(named)):
            await watcher.expect("presence", leaves=[f"user-{n}"])
        fresh = await server.connect()
        assert not [u for u in (await fresh.welcome())["users"] if u["online"]]
        assert (await fresh.join("user-0"))["username"] == "user-0"  # the name is free

    server.run(scenario, timeout_s=90)


async def no_sessions(server: ChatServer, extra: int = 0) -> bool:
    """Whether no session but `extra` ones is left, supervised or registered."""
    return len(await server.live_sessions()) == len(session_actors()) == extra


def new_threads(baseline: set[threading.Thread]) -> list[str]:
    """Threads started since `baseline` and still running, apart from the
    persistence actor's readers, a pool of a fixed size that starts its
    threads as reads first overlap (the room's log reads among them). (Some of
    the baseline may have ended since: timers left by the previous test's tree.)"""
    readers = [t for t in threading.enumerate() if t.name.startswith("persistence-read")]
    assert len(readers) < pool_size()
    return sorted(
        t.name
        for t in threading.enumerate()
        if t not in baseline and not t.name.startswith("persistence-read")
    )


# -- the real command ----------------------------------------------------------------------


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_closes_sockets_with_1001_and_exits_0_on_a_stop_signal(
    empty_database: str, start_serve: StartServe, stop_signal: signal.Signals
) -> None:
    served = start_serve(empty_database)
    status, health = healthz(served.url)
    assert status == 200
    assert health["status"] == "ok"

    async def scenario() -> tuple[int | None, int | None, float]:
        ann = await Client.connect(served.ws_url)
        bob = await Client.connect(served.ws_url)
        try:
            await ann.welcome()
            await bob.welcome()
            await ann.join("ann")
            await ann.post("goodbye", "g-1")
            assert (await ann.expect("ack"))["client_id"] == "g-1"
            assert (await bob.expect("message"))["message"]["body"] == "goodbye"
            served.kill(stop_signal)
            signalled = time.monotonic()
            codes = await asyncio.gather(ann.closed(), bob.closed())
            return codes[0], codes[1], signalled
        finally:
            ann.close()
            bob.close()

    ann_code, bob_code, signalled = asyncio.run(scenario())
    assert (ann_code, bob_code) == (1001, 1001)
    assert served.wait(STOP_TIMEOUT_S) == 0, served.log()
    assert time.monotonic() - signalled < STOP_TIMEOUT_S
    log = served.log()
    assert "INFO chatter.server: Stopping" in log
    assert log.rstrip().endswith("INFO chatter.server: Chatter stopped"), log
    assert "Traceback" not in log, log


def test_serve_migrates_a_fresh_database_itself(
    empty_database: str, start_serve: StartServe
) -> None:
    head = ScriptDirectory.from_config(alembic_config(empty_database)).get_current_head()
    with psycopg.connect(empty_database) as conn:
        assert conn.execute("SELECT to_regclass('alembic_version')").fetchone() == (None,)
    served = start_serve(empty_database)
    status, health = healthz(served.url)
    assert (status, health["status"], health["database"]) == (200, "ok", "ok")
    with psycopg.connect(empty_database) as conn:
        version = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        tables = {
            row[0]
            for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
    assert version == (head,)
    assert {"users", "messages"} <= tables
    served.kill(signal.SIGTERM)
    assert served.wait(STOP_TIMEOUT_S) == 0, served.log()


def test_serve_names_its_node_in_health_the_tree_and_the_log(
    empty_database: str, start_serve: StartServe
) -> None:
    served = start_serve(empty_database, env={"CHATTER_NODE_ID": "node-a"})

    status, health = healthz(served.url)
    tree = request(served.url + "/api/supervision").json()

    assert (status, health["node"], tree["node"]) == (200, "node-a", "node-a")
    assert "Chatter node node-a listening on http://127.0.0.1:" in served.log()
