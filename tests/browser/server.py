"""A real Chatter server for the browser tests, which can be stopped and started
again on the same port (as a deploy or a crash would), keeping its database."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TypeVar

import tornado.netutil

from chatter.config import Environment, Settings
from chatter.tree import ChatTree, start_tree
from tests.integration.chat_server import SECRET, TIMEOUT_S
from web.app import make_app
from web.limits import ConnectionLimits
from web.listener import Listener, listen

__all__ = ["PageServer", "off_the_loop"]

CLOSE_GOING_AWAY = 1001

T = TypeVar("T")


def off_the_loop(function: Callable[[], T]) -> T:
    """Run `function` on a thread of its own and return its result.

    Playwright's sync API keeps its event loop marked as running on the test's
    thread, and the actor runtime rightly refuses to block on a future there.
    Starting and stopping actors happens off that thread."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="off-the-loop") as pool:
        return pool.submit(function).result()


class _Running:
    """One incarnation: an event loop thread, the tree and Tornado on it."""

    def __init__(self, conninfo: str, settings: Settings, port: int) -> None:
        sockets = tornado.netutil.bind_sockets(port, "127.0.0.1")
        self.port: int = sockets[0].getsockname()[1]
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="page-server")
        self._thread.start()
        self.tree: ChatTree = start_tree(
            conninfo,
            SECRET,
            self.loop,
            max_sessions=settings.max_connections,
            name_claims=settings.name_claims,
        )
        self.limits = ConnectionLimits(settings.max_connections, settings.max_connections_per_ip)
        settings_ = replace(settings, port=self.port)
        app = make_app(settings_, self.tree, self.limits)

        async def start_listening() -> Listener:
            return listen(app, settings_, sockets)

        self.http = asyncio.run_coroutine_threadsafe(start_listening(), self.loop).result(TIMEOUT_S)

    def stop(self) -> None:
        async def close() -> None:
            self.http.stop()
            await self.limits.close_all(CLOSE_GOING_AWAY, "server restarting", 3.0)

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(TIMEOUT_S)
        self.tree.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(TIMEOUT_S)
        self.loop.close()


class PageServer:
    """The server at `url`; `stop` then `start` brings it back on the same port.
    Identity tokens stay valid across the restart (same secret, same database)."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self.settings = Settings(env=Environment.TEST)
        self._running: _Running | None = off_the_loop(lambda: _Running(conninfo, self.settings, 0))
        self.port = self._running.port
        self.url = f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._running is not None

    def start(self) -> None:
        assert self._running is None, "already running"
        self._running = off_the_loop(lambda: _Running(self.conninfo, self.settings, self.port))

    def stop(self) -> None:
        if self._running is not None:
            running, self._running = self._running, None
            off_the_loop(running.stop)
