"""The second baseline: the demo's broadcast writing one pre-built frame per message.

The demo (`bench.fanout.baseline_demo`) calls ``write_message(dict)`` for each
receiver, so Tornado encodes the JSON and frames it once per receiver. Here the
message is encoded and framed once (an unmasked, final text frame, RFC 6455
section 5.2, the bytes Tornado would have produced: no compression is
negotiated) and the same bytes are written to each connection's stream. What
is left per receiver is one ``IOStream.write``: the cost of the stack itself
(Tornado's stream, the event loop, the ``send`` syscall), so this is the most a
single-threaded Tornado server can fan out on this machine, with nothing else
to do. Everything else (welcome, join, ack, no database, one thread) is the
demo's.

Run: ``python -m bench.fanout.baseline_frame --port 8888``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import struct
import sys
from collections.abc import Sequence
from typing import Any

import tornado.escape
from tornado.iostream import StreamClosedError

from bench.fanout.baseline_demo import DemoChatSocket, make_app, serve

__all__ = ["FrameChatSocket", "main", "text_frame"]

logger = logging.getLogger("baseline_frame")

_FIN_TEXT = 0x81
"""First byte of a final text frame."""


def text_frame(payload: bytes) -> bytes:
    """A server's (unmasked) final text frame carrying `payload`."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", _FIN_TEXT, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", _FIN_TEXT, 126, size)
    else:
        header = struct.pack("!BBQ", _FIN_TEXT, 127, size)
    return header + payload


class FrameChatSocket(DemoChatSocket):
    """The demo's handler, broadcasting one frame built once."""

    @classmethod
    def send_updates(cls, frame: dict[str, Any]) -> None:
        data = text_frame(tornado.escape.utf8(tornado.escape.json_encode(frame)))
        for waiter in cls.waiters:
            connection = waiter.ws_connection
            if connection is None or connection.is_closing() or connection.stream is None:
                continue
            try:
                connection.stream.write(data)
            except StreamClosedError:
                logger.info("a waiter closed before its update")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fanout.baseline_frame", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8888, help="port (default 8888)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(args.host, args.port, make_app(FrameChatSocket)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
