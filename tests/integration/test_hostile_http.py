"""Hostile HTTP against a real server: refused upgrades, slow and half-sent
headers, path tricks, malformed API bodies and HEAD requests. Every attack runs
while an honest client chats, and that client must lose nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from dataclasses import replace
from typing import Any

import pytest

from chatter.config import Environment, Settings
from tests.harness.honest import attack
from tests.harness.http import fetch
from tests.harness.raw import raw_socket, welcomed_raw_socket
from tests.harness.server import ChatServer, ServerFactory
from tests.harness.waiting import TIMEOUT_S, eventually

CAP = 5
"""Connections per address in these tests: small, so a leak shows at once."""

BASE = Settings(env=Environment.TEST, max_connections_per_ip=CAP)


def request(port: int, head: str, *, source: str = "127.0.0.1", body: bytes = b"") -> bytes:
    """Send one raw HTTP request and read the response until the server closes
    or the head and body are in."""
    with raw_socket(port, source=source) as raw:
        raw.sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n\r\n" + body)
        data = b""
        while True:
            try:
                chunk = raw.sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data:
                head_bytes, rest = data.split(b"\r\n\r\n", 1)
                length = _content_length(head_bytes)
                if length is not None and len(rest) >= length:
                    break
        return data


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return None


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def upgrade_head(port: int, **headers: str | None) -> str:
    """An upgrade request to /ws; a header given as None is left out."""
    fields: dict[str, str | None] = {
        "Host": f"127.0.0.1:{port}",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }
    fields.update({name.replace("_", "-"): value for name, value in headers.items()})
    lines = [f"{name}: {value}" for name, value in fields.items() if value is not None]
    return "\n".join(["GET /ws HTTP/1.1", *lines])


# -- 1. every way an upgrade ends gives its slot back --------------------------------------


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Sec_WebSocket_Key": None}, 400),
        ({"Sec_WebSocket_Key": ""}, 400),
        ({"Sec_WebSocket_Version": "8"}, 426),
        ({"Origin": "http://evil.example"}, 403),
        ({"Upgrade": None}, 400),
        ({"Connection": "keep-alive"}, 400),
    ],
    ids=["no-key", "empty-key", "old-version", "foreign-origin", "no-upgrade", "no-connection"],
)
def test_refused_upgrades_give_their_slot_back(
    start_server: ServerFactory, headers: dict[str, str | None], status: int
) -> None:
    server = start_server(BASE)

    async def scenario(server: ChatServer) -> None:
        for _ in range(CAP * 3):  # three times the cap: a leak would refuse the rest
            response = request(server.port, upgrade_head(server.port, **headers))
            assert status_of(response) == status
        await eventually(lambda: server.open_connections() == 1, "only the honest client's slot")
        newcomer = await server.connect()
        await newcomer.welcome()
        newcomer.close()
        health = json.loads((await fetch(server.url + "/healthz")).body)
        assert health["connections"] in (1, 2)  # the newcomer's close may still be under way

    attack(server, scenario)

    async def every_slot_given_back(server: ChatServer) -> None:
        # The clients have closed; the server frees each slot as it sees its close.
        await eventually(lambda: server.open_connections() == 0, "every slot given back")

    server.run(every_slot_given_back)


def test_aborted_and_closed_upgrades_give_their_slot_back(start_server: ServerFactory) -> None:
    server = start_server(BASE)

    async def scenario(server: ChatServer) -> None:
        for _ in range(CAP * 3):
            # Aborted: the request is sent and the socket closed before any answer.
            with raw_socket(server.port) as raw:
                raw.sock.sendall(upgrade_head(server.port).replace("\n", "\r\n").encode())
                raw.sock.sendall(b"\r\n\r\n")
            # Upgraded, then closed without a close frame.
            with welcomed_raw_socket(server.port):
                pass
        await eventually(lambda: server.open_connections() == 1, "only the honest client's slot")
        health = json.loads((await fetch(server.url + "/healthz")).body)
        assert health["connections"] == 1

    attack(server, scenario)


# -- 2. slow and half-finished requests --------------------------------------------------


def test_a_request_whose_headers_never_finish_is_closed_after_the_header_timeout(
    start_server: ServerFactory,
) -> None:
    server = start_server(replace(BASE, header_timeout_s=0.5))

    async def scenario(server: ChatServer) -> None:
        with contextlib.ExitStack() as stack:
            silent = stack.enter_context(raw_socket(server.port))
            trickle = stack.enter_context(raw_socket(server.port))
            trickle.sock.sendall(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            kept_alive = stack.enter_context(raw_socket(server.port))
            kept_alive.sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            for raw in (silent, trickle, kept_alive):
                # The server closes each, where Tornado's default would wait an hour.
                assert await asyncio.to_thread(raw.closed_by_server)

    attack(server, scenario)


def test_an_address_holds_few_sockets_before_its_headers_are_done(
    start_server: ServerFactory,
) -> None:
    pending_cap = 4
    server = start_server(replace(BASE, max_pending_per_ip=pending_cap))

    async def scenario(server: ChatServer) -> None:
        with contextlib.ExitStack() as stack:
            held = []
            for _ in range(pending_cap):
                raw = stack.enter_context(raw_socket(server.port, source="127.0.0.2"))
                raw.sock.sendall(b"GET / HTTP/1.1\r\n")  # and never the rest
                held.append(raw)
            await eventually(
                lambda: server.call(lambda: server.http.pending_of("127.0.0.2")) == pending_cap,
                "the attacker's sockets are seen",
            )
            for _ in range(3):
                extra = stack.enter_context(raw_socket(server.port, source="127.0.0.2"))
                assert await asyncio.to_thread(extra.closed_by_server)
            assert server.http.refused_pending >= 3
            # Other addresses are not held up: a page from 127.0.0.3 loads.
            assert (
                status_of(request(server.port, "GET / HTTP/1.1\nHost: x", source="127.0.0.3"))
                == 200
            )
            held[0].close()
            await eventually(
                lambda: server.call(lambda: server.http.pending_of("127.0.0.2")) < pending_cap,
                "a closed socket is counted out",
            )
            response = request(server.port, "GET /healthz HTTP/1.1\nHost: x", source="127.0.0.2")
            assert status_of(response) == 200

    attack(server, scenario)


# -- 5. static paths that name no file -------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/static/%00",
        "/static/js/room.js%00.png",
        "/static/" + "a" * 5000,
        "/static/js",
        "/static/js/",
        "/static/..%2f..%2fpyproject.toml",
        "/static/%2e%2e/app.py",
        "/static/no-such-file.css",
    ],
    ids=[
        "nul",
        "nul-suffix",
        "too-long",
        "directory",
        "directory-slash",
        "dotdot",
        "dotdot-2",
        "missing",
    ],
)
def test_a_static_path_that_names_no_file_is_404(start_server: ServerFactory, path: str) -> None:
    server = start_server(BASE)

    async def scenario(server: ChatServer) -> None:
        response = await fetch(server.url + path)
        assert response.code == 404, response.body[:200]

    attack(server, scenario)


def test_static_files_are_still_served(start_server: ServerFactory) -> None:
    server = start_server(BASE)

    async def scenario(server: ChatServer) -> None:
        response = await fetch(server.url + "/static/js/room.js")
        assert response.code == 200
        assert b"import" in response.body

    server.run(scenario)


# -- 6. the API answers bad input with a 400 JSON error ------------------------------------


def _post_kill(body: bytes, content_type: str = "application/json") -> dict[str, Any]:
    return {"body": body, "headers": {"Content-Type": content_type}}


@pytest.mark.parametrize(
    ("body", "content_type", "status", "words"),
    [
        (b"[" * 10_000 + b"]" * 10_000, "application/json", 400, "nested too deeply"),
        (b'{"a":' * 5_000 + b"1" + b"}" * 5_000, "application/json", 400, "nested too deeply"),
        (b"{not json", "application/json", 400, "not valid JSON"),
        (b"\xff\xfe", "application/json", 400, "not UTF-8"),
        (b"[1, 2]", "application/json", 400, "must be a JSON object"),
        (b'{"id": 7}', "application/json", 400, '"id" must be a non-empty string'),
        (b"{}", "application/json", 400, '"id" must be a non-empty string'),
        (b'{"id": "room"}', "text/plain", 415, "send application/json"),
        (b'{"id": "' + b"x" * 70_000 + b'"}', "application/json", 413, "over 65,536 bytes"),
        (b'{"id": "nobody"}', "application/json", 404, "no running actor 'nobody'"),
    ],
    ids=[
        "deep-array",
        "deep-object",
        "garbage",
        "not-utf8",
        "array",
        "id-int",
        "no-id",
        "text-plain",
        "too-large",
        "unknown-id",
    ],
)
def test_kill_answers_bad_input_with_a_json_error(
    start_server: ServerFactory, body: bytes, content_type: str, status: int, words: str
) -> None:
    server = start_server(BASE)

    async def scenario(server: ChatServer) -> None:
        response = await fetch(
            server.url + "/api/supervision/kill", method="POST", **_post_kill(body, content_type)
        )
        assert response.code == status, response.body[:300]
        assert response.headers["Content-Type"].startswith("application/json")
        answer = json.loads(response.body)
        assert words in answer["message"]
        assert answer["error"] in ("bad_request", "too_large", "not_found")

    attack(server, scenario)


@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [
        ("GET", "/api/supervision/kill", 405, "method_not_allowed"),
        ("POST", "/api/supervision", 405, "method_not_allowed"),
        ("DELETE", "/healthz", 405, "method_not_allowed"),
        ("GET", "/api/no-such-thing", 404, "not_found"),
        ("GET", "/api/supervision/kill/extra", 404, "not_found"),
    ],
)
def test_api_refusals_are_json(
    start_server: ServerFactory, method: str, path: str, status: int, error: str
) -> None:
    server = start_server(BASE)

    async def scenario(server: ChatServer) -> None:
        body = b"{}" if method == "POST" else None
        response = await fetch(server.url + path, method=method, body=body)
        assert response.code == status
        assert json.loads(response.body)["error"] == error

    server.run(scenario)


# -- HEAD of the pages ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/chat", "/supervision", "/healthz"])
def test_head_answers_as_get_without_a_body(start_server: ServerFactory, path: str) -> None:
    server = start_server(BASE)

    async def scenario(server: ChatServer) -> None:
        got = await fetch(server.url + path)
        head = await fetch(server.url + path, method="HEAD")
        assert (head.code, got.code) == (200, 200)
        assert head.body == b""
        assert head.headers["Content-Type"] == got.headers["Content-Type"]
        if "Content-Security-Policy" in got.headers:
            assert head.headers["Content-Security-Policy"] == got.headers["Content-Security-Policy"]

    server.run(scenario)


def test_a_kept_alive_connection_is_not_mistaken_for_another_client(
    start_server: ServerFactory,
) -> None:
    """Two requests on one socket: both answered, and the socket counts once."""
    server = start_server(BASE)

    async def scenario(server: ChatServer) -> None:
        with socket.create_connection(("127.0.0.1", server.port), TIMEOUT_S) as sock:
            for _ in range(2):
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                data = b""
                while b"}" not in data:
                    data += sock.recv(4096)
                assert data.startswith(b"HTTP/1.1 200")
            assert server.call(lambda: server.http.pending_of("127.0.0.1")) <= 1

    server.run(scenario)
