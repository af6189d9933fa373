"""GET /healthz on a real server: each part (database, tree) reported, and 503
naming the part that fails, from a stopped database to a root that gave up."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tornado.httpclient

from chatter.database import EmbeddedPostgres, migrate
from chatter.persistence import PROBE_INTERVAL_S
from supervision import EventKind, inject_crash
from tests.conftest import EventLog
from tests.integration.chat_server import TIMEOUT_S, ChatServer

EXITED = EventKind.EXITED

EVERY_PART_ALIVE = {
    "root": "alive",
    "persistence": "alive",
    "presence": "alive",
    "room": "alive",
    "sessions": "alive",
}


def healthz(server: ChatServer) -> tuple[int, dict[str, Any]]:
    client = tornado.httpclient.HTTPClient()
    try:
        response = client.fetch(server.url + "/healthz", raise_error=False)
        return response.code, json.loads(response.body)
    finally:
        client.close()


def healthy_again(server: ChatServer, within_s: float) -> tuple[int, dict[str, Any]]:
    """Ask /healthz as a load balancer would, until it answers 200 or the time
    is up. Persistence probes a database that was down at most every
    `PROBE_INTERVAL_S`, so the answer can lag the database by that much."""
    deadline = time.monotonic() + within_s
    while True:
        status, body = healthz(server)
        if status == 200 or time.monotonic() > deadline:
            return status, body
        time.sleep(PROBE_INTERVAL_S / 5)  # the checker's interval, not a wait for an event


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of this test's own, to stop and start without disturbing
    the session's shared one."""
    server = EmbeddedPostgres(tmp_path / "data")
    migrate(server.start())
    yield server
    server.close()


@pytest.fixture
def server(database: str) -> Iterator[ChatServer]:
    chat = ChatServer(database)
    yield chat
    chat.stop()


def test_a_healthy_server_reports_every_part_ok(server: ChatServer) -> None:
    status, body = healthz(server)
    assert status == 200
    assert body == {
        "status": "ok",
        "database": "ok",
        "tree": "ok",
        "actors": EVERY_PART_ALIVE,
        "connections": 0,
    }


def test_a_stopped_database_is_named_with_503_and_health_returns_when_it_is_back(
    own_postgres: EmbeddedPostgres,
) -> None:
    chat = ChatServer(own_postgres.conninfo())
    try:
        assert healthz(chat)[0] == 200
        own_postgres.stop(mode="immediate")
        try:
            status, body = healthz(chat)
        finally:
            own_postgres.start_again()
        assert status == 503
        assert body["status"] == "unavailable"
        assert (body["failing"], body["failures"]) == ("database", ["database"])
        assert (body["database"], body["tree"]) == ("unreachable", "ok")
        assert body["actors"] == EVERY_PART_ALIVE  # an outage is not a crash

        status, body = healthy_again(chat, within_s=TIMEOUT_S)
        assert status == 200, body
        assert (body["status"], body["database"], body["tree"]) == ("ok", "ok", "ok")
        assert "failing" not in body
    finally:
        chat.stop()


def test_a_root_that_is_gone_is_named_as_the_tree_with_503(server: ChatServer) -> None:
    log = EventLog(server.tree.events)
    root = server.tree.root
    inject_crash(root, "killed by test_health")
    assert root.actor_stopped.wait(TIMEOUT_S)
    # A dying supervisor stops its children in reverse order: persistence is last.
    log.wait_for(lambda e: (e.supervisor, e.child, e.kind) == ("root", "persistence", EXITED))
    status, body = healthz(server)
    assert status == 503
    assert (body["failing"], body["failures"]) == ("tree", ["tree"])
    assert body["tree"] == "down"
    assert body["database"] == "unknown"  # no persistence actor left to ask
    assert body["actors"] == dict.fromkeys(EVERY_PART_ALIVE, "down")


def test_a_child_being_restarted_is_reported_restarting_and_the_server_stays_healthy(
    server: ChatServer,
) -> None:
    registry = server.tree.registry
    room_ref = registry.whereis("room")
    assert room_ref is not None
    registry.suspend("room")  # what its supervisor does between a death and the restart
    try:
        status, body = healthz(server)
    finally:
        registry.register("room", room_ref)
    assert status == 200
    assert (body["status"], body["tree"]) == ("ok", "ok")
    assert body["actors"] == {**EVERY_PART_ALIVE, "room": "restarting"}
    assert healthz(server)[1]["actors"] == EVERY_PART_ALIVE
