"""The baseline: a chat server in the shape of Tornado's WebSocket chat demo.

Tornado's demo (``demos/websocket/chatdemo.py``) is the simplest fan-out there
is, and the one DESIGN.md measures Chatter against. This is a re-implementation
of its shape, written for the benchmark, not a copy:

- every open handler sits in a class-level set (``waiters``), and recent
  messages in a class-level list (``cache``);
- for each message the handler loops over ``waiters`` and calls
  ``write_message(dict)`` on each, so Tornado encodes the frame as JSON once
  per receiver and writes it to that socket at once;
- no database, no actors, no throttle; one thread.

The demo renders an HTML fragment once per message (a per-message cost, not a
per-receiver one); that is left out. So that one load generator drives both
servers, it speaks the part of Chatter's wire contract the generator uses:

- on connect: ``{"type": "welcome", "messages": [...], ...}``;
- ``{"type": "join", "username"}`` → ``{"type": "joined", "username", "token"}``;
- ``{"type": "post", "body", "client_id"?, "username"?}`` →
  ``{"type": "message", "message": {"id", "seq", "username", "body",
  "inserted_at"}}`` to everyone, the sender included, then
  ``{"type": "ack", "client_id", "id", "seq"}`` to the sender;
- anything else → ``{"type": "error", "code": "bad_request", ...}``.

Run: ``python -m bench.fanout.baseline_demo --port 8888`` (127.0.0.1 only by
default). SIGTERM or SIGINT stops it; it exits 0.
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
from datetime import UTC, datetime
from typing import Any, ClassVar

import tornado.escape
import tornado.web
import tornado.websocket
from tornado.httpserver import HTTPServer

__all__ = ["DemoChatSocket", "main", "make_app", "serve"]

logger = logging.getLogger("baseline_demo")

CACHE_SIZE = 200
"""Recent messages kept for the welcome, as the demo keeps its cache."""


class DemoChatSocket(tornado.websocket.WebSocketHandler):
    """One connection; the room is the class itself."""

    waiters: ClassVar[set[DemoChatSocket]] = set()
    cache: ClassVar[list[dict[str, Any]]] = []
    seqs: ClassVar[itertools.count[int]] = itertools.count(1)

    username: str | None = None

    def check_origin(self, origin: str) -> bool:
        return True

    def get_compression_options(self) -> dict[str, Any] | None:
        return None

    def open(self, *args: str, **kwargs: str) -> None:
        DemoChatSocket.waiters.add(self)
        self.write_message(
            {
                "type": "welcome",
                "messages": list(DemoChatSocket.cache),
                "has_more": False,
                "users": [],
                "total_users": 0,
                "you": None,
            }
        )

    def on_close(self) -> None:
        DemoChatSocket.waiters.discard(self)

    def on_message(self, message: str | bytes) -> None:
        try:
            frame = tornado.escape.json_decode(message)
        except ValueError:
            self._error("the frame is not valid JSON")
            return
        if not isinstance(frame, dict):
            self._error("the frame must be a JSON object with a 'type'")
            return
        kind = frame.get("type")
        client_id = frame.get("client_id")
        if kind == "join" and isinstance(frame.get("username"), str):
            self.username = frame["username"]
            self.write_message({"type": "joined", "username": self.username, "token": ""})
        elif kind == "post" and isinstance(frame.get("body"), str):
            if isinstance(frame.get("username"), str):
                self.username = frame["username"]
            if self.username is None:
                self._error("your first message must carry a username", client_id)
                return
            chat = {
                "id": str(uuid.uuid4()),
                "seq": next(DemoChatSocket.seqs),
                "username": self.username,
                "body": frame["body"],
                "inserted_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            }
            DemoChatSocket.update_cache(chat)
            self.send_updates({"type": "message", "message": chat})
            self.write_message(
                {"type": "ack", "client_id": client_id, "id": chat["id"], "seq": chat["seq"]}
            )
        else:
            self._error("unknown or malformed frame", client_id)

    def _error(self, text: str, client_id: Any = None) -> None:
        frame: dict[str, Any] = {"type": "error", "code": "bad_request", "message": text}
        if isinstance(client_id, str):
            frame["client_id"] = client_id
        self.write_message(frame)

    @classmethod
    def update_cache(cls, chat: dict[str, Any]) -> None:
        cls.cache.append(chat)
        if len(cls.cache) > CACHE_SIZE:
            cls.cache = cls.cache[-CACHE_SIZE:]

    @classmethod
    def send_updates(cls, frame: dict[str, Any]) -> None:
        for waiter in cls.waiters:
            try:
                waiter.write_message(frame)  # a dict: JSON-encoded again for each receiver
            except tornado.websocket.WebSocketClosedError:
                logger.info("a waiter closed before its update")
            except Exception:
                logger.exception("Error sending message")


class HealthHandler(tornado.web.RequestHandler):
    """``GET /healthz``: up as soon as it listens."""

    def get(self) -> None:
        self.finish({"status": "ok", "connections": len(DemoChatSocket.waiters)})


def make_app(handler: type[DemoChatSocket] = DemoChatSocket) -> tornado.web.Application:
    """The demo's routes; `handler` lets a variant (`baseline_frame`) change the broadcast."""
    return tornado.web.Application([(r"/ws", handler), (r"/healthz", HealthHandler)])


async def serve(host: str, port: int, app: tornado.web.Application) -> None:
    """Listen until SIGTERM or SIGINT, then close every socket with 1001."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = HTTPServer(app)
    server.listen(port, address=host)
    logger.info("Demo chat listening on http://%s:%s", host, port)
    await stop.wait()
    server.stop()
    for waiter in list(DemoChatSocket.waiters):
        waiter.close(1001, "server shutting down")
    await asyncio.sleep(0.1)  # let the close frames go out
    logger.info("Demo chat stopped")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fanout.baseline_demo", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8888, help="port (default 8888)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(args.host, args.port, make_app()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
