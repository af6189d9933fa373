"""The load generator: one process of several, each holding a share of the connections.

Process ``p`` of ``P`` holds the connections whose global index ``g`` has
``g % P == p``; the first ``senders`` global indices are the senders, which
join with a username (``bench<g>``) once connected. The orchestrator drives
every process through a pipe, one command at a time:

``Connect``
    open this process's connections, wait for each one's welcome, join the
    senders; answer `Ready`.
``StepPlan``
    from ``start_at`` (a `time.time()` shared by all processes) for
    ``duration_s``, post at ``rate_per_s`` in all: message ``j`` of the step is
    due at ``start_at + j / rate_per_s`` and goes from sender ``j % senders``,
    so posts are spread evenly in time and over the senders. Each post carries
    a ``client_id`` and a body ``"fanout <step> <time.time()> <filler>"``. Once
    every post is answered (ack or error), or at ``answer_deadline``, answer
    `Sent` with the acked seqs.
``Expect``
    the seqs acked by all processes: wait until every open connection here has
    received each of them (or ``deadline``), then answer `Received`.
``Stop``
    close every connection and end.

Every connection counts every message frame it receives, by seq, and records
its latency: its receive time minus the send time in its body (and, for a step
whose plan asks for a timeline, the receive time too).

Two wire protocols (``GeneratorConfig.protocol``): ``"chatter"``, JSON frames as
docs/PROTOCOL.md has them (Chatter and the Tornado baselines), and ``"socketio"``,
the same frames carried as socket.io events over Engine.IO 4 on a bare WebSocket
(`bench.fanout.baseline_socketio`): the generator answers the open packet
``0{...}`` with the namespace connect ``40``, server pings ``2`` with ``3``, sends
a frame as ``42<ack id>["<type>",{frame}]`` and reads events ``42["<name>",{frame}]``
and acknowledgements ``43<ack id>[{frame}]`` as the frames they carry. The process
also measures its own CPU time over the step window, so a reader can tell
whether the generator, rather than the server, was the limit.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import json
import resource
import signal
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from bench.fanout.wsclient import WebSocketClient, connect

__all__ = [
    "BODY_PREFIX",
    "CHATTER_PROTOCOL",
    "SOCKETIO_PROTOCOL",
    "Connect",
    "Expect",
    "Failed",
    "GeneratorConfig",
    "Ready",
    "Received",
    "Sent",
    "StepPlan",
    "Stop",
    "Stopped",
    "body",
    "process_main",
]

BODY_PREFIX = "fanout"
CHATTER_PROTOCOL = "chatter"
SOCKETIO_PROTOCOL = "socketio"
_FILLER = "the quick brown fox jumps over the lazy dog"
"""Makes a body about as long as a typical chat line (about 80 characters in all)."""

CONNECT_CONCURRENCY = 50
"""Handshakes in flight at once per process: fast, without a storm of SYNs."""
POLL_S = 0.02
"""How often a waiting step checks whether everything has arrived."""
CLOSE_TIMEOUT_S = 3.0
"""How long `Stop` waits for the server to answer the close frames."""


def body(step: int, sent_at: float) -> str:
    """A post's body: the step, the send time (`time.time()`), and filler."""
    return f"{BODY_PREFIX} {step} {sent_at:.6f} {_FILLER}"


# -- commands and answers (pickled through the pipe) ------------------------------------


@dataclass(frozen=True)
class GeneratorConfig:
    """What one generator process is given when it starts."""

    process: int
    processes: int
    host: str
    port: int
    connections: int
    """All connections, over every process."""
    senders: int
    """Senders among them, over every process."""
    connect_timeout_s: float
    protocol: str = CHATTER_PROTOCOL
    """``"chatter"`` (JSON frames) or ``"socketio"`` (the frames as socket.io events)."""
    path: str = "/ws"
    """The WebSocket's path (and query)."""


@dataclass(frozen=True)
class Connect:
    pass


@dataclass(frozen=True)
class StepPlan:
    number: int
    rate_per_s: float
    """Posts a second, over all senders of all processes."""
    start_at: float
    """`time.time()` at which the step starts."""
    duration_s: float
    answer_deadline: float
    """`time.time()` after which unanswered posts are given up."""
    timeline: bool = False
    """Keep each delivery's receive time too (`Received.arrivals`)."""


@dataclass(frozen=True)
class Expect:
    number: int
    acked: frozenset[int]
    """The seqs acked to every process's senders in this step."""
    deadline: float
    """`time.time()` after which missing frames count as lost."""


@dataclass(frozen=True)
class Stop:
    pass


@dataclass(frozen=True)
class Ready:
    process: int
    connections: int
    senders: int
    connect_s: float


@dataclass(frozen=True)
class Sent:
    process: int
    number: int
    sent: int
    acked: list[int]
    ack_latencies_ms: array.array[float]
    """For each acked post: the ack's receive time minus the post's send time."""
    rejected: dict[str, int]
    """Error frames answering posts, by code (``rate_limited``...)."""
    unanswered: int
    """Posts with neither ack nor error by the answer deadline."""
    unsendable: int
    """Posts due from a sender whose connection had closed."""
    max_send_lag_ms: float
    """How late the latest post went out against its schedule: a busy generator lags."""


@dataclass(frozen=True)
class Received:
    process: int
    number: int
    connections: int
    """Connections open when the step started."""
    open_at_end: int
    counts: dict[int, int]
    """For each seq of this step: how many connections here received it."""
    latencies_ms: array.array[float]
    arrivals: array.array[float]
    """With a timeline: each delivery's receive time (`time.time()`), in the order of
    `latencies_ms`; empty otherwise."""
    out_of_order: int
    """Message frames whose seq was not above the previous one on their connection."""
    late: int
    """Frames of earlier steps that arrived after those steps were reported."""
    other_frames: int
    """Frames that are not messages of a step, acks or errors (presence...)."""
    first_receipt: float | None
    last_receipt: float | None
    cpu_s: float
    """This process's CPU time (user + system) over the step window."""
    window_s: float
    """The wall time the CPU time was measured over."""


@dataclass(frozen=True)
class Stopped:
    process: int


@dataclass(frozen=True)
class Failed:
    process: int
    error: str


# -- state ------------------------------------------------------------------------------


class _Conn:
    __slots__ = ("acks", "client", "closed", "index", "joined", "last_seq", "outbox", "welcomed")

    def __init__(self, index: int, sender: bool, loop: asyncio.AbstractEventLoop) -> None:
        self.index = index
        self.client: WebSocketClient | None = None
        self.last_seq = 0
        self.acks = 0
        """socket.io acknowledgement ids used so far."""
        self.outbox: list[str] = []
        """Replies due before `connect` returned the client (an Engine.IO open packet
        can arrive in the same read as the handshake's answer)."""
        self.closed = False
        self.welcomed: asyncio.Future[None] = loop.create_future()
        self.joined: asyncio.Future[None] | None = loop.create_future() if sender else None


@dataclass
class _Tally:
    """One step, as this process sees it."""

    number: int
    connections: int
    counts: dict[int, int] = field(default_factory=dict)
    latencies_ms: array.array[float] = field(default_factory=lambda: array.array("d"))
    arrivals: array.array[float] | None = None
    out_of_order: int = 0
    first_receipt: float | None = None
    last_receipt: float | None = None
    sent: int = 0
    unsendable: int = 0
    pending: int = 0
    acked: list[int] = field(default_factory=list)
    ack_latencies_ms: array.array[float] = field(default_factory=lambda: array.array("d"))
    rejected: Counter[str] = field(default_factory=Counter)
    max_send_lag_s: float = 0.0
    cpu_start: float = 0.0
    cpu_end: float = 0.0
    wall_start: float = 0.0
    wall_end: float = 0.0


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- the generator ----------------------------------------------------------------------


class Generator:
    """One process's connections and the commands that drive them."""

    def __init__(self, config: GeneratorConfig, pipe: Connection) -> None:
        self.config = config
        self._pipe = pipe
        self._loop = asyncio.get_running_loop()
        self._conns: list[_Conn] = []
        self._senders: dict[int, _Conn] = {}
        self._pending: dict[str, tuple[int, float]] = {}
        """client_id -> (step, send time), for posts not answered yet."""
        self._tallies: dict[int, _Tally] = {}
        self._late = 0
        self._other = 0
        self._stopped = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        self._loop.add_reader(self._pipe.fileno(), self._on_pipe)
        try:
            await self._stopped.wait()
        finally:
            self._loop.remove_reader(self._pipe.fileno())
            await self._close_all()

    # -- commands ---------------------------------------------------------------------

    def _on_pipe(self) -> None:
        while not self._stopped.is_set() and self._pipe.poll():
            try:
                command = self._pipe.recv()
            except (EOFError, OSError):  # the orchestrator has gone
                self._stopped.set()
                return
            task = self._loop.create_task(self._handle(command))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _handle(self, command: Any) -> None:
        answer: Any
        try:
            if isinstance(command, Connect):
                answer = await self._connect()
            elif isinstance(command, StepPlan):
                answer = await self._step(command)
            elif isinstance(command, Expect):
                answer = await self._expect(command)
            elif isinstance(command, Stop):
                await self._close_all()
                answer = Stopped(self.config.process)
            else:
                raise TypeError(f"unknown command {command!r}")
        except Exception:
            answer = Failed(self.config.process, traceback.format_exc())
        with contextlib.suppress(OSError):
            self._pipe.send(answer)
        if isinstance(command, Stop):
            self._stopped.set()

    async def _connect(self) -> Ready:
        config = self.config
        started = time.monotonic()
        mine = range(config.process, config.connections, config.processes)
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def one(index: int) -> None:
            conn = _Conn(index, index < config.senders, self._loop)
            self._conns.append(conn)
            async with gate:
                conn.client = await connect(
                    config.host,
                    config.port,
                    config.path,
                    lambda payload: self._on_text(conn, payload),
                    lambda code: self._on_close(conn, code),
                    config.connect_timeout_s,
                )
                for text in conn.outbox:
                    conn.client.send_text(text)
                conn.outbox.clear()
                await asyncio.wait_for(conn.welcomed, config.connect_timeout_s)
                if conn.joined is not None:
                    self._send(conn, {"type": "join", "username": f"bench{index}"})
                    await asyncio.wait_for(conn.joined, config.connect_timeout_s)
                    self._senders[index] = conn

        outcomes = await asyncio.gather(*(one(i) for i in mine), return_exceptions=True)
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            raise RuntimeError(
                f"{len(failures)} of {len(outcomes)} connections failed; first: {failures[0]!r}"
            )
        return Ready(
            config.process, len(self._conns), len(self._senders), time.monotonic() - started
        )

    async def _step(self, plan: StepPlan) -> Sent:
        config = self.config
        open_now = sum(1 for conn in self._conns if not conn.closed)
        tally = self._tallies[plan.number] = _Tally(plan.number, open_now)
        if plan.timeline:
            tally.arrivals = array.array("d")
        window = self._loop.create_task(self._measure_window(tally, plan))
        total = round(plan.rate_per_s * plan.duration_s)
        mine = [
            j for j in range(total) if (j % config.senders) % config.processes == config.process
        ]
        await asyncio.sleep(max(0.0, plan.start_at - time.time()))
        for j in mine:
            due = plan.start_at + j / plan.rate_per_s
            delay = due - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tally.max_send_lag_s = max(tally.max_send_lag_s, time.time() - due)
            conn = self._senders[j % config.senders]
            if conn.closed or conn.client is None:
                tally.unsendable += 1
                continue
            client_id = f"s{plan.number}-{j}"
            sent_at = time.time()
            self._pending[client_id] = (plan.number, sent_at)
            tally.pending += 1
            tally.sent += 1
            frame = {"type": "post", "body": body(plan.number, sent_at), "client_id": client_id}
            self._send(conn, frame)
        while tally.pending > 0 and time.time() < plan.answer_deadline:
            await asyncio.sleep(POLL_S)
        await window
        return Sent(
            process=config.process,
            number=plan.number,
            sent=tally.sent,
            acked=list(tally.acked),
            ack_latencies_ms=tally.ack_latencies_ms,
            rejected=dict(tally.rejected),
            unanswered=tally.pending,
            unsendable=tally.unsendable,
            max_send_lag_ms=tally.max_send_lag_s * 1000,
        )

    async def _measure_window(self, tally: _Tally, plan: StepPlan) -> None:
        await asyncio.sleep(max(0.0, plan.start_at - time.time()))
        tally.cpu_start, tally.wall_start = _cpu_s(), time.time()
        await asyncio.sleep(max(0.0, plan.start_at + plan.duration_s - time.time()))
        tally.cpu_end, tally.wall_end = _cpu_s(), time.time()

    async def _expect(self, expect: Expect) -> Received:
        tally = self._tallies[expect.number]

        def complete() -> bool:
            open_now = sum(1 for conn in self._conns if not conn.closed)
            return all(tally.counts.get(seq, 0) >= open_now for seq in expect.acked)

        while not complete() and time.time() < expect.deadline:
            await asyncio.sleep(POLL_S)
        del self._tallies[expect.number]  # frames still on their way now count as late
        late, self._late = self._late, 0
        other, self._other = self._other, 0
        return Received(
            process=self.config.process,
            number=expect.number,
            connections=tally.connections,
            open_at_end=sum(1 for conn in self._conns if not conn.closed),
            counts=tally.counts,
            latencies_ms=tally.latencies_ms,
            arrivals=tally.arrivals if tally.arrivals is not None else array.array("d"),
            out_of_order=tally.out_of_order,
            late=late,
            other_frames=other,
            first_receipt=tally.first_receipt,
            last_receipt=tally.last_receipt,
            cpu_s=tally.cpu_end - tally.cpu_start,
            window_s=tally.wall_end - tally.wall_start,
        )

    async def _close_all(self) -> None:
        for conn in self._conns:
            if conn.client is not None and not conn.closed:
                conn.client.close()
        deadline = time.monotonic() + CLOSE_TIMEOUT_S
        while any(not c.closed for c in self._conns) and time.monotonic() < deadline:
            await asyncio.sleep(POLL_S)
        for conn in self._conns:
            if conn.client is not None and not conn.closed:
                conn.client.abort()

    # -- frames -------------------------------------------------------------------------

    def _send(self, conn: _Conn, frame: dict[str, Any]) -> None:
        """Send one frame in this run's protocol."""
        assert conn.client is not None
        if self.config.protocol == SOCKETIO_PROTOCOL:
            conn.acks += 1
            conn.client.send_text(f'42{conn.acks}["{frame["type"]}",{json.dumps(frame)}]')
        else:
            conn.client.send_text(json.dumps(frame))

    def _on_text(self, conn: _Conn, payload: bytes) -> None:
        if self.config.protocol != SOCKETIO_PROTOCOL:
            self._on_frame(conn, json.loads(payload))
            return
        # Engine.IO packet type, then (for a message, "4") the socket.io packet type.
        if payload.startswith(b"42"):  # an event: ["name", frame]
            event = json.loads(payload[2:])
            if len(event) > 1 and isinstance(event[1], dict):
                self._on_frame(conn, event[1])
            else:
                self._other += 1
        elif payload.startswith(b"43"):  # an acknowledgement: <id>[frame]
            answer = json.loads(payload[2:].lstrip(b"0123456789"))
            if answer and isinstance(answer[0], dict):
                self._on_frame(conn, answer[0])
            else:
                self._other += 1
        elif payload[:1] == b"2":  # ping: pong, or the server drops the connection
            self._reply(conn, "3" + payload[1:].decode())
        elif payload[:1] == b"0":  # open: connect to the default namespace
            self._reply(conn, "40")
        elif payload.startswith(b"40"):  # connected to the namespace; the welcome follows
            pass
        else:
            self._other += 1

    @staticmethod
    def _reply(conn: _Conn, text: str) -> None:
        if conn.client is None:
            conn.outbox.append(text)  # sent as soon as `connect` returns the client
        else:
            conn.client.send_text(text)

    def _on_frame(self, conn: _Conn, frame: dict[str, Any]) -> None:
        now = time.time()
        kind = frame.get("type")
        if kind == "message":
            message = frame["message"]
            seq = message["seq"]
            if seq > conn.last_seq:
                conn.last_seq = seq
                in_order = True
            else:
                in_order = False
            parts = message["body"].split(" ", 3)
            tally = self._tallies.get(int(parts[1])) if parts[0] == BODY_PREFIX else None
            if tally is None:
                self._late += 1
                return
            if not in_order:
                tally.out_of_order += 1
            counts = tally.counts
            counts[seq] = counts.get(seq, 0) + 1
            tally.latencies_ms.append((now - float(parts[2])) * 1000.0)
            if tally.arrivals is not None:
                tally.arrivals.append(now)
            if tally.first_receipt is None:
                tally.first_receipt = now
            tally.last_receipt = now
        elif kind == "ack":
            post = self._pending.pop(str(frame.get("client_id")), None)
            answered = self._tallies.get(post[0]) if post is not None else None
            if post is not None and answered is not None:
                answered.pending -= 1
                answered.acked.append(frame["seq"])
                answered.ack_latencies_ms.append((now - post[1]) * 1000.0)
        elif kind == "error":
            client_id = frame.get("client_id")
            post = self._pending.pop(client_id, None) if client_id is not None else None
            answered = self._tallies.get(post[0]) if post is not None else None
            if answered is not None:
                answered.pending -= 1
                answered.rejected[str(frame.get("code"))] += 1
            elif conn.joined is not None and not conn.joined.done():
                conn.joined.set_exception(RuntimeError(f"join refused: {frame}"))
            else:
                self._other += 1
        elif kind == "welcome":
            if not conn.welcomed.done():
                conn.welcomed.set_result(None)
        elif kind == "joined":
            if conn.joined is not None and not conn.joined.done():
                conn.joined.set_result(None)
        else:
            self._other += 1

    def _on_close(self, conn: _Conn, code: int) -> None:
        conn.closed = True
        for waiter in (conn.welcomed, conn.joined):
            if waiter is not None and not waiter.done():
                waiter.set_exception(ConnectionError(f"closed with {code} while connecting"))


def process_main(pipe: Connection, config: GeneratorConfig) -> None:
    """The entry point of one generator process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the orchestrator stops it, in order

    async def main() -> None:
        await Generator(config, pipe).run()

    asyncio.run(main())
