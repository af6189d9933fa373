"""Connections and the process coming and going: a thousand connections leave
nothing behind, and the real ``chatter serve`` command migrates its database,
answers /healthz and stops gracefully on SIGTERM and SIGINT."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pykka
import pytest
from alembic.script import ScriptDirectory
from psycopg import sql

from chatter.config import Environment, Settings
from chatter.database import EmbeddedPostgres, alembic_config
from chatter.session import SessionActor
from chatter.throttle import Limit, NameClaimLimits
from chatter.tree import SESSIONS
from supervision import which_children
from tests.integration.chat_server import TIMEOUT_S, ChatServer, Client, run_scenario

ROOT = Path(__file__).resolve().parents[2]

CONNECTIONS = 1000
BATCH = 100
NAMED_EVERY = 20
"""One connection in this many also joins with a name."""
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 5.0
"""How long `chatter serve` may take to exit after a stop signal."""


# -- helpers -------------------------------------------------------------------------------


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


async def live_sessions(server: ChatServer) -> list[pykka.ActorRef[Any]]:
    sessions = server.tree.registry.whereis(SESSIONS)
    assert sessions is not None
    children = await which_children(sessions)
    return [c.ref for c in children if c.ref is not None and c.ref.is_alive()]


async def until(what: str, timeout_s: float, check: Callable[[], Awaitable[bool | str]]) -> None:
    """Poll the coroutine function `check` until it returns True, or fail
    after `timeout_s` naming `what` and the last value it returned."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while (last := await check()) is not True:
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what} (last: {last})")
        await asyncio.sleep(0.02)


def session_actors() -> list[pykka.ActorRef[Any]]:
    return pykka.ActorRegistry.get_by_class(SessionActor)


async def connect_many(server: ChatServer, count: int) -> list[Client]:
    """`count` connections, in batches, each welcomed."""
    clients: list[Client] = []
    while len(clients) < count:
        size = min(BATCH, count - len(clients))
        batch = await asyncio.gather(*(server.connect() for _ in range(size)))
        await asyncio.gather(*(client.welcome() for client in batch))
        clients += batch
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
    database: str, file_descriptors: None
) -> None:
    server = ChatServer(
        database,
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
        await until("the warm-up sessions end", TIMEOUT_S, lambda: no_sessions(server))
        baseline = set(threading.enumerate())

        clients = await connect_many(server, CONNECTIONS)
        named = clients[::NAMED_EVERY]
        await asyncio.gather(*(c.join(f"user-{n}") for n, c in enumerate(named)))
        assert len(await live_sessions(server)) == CONNECTIONS
        assert len(session_actors()) == CONNECTIONS
        assert new_threads(baseline) == []  # a session is no thread
        watcher = await server.connect()
        online = [u["username"] for u in (await watcher.welcome())["users"] if u["online"]]
        assert len(online) == len(named)

        await close_all(clients)
        await until("every session ends", TIMEOUT_S, lambda: no_sessions(server, extra=1))
        await until("no thread is left over", TIMEOUT_S, lambda: no_new_threads(baseline))
        assert server.call(lambda: server.limits.total) == 1  # the watcher's
        for n in range(len(named)):
            await watcher.expect("presence", leaves=[f"user-{n}"])
        fresh = await server.connect()
        assert not [u for u in (await fresh.welcome())["users"] if u["online"]]
        assert (await fresh.join("user-0"))["username"] == "user-0"  # the name is free

    try:
        asyncio.run(run_scenario(server, scenario, timeout_s=90))
    finally:
        server.stop()


async def no_sessions(server: ChatServer, extra: int = 0) -> bool | str:
    """True when no session but `extra` ones is left, else what is left."""
    live, registered = len(await live_sessions(server)), len(session_actors())
    return True if live == registered == extra else f"{live} supervised, {registered} registered"


def new_threads(baseline: set[threading.Thread]) -> list[str]:
    """Threads started since `baseline` and still running. (Some of the
    baseline may have ended since: timers left by the previous test's tree.)"""
    return sorted(t.name for t in threading.enumerate() if t not in baseline)


async def no_new_threads(baseline: set[threading.Thread]) -> bool | str:
    new = new_threads(baseline)
    return True if not new else f"new threads: {new}"


# -- the real command ----------------------------------------------------------------------


@pytest.fixture
def fresh_database(postgres: EmbeddedPostgres) -> Iterator[str]:
    """The URL of a new, empty database (no schema) on the session's server."""
    name = f"serve_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield postgres.conninfo(name)
    finally:
        with psycopg.connect(postgres.conninfo("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@dataclass
class Served:
    """A running ``chatter serve`` process."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def healthz(self) -> tuple[int, dict[str, Any]]:
        """Wait until /healthz answers 200 (the process must stay up meanwhile)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as response:
                    return response.status, json.loads(response.read())
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass  # not listening yet, or not healthy yet
            if time.monotonic() > deadline:
                raise AssertionError(f"no healthy /healthz in {START_TIMEOUT_S} s:\n{self.log()}")
            time.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def serve(database_url: str, tmp_path: Path) -> Iterator[Served]:
    """Run ``python -m chatter serve`` on a free port; killed at the end if still running."""
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CHATTER_") and k not in ("DATABASE_URL", "PORT", "HOST")
    }
    env = {
        **keep,
        "DATABASE_URL": database_url,
        "CHATTER_DATA_DIR": str(tmp_path / "data"),
        "CHATTER_ENV": "test",
        "PYTHONUNBUFFERED": "1",
    }
    port = _free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "chatter", "serve", "--port", str(port), "--host", "127.0.0.1"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield Served(process, port, log_path)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=STOP_TIMEOUT_S)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_closes_sockets_with_1001_and_exits_0_on_a_stop_signal(
    fresh_database: str, tmp_path: Path, stop_signal: signal.Signals
) -> None:
    with serve(fresh_database, tmp_path) as served:
        status, health = served.healthz()
        assert status == 200
        assert health["status"] == "ok"

        async def scenario() -> tuple[int | None, int | None, float]:
            ws_url = f"ws://127.0.0.1:{served.port}/ws"
            ann = await Client.connect(ws_url)
            bob = await Client.connect(ws_url)
            try:
                await ann.welcome()
                await bob.welcome()
                await ann.join("ann")
                await ann.post("goodbye", "g-1")
                assert (await ann.expect("ack"))["client_id"] == "g-1"
                assert (await bob.expect("message"))["message"]["body"] == "goodbye"
                served.process.send_signal(stop_signal)
                signalled = time.monotonic()
                codes = await asyncio.gather(ann.closed(), bob.closed())
                return codes[0], codes[1], signalled
            finally:
                ann.close()
                bob.close()

        ann_code, bob_code, signalled = asyncio.run(scenario())
        assert (ann_code, bob_code) == (1001, 1001)
        assert served.process.wait(timeout=STOP_TIMEOUT_S) == 0, served.log()
        assert time.monotonic() - signalled < STOP_TIMEOUT_S
        log = served.log()
        assert "INFO chatter.server: Stopping" in log
        assert log.rstrip().endswith("INFO chatter.server: Chatter stopped"), log
        assert "Traceback" not in log, log


def test_serve_migrates_a_fresh_database_itself(fresh_database: str, tmp_path: Path) -> None:
    head = ScriptDirectory.from_config(alembic_config(fresh_database)).get_current_head()
    with psycopg.connect(fresh_database) as conn:
        assert conn.execute("SELECT to_regclass('alembic_version')").fetchone() == (None,)
    with serve(fresh_database, tmp_path) as served:
        status, health = served.healthz()
        assert (status, health["status"], health["database"]) == (200, "ok", "ok")
        with psycopg.connect(fresh_database) as conn:
            version = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            tables = {
                row[0]
                for row in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                )
            }
        assert version == (head,)
        assert {"users", "messages"} <= tables
        served.process.send_signal(signal.SIGTERM)
        assert served.process.wait(timeout=STOP_TIMEOUT_S) == 0, served.log()
