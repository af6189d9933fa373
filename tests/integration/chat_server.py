"""A real Chatter server for tests: the tree and Tornado on 127.0.0.1, on an
event loop of its own thread, and a WebSocket client that speaks the contract."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import tornado.httpclient
import tornado.netutil
import tornado.websocket

from chatter.config import Environment, Settings
from chatter.throttle import NameClaimLimits
from chatter.tree import ChatTree, start_tree
from web.app import make_app
from web.limits import MAX_PENDING_OUTPUT_PER_ADDRESS, ConnectionLimits
from web.listener import Listener, listen

SECRET = b"test-secret-" + b"x" * 20
TIMEOUT_S = 10.0


class ChatServer:
    """Runs until `stop`; `url` is its base URL. `name_claims` replaces the
    contract's limits on taking names (every test client has one address)."""

    def __init__(
        self,
        conninfo: str,
        settings: Settings | None = None,
        *,
        name_claims: NameClaimLimits | None = None,
        max_output_per_address: int = MAX_PENDING_OUTPUT_PER_ADDRESS,
        **app_options: Any,
    ) -> None:
        self.settings = settings or Settings(env=Environment.TEST)
        self.conninfo = conninfo
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="chat-server")
        self._thread.start()
        self.tree: ChatTree = start_tree(
            conninfo,
            SECRET,
            self.loop,
            max_sessions=self.settings.max_connections,
            name_claims=name_claims if name_claims is not None else self.settings.name_claims,
        )
        self.limits = ConnectionLimits(
            self.settings.max_connections,
            self.settings.max_connections_per_ip,
            max_output_per_address,
        )
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"
        settings_ = replace(self.settings, port=self.port)
        app = make_app(settings_, self.tree, self.limits, **app_options)

        async def start_listening() -> Listener:
            return listen(app, settings_, sockets)

        self.http = asyncio.run_coroutine_threadsafe(start_listening(), self.loop).result(TIMEOUT_S)
        self.clients: list[Client] = []

    async def connect(self, **options: Any) -> Client:
        """A client connected to this server; `run` closes it when the scenario ends."""
        client = await Client.connect(self.ws_url, **options)
        self.clients.append(client)
        return client

    def call(self, function: Callable[[], Any]) -> Any:
        """Run `function` on the server's loop and return its result."""

        async def run() -> Any:
            return function()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(TIMEOUT_S)

    def stop(self) -> None:
        async def close() -> None:
            self.http.stop()
            await self.limits.close_all(1001, "test over", 3.0)

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(TIMEOUT_S)
        self.tree.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(TIMEOUT_S)
        self.loop.close()


ServerFactory = Callable[..., ChatServer]
"""The `start_server` fixture: `start_server(settings=None, **app_options)` is a
running `ChatServer`, stopped when the test ends."""


@dataclass
class Client:
    """One WebSocket connection and every frame it received, in order."""

    connection: tornado.websocket.WebSocketClientConnection
    frames: list[dict[str, Any]] = field(default_factory=list)
    """Every frame received, in order."""
    unread: list[dict[str, Any]] = field(default_factory=list)
    """Frames received but not yet returned by `expect`."""
    closed_code: int | None = None

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        after: int | None = None,
        token: str | None = None,
        origin: str | None = None,
        max_message_size: int = 64 * 1024 * 1024,
    ) -> Client:
        query = []
        if after is not None:
            query.append(f"after={after}")
        if token is not None:
            query.append(f"token={token}")
        full = url + ("?" + "&".join(query) if query else "")
        headers = {"Origin": origin} if origin else {}
        request = tornado.httpclient.HTTPRequest(full, headers=headers)
        connection = await tornado.websocket.websocket_connect(
            request, max_message_size=max_message_size
        )
        return cls(connection)

    async def send(self, frame: dict[str, Any] | str | bytes) -> None:
        if isinstance(frame, dict):
            frame = json.dumps(frame)
        await self.connection.write_message(frame, binary=isinstance(frame, bytes))

    async def receive(self, timeout_s: float = TIMEOUT_S) -> dict[str, Any] | None:
        """The next frame, or None once the server closed the connection."""
        text = await asyncio.wait_for(self.connection.read_message(), timeout_s)
        if text is None:
            self.closed_code = self.connection.close_code
            return None
        frame: dict[str, Any] = json.loads(text)
        self.frames.append(frame)
        return frame

    async def expect(
        self, kind: str, timeout_s: float = TIMEOUT_S, **fields: Any
    ) -> dict[str, Any]:
        """The first unread frame of `kind` (with these field values), reading
        more until it arrives; frames of other kinds stay unread, in order."""

        def matches(frame: dict[str, Any]) -> bool:
            return frame["type"] == kind and all(frame.get(k) == v for k, v in fields.items())

        for index, frame in enumerate(self.unread):
            if matches(frame):
                return self.unread.pop(index)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            received = await self.receive(max(0.01, deadline - loop.time()))
            if received is None:
                raise AssertionError(f"closed ({self.closed_code}) while waiting for {kind}")
            if matches(received):
                return received
            self.unread.append(received)

    async def welcome(self) -> dict[str, Any]:
        return await self.expect("welcome")

    async def join(self, username: str) -> dict[str, Any]:
        await self.send({"type": "join", "username": username})
        return await self.expect("joined")

    async def post(self, body: str, client_id: str | None = None, **extra: Any) -> None:
        frame: dict[str, Any] = {"type": "post", "body": body, **extra}
        if client_id is not None:
            frame["client_id"] = client_id
        await self.send(frame)

    def close(self) -> None:
        self.connection.close()

    async def closed(self, timeout_s: float = TIMEOUT_S) -> int | None:
        """Wait until the server has closed the connection; its close code."""
        while await self.receive(timeout_s) is not None:
            pass
        return self.closed_code


async def run_scenario(
    server: ChatServer, scenario: Callable[[ChatServer], Any], timeout_s: float = 60
) -> None:
    """Run `scenario(server)`, then close every client it connected."""
    try:
        await asyncio.wait_for(scenario(server), timeout_s)
    finally:
        for client in server.clients:
            client.close()
        server.clients.clear()
