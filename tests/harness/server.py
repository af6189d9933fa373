"""Chatter in the test's own process: the pieces ``chatter serve`` starts
(`web.server.start`), on 127.0.0.1 and an event loop of a thread of their own
(`web.server.BackgroundServer`), with what a test needs to reach them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pykka

from chatter import presence
from chatter.config import Environment, Settings
from chatter.recent_users import UsersChanged
from chatter.tokens import secret_from
from chatter.tree import ChatTree
from supervision import which_children
from tests.harness.client import Client, Frame
from tests.harness.waiting import EventLog
from web.limits import ConnectionLimits
from web.listener import Listener
from web.server import BackgroundServer, Running

__all__ = ["SECRET", "TEST_SECRET_KEY_BASE", "ChatServer", "Scenario", "ServerFactory"]

TEST_SECRET_KEY_BASE = "test-secret-key-base-" + "x" * 20
"""The tests' ``SECRET_KEY_BASE`` (unless a test sets its own): no secret file
is written anywhere, and a server started again takes its tokens back."""
SECRET = secret_from(TEST_SECRET_KEY_BASE, Path())
"""The key that signs the test servers' tokens, for tests that make their own."""

SCENARIO_TIMEOUT_S = 60.0

T = TypeVar("T")
Scenario = Callable[["ChatServer"], Awaitable[None]]
"""What a test does with a running server, as a coroutine function."""


class ChatServer:
    """A server on an empty database until `stop`; `start` brings it back on
    the same port (as a deploy or a crash would), keeping its database and its
    secret. `settings` default to the test environment's; `options` are
    `web.server.start`'s bounds for tests that cannot wait for the real ones."""

    def __init__(self, conninfo: str, settings: Settings | None = None, **options: Any) -> None:
        self.conninfo = conninfo
        self.settings = settings or Settings(env=Environment.TEST)
        self.options = options
        self.port = 0
        """The port: chosen at the first start, kept for the next."""
        self.clients: list[Client] = []
        """Every client `connect` made since the last `run` ended."""
        self._background: BackgroundServer | None = None
        self.start()

    def start(self, settings: Settings | None = None) -> None:
        """Start (again, with new `settings` if given)."""
        assert self._background is None, "already running"
        self.settings = settings or self.settings
        ours = replace(
            self.settings,
            host="127.0.0.1",
            port=self.port,
            secret_key_base=self.settings.secret_key_base or TEST_SECRET_KEY_BASE,
        )
        self._background = BackgroundServer(ours, self.conninfo, migrated=True, **self.options)
        running = self._background.running
        self.port = running.port
        self.loop = self._background.loop
        self.tree: ChatTree = running.tree
        self.limits: ConnectionLimits = running.limits
        self.http: Listener = running.http
        self.log = EventLog(self.tree.events)
        """The tree's supervision events since it started."""

    def stop(self) -> None:
        """Close every socket with 1001 and stop the tree; nothing if stopped."""
        if self._background is not None:
            background, self._background = self._background, None
            self.log.close()
            background.stop()

    # -- the running pieces (`tree`, `limits`, `http`, `loop`: the latest start's) --------------

    @property
    def running(self) -> Running:
        assert self._background is not None, "not running"
        return self._background.running

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def call(self, function: Callable[[], T]) -> T:
        """Run `function` on the server's loop (where Tornado's objects live); its result."""

        async def run() -> T:
            return function()

        assert self._background is not None, "not running"
        return self._background.run(run())

    def whereis(self, name: str) -> pykka.ActorRef[Any]:
        """The actor registered as `name`, which must be."""
        ref = self.tree.registry.whereis(name)
        assert ref is not None, f"{name} is not registered"
        return ref

    async def live_sessions(self) -> list[pykka.ActorRef[Any]]:
        """The session actors alive under the sessions supervisor's partitions,
        partition by partition, each in start order."""
        live = []
        for partition in self.tree.sessions.ids():
            children = await which_children(self.whereis(partition))
            live += [c.ref for c in children if c.ref is not None and c.ref.is_alive()]
        return live

    def open_connections(self) -> int:
        """The connections holding a slot under the caps now."""
        return self.call(lambda: self.limits.total)

    def connections_by_address(self) -> dict[str, int]:
        """The slots each client address holds now."""
        return self.call(lambda: dict(self.limits.by_address()))

    # -- clients -------------------------------------------------------------------------------

    async def connect(self, **options: Any) -> Client:
        """A client connected to this server (`Client.connect`'s options); `run`
        closes it when the scenario ends."""
        client = await Client.connect(self.ws_url, **options)
        self.clients.append(client)
        return client

    async def welcomed(self, **options: Any) -> Client:
        """A client connected as `connect` does, that has read its welcome."""
        client = await self.connect(**options)
        await client.welcome()
        return client

    async def welcome(self, **options: Any) -> Frame:
        """The welcome a new connection gets (`connect`'s options)."""
        return await (await self.welcomed(**options)).welcome()

    async def joined(self, username: str, **options: Any) -> Client:
        """A client connected as `welcomed` does, that has joined as `username`."""
        client = await self.welcomed(**options)
        await client.join(username)
        return client

    async def watched_join(
        self, username: str, *, first_post: tuple[str, str] | None = None
    ) -> tuple[Client, Client]:
        """A watcher and a client, both welcomed; the client joins as
        `username`, with a `join` frame or, given `first_post` (body,
        client_id), with a first post that carries the name (joined, then
        acked), and the watcher sees the name come online as the first presence
        change it gets. The watcher and the client."""
        watcher = await self.welcomed()
        client = await self.welcomed()
        if first_post is None:
            await client.join(username)
        else:
            body, client_id = first_post
            await client.post(body, client_id, username=username)
            assert (await client.expect("joined"))["username"] == username
            await client.expect("ack", client_id=client_id)
        presence = await watcher.expect("presence")
        assert presence["joins"] == [username], presence
        return watcher, client

    def users_written(self) -> None:
        """Tell presence that users were written straight into the database (as
        `seed_users` does), as persistence tells it after a user write: a
        welcome asked from now on lists and counts them."""
        self.tree.registry.tell(presence.NAME, UsersChanged())

    async def heard(self, seq: int) -> None:
        """Wait until the room has sent every message up to `seq` (stored
        straight into the database, as `seed_messages` does): a welcome holds
        what the room has sent, and the rest comes after it, live."""
        viewer = await Client.connect(self.ws_url)
        try:
            welcome = await viewer.welcome()
            highest = max((m["seq"] for m in welcome["messages"]), default=0)
            looked_at = 0

            def sent() -> bool:
                nonlocal highest, looked_at
                for frame in viewer.frames[looked_at:]:
                    if frame["type"] == "message":
                        highest = max(highest, frame["message"]["seq"])
                looked_at = len(viewer.frames)
                return highest >= seq

            await viewer.read_until(sent, f"the room sent seq {seq}")
        finally:
            viewer.close()

    def run(self, scenario: Scenario, timeout_s: float = SCENARIO_TIMEOUT_S) -> None:
        """Run `scenario(self)` on an event loop of the test's own, then close
        every client it connected."""

        async def run_then_close() -> None:
            try:
                await asyncio.wait_for(scenario(self), timeout_s)
            finally:
                for client in self.clients:
                    client.close()
                self.clients.clear()

        asyncio.run(run_then_close())


ServerFactory = Callable[..., ChatServer]
"""The `start_server` fixture: `start_server(settings=None, **options)` is a
running `ChatServer`, stopped when the test ends."""
