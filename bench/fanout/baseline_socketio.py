"""The third baseline: python-socketio's ``AsyncServer`` on Tornado, broadcasting to all.

What a Python developer would pick off the shelf for a chat room: one
``AsyncServer(async_mode="tornado")``, every client in the default namespace,
and each message sent with ``emit("message", ...)`` to all of them. python-socketio
encodes the packet once per broadcast; engine.io then queues it on each client's
socket, where a writer task per client sends it (one task per receiver per message
inside ``emit``). No database, no actors, no throttle, one thread.

It speaks the same conversation as the demo, over socket.io events rather than
bare JSON frames (Engine.IO 4 over a WebSocket only,
``/socket.io/?EIO=4&transport=websocket``):

- on connect: event ``welcome`` with ``{"type": "welcome", "messages": [...], ...}``;
- event ``join`` ``{"username"}``, answered through socket.io's own acknowledgement
  with ``{"type": "joined", "username", "token"}``;
- event ``post`` ``{"body", "client_id"?}``: event ``message`` ``{"type": "message",
  "message": {...}}`` to everyone, the sender included, then the acknowledgement
  ``{"type": "ack", "client_id", "id", "seq"}`` (the demo's ack, carried by socket.io's
  ack packet, ``43<id>[...]``).

Run: ``python -m bench.fanout.baseline_socketio --port 8888``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import signal
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import socketio  # type: ignore[import-untyped]
import tornado.web
from tornado.httpserver import HTTPServer

from bench.fanout.baseline_demo import CACHE_SIZE

__all__ = ["PATH", "main", "make_app"]

logger = logging.getLogger("baseline_socketio")

PATH = "/socket.io/?EIO=4&transport=websocket"
"""Where a client opens a WebSocket straight away (no long-polling first)."""


@dataclass
class _Room:
    """The room's state: who is there under which name, recent messages, the next seq."""

    usernames: dict[str, str] = field(default_factory=dict)
    cache: list[dict[str, Any]] = field(default_factory=list)
    seqs: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


class _HealthHandler(tornado.web.RequestHandler):
    """``GET /healthz``: up as soon as it listens."""

    def initialize(self, room: _Room) -> None:
        self.room = room

    def get(self) -> None:
        self.finish({"status": "ok", "connections": len(self.room.usernames)})


def make_app() -> tornado.web.Application:
    """A socket.io server and its Tornado routes; state lives in this call, not in globals."""
    sio = socketio.AsyncServer(
        async_mode="tornado", cors_allowed_origins="*", logger=False, engineio_logger=False
    )
    room = _Room()

    @sio.event
    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        room.usernames[sid] = ""
        welcome = {
            "type": "welcome",
            "messages": list(room.cache),
            "has_more": False,
            "users": [],
            "total_users": 0,
            "you": None,
        }
        await sio.emit("welcome", welcome, to=sid)

    @sio.event
    async def disconnect(sid: str, *reason: Any) -> None:
        room.usernames.pop(sid, None)

    @sio.event
    async def join(sid: str, frame: Any) -> dict[str, Any]:
        if not isinstance(frame, dict) or not isinstance(frame.get("username"), str):
            return {"type": "error", "code": "bad_request", "message": "join needs a username"}
        room.usernames[sid] = frame["username"]
        return {"type": "joined", "username": frame["username"], "token": ""}

    @sio.event
    async def post(sid: str, frame: Any) -> dict[str, Any]:
        client_id = frame.get("client_id") if isinstance(frame, dict) else None
        username = room.usernames.get(sid)
        if not isinstance(frame, dict) or not isinstance(frame.get("body"), str) or not username:
            error = {"type": "error", "code": "bad_request", "message": "join, then post a body"}
            return error | ({"client_id": client_id} if isinstance(client_id, str) else {})
        chat = {
            "id": str(uuid.uuid4()),
            "seq": next(room.seqs),
            "username": username,
            "body": frame["body"],
            "inserted_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        room.cache.append(chat)
        if len(room.cache) > CACHE_SIZE:
            room.cache = room.cache[-CACHE_SIZE:]
        await sio.emit("message", {"type": "message", "message": chat})
        return {"type": "ack", "client_id": client_id, "id": chat["id"], "seq": chat["seq"]}

    return tornado.web.Application(
        [
            (r"/socket.io/", socketio.get_tornado_handler(sio)),
            (r"/healthz", _HealthHandler, {"room": room}),
        ]
    )


async def _serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = HTTPServer(make_app())
    server.listen(port, address=host)
    logger.info("socket.io chat listening on http://%s:%s", host, port)
    await stop.wait()
    server.stop()
    logger.info("socket.io chat stopped")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fanout.baseline_socketio", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8888, help="port (default 8888)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("tornado.access").setLevel(logging.WARNING)  # a line per connection
    asyncio.run(_serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
