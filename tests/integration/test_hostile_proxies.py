"""Client addresses behind a load balancer: only a configured trusted proxy
may name the client (by ``X-Forwarded-For`` or the PROXY protocol), and the
per-address limits then apply to that client; anyone else's claims are
ignored. An honest client chats through each case and loses nothing."""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

import pytest

from chatter.config import Environment, Settings
from tests.harness.honest import attack
from tests.harness.raw import RawSocket, raw_socket
from tests.harness.server import ChatServer, ServerFactory
from tests.harness.waiting import eventually

BALANCER = "127.0.0.7"
CAP = 2


def settings(**changes: Any) -> Settings:
    """Test settings with `CAP` connections per address, and `changes`."""
    return Settings(env=Environment.TEST, max_connections_per_ip=CAP, **changes)


def test_forwarded_for_from_an_untrusted_peer_is_ignored(start_server: ServerFactory) -> None:
    server = start_server(settings())

    async def scenario(server: ChatServer) -> None:
        with (
            raw_socket(server.port, source="127.0.0.8") as first,
            raw_socket(server.port, source="127.0.0.8") as second,
        ):
            assert first.upgrade(headers={"X-Forwarded-For": "10.0.0.1"}) == 101
            assert second.upgrade(headers={"X-Forwarded-For": "10.0.0.2"}) == 101
            with raw_socket(server.port, source="127.0.0.8") as third:
                assert third.upgrade(headers={"X-Forwarded-For": "10.0.0.3"}) == 503
            assert server.connections_by_address().get("127.0.0.8") == CAP
            assert "10.0.0.1" not in server.connections_by_address()

    attack(server, scenario)


def test_forwarded_for_from_a_trusted_proxy_names_the_client(start_server: ServerFactory) -> None:
    server = start_server(settings(trusted_proxies=(f"{BALANCER}/32",)))

    async def scenario(server: ChatServer) -> None:
        sockets = [RawSocket(server.port, source=BALANCER) for _ in range(CAP + 2)]
        try:
            a1, a2, a3, b1 = sockets
            assert a1.upgrade(headers={"X-Forwarded-For": "10.0.0.1"}) == 101
            # A client's own (forged) entry comes first; the balancer appends the real one.
            assert a2.upgrade(headers={"X-Forwarded-For": "6.6.6.6, 10.0.0.1"}) == 101
            assert a3.upgrade(headers={"X-Forwarded-For": "10.0.0.1"}) == 503
            assert b1.upgrade(headers={"X-Forwarded-For": "10.0.0.2"}) == 101
            counts = server.connections_by_address()
            assert (counts.get("10.0.0.1"), counts.get("10.0.0.2")) == (CAP, 1)
            assert BALANCER not in counts
            assert "6.6.6.6" not in counts
        finally:
            for raw in sockets:
                raw.close()
        await eventually(
            lambda: set(server.connections_by_address()) == {"127.0.0.1"},
            "the slots are given back",
        )

    attack(server, scenario)


def proxy_v2(client: str, port: int) -> bytes:
    addresses = (
        socket.inet_aton(client) + socket.inet_aton("127.0.0.1") + struct.pack("!HH", port, 4000)
    )
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", 12) + addresses


@pytest.mark.parametrize(
    "header",
    [
        lambda client: f"PROXY TCP4 {client} 127.0.0.1 5555 4000\r\n".encode(),
        lambda client: proxy_v2(client, 5555),
    ],
    ids=["v1", "v2"],
)
def test_the_proxy_protocol_names_the_client(start_server: ServerFactory, header: Any) -> None:
    server = start_server(settings(trusted_proxies=(f"{BALANCER}/32",), proxy_protocol=True))

    async def scenario(server: ChatServer) -> None:
        sockets = [RawSocket(server.port, source=BALANCER) for _ in range(CAP + 1)]
        try:
            for raw in sockets:
                raw.sock.sendall(header("10.0.0.9"))
            statuses = [raw.upgrade() for raw in sockets]
            assert statuses == [101] * CAP + [503]
            assert server.connections_by_address().get("10.0.0.9") == CAP
        finally:
            for raw in sockets:
                raw.close()

    attack(server, scenario)


def test_a_trusted_peer_without_its_proxy_header_is_closed(start_server: ServerFactory) -> None:
    server = start_server(settings(trusted_proxies=(f"{BALANCER}/32",), proxy_protocol=True))

    async def scenario(server: ChatServer) -> None:
        with raw_socket(server.port, source=BALANCER) as raw:
            raw.sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert await asyncio.to_thread(raw.closed_by_server)

    attack(server, scenario)
