"""GET /api/supervision and POST /api/supervision/kill, on a real server."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from dataclasses import replace
from typing import Any

import pytest
import tornado.httpclient
import tornado.websocket

import web.api
from chatter.chaos import kill
from chatter.config import Environment, Settings
from supervision import EventKind
from tests.harness.http import request
from tests.harness.server import ChatServer, ServerFactory


def _request(
    server: ChatServer, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """GET `path`, or POST `body` to it as JSON (bytes as they are); the status
    and the JSON answer."""
    if body is None:
        answer = request(server.url + path)
    else:
        headers = {"Content-Type": "application/json", **(headers or {})}
        answer = request(server.url + path, "POST", body, headers)
    return answer.status, answer.json()


def test_the_tree_has_the_contracts_shape(server: ChatServer) -> None:
    status, tree = _request(server, "/api/supervision")
    assert status == 200
    assert (tree["id"], tree["kind"], tree["strategy"]) == ("root", "supervisor", "one_for_one")
    assert tree["node"] == server.settings.node_id
    children = {child["id"]: child for child in tree["children"]}
    assert list(children) == ["persistence", "lease", "presence", "room", "listener", "sessions"]
    for worker in ("persistence", "lease", "presence", "room", "listener"):
        assert children[worker]["kind"] == "worker"
        assert children[worker]["alive"] is True
        assert children[worker]["restarts"] == 0
    sessions = children["sessions"]
    assert (sessions["kind"], sessions["count"]) == ("supervisor", 0)
    assert sessions["partitions"] == len(sessions["children"]) == server.tree.sessions.count
    for n, partition in enumerate(sessions["children"]):
        assert (partition["id"], partition["kind"]) == (f"sessions.{n}", "supervisor")
        assert (partition["count"], partition["children"]) == (0, [])
    # Added for the lesson (#17): each supervisor's intensity, and the restart delay.
    assert tree["intensity"] == {"restarts": 0, "max_restarts": 3, "max_seconds": 5.0, "ages_s": []}
    assert sessions["intensity"]["max_restarts"] == 3
    assert tree["restart_delay_ms"] == 0
    assert all("restarting" not in child for child in tree["children"])


def _restarted(server: ChatServer, child: str, times: int) -> bool:
    return server.log.count(EventKind.RESTARTED, child=child) == times


def test_the_intensity_counts_each_restart_with_its_age(server: ChatServer) -> None:
    for n in (1, 2):
        assert _request(server, "/api/supervision/kill", {"id": "presence"})[0] == 202
        server.log.wait_until(
            functools.partial(_restarted, server, "presence", n), f"restart {n} of presence"
        )
    _, tree = _request(server, "/api/supervision")
    intensity = tree["intensity"]
    assert (intensity["restarts"], intensity["max_restarts"]) == (2, 3)
    older, newer = intensity["ages_s"]
    assert 5.0 > older >= newer >= 0


def test_each_listed_session_says_its_users_name_or_null_for_a_viewer(
    server: ChatServer,
) -> None:
    async def scenario(server: ChatServer) -> None:
        ann = await server.welcomed()
        await ann.join("ann")
        await server.welcomed()  # a viewer
        loop = asyncio.get_running_loop()
        _, tree = await loop.run_in_executor(None, _request, server, "/api/supervision")
        sessions = next(c for c in tree["children"] if c["id"] == "sessions")
        listed = [s for p in sessions["children"] for s in p["children"]]
        assert sorted((s["username"] or "") for s in listed) == ["", "ann"]
        for partition in sessions["children"]:
            if partition["count"]:
                path = f"/api/supervision/sessions?partition={partition['id']}"
                _, page = await loop.run_in_executor(None, _request, server, path)
                by_id = {s["id"]: s["username"] for s in listed}
                assert {s["id"]: s["username"] for s in page["sessions"]} == {
                    s["id"]: by_id[s["id"]] for s in page["sessions"]
                }

    server.run(scenario)


def test_a_kill_logs_one_warning_naming_who_asked_and_no_traceback(
    server: ChatServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        body = {"id": "room", "by": "the supervision page"}
        assert _request(server, "/api/supervision/kill", body)[0] == 202
        server.log.wait(EventKind.RESTARTED, "room", 10)
        assert kill(server.url, "presence") == "killed presence"
        server.log.wait(EventKind.RESTARTED, "presence", 10)
        assert _request(server, "/api/supervision/kill", {"id": "lease"})[0] == 202
        server.log.wait(EventKind.RESTARTED, "lease", 10)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [
        "root/room killed on purpose, asked by the supervision page from 127.0.0.1",
        "root/presence killed on purpose, asked by chatter chaos from 127.0.0.1",
        "root/lease killed on purpose, asked by an API client from 127.0.0.1",
    ]
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []
    exited = [e for e in server.log.events if e.kind is EventKind.EXITED and e.child == "room"]
    assert exited[0].reason == (
        "crashed: InjectedCrash: asked by the supervision page from 127.0.0.1"
    )


def test_a_slow_restart_shows_the_child_restarting_in_dev_and_test(server: ChatServer) -> None:
    server.stop()
    server.start(Settings(env=Environment.TEST, restart_delay_ms=1000))
    assert _request(server, "/api/supervision")[1]["restart_delay_ms"] == 1000
    assert _request(server, "/api/supervision/kill", {"id": "room"})[0] == 202
    exited = server.log.wait_for(lambda e: e.kind is EventKind.EXITED and e.child == "room")
    _, tree = _request(server, "/api/supervision")
    room = next(c for c in tree["children"] if c["id"] == "room")
    assert (room["alive"], room["restarting"], room["restarts"]) == (False, True, 0)
    restarted = server.log.wait(EventKind.RESTARTED, "room", 10)
    assert restarted.time - exited.time >= 1.0
    _, tree = _request(server, "/api/supervision")
    room = next(c for c in tree["children"] if c["id"] == "room")
    assert (room["alive"], room["restarts"], "restarting" in room) == (True, 1, False)


def test_a_slow_restart_is_ignored_in_prod(server: ChatServer) -> None:
    server.stop()
    prod = Settings(env=Environment.PROD, secret_key_base="x" * 32, chaos=True)
    server.start(replace(prod, restart_delay_ms=1000))
    assert _request(server, "/api/supervision")[1]["restart_delay_ms"] == 0


def test_killing_the_room_restarts_it_and_the_tree_counts_it(server: ChatServer) -> None:
    status, answer = _request(server, "/api/supervision/kill", {"id": "room"})
    assert (status, answer["id"]) == (202, "room")
    server.log.wait(EventKind.RESTARTED, "room", 10)
    _, tree = _request(server, "/api/supervision")
    room = next(c for c in tree["children"] if c["id"] == "room")
    assert (room["restarts"], room["alive"]) == (1, True)


def test_killing_a_session_closes_only_its_connection_with_1011(server: ChatServer) -> None:
    async def scenario(server: ChatServer) -> None:
        doomed = await server.welcomed()
        loop = asyncio.get_running_loop()
        _, tree = await loop.run_in_executor(None, _request, server, "/api/supervision")
        sessions = next(c for c in tree["children"] if c["id"] == "sessions")
        assert sessions["count"] == 1
        (first,) = [s["id"] for p in sessions["children"] for s in p["children"]]
        other = await server.welcomed()
        status, _ = await loop.run_in_executor(
            None, _request, server, "/api/supervision/kill", {"id": first}
        )
        assert status == 202
        assert await doomed.closed() == 1011
        await other.join("still-here")

    server.run(scenario)


def test_partitions_list_a_few_sessions_each_count_them_all_and_page_the_rest(
    server: ChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(web.api, "MAX_LISTED_PER_PARTITION", 1)
    connections = 12

    async def scenario(server: ChatServer) -> None:
        for _ in range(connections):
            await server.welcomed()
        loop = asyncio.get_running_loop()
        _, tree = await loop.run_in_executor(None, _request, server, "/api/supervision")
        sessions = next(c for c in tree["children"] if c["id"] == "sessions")
        assert sessions["count"] == connections
        counts = [p["count"] for p in sessions["children"]]
        assert sum(counts) == connections
        assert all(len(p["children"]) == min(1, p["count"]) for p in sessions["children"])
        paged: list[str] = []
        for partition in sessions["children"]:
            offset = 0
            while offset < partition["count"]:
                path = (
                    f"/api/supervision/sessions?partition={partition['id']}&offset={offset}&limit=2"
                )
                status, page = await loop.run_in_executor(None, _request, server, path)
                assert (status, page["count"], page["offset"]) == (200, partition["count"], offset)
                assert {s["partition"] for s in page["sessions"]} <= {partition["id"]}
                paged += [s["id"] for s in page["sessions"]]
                offset += 2
        assert sorted(paged) == sorted(f"session-{n}" for n in range(1, connections + 1))

    server.run(scenario)


def test_a_session_is_found_by_its_users_name_or_its_id(server: ChatServer) -> None:
    async def scenario(server: ChatServer) -> None:
        alice, _, bob = await server.welcomed(), await server.welcomed(), await server.welcomed()
        await alice.join("Alice")
        await bob.join("alfred")
        loop = asyncio.get_running_loop()
        path = "/api/supervision/sessions?name=ALI"
        status, found = await loop.run_in_executor(None, _request, server, path)
        assert status == 200
        (session,) = found["sessions"]
        assert (session["username"], session["online"], session["kind"]) == (
            "Alice",
            True,
            "worker",
        )
        assert session["partition"] == server.tree.sessions.id_for(session["id"])
        path = "/api/supervision/sessions?name=al"
        _, both = await loop.run_in_executor(None, _request, server, path)
        assert [s["username"] for s in both["sessions"]] == ["alfred", "Alice"]
        path = f"/api/supervision/sessions?name={session['id']}"
        _, by_id = await loop.run_in_executor(None, _request, server, path)
        assert [s["id"] for s in by_id["sessions"]] == [session["id"]]
        path = "/api/supervision/sessions?name=nobody"
        assert (await loop.run_in_executor(None, _request, server, path))[1]["sessions"] == []

    server.run(scenario)


@pytest.mark.parametrize(
    "query",
    ["", "?partition=sessions.0&name=a", "?partition=room", "?partition=sessions.0&limit=0"],
)
def test_bad_session_queries_are_refused(server: ChatServer, query: str) -> None:
    assert _request(server, f"/api/supervision/sessions{query}")[0] == 400


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"id": "nobody"}, 404),
        ({"name": "room"}, 400),
        (b"not json", 400),
        ({"id": 3}, 400),
        ({"id": "room", "by": ""}, 400),
        ({"id": "room", "by": "a\nforged log line"}, 400),
        ({"id": "room", "by": "x" * 65}, 400),
        ({"id": "room", "by": 7}, 400),
    ],
)
def test_bad_kill_requests_are_refused(server: ChatServer, body: Any, status: int) -> None:
    assert _request(server, "/api/supervision/kill", body)[0] == status


def test_a_foreign_origin_cannot_kill(server: ChatServer) -> None:
    headers = {"Origin": "http://evil.example"}
    assert _request(server, "/api/supervision/kill", {"id": "room"}, headers)[0] == 403


@pytest.mark.parametrize(("chaos", "status"), [(False, 403), (True, 202)])
def test_killing_in_prod_needs_chaos_on(
    start_server: ServerFactory, chaos: bool, status: int
) -> None:
    server = start_server(Settings(env=Environment.PROD, secret_key_base="s" * 32, chaos=chaos))
    assert _request(server, "/api/supervision/kill", {"id": "presence"})[0] == status


async def _read(connection: tornado.websocket.WebSocketClientConnection) -> str:
    async def next_message() -> str | bytes | None:
        return await connection.read_message()

    message = await asyncio.wait_for(next_message(), 10)
    assert isinstance(message, str), "the stream closed"
    return message


def test_the_event_stream_pushes_exits_and_restarts_as_they_happen(server: ChatServer) -> None:
    async def scenario(server: ChatServer) -> None:
        url = server.ws_url.replace("/ws", "/api/supervision/events")
        watcher = await tornado.websocket.websocket_connect(url)
        try:
            first = json.loads(await _read(watcher))
            assert first["type"] == "events"
            assert {"supervisor": "root", "child": "room", "kind": "started"}.items() <= next(
                e for e in first["events"] if e["child"] == "room"
            ).items()
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(
                None, _request, server, "/api/supervision/kill", {"id": "room"}
            )
            kinds = []
            while "restarted" not in kinds:
                frame = json.loads(await _read(watcher))
                assert frame["type"] == "event"
                if frame["event"]["child"] == "room":
                    kinds.append(frame["event"]["kind"])
            assert kinds == ["exited", "restarted"]
        finally:
            watcher.close()

    server.run(scenario)


def test_a_foreign_page_cannot_watch_the_event_stream(server: ChatServer) -> None:
    async def scenario(server: ChatServer) -> None:
        url = server.ws_url.replace("/ws", "/api/supervision/events")
        request = tornado.httpclient.HTTPRequest(url, headers={"Origin": "http://evil.example"})
        with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
            await tornado.websocket.websocket_connect(request)
        assert refused.value.code == 403

    server.run(scenario)
