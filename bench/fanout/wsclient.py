"""A minimal WebSocket client (RFC 6455) on an asyncio protocol, for the load generator.

One load-generator process holds hundreds of connections and reads tens of
thousands of frames a second, so the client does as little as it can per frame:
the handshake, unmasked server frames parsed straight out of one buffer per
``data_received``, masked client frames, pong for ping and close for close. No
extensions are offered (so no compression) and no Origin is sent (Chatter
accepts a client that is not a browser).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
from collections.abc import Callable

__all__ = ["HandshakeError", "WebSocketClient", "connect"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_HEADER_BYTES = 64 * 1024
"""A handshake answer longer than this is not one."""
CLOSE_NORMAL = 1000
CLOSE_NO_STATUS = 1005
CLOSE_ABNORMAL = 1006

_OP_CONTINUATION = 0x0
_OP_TEXT = 0x1
_OP_BINARY = 0x2
_OP_CLOSE = 0x8
_OP_PING = 0x9


class HandshakeError(ConnectionError):
    """The server did not switch to the WebSocket protocol."""


def _mask(payload: bytes, key: bytes) -> bytes:
    """The payload XOR the repeated 4-byte key, as one big-integer operation."""
    size = len(payload)
    if size == 0:
        return payload
    stream = (key * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(size, "big")


def _client_frame(opcode: int, payload: bytes) -> bytes:
    """A final, masked frame (clients must mask, RFC 6455 section 5.3)."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    key = os.urandom(4)
    return header + key + _mask(payload, key)


class WebSocketClient(asyncio.Protocol):
    """One connection: ``on_text`` gets each text frame's payload (UTF-8 bytes);
    ``on_close`` is called once when the connection ends, with the close code."""

    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        on_text: Callable[[bytes], None],
        on_close: Callable[[int], None],
    ) -> None:
        self._request = (
            f"GET {path} HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            "Sec-WebSocket-Version: 13\r\n"
        )
        self._key = base64.b64encode(os.urandom(16))
        self._on_text = on_text
        self._on_close = on_close
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._fragments: list[bytes] | None = None
        self._handshaken = False
        self._close_sent = False
        self.close_code: int | None = None
        """Set once the connection has ended."""
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Done when the handshake succeeded; failed with `HandshakeError` otherwise."""

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        request = self._request + f"Sec-WebSocket-Key: {self._key.decode()}\r\n\r\n"
        transport.write(request.encode("ascii"))

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self._handshaken and not self._handshake():
            return
        self._frames()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if not self.opened.done():
            self.opened.set_exception(HandshakeError(f"connection lost in handshake: {exc}"))
        if self.close_code is None:
            self.close_code = CLOSE_ABNORMAL
        self._on_close(self.close_code)

    # -- sending ----------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._transport is not None and self._handshaken and not self._close_sent

    def send_text(self, text: str) -> None:
        if self._transport is not None and not self._close_sent:
            self._transport.write(_client_frame(_OP_TEXT, text.encode()))

    def close(self, code: int = CLOSE_NORMAL) -> None:
        """Send a close frame; the server answers and closes the TCP connection."""
        if self._transport is None:
            return
        if not self._handshaken:
            self._transport.close()
            return
        if not self._close_sent:
            self._close_sent = True
            self._transport.write(_client_frame(_OP_CLOSE, struct.pack("!H", code)))

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
        head = bytes(self._buffer[:end]).decode("latin-1")
        del self._buffer[: end + 4]
        status, *lines = head.split("\r\n")
        parts = status.split(" ", 2)
        if len(parts) < 2 or parts[1] != "101":
            self._fail_handshake(f"the server answered {status!r}")
            return False
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        accept = base64.b64encode(hashlib.sha1(self._key + _GUID).digest()).decode()
        if headers.get("sec-websocket-accept") != accept:
            self._fail_handshake("wrong Sec-WebSocket-Accept")
            return False
        self._handshaken = True
        self.opened.set_result(None)
        return True

    def _fail_handshake(self, why: str) -> None:
        if not self.opened.done():
            self.opened.set_exception(HandshakeError(why))
        if self._transport is not None:
            self._transport.close()

    def _frames(self) -> None:
        buffer = self._buffer
        size = len(buffer)
        pos = 0
        while size - pos >= 2:
            first, second = buffer[pos], buffer[pos + 1]
            length = second & 0x7F
            header = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(buffer[pos + 2 : pos + 4], "big")
                header = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buffer[pos + 2 : pos + 10], "big")
                header = 10
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
        if opcode == _OP_TEXT:
            if final:
                self._on_text(payload)
            else:
                self._fragments = [payload]
        elif opcode == _OP_CONTINUATION and self._fragments is not None:
            self._fragments.append(payload)
            if final:
                whole, self._fragments = b"".join(self._fragments), None
                self._on_text(whole)
        elif opcode == _OP_PING:
            if self._transport is not None and not self._close_sent:
                self._transport.write(_client_frame(0xA, payload))
        elif opcode == _OP_CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else CLOSE_NO_STATUS
            self.close_code = code
            if self._transport is not None:
                if not self._close_sent:
                    self._close_sent = True
                    self._transport.write(_client_frame(_OP_CLOSE, payload[:2]))
                self._transport.close()
        # Binary frames and pongs carry nothing the benchmark reads.
        elif opcode not in (_OP_BINARY, 0xA):
            self._protocol_error()

    def _protocol_error(self) -> None:
        self.close_code = 1002
        if self._transport is not None:
            self._transport.abort()


async def connect(
    host: str,
    port: int,
    path: str,
    on_text: Callable[[bytes], None],
    on_close: Callable[[int], None],
    timeout_s: float,
) -> WebSocketClient:
    """Open a connection and complete the handshake within `timeout_s`."""
    loop = asyncio.get_running_loop()

    async def open_() -> WebSocketClient:
        _, client = await loop.create_connection(
            lambda: WebSocketClient(host, port, path, on_text, on_close), host, port
        )
        try:
            await client.opened
        except BaseException:
            client.abort()
            raise
        return client

    return await asyncio.wait_for(open_(), timeout_s)
