"""The baselines: chat servers as people would write them instead of Chatter.

``python -m bench.baselines NAME --port N`` serves one on 127.0.0.1 until
SIGTERM or SIGINT. None has a database, actors or a throttle; each is one
thread. From the plainest to the most one Tornado process can do:

- ``demo``: the shape of Tornado's chat demo (``demos/websocket/chatdemo.py``):
  every handler in a class-level set, ``write_message(dict)`` to each, so each
  message is JSON-encoded and framed once per receiver (the demo's HTML
  rendering, a cost per message, is left out);
- ``frame``: each message encoded and framed once, the same bytes written to
  each stream: one ``IOStream.write`` and one ``send`` per receiver per message;
- ``batched``: the messages of one loop turn joined, and each connection written
  once per turn (those messages, then its own answers): what Chatter's
  coalesced writes do;
- ``socketio``: python-socketio's ``AsyncServer(async_mode="tornado")``, ``emit``
  to every client (encoded once, then one task per receiver).

All speak the part of Chatter's wire contract the load generator uses:
``welcome``; ``join`` → ``joined``; ``post`` → ``message`` to everyone, the
sender included, then ``ack`` to the sender. python-socketio carries these
frames as socket.io events (the answers to ``join`` and ``post`` as its
acknowledgements), `bench.wsclient` says how.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import signal
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import tornado.escape
import tornado.web
import tornado.websocket
from tornado.httpserver import HTTPServer
from tornado.iostream import StreamClosedError

from web.watchers import text_frame

__all__ = ["BatchedSocket", "DemoSocket", "FrameSocket", "main"]

logger = logging.getLogger("baseline")

CACHE_SIZE = 200
"""Recent messages kept for the welcome, as the demo keeps its cache."""


def _welcome(cache: list[dict[str, Any]]) -> dict[str, Any]:
    users: dict[str, Any] = {"users": [], "total_users": 0, "you": None}
    return {"type": "welcome", "messages": list(cache), "has_more": False, **users}


def _answer(
    username: str | None, frame: Any, seqs: Iterator[int]
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The answer to a client's frame, and the message it posts, if any."""
    frame = frame if isinstance(frame, dict) else {}
    if frame.get("type") == "join" and isinstance(frame.get("username"), str):
        return {"type": "joined", "username": frame["username"], "token": ""}, None
    client_id = frame.get("client_id")
    if frame.get("type") == "post" and isinstance(frame.get("body"), str) and username:
        chat = {
            "id": str(uuid.uuid4()),
            "seq": next(seqs),
            "username": username,
            "body": frame["body"],
            "inserted_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        return {"type": "ack", "client_id": client_id, "id": chat["id"], "seq": chat["seq"]}, chat
    error = {"type": "error", "code": "bad_request", "message": "join, then post a body"}
    return error | ({"client_id": client_id} if isinstance(client_id, str) else {}), None


def _encoded(frame: dict[str, Any]) -> bytes:
    """`frame` as a whole WebSocket text frame, encoded once."""
    return text_frame(tornado.escape.utf8(tornado.escape.json_encode(frame)))


def _write(waiter: DemoSocket, data: bytes) -> None:
    """Write bytes already framed to a waiter's stream, unless it is closing."""
    connection = waiter.ws_connection
    if connection is not None and not connection.is_closing() and connection.stream is not None:
        try:
            connection.stream.write(data)
        except StreamClosedError:
            logger.info("a waiter closed before its update")


class DemoSocket(tornado.websocket.WebSocketHandler):
    """The demo: one connection; the room is the class itself."""

    waiters: ClassVar[set[DemoSocket]] = set()
    cache: ClassVar[list[dict[str, Any]]] = []
    seqs: ClassVar[itertools.count[int]] = itertools.count(1)
    username: str | None = None

    def check_origin(self, origin: str) -> bool:
        return True

    def get_compression_options(self) -> dict[str, Any] | None:
        return None

    def open(self, *args: str, **kwargs: str) -> None:
        DemoSocket.waiters.add(self)
        self.write_message(_welcome(self.cache))

    def on_close(self) -> None:
        DemoSocket.waiters.discard(self)

    def on_message(self, message: str | bytes) -> None:
        try:
            frame = tornado.escape.json_decode(message)
        except ValueError:
            frame = None
        answer, chat = _answer(self.username, frame, DemoSocket.seqs)
        self.username = answer.get("username", self.username)
        if chat is not None:
            self.broadcast(chat)
        self.reply(answer)

    def reply(self, frame: dict[str, Any]) -> None:
        """A frame for this connection alone."""
        self.write_message(frame)

    @classmethod
    def remember(cls, chat: dict[str, Any]) -> None:
        cls.cache.append(chat)
        del cls.cache[:-CACHE_SIZE]

    @classmethod
    def broadcast(cls, chat: dict[str, Any]) -> None:
        cls.remember(chat)
        frame = {"type": "message", "message": chat}
        for waiter in cls.waiters:
            try:
                waiter.write_message(frame)  # a dict: JSON-encoded again for each receiver
            except tornado.websocket.WebSocketClosedError:
                logger.info("a waiter closed before its update")


class FrameSocket(DemoSocket):
    """The demo, broadcasting one frame built once per message."""

    @classmethod
    def broadcast(cls, chat: dict[str, Any]) -> None:
        cls.remember(chat)
        data = _encoded({"type": "message", "message": chat})
        for waiter in cls.waiters:
            _write(waiter, data)


class BatchedSocket(DemoSocket):
    """The demo, writing each connection once per loop turn.

    The messages of a turn are encoded once each and joined; at the start of
    the next turn every connection is written the joined messages followed by
    its own answers (acks...), so a sender gets its message before its ack. The
    cache takes the messages then too, so a welcome written meanwhile never
    holds a message that the connection is about to be sent again."""

    turn: ClassVar[list[tuple[dict[str, Any], bytes]]] = []
    """The messages of this turn, each with its frame."""
    replies: ClassVar[dict[DemoSocket, list[bytes]]] = {}
    """Each connection's own frames of this turn."""
    flush_scheduled: ClassVar[bool] = False

    def reply(self, frame: dict[str, Any]) -> None:
        self.replies.setdefault(self, []).append(_encoded(frame))
        self.schedule_flush()

    @classmethod
    def broadcast(cls, chat: dict[str, Any]) -> None:
        cls.turn.append((chat, _encoded({"type": "message", "message": chat})))
        cls.schedule_flush()

    @classmethod
    def schedule_flush(cls) -> None:
        if not BatchedSocket.flush_scheduled:
            BatchedSocket.flush_scheduled = True
            asyncio.get_running_loop().call_soon(cls.write_turn)

    @classmethod
    def write_turn(cls) -> None:
        BatchedSocket.flush_scheduled = False
        turn, replies = BatchedSocket.turn, BatchedSocket.replies
        BatchedSocket.turn, BatchedSocket.replies = [], {}
        for chat, _ in turn:
            cls.remember(chat)
        everyone = b"".join(frame for _, frame in turn)
        for waiter in list(cls.waiters) if everyone else list(replies):
            own = replies.get(waiter)
            _write(waiter, everyone + b"".join(own) if own else everyone)


class _Health(tornado.web.RequestHandler):
    """``GET /healthz``: up as soon as it listens."""

    def get(self) -> None:
        self.finish({"status": "ok"})


def _socketio_app() -> tornado.web.Application:
    """A socket.io server and its routes; its state lives in this call, not in globals."""
    import socketio  # type: ignore[import-untyped]

    sio = socketio.AsyncServer(
        async_mode="tornado", cors_allowed_origins="*", logger=False, engineio_logger=False
    )
    usernames: dict[str, str | None] = {}
    cache: list[dict[str, Any]] = []
    seqs = itertools.count(1)

    @sio.event
    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        usernames[sid] = None
        await sio.emit("welcome", _welcome(cache), to=sid)

    @sio.event
    async def disconnect(sid: str, *reason: Any) -> None:
        usernames.pop(sid, None)

    @sio.event
    async def join(sid: str, frame: Any) -> dict[str, Any]:
        answer, _ = _answer(usernames.get(sid), frame, seqs)
        usernames[sid] = answer.get("username", usernames.get(sid))
        return answer

    @sio.event
    async def post(sid: str, frame: Any) -> dict[str, Any]:
        answer, chat = _answer(usernames.get(sid), frame, seqs)
        if chat is not None:
            cache.append(chat)
            del cache[:-CACHE_SIZE]
            await sio.emit("message", {"type": "message", "message": chat})
        return answer

    return tornado.web.Application(
        [(r"/socket.io/", socketio.get_tornado_handler(sio)), (r"/healthz", _Health)]
    )


APPS: dict[str, Callable[[], tornado.web.Application]] = {
    "demo": lambda: tornado.web.Application([(r"/ws", DemoSocket), (r"/healthz", _Health)]),
    "frame": lambda: tornado.web.Application([(r"/ws", FrameSocket), (r"/healthz", _Health)]),
    "batched": lambda: tornado.web.Application([(r"/ws", BatchedSocket), (r"/healthz", _Health)]),
    "socketio": _socketio_app,
}


async def _serve(host: str, port: int, app: tornado.web.Application) -> None:
    """Listen until SIGTERM or SIGINT, then close every chat socket with 1001."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = HTTPServer(app)
    server.listen(port, address=host)
    logger.info("listening on http://%s:%s", host, port)
    await stop.wait()
    server.stop()
    for waiter in list(DemoSocket.waiters):
        waiter.close(1001, "server shutting down")
    await asyncio.sleep(0.1)  # let the close frames go out
    logger.info("stopped")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.baselines", description=__doc__.split("\n")[0]
    )
    parser.add_argument("name", choices=sorted(APPS), help="which baseline")
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8888, help="port (default 8888)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.name == "socketio":  # the Tornado demo logs each request, python-socketio not
        logging.getLogger("tornado.access").setLevel(logging.WARNING)
    asyncio.run(_serve(args.host, args.port, APPS[args.name]()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
