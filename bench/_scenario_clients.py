"""A client process for scenarios 3 and 4: WebSocket clients driven one command at a time.

The orchestrator (`bench._scenario_common.ClientProcesses`) sends a command
through a pipe; the process runs it on its asyncio loop and answers with one
frozen dataclass (or `Failed`). Every command is itself a dataclass with an
``async run(clients)``, so a new measurement is a new command, not a new protocol.

Commands:

`OpenIdle`
    open connections that then sit idle, each waiting only for its welcome;
    they watch for one marker in message frames (a byte search, no JSON parse,
    so 10,000 of them cost the process little).
`JoinSender`, `Post`
    one more connection joins with a name and posts a body containing the
    marker, for `AwaitMarker` to count at every idle connection.
`TimedWelcomes`
    connections started at given times (a crowd joining within a second),
    each timed from the start of its TCP connect to its whole welcome frame.
`HistoryPages`
    one connection asks `history` pages, one at a time, timing each answer.

Two wire protocols: ``"chatter"``, JSON frames as docs/PROTOCOL.md has them
(Chatter and the Tornado demo), and ``"socketio"``, the same frames as
socket.io events over Engine.IO 4 on a bare WebSocket, as
`bench.fanout.baseline_socketio` speaks them (and `bench.fanout.loadgen`): the
open packet ``0{...}`` is answered with ``40``, pings ``2`` with ``3``; a frame
goes out as ``42<ack id>["<type>",{frame}]`` and comes back as an event
``42["<name>",{frame}]`` or an acknowledgement ``43<ack id>[{frame}]``.

Times cross processes as `time.time()` (one machine, one clock).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import signal
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from bench.fanout.wsclient import WebSocketClient, connect

__all__ = [
    "CHATTER_PROTOCOL",
    "SOCKETIO_PROTOCOL",
    "AwaitMarker",
    "Failed",
    "HistoryPages",
    "JoinSender",
    "Joined",
    "MarkerSeen",
    "Opened",
    "Pages",
    "Post",
    "Posted",
    "Stop",
    "Stopped",
    "TimedWelcomes",
    "Welcomes",
    "process_main",
]

CHATTER_PROTOCOL = "chatter"
SOCKETIO_PROTOCOL = "socketio"
SOCKETIO_PATH = "/socket.io/?EIO=4&transport=websocket"
"""Where a socket.io client opens a WebSocket straight away (no long-polling first)."""

POLL_S = 0.01
"""How often a waiting command checks whether everything has arrived."""
CLOSE_TIMEOUT_S = 3.0
"""How long closing waits for the server to answer the close frames."""


# -- answers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Failed:
    error: str


@dataclass(frozen=True)
class Stopped:
    pass


@dataclass(frozen=True)
class Opened:
    opened: int
    """Connections welcomed by this command."""
    failed: int
    first_error: str
    seconds: float
    """From the first connect to the last welcome."""


@dataclass(frozen=True)
class Joined:
    pass


@dataclass(frozen=True)
class Posted:
    sent_at: float
    """`time.time()` when the post went out."""
    acked_at: float


@dataclass(frozen=True)
class MarkerSeen:
    received: int
    """Idle connections here that received the marker."""
    open: int
    """Idle connections here still open."""
    last_at: float | None
    """`time.time()` of the last receipt."""


@dataclass(frozen=True)
class Welcomes:
    latencies_ms: list[float]
    """Per connection: connect start to the whole welcome frame."""
    upgrade_ms: list[float]
    """Per connection: connect start to the WebSocket handshake's answer (101)."""
    messages: list[int]
    """Messages in each welcome, in the same order."""
    failed: int
    first_error: str


@dataclass(frozen=True)
class Pages:
    latencies_ms: list[float]
    messages: list[int]


# -- connections --------------------------------------------------------------------------


class _Idle:
    """An idle connection: its welcome, and when the marker reached it."""

    __slots__ = ("client", "closed", "marker_at", "unsent", "welcomed")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.client: WebSocketClient | None = None
        self.unsent: list[str] = []
        self.closed = False
        self.marker_at: float | None = None
        self.welcomed: asyncio.Future[None] = loop.create_future()


def _socketio_control(conn: _Idle | _Talker, payload: bytes) -> bool:
    """Answer Engine.IO's open and ping packets; whether `payload` was one. The
    open packet can come with the handshake's answer, before `connect` has
    returned the client: the answer then waits in ``conn.unsent``."""
    if payload.startswith(b"40"):  # connected to the namespace; the welcome follows
        return True
    if payload[:1] == b"0":  # open: connect to the default namespace
        answer = "40"
    elif payload[:1] == b"2":  # ping: pong, or the server drops the connection
        answer = "3" + payload[1:].decode()
    else:
        return False
    if conn.client is not None:
        conn.client.send_text(answer)
    else:
        conn.unsent.append(answer)
    return True


def _connected(conn: _Idle | _Talker, client: WebSocketClient) -> None:
    """`connect` has returned: keep the client and send what waited for it."""
    conn.client = client
    for text in conn.unsent:
        client.send_text(text)
    conn.unsent.clear()


def _socketio_frame(payload: bytes) -> dict[str, Any] | None:
    """The frame an event or acknowledgement carries, if any."""
    if payload.startswith(b"42"):  # an event: ["name", frame]
        event = json.loads(payload[2:])
        return event[1] if len(event) > 1 and isinstance(event[1], dict) else None
    if payload.startswith(b"43"):  # an acknowledgement: <id>[frame]
        answer = json.loads(payload[2:].lstrip(b"0123456789"))
        return answer[0] if answer and isinstance(answer[0], dict) else None
    return None


class _Talker:
    """A connection that awaits answers, frame by frame, by type."""

    def __init__(self, protocol: str) -> None:
        self.protocol = protocol
        self.client: WebSocketClient | None = None
        self.unsent: list[str] = []
        self.frames: asyncio.Queue[tuple[float, bytes | dict[str, Any]]] = asyncio.Queue()
        self.closed: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._acks = 0

    def on_text(self, payload: bytes) -> None:
        at = time.time()  # before any parsing: the frame is whole now
        if self.protocol != SOCKETIO_PROTOCOL:
            self.frames.put_nowait((at, payload))
        elif not _socketio_control(self, payload):
            frame = _socketio_frame(payload)
            if frame is not None:
                self.frames.put_nowait((at, frame))

    def send(self, frame: dict[str, Any]) -> None:
        """Send one frame in this connection's protocol."""
        assert self.client is not None
        if self.protocol == SOCKETIO_PROTOCOL:
            self._acks += 1
            self.client.send_text(f'42{self._acks}["{frame["type"]}",{json.dumps(frame)}]')
        else:
            self.client.send_text(json.dumps(frame))

    def on_close(self, code: int) -> None:
        if not self.closed.done():
            self.closed.set_result(code)

    async def expect(self, kind: str, timeout_s: float) -> tuple[float, dict[str, Any]]:
        """The next frame of type `kind` (others are skipped) and when it arrived."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {kind} frame in {timeout_s} s")
            getting: asyncio.Future[Any] = asyncio.ensure_future(self.frames.get())
            closed: asyncio.Future[Any] = self.closed
            done, _ = await asyncio.wait(
                {getting, closed}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            if getting not in done:
                getting.cancel()
                if self.closed.done():
                    raise ConnectionError(f"closed with {self.closed.result()} awaiting {kind}")
                continue
            at, payload = getting.result()
            frame = payload if isinstance(payload, dict) else json.loads(payload)
            if frame.get("type") == kind:
                return at, frame
            if frame.get("type") == "error":
                raise RuntimeError(f"awaiting {kind}, got {frame}")


class Clients:
    """This process's connections and the state commands share."""

    def __init__(self, host: str, port: int, protocol: str) -> None:
        if protocol not in (CHATTER_PROTOCOL, SOCKETIO_PROTOCOL):
            raise ValueError(f"unknown protocol {protocol!r}")
        self.host = host
        self.port = port
        self.protocol = protocol
        self.path = SOCKETIO_PATH if protocol == SOCKETIO_PROTOCOL else "/ws"
        self.loop = asyncio.get_running_loop()
        self.idle: list[_Idle] = []
        self.talkers: list[_Talker] = []
        self.sender: _Talker | None = None
        self.marker = b""

    async def talker(self, path: str, timeout_s: float) -> _Talker:
        talker = _Talker(self.protocol)
        self.talkers.append(talker)
        client = await connect(
            self.host, self.port, path, talker.on_text, talker.on_close, timeout_s
        )
        _connected(talker, client)
        return talker

    def on_idle_text(self, conn: _Idle, payload: bytes) -> None:
        if self.protocol == SOCKETIO_PROTOCOL and _socketio_control(conn, payload):
            return
        if not conn.welcomed.done():
            conn.welcomed.set_result(None)  # the welcome is always the first frame
        elif conn.marker_at is None and self.marker and self.marker in payload:
            conn.marker_at = time.time()

    def on_idle_close(self, conn: _Idle, code: int) -> None:
        conn.closed = True
        if not conn.welcomed.done():
            conn.welcomed.set_exception(ConnectionError(f"closed with {code} before the welcome"))

    async def close_all(self) -> None:
        clients = [c.client for c in self.idle] + [t.client for t in self.talkers]
        for client in clients:
            if client is not None:
                client.close()
        deadline = time.monotonic() + CLOSE_TIMEOUT_S
        while time.monotonic() < deadline and any(
            c is not None and c.close_code is None for c in clients
        ):
            await asyncio.sleep(POLL_S)
        for client in clients:
            if client is not None and client.close_code is None:
                client.abort()
        self.idle, self.talkers, self.sender = [], [], None


# -- commands -------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenIdle:
    count: int
    concurrency: int = 50
    """Handshakes in flight at once: fast, without a storm of SYNs."""
    timeout_s: float = 60.0

    async def run(self, clients: Clients) -> Opened:
        gate = asyncio.Semaphore(self.concurrency)
        started = time.monotonic()

        async def one() -> None:
            conn = _Idle(clients.loop)
            clients.idle.append(conn)
            async with gate:
                client = await connect(
                    clients.host,
                    clients.port,
                    clients.path,
                    lambda payload: clients.on_idle_text(conn, payload),
                    lambda code: clients.on_idle_close(conn, code),
                    self.timeout_s,
                )
                _connected(conn, client)
                await asyncio.wait_for(conn.welcomed, self.timeout_s)

        outcomes = await asyncio.gather(*(one() for _ in range(self.count)), return_exceptions=True)
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        return Opened(
            opened=len(outcomes) - len(failures),
            failed=len(failures),
            first_error=repr(failures[0]) if failures else "",
            seconds=time.monotonic() - started,
        )


@dataclass(frozen=True)
class JoinSender:
    username: str
    timeout_s: float = 30.0

    async def run(self, clients: Clients) -> Joined:
        sender = await clients.talker(clients.path, self.timeout_s)
        await sender.expect("welcome", self.timeout_s)
        sender.send({"type": "join", "username": self.username})
        await sender.expect("joined", self.timeout_s)
        clients.sender = sender
        return Joined()


@dataclass(frozen=True)
class Post:
    """The sender posts `body`; idle connections here start watching for `marker`."""

    body: str
    marker: str
    timeout_s: float = 30.0

    async def run(self, clients: Clients) -> Posted:
        sender = clients.sender
        if sender is None or sender.client is None:
            raise RuntimeError("no sender here: JoinSender first")
        sent_at = time.time()
        sender.send({"type": "post", "body": self.body, "client_id": self.marker})
        acked_at, _ = await sender.expect("ack", self.timeout_s)
        return Posted(sent_at, acked_at)


@dataclass(frozen=True)
class AwaitMarker:
    """Start watching for `marker` (before the post), or with `wait`, wait until
    every open idle connection has it or `deadline` passes."""

    marker: str
    deadline: float
    wait: bool = True

    async def run(self, clients: Clients) -> MarkerSeen:
        clients.marker = self.marker.encode()
        if self.wait:
            while time.time() < self.deadline and any(
                c.marker_at is None and not c.closed for c in clients.idle
            ):
                await asyncio.sleep(POLL_S)
        times = [c.marker_at for c in clients.idle if c.marker_at is not None]
        return MarkerSeen(
            received=len(times),
            open=sum(1 for c in clients.idle if not c.closed),
            last_at=max(times) if times else None,
        )


@dataclass(frozen=True)
class TimedWelcomes:
    """Connections started at `starts` (`time.time()` each), with ``?after=``
    when `after` is set; each closes once welcomed (with `close`)."""

    starts: tuple[float, ...]
    after: int | None = None
    timeout_s: float = 30.0
    close: bool = True

    async def run(self, clients: Clients) -> Welcomes:
        path = "/ws" if self.after is None else f"/ws?after={self.after}"

        async def one(start: float) -> tuple[float, float, int]:
            await asyncio.sleep(max(0.0, start - time.time()))
            began = time.time()
            talker = await clients.talker(path, self.timeout_s)
            upgraded = time.time()
            at, frame = await talker.expect("welcome", self.timeout_s)
            if self.close and talker.client is not None:
                talker.client.close()
            return (at - began) * 1000.0, (upgraded - began) * 1000.0, len(frame["messages"])

        outcomes = await asyncio.gather(*(one(s) for s in self.starts), return_exceptions=True)
        good = [o for o in outcomes if not isinstance(o, BaseException)]
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        return Welcomes(
            latencies_ms=[latency for latency, _, _ in good],
            upgrade_ms=[upgrade for _, upgrade, _ in good],
            messages=[count for _, _, count in good],
            failed=len(failures),
            first_error=repr(failures[0]) if failures else "",
        )


@dataclass(frozen=True)
class HistoryPages:
    """One connection asks a page before each of `befores`, one at a time."""

    befores: tuple[int, ...]
    limit: int = 100
    timeout_s: float = 30.0

    async def run(self, clients: Clients) -> Pages:
        talker = await clients.talker("/ws", self.timeout_s)
        await talker.expect("welcome", self.timeout_s)
        assert talker.client is not None
        latencies, counts = [], []
        for before in self.befores:
            sent = time.time()
            talker.send({"type": "history", "before": before, "limit": self.limit})
            at, frame = await talker.expect("history", self.timeout_s)
            latencies.append((at - sent) * 1000.0)
            counts.append(len(frame["messages"]))
        talker.client.close()
        return Pages(latencies, counts)


@dataclass(frozen=True)
class Stop:
    async def run(self, clients: Clients) -> Stopped:
        await clients.close_all()
        return Stopped()


# -- the process --------------------------------------------------------------------------


async def _serve(pipe: Connection, host: str, port: int, protocol: str) -> None:
    clients = Clients(host, port, protocol)
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[Any] = asyncio.Queue()

    def readable() -> None:
        try:
            while pipe.poll():
                commands.put_nowait(pipe.recv())
        except (EOFError, OSError):  # the orchestrator has gone
            loop.remove_reader(pipe.fileno())
            commands.put_nowait(Stop())

    loop.add_reader(pipe.fileno(), readable)
    try:
        while True:
            command = await commands.get()
            try:
                answer: Any = await command.run(clients)
            except Exception:
                answer = Failed(traceback.format_exc())
            with contextlib.suppress(OSError):
                pipe.send(answer)
            if isinstance(command, Stop):
                return
    finally:
        with contextlib.suppress(Exception):
            loop.remove_reader(pipe.fileno())
        await clients.close_all()


def process_main(pipe: Connection, host: str, port: int, protocol: str = CHATTER_PROTOCOL) -> None:
    """The entry point of one client process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the orchestrator stops it, in order
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # thousands of sockets
    asyncio.run(_serve(pipe, host, port, protocol))
