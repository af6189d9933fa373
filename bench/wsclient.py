"""A minimal WebSocket client (RFC 6455) on an asyncio protocol, and the two wires it speaks.

One load-generator process holds thousands of connections and reads tens of
thousands of frames a second, so the client does as little as it can per frame:
the handshake, unmasked server frames parsed straight out of one buffer per
``data_received``, masked client frames, pong for ping and close for close. No
extensions are offered (so no compression) and no Origin is sent (Chatter
accepts a client that is not a browser). A subclass gets each text frame in
`WebSocketClient.on_text` and the end in `WebSocketClient.on_close`.

The wires (`encode`, `decode`): ``"chatter"``, JSON frames as docs/PROTOCOL.md
has them (Chatter and the Tornado baselines), and ``"socketio"``, the same
frames as socket.io events over Engine.IO 4 on a bare WebSocket
(`bench.baselines`): the open packet ``0{...}`` is answered with the namespace
connect ``40`` and pings ``2`` with ``3``; a frame goes out as
``42<ack id>["<type>",{frame}]`` and comes back as an event ``42["<name>",{frame}]``
or an acknowledgement ``43<ack id>[{frame}]``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import struct
import time
from typing import Any

__all__ = ["CHATTER_WIRE", "PATHS", "SOCKETIO_WIRE", "HandshakeError", "WebSocketClient"]

CHATTER_WIRE = "chatter"
SOCKETIO_WIRE = "socketio"
PATHS = {CHATTER_WIRE: "/ws", SOCKETIO_WIRE: "/socket.io/?EIO=4&transport=websocket"}
"""Where each wire's WebSocket is (socket.io's straight away, no long-polling first)."""

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_HEADER_BYTES = 64 * 1024
"""A handshake answer longer than this is not one."""
CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_NO_STATUS = 1005
CLOSE_ABNORMAL = 1006
_TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x1, 0x2, 0x8, 0x9, 0xA


class HandshakeError(ConnectionError):
    """The server did not switch to the WebSocket protocol."""


def encode(wire: str, frame: dict[str, Any], ack_id: int) -> str:
    """`frame` as `wire` carries it (socket.io asks for an acknowledgement `ack_id`)."""
    if wire == SOCKETIO_WIRE:
        return f'42{ack_id}["{frame["type"]}",{json.dumps(frame)}]'
    return json.dumps(frame)


def decode(wire: str, payload: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """The frame `payload` carries, if any, and the text to answer it with, if any."""
    if wire != SOCKETIO_WIRE:
        frame = json.loads(payload)
        return (frame if isinstance(frame, dict) else None), None
    carried: Any = None
    if payload.startswith(b"42"):  # an event: ["name", frame]
        event = json.loads(payload[2:])
        carried = event[1] if len(event) > 1 else None
    elif payload.startswith(b"43"):  # an acknowledgement: <id>[frame]
        answer = json.loads(payload[2:].lstrip(b"0123456789"))
        carried = answer[0] if answer else None
    elif payload[:1] == b"2":  # ping: pong, or the server drops the connection
        return None, "3" + payload[1:].decode()
    elif payload[:1] == b"0":  # open: connect to the default namespace
        return None, "40"
    return (carried if isinstance(carried, dict) else None), None


def _client_frame(opcode: int, payload: bytes) -> bytes:
    """A final frame, masked as clients must (RFC 6455 section 5.3)."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    key = os.urandom(4)
    if not size:
        return header + key
    stream = (key * (size // 4 + 1))[:size]  # XOR as one big-integer operation
    masked = int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")
    return header + key + masked.to_bytes(size, "big")


class WebSocketClient(asyncio.Protocol):
    """One connection; `open` connects it and completes the handshake."""

    def __init__(self) -> None:
        self._key = base64.b64encode(os.urandom(16))
        self._request = b""
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._handshaken = False
        self._close_sent = False
        self.close_code: int | None = None
        """Set once the connection has ended."""
        self.opened: asyncio.Future[float] | None = None
        """Done, with the `time.time()` of the server's 101, once the handshake succeeded."""

    # -- hooks -------------------------------------------------------------------------

    def on_text(self, payload: bytes) -> None:
        """Called with each text frame's payload (UTF-8 bytes)."""

    def on_close(self, code: int) -> None:
        """Called once when the connection has ended, with the close code."""

    # -- the connection ---------------------------------------------------------------

    async def open(self, host: str, port: int, path: str, timeout_s: float) -> float:
        """Connect and complete the handshake within `timeout_s`; returns when the 101 came."""
        loop = asyncio.get_running_loop()
        self.opened = loop.create_future()
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Key: {self._key.decode()}\r\n\r\n"
        ).encode("ascii")

        async def handshake() -> float:
            await loop.create_connection(lambda: self, host, port)
            assert self.opened is not None
            return await self.opened

        try:
            return await asyncio.wait_for(handshake(), timeout_s)
        except BaseException:
            self.abort()
            raise

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._handshaken or self._handshake():
            self._frames()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self.opened is not None and not self.opened.done():
            self.opened.set_exception(HandshakeError(f"connection lost in handshake: {exc}"))
        if self.close_code is None:
            self.close_code = CLOSE_ABNORMAL
        self.on_close(self.close_code)

    def _send(self, opcode: int, payload: bytes) -> None:
        """A frame, unless the connection has ended or this end has sent its close."""
        if self._transport is not None and not self._close_sent:
            self._transport.write(_client_frame(opcode, payload))
            self._close_sent = opcode == _CLOSE

    def send_text(self, text: str) -> None:
        self._send(_TEXT, text.encode())

    def close(self, code: int = CLOSE_NORMAL) -> None:
        """Send a close frame; the server answers and closes the TCP connection."""
        if self._transport is not None and not self._handshaken:
            self._transport.close()
        else:
            self._send(_CLOSE, struct.pack("!H", code))

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    # -- receiving --------------------------------------------------------------------

    def _handshake(self) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > _MAX_HEADER_BYTES:
                self._fail_handshake("the handshake answer is too long")
            return False
        status, *lines = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        del self._buffer[: end + 4]
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        accept = base64.b64encode(hashlib.sha1(self._key + _GUID).digest()).decode()
        if status.split(" ")[1:2] != ["101"]:
            self._fail_handshake(f"the server answered {status!r}")
        elif headers.get("sec-websocket-accept") != accept:
            self._fail_handshake("wrong Sec-WebSocket-Accept")
        else:
            self._handshaken = True
            assert self.opened is not None
            self.opened.set_result(time.time())
        return self._handshaken

    def _fail_handshake(self, why: str) -> None:
        if self.opened is not None and not self.opened.done():
            self.opened.set_exception(HandshakeError(why))
        if self._transport is not None:
            self._transport.close()

    def _frames(self) -> None:
        buffer = self._buffer
        size = len(buffer)
        pos = 0
        while size - pos >= 2:
            first, second = buffer[pos], buffer[pos + 1]
            length, header = second & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, header = int.from_bytes(buffer[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, header = int.from_bytes(buffer[pos + 2 : pos + 10], "big"), 10
            if second & 0x80:  # a server must not mask (RFC 6455 section 5.1)
                self._protocol_error()
                return
            end = pos + header + length
            if end > size:
                break
            payload = bytes(buffer[pos + header : end])
            pos = end
            self._frame(first & 0x80 != 0, first & 0x0F, payload)
            if self._transport is None:
                return
        if pos:
            del buffer[:pos]

    def _frame(self, final: bool, opcode: int, payload: bytes) -> None:
        if opcode == _TEXT and final:  # the servers measured never fragment a frame
            self.on_text(payload)
        elif opcode == _PING:
            self._send(_PONG, payload)
        elif opcode == _CLOSE:
            self.close_code = int.from_bytes(payload[:2], "big") if payload else CLOSE_NO_STATUS
            self._send(_CLOSE, payload[:2])
            if self._transport is not None:
                self._transport.close()
        elif opcode not in (_BINARY, _PONG):  # these carry nothing the benchmark reads
            self._protocol_error()

    def _protocol_error(self) -> None:
        self.close_code = CLOSE_PROTOCOL_ERROR
        if self._transport is not None:
            self._transport.abort()
