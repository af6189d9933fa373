"""``chatter console``: the server, with a Python shell bound to its running tree.

As ``iex -S mix phx.server`` is for Phoenix: the server runs (on a thread of
its own) and the shell can look at the tree and poke it. Type ``help(name)`` for
any helper; Ctrl-D stops the server and leaves.
"""

from __future__ import annotations

import asyncio
import code
import json
import threading
import time
from typing import Any

import tornado.websocket

from chatter.config import Settings
from supervision import (
    SupervisionEvent,
    describe_tree,
    find_actor,
    inject_crash,
    render_tree,
    which_children,
)
from web.server import BackgroundServer

__all__ = ["Console", "run_console"]

BANNER = """Chatter console: the server is running on http://{host}:{port}
Helpers: tree()  children(id)  kill(id)  watch(seconds)  events()  post(username, body)
Objects: server (the running server), registry (names), root (the root supervisor)
help(tree) and so on say more. Ctrl-D stops the server and leaves."""


class Console:
    """The helpers the shell offers, bound to one running server."""

    def __init__(self, server: BackgroundServer) -> None:
        self.server = server
        self.running = server.running

    def tree(self) -> None:
        """Print the supervision tree: every supervisor and worker, alive or
        down, with its restart type and how often it was restarted."""
        # Render shows 20 children a supervisor: read no more than that.
        print(render_tree(describe_tree(self.running.tree.root, max_children=20)))

    def children(self, supervisor_id: str = "root") -> list[dict[str, Any]]:
        """The children of a supervisor (default: the root), in start order:
        id, kind, restart type, alive, restarts."""
        ref = find_actor(self.running.tree.root, supervisor_id)
        if ref is None:
            raise LookupError(f"no running actor {supervisor_id!r}")
        return [
            {
                "id": info.id,
                "kind": info.kind.value,
                "restart": info.restart.value,
                "alive": info.alive,
                "restarts": info.restarts,
            }
            for info in which_children(ref).get(timeout=5)
        ]

    def kill(self, actor_id: str) -> str:
        """Make the actor with this id crash from inside, as a fault would; its
        supervisor restarts it (a session, being temporary, is not restarted)."""
        ref = find_actor(self.running.tree.root, actor_id)
        if ref is None:
            raise LookupError(f"no running actor {actor_id!r}")
        inject_crash(ref, "asked by the console")
        return f"killed {actor_id}"

    def events(self, last: int = 20) -> None:
        """Print the last supervision events: started, exited (with why),
        restarted, gave up."""
        for event in self.running.tree.events.recent()[-last:]:
            print(_format_event(event))

    def watch(self, seconds: float = 10.0) -> None:
        """Print supervision events as they happen, for `seconds` (Ctrl-C stops)."""
        done = threading.Event()
        unsubscribe = self.running.tree.events.subscribe(lambda e: print(_format_event(e)))
        try:
            done.wait(seconds)
        except KeyboardInterrupt:
            pass
        finally:
            unsubscribe()

    def post(self, username: str, body: str) -> dict[str, Any]:
        """Post `body` as `username` over a real WebSocket, as a client would;
        returns the message as stored (with its seq)."""
        settings = self.running.settings
        url = f"ws://{settings.host}:{settings.port}/ws"
        return asyncio.run(_post(url, username, body))


async def _post(url: str, username: str, body: str) -> dict[str, Any]:
    connection = await tornado.websocket.websocket_connect(url)
    client_id = f"console-{time.time_ns()}"
    acked: str | None = None
    seen: dict[str, dict[str, Any]] = {}  # the broadcast may come before the ack
    try:
        await connection.write_message(
            json.dumps({"type": "post", "username": username, "body": body, "client_id": client_id})
        )
        while acked is None or acked not in seen:
            text = await asyncio.wait_for(connection.read_message(), 10)
            if text is None:
                raise ConnectionError("the server closed the connection")
            frame = json.loads(text)
            if frame["type"] == "error":
                raise RuntimeError(f"{frame['code']}: {frame['message']}")
            if frame["type"] == "ack" and frame["client_id"] == client_id:
                acked = frame["id"]
            elif frame["type"] == "message":
                seen[frame["message"]["id"]] = frame["message"]
        return seen[acked]
    finally:
        connection.close()


def _format_event(event: SupervisionEvent) -> str:
    when = time.strftime("%H:%M:%S", time.localtime(event.time))
    where = f"{event.supervisor}/{event.child}" if event.child else event.supervisor
    reason = f" ({event.reason})" if event.reason else ""
    return f"{when} {where} {event.kind.value}{reason}"


def run_console(settings: Settings, conninfo: str) -> int:
    """Start the server in the background and open the shell; the exit status."""
    server = BackgroundServer(settings, conninfo)
    console = Console(server)
    namespace: dict[str, Any] = {
        "server": server.running,
        "registry": server.running.tree.registry,
        "root": server.running.tree.root,
        "tree": console.tree,
        "children": console.children,
        "kill": console.kill,
        "events": console.events,
        "watch": console.watch,
        "post": console.post,
    }
    try:
        code.interact(
            banner=BANNER.format(host=settings.host, port=settings.port),
            local=namespace,
            exitmsg="Stopping the server…",
        )
    finally:
        status = server.stop()
    return status
