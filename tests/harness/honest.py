"""Someone chatting through an attack, and the check that they lost nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from tests.harness.client import Client
from tests.harness.http import fetch
from tests.harness.server import ChatServer

__all__ = ["HonestClient", "Reachable", "attack", "restarted_nodes"]


class Reachable(Protocol):
    """A server under test, in this process or another."""

    @property
    def url(self) -> str: ...

    @property
    def ws_url(self) -> str: ...


class HonestClient:
    """A chat client that posts before an attack (`start`) and after it
    (`check`). Each post must be stored (acked) and delivered (come back as a
    message) in order, nothing it sent may be refused, ``/healthz`` must say
    200, and no actor may have restarted."""

    def __init__(self, server: Reachable, name: str = "honest") -> None:
        self.server = server
        self.name = name
        self.client: Client | None = None
        self.acked: list[int] = []

    async def start(self) -> None:
        self.client = await Client.connect(self.server.ws_url)
        await self.client.welcome()
        await self.client.join(self.name)
        await self.posts_and_sees("before the attack")

    async def check(self) -> None:
        """It is still connected, posts once more, and nothing was lost."""
        await self.posts_and_sees("after the attack")
        assert self.client is not None
        assert self.client.received("error") == []
        assert (await fetch(self.server.url + "/healthz")).code == 200
        assert await restarted_nodes(self.server) == {}
        assert self.acked == sorted(self.acked)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()

    async def posts_and_sees(self, text: str) -> None:
        """Post a line; it is acked, then delivered back among whatever others say."""
        assert self.client is not None
        client_id = f"{text}-{uuid.uuid4()}"
        body = f"{self.name}: {text}"
        await self.client.post(body, client_id=client_id)
        ack = await self.client.expect("ack", client_id=client_id)
        message = await self.client.first(
            lambda f: f["type"] == "message" and f["message"]["id"] == ack["id"], body
        )
        assert message["message"]["body"] == body
        self.acked.append(ack["seq"])


async def restarted_nodes(server: Reachable) -> dict[str, int]:
    """Every node of ``/api/supervision`` that was ever restarted, with its count."""
    response = await fetch(server.url + "/api/supervision")
    assert response.code == 200
    restarted: dict[str, int] = {}
    pending: list[dict[str, Any]] = [json.loads(response.body)]
    while pending:
        node = pending.pop()
        if node["restarts"]:
            restarted[node["id"]] = node["restarts"]
        pending.extend(node.get("children", []))
    return restarted


def attack(
    server: ChatServer, scenario: Callable[[ChatServer], Awaitable[None]], timeout_s: float = 90
) -> None:
    """Run `scenario(server)` between an honest client's `start` and its
    `check`; no supervision event may tell of a restart either."""

    async def with_honest(server: ChatServer) -> None:
        honest = HonestClient(server)
        try:
            await honest.start()
            await scenario(server)
            await honest.check()
        finally:
            honest.close()

    server.run(with_honest, timeout_s)
    assert server.log.restarts() == [], server.log.events
