"""A WebSocket client on a plain socket, written by hand so that it can
misbehave on purpose as no library client would: read only when told to,
never answer a ping, send unmasked frames, vanish without a close frame."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import struct
from collections.abc import Iterator
from typing import Any

from tests.harness.waiting import TIMEOUT_S

__all__ = ["RawSocket", "raw_socket", "upgrade_status", "welcomed_raw_socket"]


class RawSocket:
    """A WebSocket client on a plain blocking socket: it reads only when told
    to, never answers a ping, and can vanish without a close frame, as no
    library client would."""

    def __init__(
        self,
        port: int,
        *,
        source: str = "127.0.0.1",
        receive_buffer: int | None = None,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if receive_buffer is not None:  # before connecting, so the window starts small
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            self.sock.settimeout(timeout_s)
            self.sock.bind((source, 0))
            self.sock.connect(("127.0.0.1", port))
        except OSError:
            self.sock.close()
            raise
        self.local_port: int = self.sock.getsockname()[1]
        self.body = b""
        """The upgrade response's body, when it was refused."""
        self.headers: dict[str, str] = {}
        """The upgrade response's headers, names in lower case."""
        self._buffer = b""

    def upgrade(self, path: str = "/ws", headers: dict[str, str] | None = None) -> int:
        """Send the upgrade request and read the response (its body, unless
        101, into `body`); its status."""
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: 127.0.0.1:{self.port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *(f"{name}: {value}" for name, value in (headers or {}).items()),
        ]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        while b"\r\n\r\n" not in self._buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            self._buffer += chunk
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        status = int(head.split(b" ", 2)[1])
        self.headers = {
            name.strip().lower().decode(): value.strip().decode()
            for name, _, value in (line.partition(b":") for line in head.split(b"\r\n")[1:])
        }
        if status != 101:
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            self.body = self._read_exactly(length)
        return status

    def send_text(self, text: str) -> None:
        """One masked text frame, as a client must send."""
        self.send_frame(0x1, text.encode())

    def send_frame(self, opcode: int, payload: bytes, *, masked: bool = True) -> None:
        """One final frame; `masked=False` breaks RFC 6455 on purpose."""
        length = len(payload)
        mask_bit = 0x80 if masked else 0
        if length < 126:
            header = struct.pack("!BB", 0x80 | opcode, mask_bit | length)
        elif length < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, mask_bit | 126, length)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, mask_bit | 127, length)
        if not masked:
            self.sock.sendall(header + payload)
            return
        mask = os.urandom(4)
        data = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
        self.sock.sendall(header + mask + data)

    def close_code(self) -> int | None:
        """Read until the server's close frame; its code (None if the
        connection ended without one)."""
        try:
            for _ in range(1000):
                opcode, payload = self.read_frame()
                if opcode == 0x8:
                    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
        except (ConnectionError, TimeoutError):
            return None
        raise AssertionError("no close frame in 1,000 frames")

    def _read_exactly(self, count: int) -> bytes:
        while len(self._buffer) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the server")
            self._buffer += chunk
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data

    def read_frame(self) -> tuple[int, bytes]:
        """The next frame from the server (unmasked, unfragmented): opcode, payload."""
        first, second = self._read_exactly(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._read_exactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read_exactly(8))
        return first & 0x0F, self._read_exactly(length)

    def expect(self, kind: str) -> dict[str, Any]:
        """Read until a JSON frame of `kind`; pings are read and left unanswered."""
        for _ in range(1000):
            opcode, payload = self.read_frame()
            if opcode == 0x8:
                raise ConnectionError(f"closed by the server while waiting for {kind}")
            if opcode == 0x1:
                frame: dict[str, Any] = json.loads(payload)
                if frame["type"] == kind:
                    return frame
        raise AssertionError(f"no {kind} frame in 1,000 frames")

    def closed_by_server(self) -> bool:
        """Read whatever is left; True once the server has closed the connection
        (end of stream or reset), False if it is still open at the timeout."""
        try:
            while self.sock.recv(1 << 20):
                pass
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
        return True

    def vanish(self) -> None:
        """Close without a close frame, with a reset: as a killed process or a
        dropped network would."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def raw_socket(port: int, **options: Any) -> Iterator[RawSocket]:
    raw = RawSocket(port, **options)
    try:
        yield raw
    finally:
        raw.close()


@contextlib.contextmanager
def welcomed_raw_socket(port: int, **options: Any) -> Iterator[RawSocket]:
    """A raw socket upgraded to a chat connection that has read its welcome."""
    with raw_socket(port, **options) as raw:
        assert raw.upgrade() == 101
        raw.expect("welcome")
        yield raw


def upgrade_status(port: int, path: str = "/ws", **options: Any) -> int:
    """The status of one upgrade request to `path` (from `source`, with `headers`)."""
    headers = options.pop("headers", None)
    with raw_socket(port, **options) as raw:
        return raw.upgrade(path, headers)
