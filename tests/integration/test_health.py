"""GET /healthz on a real server: each part (database, tree) reported, and 503
naming the part that fails, from a stopped database to a root that gave up."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chatter.database import EmbeddedPostgres, migrate
from supervision import EventKind, inject_crash
from tests.harness.http import healthz
from tests.harness.server import ChatServer, ServerFactory
from tests.harness.waiting import TIMEOUT_S, eventually

EXITED = EventKind.EXITED

EVERY_PART_ALIVE = {
    "root": "alive",
    "persistence": "alive",
    "lease": "alive",
    "presence": "alive",
    "room": "alive",
    "listener": "alive",
    "sessions": "alive",
}


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of this test's own, to stop and start without disturbing
    the session's shared one."""
    server = EmbeddedPostgres(tmp_path / "data")
    migrate(server.start())
    yield server
    server.close()


def test_a_healthy_server_reports_every_part_ok(server: ChatServer) -> None:
    status, body = healthz(server.url)
    assert status == 200
    assert body == {
        "status": "ok",
        "database": "ok",
        "tree": "ok",
        "actors": EVERY_PART_ALIVE,
        "connections": 0,
        "node": server.settings.node_id,
    }


def test_a_stopped_database_is_named_with_503_and_health_returns_when_it_is_back(
    own_postgres: EmbeddedPostgres, start_server: ServerFactory
) -> None:
    server = start_server(conninfo=own_postgres.conninfo())
    assert healthz(server.url)[0] == 200
    own_postgres.stop(mode="immediate")
    try:
        status, body = healthz(server.url)
    finally:
        own_postgres.start_again()
    assert status == 503
    assert body["status"] == "unavailable"
    assert (body["failing"], body["failures"]) == ("database", ["database"])
    assert (body["database"], body["tree"]) == ("unreachable", "ok")
    assert body["actors"] == EVERY_PART_ALIVE  # an outage is not a crash

    # Asked as a load balancer would: persistence probes a database that was
    # down at most every PROBE_INTERVAL_S, so the answer may lag by that much.
    answers: list[tuple[int, dict[str, Any]]] = []

    def healthy() -> bool:
        answers.append(healthz(server.url))
        return answers[-1][0] == 200

    asyncio.run(eventually(healthy, lambda: f"healthy again; last {answers[-1]}"))
    status, body = answers[-1]
    assert (body["status"], body["database"], body["tree"]) == ("ok", "ok", "ok")
    assert "failing" not in body


def test_a_root_that_is_gone_is_named_as_the_tree_with_503(server: ChatServer) -> None:
    root = server.tree.root
    inject_crash(root, "killed by test_health")
    assert root.actor_stopped.wait(TIMEOUT_S)
    # A dying supervisor stops its children in reverse order: persistence is last.
    server.log.wait_for(
        lambda e: (e.supervisor, e.child, e.kind) == ("root", "persistence", EXITED)
    )
    status, body = healthz(server.url)
    assert status == 503
    assert (body["failing"], body["failures"]) == ("tree", ["tree"])
    assert body["tree"] == "down"
    assert body["database"] == "unknown"  # no persistence actor left to ask
    assert body["actors"] == dict.fromkeys(EVERY_PART_ALIVE, "down")


def test_a_child_being_restarted_is_reported_restarting_and_the_server_stays_healthy(
    server: ChatServer,
) -> None:
    registry = server.tree.registry
    room_ref = server.whereis("room")
    registry.suspend("room")  # what its supervisor does between a death and the restart
    try:
        status, body = healthz(server.url)
    finally:
        registry.register("room", room_ref)
    assert status == 200
    assert (body["status"], body["tree"]) == ("ok", "ok")
    assert body["actors"] == {**EVERY_PART_ALIVE, "room": "restarting"}
    assert healthz(server.url)[1]["actors"] == EVERY_PART_ALIVE
