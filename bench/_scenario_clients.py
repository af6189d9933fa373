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

    __slots__ = ("client", "closed", "marker_at", "welcomed")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.client: WebSocketClient | None = None
        self.closed = False
        self.marker_at: float | None = None
        self.welcomed: asyncio.Future[None] = loop.create_future()


class _Talker:
    """A connection that awaits answers, frame by frame, by type."""

    def __init__(self) -> None:
        self.client: WebSocketClient | None = None
        self.frames: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        self.closed: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def on_text(self, payload: bytes) -> None:
        self.frames.put_nowait((time.time(), payload))

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
            frame = json.loads(payload)
            if frame.get("type") == kind:
                return at, frame
            if frame.get("type") == "error":
                raise RuntimeError(f"awaiting {kind}, got {frame}")


class Clients:
    """This process's connections and the state commands share."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.loop = asyncio.get_running_loop()
        self.idle: list[_Idle] = []
        self.talkers: list[_Talker] = []
        self.sender: _Talker | None = None
        self.marker = b""

    async def talker(self, path: str, timeout_s: float) -> _Talker:
        talker = _Talker()
        self.talkers.append(talker)
        talker.client = await connect(
            self.host, self.port, path, talker.on_text, talker.on_close, timeout_s
        )
        return talker

    def on_idle_text(self, conn: _Idle, payload: bytes) -> None:
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
                conn.client = await connect(
                    clients.host,
                    clients.port,
                    "/ws",
                    lambda payload: clients.on_idle_text(conn, payload),
                    lambda code: clients.on_idle_close(conn, code),
                    self.timeout_s,
                )
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
        sender = await clients.talker("/ws", self.timeout_s)
        await sender.expect("welcome", self.timeout_s)
        assert sender.client is not None
        sender.client.send_text(json.dumps({"type": "join", "username": self.username}))
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
        sender.client.send_text(
            json.dumps({"type": "post", "body": self.body, "client_id": self.marker})
        )
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

        async def one(start: float) -> tuple[float, int]:
            await asyncio.sleep(max(0.0, start - time.time()))
            began = time.time()
            talker = await clients.talker(path, self.timeout_s)
            at, frame = await talker.expect("welcome", self.timeout_s)
            if self.close and talker.client is not None:
                talker.client.close()
            return (at - began) * 1000.0, len(frame["messages"])

        outcomes = await asyncio.gather(*(one(s) for s in self.starts), return_exceptions=True)
        good = [o for o in outcomes if not isinstance(o, BaseException)]
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        return Welcomes(
            latencies_ms=[latency for latency, _ in good],
            messages=[count for _, count in good],
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
            talker.client.send_text(
                json.dumps({"type": "history", "before": before, "limit": self.limit})
            )
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


async def _serve(pipe: Connection, host: str, port: int) -> None:
    clients = Clients(host, port)
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


def process_main(pipe: Connection, host: str, port: int) -> None:
    """The entry point of one client process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the orchestrator stops it, in order
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # thousands of sockets
    asyncio.run(_serve(pipe, host, port))
