"""Fixtures shared by every test group: the database, supervision's parts,
servers in this process (`server`, `start_server`) and as processes
(`start_serve`). The helpers they use are in `tests.harness`."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pykka
import pytest
from psycopg import sql

from chatter.database import EmbeddedPostgres, migrate
from supervision import EventStream, Registry, Supervisor
from tests.harness.waiting import EventLog

if TYPE_CHECKING:
    # Imported where used, not here: the unit tests, which never start a
    # server, must not fail to collect while web/ is broken.
    from chatter.config import Settings
    from tests.harness.process import ServeProcess, StartServe
    from tests.harness.server import ChatServer, ServerFactory

__all__ = ["EventLog", "stop_every_actor"]


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    """One embedded PostgreSQL 18 for the whole run (it starts in well under a
    second), migrated; integration and browser tests share it."""
    server = EmbeddedPostgres(Path(tmp_path_factory.mktemp("chatter-data")))
    migrate(server.start())
    yield server
    server.close()


@pytest.fixture
def database(postgres: EmbeddedPostgres) -> str:
    """The conninfo of a migrated database with empty tables."""
    conninfo = postgres.conninfo()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("TRUNCATE messages, users, name_claims, node_leases RESTART IDENTITY CASCADE")
    return conninfo


@pytest.fixture
def empty_database(postgres: EmbeddedPostgres) -> Iterator[str]:
    """The conninfo of a new database with nothing in it, not even the schema,
    on the session's server; dropped at the end."""
    name = f"empty_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield postgres.conninfo(name)
    finally:
        with psycopg.connect(postgres.conninfo("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def events() -> EventStream:
    return EventStream()


@pytest.fixture
def event_log(events: EventStream) -> EventLog:
    return EventLog(events)


@pytest.fixture
def registry() -> Registry:
    return Registry()


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An asyncio loop running on a thread of its own, for loop actors."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-loop", daemon=True)
    thread.start()
    yield loop
    stop_every_actor()  # while the loop still runs them
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)
    loop.close()


def stop_every_actor() -> None:
    """Stop supervisors first, oldest (the roots) first, so that each stops its own
    subtree in order; pykka's stop_all alone would stop children under their
    supervisors' feet and have them restarted."""
    for ref in pykka.ActorRegistry.get_by_class(Supervisor):
        ref.stop(block=True, timeout=5)
    pykka.ActorRegistry.stop_all(block=True, timeout=5)


@pytest.fixture(autouse=True)
def _stop_leftover_actors() -> Iterator[None]:
    """Every test leaves no actor running, even when it fails half-way."""
    yield
    stop_every_actor()


@pytest.fixture
def start_server(database: str) -> Iterator[ServerFactory]:
    """`start_server(settings=None, conninfo=None, **options)`: a server with
    the settings and bounds a test needs (`ChatServer`), on the test's database
    unless given another; every one started is stopped at the end."""
    from tests.harness.server import ChatServer

    started: list[ChatServer] = []

    def start(
        settings: Settings | None = None, conninfo: str | None = None, **options: Any
    ) -> ChatServer:
        server = ChatServer(conninfo or database, settings, **options)
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def server_options() -> dict[str, Any]:
    """What `server` is started with (`start_server`'s arguments): a group or a
    module that needs other settings for every test overrides this fixture."""
    return {}


@pytest.fixture
def server(start_server: ServerFactory, server_options: dict[str, Any]) -> ChatServer:
    """A server on an empty database, with the test settings."""
    return start_server(**server_options)


@pytest.fixture
def start_serve(database: str, tmp_path: Path) -> Iterator[StartServe]:
    """`start_serve(database_url=None, **options)`: ``chatter serve`` as a
    process (`ServeProcess`), healthy; every one is ended at the end."""
    from tests.harness.process import ServeProcess

    started: list[ServeProcess] = []

    def start(database_url: str | None = None, **options: Any) -> ServeProcess:
        process = ServeProcess(
            database_url or database, tmp_path / f"serve-{len(started)}", **options
        )
        started.append(process)
        process.start()
        return process

    yield start
    for process in reversed(started):
        process.stop()
