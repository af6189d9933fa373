"""GET /api/supervision and POST /api/supervision/kill, on a real server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import tornado.httpclient
import tornado.websocket

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
    assert children["sessions"]["kind"] == "supervisor"
    assert children["sessions"]["count"] == 0


def test_killing_the_room_restarts_it_and_the_tree_counts_it(server: ChatServer) -> None:
    status, answer = _request(server, "/api/supervision/kill", {"id": "room"})
    assert (status, answer["id"]) == (202, "room")
    server.log.wait(EventKind.RESTARTED, "room", 10)
    _, tree = _request(server, "/api/supervision")
    room = next(c for c in tree["children"] if c["id"] == "room")
    assert (room["restarts"], room["alive"]) == (1, True)


def test_killing_a_session_closes_only_its_connection_with_1011(server: ChatServer) -> None:
    async def scenario(server: ChatServer) -> None:
        doomed, other = await server.welcomed(), await server.welcomed()
        loop = asyncio.get_running_loop()
        _, tree = await loop.run_in_executor(None, _request, server, "/api/supervision")
        sessions = next(c for c in tree["children"] if c["id"] == "sessions")
        assert sessions["count"] == 2
        first = sessions["children"][0]["id"]
        status, _ = await loop.run_in_executor(
            None, _request, server, "/api/supervision/kill", {"id": first}
        )
        assert status == 202
        assert await doomed.closed() == 1011
        await other.join("still-here")

    server.run(scenario)


@pytest.mark.parametrize(
    ("body", "status"),
    [({"id": "nobody"}, 404), ({"name": "room"}, 400), (b"not json", 400), ({"id": 3}, 400)],
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
