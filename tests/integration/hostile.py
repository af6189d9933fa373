"""Attacking a real server by hand: a WebSocket client on a plain socket that
misbehaves on purpose, and an honest client that chats through the attack and
checks afterwards that it lost nothing."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import struct
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import tornado.httpclient

from supervision import EventKind
from tests.integration.chat_server import TIMEOUT_S, ChatServer, Client, run_scenario

# -- a hand-written WebSocket client -------------------------------------------------------


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


async def eventually(
    condition: Callable[[], bool], what: str, timeout_s: float = TIMEOUT_S
) -> None:
    """Poll `condition` until it holds, failing after `timeout_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.01)


async def http_get(
    server: ChatServer, path: str, method: str = "GET", **options: Any
) -> tornado.httpclient.HTTPResponse:
    """One request to `server`, whatever its status."""
    client = tornado.httpclient.AsyncHTTPClient()
    return await client.fetch(
        server.url + path,
        method=method,
        raise_error=False,
        request_timeout=TIMEOUT_S,
        allow_nonstandard_methods=True,
        **options,
    )


def restarts(server: ChatServer) -> list[str]:
    """The children restarted so far, by id."""
    return [
        str(event.child)
        for event in server.tree.events.recent()
        if event.kind in (EventKind.RESTARTED, EventKind.GAVE_UP)
    ]


def attack(server: ChatServer, scenario: Callable[[ChatServer], Any]) -> None:
    """Run `scenario(server)` between an honest client's start and its check."""

    async def with_honest(server: ChatServer) -> None:
        honest = HonestClient(server)
        await honest.start()
        await scenario(server)
        await honest.check()

    asyncio.run(run_scenario(server, with_honest, timeout_s=90))


class HonestClient:
    """Someone chatting while an attack goes on: `start` before it, `check`
    after. Its posts before and after must be stored (acked) and delivered
    (came back as messages), /healthz must say 200 and no actor restarted."""

    def __init__(self, server: ChatServer, name: str = "honest") -> None:
        self.server = server
        self.name = name
        self.client: Client | None = None
        self.acked: list[int] = []

    async def start(self) -> None:
        self.client = await self.server.connect()
        await self.client.welcome()
        await self.client.join(self.name)
        await self._post("before the attack")

    async def check(self) -> None:
        """It is still connected, posts once more, and nothing was lost."""
        await self._post("after the attack")
        health = await http_get(self.server, "/healthz")
        assert health.code == 200, health.body
        assert restarts(self.server) == []
        assert self.acked == sorted(self.acked)

    async def _post(self, text: str) -> None:
        assert self.client is not None
        client_id = f"{text}-{uuid.uuid4()}"
        await self.client.post(f"{self.name}: {text}", client_id=client_id)
        ack = await self.client.expect("ack", client_id=client_id)
        message = await self.client.expect("message")
        while message["message"]["id"] != ack["id"]:  # others may be chatting too
            message = await self.client.expect("message")
        assert message["message"]["body"] == f"{self.name}: {text}"
        self.acked.append(ack["seq"])
