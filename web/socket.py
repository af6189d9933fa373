"""The WebSocket endpoint: a thin handler that moves frames between a socket
and its session actor, and the connection the session writes to.

The handler holds no chat state: ``open`` starts the session actor, each frame
is told to it, ``on_close`` stops it. Writes are coalesced: every frame a
session sends during one turn of the event loop goes out in one socket write.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import struct
from collections.abc import Awaitable, Coroutine, Sequence
from typing import Any, ClassVar, cast

from tornado.iostream import IOStream, StreamClosedError
from tornado.websocket import WebSocketProtocol13

from chatter.config import Settings
from chatter.protocol import CloseCode
from chatter.session_client import SessionClient
from chatter.tree import ChatTree
from web.guarded_socket import GuardedSocket
from web.keepalive import Keepalive
from web.limits import ConnectionLimits

__all__ = [
    "MAX_FRAME_BYTES",
    "MAX_PENDING_OUTPUT_BYTES",
    "PING_INTERVAL_S",
    "ChatSocket",
    "FramedRounds",
    "SocketConnection",
]

logger = logging.getLogger(__name__)

MAX_FRAME_BYTES = 64 * 1024
"""A client frame over this closes the socket with 1009 (Tornado does it)."""

PING_INTERVAL_S = 20
"""The server pings this often and drops a peer that has not answered by the next."""

MAX_PENDING_OUTPUT_BYTES = 8 * 1024 * 1024
"""Output a client may leave unread before it is dropped: room for the largest
welcome (500 messages of 2,000 characters), and no more."""

BACKLOG_CHECK_BYTES = 256 * 1024
"""A connection with more unread output than this (or a quarter of its own
bound, if less) has the whole backlog of its address added up
(`ConnectionLimits.output_over_budget`); a client that reads stays far below
it, so the sum is rarely taken."""

CLOSE_GOING_AWAY = CloseCode.GOING_AWAY
"""What the server closes every socket with as it stops (web/server.py)."""


def _text_frame_header(length: int) -> bytes:
    """The header of an unmasked, final text frame (RFC 6455 section 5.2)."""
    if length < 126:
        return struct.pack("!BB", 0x81, length)
    if length < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, length)
    return struct.pack("!BBQ", 0x81, 127, length)


_AT_FRAME_START = b""
"""`StrictProtocol`'s mark of a frame whose header is still to be read: no
frame's mask is empty (a mask is 4 bytes), and Tornado's is None between frames."""


class StrictProtocol(WebSocketProtocol13):
    """Tornado's RFC 6455 protocol, failing two things it lets through: a
    client frame that is not masked (section 5.1: close with 1002) and a text
    frame that is not UTF-8 (section 8.1: close with 1007; Tornado drops the
    TCP connection without a word).

    It hooks Tornado's private `_receive_frame`, `_read_bytes` and
    `_handle_message`, checked against Tornado 6.4 to 6.6;
    tests/integration/test_hostile_frames.py fails if they change.

    An idle connection waits in the read of the next frame's header, for as
    long as it stays idle, so that wait holds nothing of ours: the hooks are
    plain functions, not coroutines (a coroutine frame held per connection is
    a few hundred bytes), and the header's read is a future whose result is
    checked by a callback. The start of a frame is marked in Tornado's own
    `_frame_mask` (the mask of the frame being read, read after the header and
    only then used), set to `_AT_FRAME_START` and cleared by the header's read:
    a flag of our own would be a thirtieth attribute, one past what Python keeps
    in the compact table a class shares with its instances, and give every
    connection's protocol a dict of its own (1.3 KiB)."""

    def _receive_frame(self) -> Coroutine[Any, Any, None]:
        self._frame_mask = _AT_FRAME_START
        return super()._receive_frame()

    def _read_bytes(self, n: int) -> Awaitable[bytes]:  # type: ignore[override]
        if self._frame_mask != _AT_FRAME_START:
            return super()._read_bytes(n)
        self._frame_mask = None
        # As Tornado's own `_read_bytes`, with the header checked on arrival.
        header = cast("asyncio.Future[bytes]", self.stream.read_bytes(n))  # a Future, in fact
        self._wire_bytes_in += n
        checked: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        header.add_done_callback(functools.partial(self._check_header, checked))
        return checked

    def _check_header(self, checked: asyncio.Future[bytes], header: asyncio.Future[bytes]) -> None:
        error = header.exception()
        if error is not None:
            checked.set_exception(error)
            return
        data = header.result()
        if len(data) == 2 and not data[1] & 0x80:
            self._fail(CloseCode.PROTOCOL_ERROR, "client frames must be masked")
            checked.set_exception(StreamClosedError())  # ends Tornado's frame loop
            return
        checked.set_result(data)

    def _handle_message(self, opcode: int, data: bytes) -> Any:
        if opcode == 0x1 and not self.client_terminated:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                self._fail(CloseCode.INVALID_DATA, "text frames must be UTF-8")
                return None
        return super()._handle_message(opcode, data)

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 section 7.1.7): send a close frame and
        close the TCP connection without waiting for the client's answer."""
        self.client_terminated = True
        self.close(code, reason)


class FramedRounds:
    """The fan-out round framed last, shared by the connections of one server:
    every session hands its connection the same tuple of a round's frames, so
    the WebSocket framing and the join happen once per round, not once per
    connection. Used on the server's loop only."""

    def __init__(self) -> None:
        self._frames: Sequence[bytes] = ()
        self._data = b""

    def framed(self, frames: Sequence[bytes]) -> bytes:
        """`frames` as one write: each frame after its header."""
        if frames is not self._frames:  # held here, so never a reused id
            self._frames, self._data = frames, _framed(frames)
        return self._data


def _framed(frames: Sequence[bytes]) -> bytes:
    parts = []
    for frame in frames:
        parts.append(_text_frame_header(len(frame)))
        parts.append(frame)
    return b"".join(parts)


def _sent_directly(stream: IOStream, data: bytes) -> bytes:
    """Send `data` on a plain TCP stream with nothing buffered, as one `send`;
    what the kernel did not take, for `IOStream.write` to buffer.

    `IOStream.write` costs a future, its callback and its bookkeeping per call:
    with a thousand writes a fan-out round, more than the `send` itself. With
    nothing buffered, nothing of Tornado's can be ahead of `data`, so one
    non-blocking `send` keeps the order. An error is left to `IOStream.write`,
    which meets it again and closes the stream as it always does. Only called
    on an open stream (`is_closing` is false), whose socket is set. (Checked
    against Tornado 6.6: `IOStream.socket` and `_write_buffer`.)"""
    try:
        sent = stream.socket.send(data)
    except OSError:  # would block, interrupted, or broken: Tornado's to handle
        return data
    return data[sent:]


class SocketConnection:
    """What a session writes to: frames sent one by one are queued and
    flushed once per loop turn; a fan-out round's frames are written at once."""

    __slots__ = ("_closed", "_flush_scheduled", "_handler", "_pending", "_rounds", "remote")

    def __init__(self, handler: ChatSocket) -> None:
        self._handler = handler
        self._rounds = handler.rounds
        self.remote = handler.request.remote_ip or "unknown"
        self._pending: list[bytes] = []
        self._flush_scheduled = False
        self._closed = False

    def pending_output(self) -> int:
        """Bytes written and not yet taken by the client's socket."""
        connection = self._handler.ws_connection
        stream = connection.stream if connection is not None else None
        return len(stream._write_buffer) if stream is not None and not stream.closed() else 0

    def send(self, frame: bytes) -> None:
        if self._closed:
            return
        self._pending.append(_text_frame_header(len(frame)))
        self._pending.append(frame)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._handler.loop.call_soon(self._flush)

    def send_all(self, frames: Sequence[bytes]) -> None:
        if self._closed:
            return
        data = self._rounds.framed(frames)
        if self._pending:  # answers queued this turn go first
            self._pending.append(data)
            self._flush()  # a flush still scheduled finds nothing left to write
        else:
            self._write(data)

    def close(self, code: int, reason: str) -> None:
        if self._closed:
            return
        self._flush()
        self._closed = True
        self._handler.close(code, reason)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._pending or self._closed:
            return
        data, self._pending = b"".join(self._pending), []
        self._write(data)

    def _write(self, data: bytes) -> None:
        connection = self._handler.ws_connection
        if connection is None or connection.is_closing():
            return
        stream = connection.stream
        if stream is None:
            return
        # Tornado keeps what the kernel did not take in the stream's write
        # buffer. A client that reads keeps it near empty, so the bounds are
        # looked at only past `backlog_check_bytes`: past its own bound, this
        # client has stopped reading; past its address's bound, the address
        # holds too much unread output in all. The buffer is looked at after
        # the write as well: one write (a burst of answers gathered in one
        # turn) can take it over, and a client that reads nothing may never
        # be written to again.
        buffered = len(stream._write_buffer)
        if buffered > self._handler.backlog_check_bytes and self._over(stream):
            return
        if not buffered and type(stream) is IOStream:
            data = _sent_directly(stream, data)
            if not data:
                return
        try:
            stream.write(data)
        except StreamClosedError:
            self._closed = True
            return
        if len(stream._write_buffer) > self._handler.backlog_check_bytes:
            self._over(stream)

    def _over(self, stream: Any) -> bool:
        """Drop this connection if its backlog is over its bound, or its
        address's; whether it was dropped."""
        if len(stream._write_buffer) > self._handler.max_pending_output:
            self._drop(stream, "it stopped reading")
            return True
        if self._handler.output_over_budget():
            self._drop(stream, "its address holds too much unread output")
            return True
        return False

    def _drop(self, stream: Any, why: str) -> None:
        logger.warning("Dropping %s: %s", self.remote, why)
        self._closed = True
        stream.close()  # it does not read, so no close frame would get through


class ChatSocket(GuardedSocket):
    """``GET /ws[?after=SEQ][&token=T]``: one chat connection.

    Its dependencies are class attributes of a subclass made per application
    (`for_app`), not instance attributes set in ``initialize``: Tornado's
    handler sets 27 attributes of its own, and Python keeps an object's
    attributes in the compact table its class shares only up to 29; past that,
    every connection's handler holds a dict of its own (1.3 KiB). So each
    handler holds two of ours: its slot under the caps and its session."""

    tree: ClassVar[ChatTree]
    limits: ClassVar[ConnectionLimits]  # type: ignore[misc]
    slots: ClassVar[ConnectionLimits]  # type: ignore[misc]
    settings_: ClassVar[Settings]  # type: ignore[misc]
    keepalive: ClassVar[Keepalive]  # type: ignore[misc]
    loop: ClassVar[asyncio.AbstractEventLoop]
    rounds: ClassVar[FramedRounds]
    max_pending_output: ClassVar[int]
    backlog_check_bytes: ClassVar[int]
    _session: SessionClient | None = None

    @classmethod
    def for_app(
        cls,
        tree: ChatTree,
        limits: ConnectionLimits,
        settings: Settings,
        keepalive: Keepalive,
        *,
        max_pending_output: int = MAX_PENDING_OUTPUT_BYTES,
        rounds: FramedRounds | None = None,
    ) -> type[ChatSocket]:
        """The handler class of one application: its tree, its caps, its
        settings, its pings, its bound on unread output and its shared
        framed rounds."""
        attributes = {
            "tree": tree,
            "limits": limits,
            "slots": limits,
            "settings_": settings,
            "keepalive": keepalive,
            "loop": tree.loop,
            "rounds": rounds if rounds is not None else FramedRounds(),
            "max_pending_output": max_pending_output,
            "backlog_check_bytes": min(BACKLOG_CHECK_BYTES, max_pending_output // 4),
        }
        return type(cls.__name__, (cls,), attributes)

    def prepare(self) -> None:
        # Checked here rather than in an override of `get`, whose coroutine
        # would be held, suspended, for as long as the socket is open.
        after = self.get_query_argument("after", None)
        if after is not None and not (after.isascii() and after.isdigit() and len(after) < 19):
            self.set_status(400)
            self.finish({"error": "bad_request", "message": "after must be a seq (an integer)"})
            return
        super().prepare()

    def get_websocket_protocol(self) -> WebSocketProtocol13 | None:
        tornados = super().get_websocket_protocol()
        if not isinstance(tornados, WebSocketProtocol13):
            return None  # Tornado answers 426 and names the version it speaks
        return StrictProtocol(self, False, tornados.params)

    def output_over_budget(self) -> bool:
        """Whether this client's address leaves too much output unread in all."""
        return self._slot is not None and self.limits.output_over_budget(self._slot.address)

    def open(self, *args: Any, **kwargs: Any) -> None:
        connection = SocketConnection(self)
        self.opened(connection.pending_output)
        after = self.get_query_argument("after", None)
        self._session = self.tree.open_session(
            self.limits.next_session_id(),
            connection,
            after=int(after) if after is not None else None,
            token=self.get_query_argument("token", None),
        )

    def on_message(self, message: str | bytes) -> None:
        if self._session is not None:
            self._session.frame(message)

    def on_close(self) -> None:
        super().on_close()
        if self._session is not None:
            self._session.close()

    def get_compression_options(self) -> dict[str, Any] | None:
        return None  # frames are pre-built and shared: no per-connection deflate
