"""The load generator: client processes, each holding a share of the connections.

Every scenario that drives a server over WebSocket drives it through this one
harness. The orchestrator (`ClientProcesses`, a context manager) starts the
processes; each runs an asyncio loop of raw WebSocket clients
(`bench.wsclient`) and answers one frozen dataclass per command it is sent
through its pipe (or `Failed`, with the traceback). Process ``p`` of ``P``
holds the connections whose index ``g`` (over all processes) has
``g % P == p``. Times cross processes as `time.time()` (one machine, one clock).

`Open`
    open this process's share of ``count`` connections (50 handshakes in
    flight, or each at its own start time) and wait for each welcome; answer
    `Opened` with each connection's time to its 101 and to its whole welcome,
    and the messages the welcome held.
`Join`
    the first ``senders`` connections opened join as ``bench<g>``.
`Step`
    from ``start_at`` for ``duration_s``, post at ``rate_per_s`` over all
    senders: post ``j`` is due at ``start_at + j / rate_per_s`` from sender
    ``j % senders``, so posts are spread evenly over time and senders. A post
    carries a ``client_id`` and a body ``"bench <step> <time.time()> <filler>"``.
    Once every post is answered (ack or error), or at ``answer_deadline``,
    answer `Sent`.
`Expect`
    the seqs acked to every process: wait until each open connection here has
    them all (or ``deadline``), then answer `Received`: per seq how many
    connections got it, every delivery's latency (receive time minus the send
    time in the body), frames out of order, and this process's own CPU time
    over the step, so a reader can tell whether the generator was the limit.
`Pages`
    one connection asks ``history`` pages one at a time, timing each answer.
`Stop`
    close every connection and end.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import resource
import signal
import time
import traceback
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bench.wsclient import PATHS, WebSocketClient, decode, encode

__all__ = [
    "BODY_PREFIX",
    "ClientProcesses",
    "Expect",
    "Join",
    "Joined",
    "Open",
    "Opened",
    "Paged",
    "Pages",
    "Received",
    "Sent",
    "Step",
]

T = TypeVar("T")

BODY_PREFIX = "bench"
_FILLER = "the quick brown fox jumps over the lazy dog"
"""Makes a body about as long as a typical chat line (about 80 characters in all)."""
CONNECT_CONCURRENCY = 50
"""Handshakes in flight at once per process: fast, without a storm of SYNs."""
POLL_S = 0.01
"""How often a waiting command checks whether everything has arrived."""
CLOSE_TIMEOUT_S = 3.0
"""How long closing waits for the server to answer the close frames."""
STOP_TIMEOUT_S = 10.0
"""How long a process may take to close its connections and end, before it is killed."""


# -- commands and answers (pickled through the pipes) ---------------------------------


@dataclass(frozen=True)
class Open:
    count: int
    """Connections over all processes."""
    starts: tuple[float, ...] = ()
    """`time.time()` at which connection ``g`` starts; empty: all at once."""
    query: str = ""
    """Appended to the WebSocket's path (``?after=SEQ``)."""
    close: bool = False
    """Close each connection once it is welcomed."""
    timeout_s: float = 60.0


@dataclass(frozen=True)
class Join:
    senders: int
    timeout_s: float = 60.0


@dataclass(frozen=True)
class Step:
    number: int
    rate_per_s: float
    start_at: float
    duration_s: float
    answer_deadline: float
    timeline: bool = False
    """Keep each delivery's receive time too (`Received.arrivals`)."""


@dataclass(frozen=True)
class Expect:
    number: int
    acked: frozenset[int]
    deadline: float


@dataclass(frozen=True)
class Pages:
    befores: tuple[int, ...]
    limit: int = 100
    timeout_s: float = 30.0


@dataclass(frozen=True)
class Stop:
    pass


@dataclass(frozen=True)
class Opened:
    process: int
    connections: int
    seconds: float
    welcome_ms: list[float]
    """Per connection: the start of its TCP connect to its whole welcome."""
    upgrade_ms: list[float]
    """Per connection: the start of its TCP connect to the server's 101."""
    welcome_messages: list[int]


@dataclass(frozen=True)
class Joined:
    senders: int


@dataclass(frozen=True)
class Sent:
    process: int
    sent: int
    acked: list[int]
    ack_latencies_ms: array.array[float]
    rejected: dict[str, int]
    """Error frames answering posts, by code."""
    unanswered: int
    """Posts without ack or error by the deadline, and posts from a closed sender."""
    max_send_lag_ms: float
    """How late the latest post went out against its schedule: a busy generator lags."""


@dataclass(frozen=True)
class Received:
    process: int
    connections: int
    """Connections open when the step started."""
    open_at_end: int
    counts: dict[int, int]
    """For each seq of the step: how many connections here received it."""
    latencies_ms: array.array[float]
    arrivals: array.array[float]
    """With a timeline, each delivery's `time.time()`, in the order of `latencies_ms`."""
    out_of_order: int
    """Message frames whose seq was not above the previous one on their connection."""
    last_receipt: float | None
    cpu_s: float
    """This process's CPU time over the step's window..."""
    window_s: float
    """...and that window's wall time."""


@dataclass(frozen=True)
class Paged:
    latencies_ms: list[float]
    messages: list[int]


@dataclass(frozen=True)
class Stopped:
    pass


@dataclass(frozen=True)
class Failed:
    process: int
    error: str


# -- one process ------------------------------------------------------------------------


class _Conn(WebSocketClient):
    def __init__(self, generator: _Generator, index: int) -> None:
        super().__init__()
        self.generator = generator
        self.index = index
        self.last_seq = 0
        self.acks = 0
        self.closed = False
        loop = asyncio.get_running_loop()
        self.welcome: asyncio.Future[tuple[float, int]] = loop.create_future()
        self.waiting: asyncio.Future[tuple[float, dict[str, Any]]] | None = None
        """A ``joined`` or ``history`` answer being awaited."""

    def on_text(self, payload: bytes) -> None:
        self.generator.on_text(self, payload)

    def on_close(self, code: int) -> None:
        self.closed = True
        for waiter in (self.welcome, self.waiting):
            if waiter is not None and not waiter.done():
                waiter.set_exception(ConnectionError(f"closed with {code}"))

    def ask(self, frame: dict[str, Any]) -> asyncio.Future[tuple[float, dict[str, Any]]]:
        self.waiting = asyncio.get_running_loop().create_future()
        self.send(frame)
        return self.waiting

    def send(self, frame: dict[str, Any]) -> None:
        self.acks += 1
        self.send_text(encode(self.generator.wire, frame, self.acks))


@dataclass
class _Tally:
    """One step, as this process sees it."""

    connections: int
    counts: dict[int, int] = field(default_factory=dict)
    latencies_ms: array.array[float] = field(default_factory=lambda: array.array("d"))
    arrivals: array.array[float] | None = None
    out_of_order: int = 0
    last_receipt: float | None = None
    sent: int = 0
    unsendable: int = 0
    pending: int = 0
    acked: list[int] = field(default_factory=list)
    ack_latencies_ms: array.array[float] = field(default_factory=lambda: array.array("d"))
    rejected: Counter[str] = field(default_factory=Counter)
    max_send_lag_s: float = 0.0
    cpu_s: float = 0.0
    window_s: float = 0.0


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Generator:
    """One process's connections and the commands that drive them."""

    def __init__(self, process: int, processes: int, host: str, port: int, wire: str) -> None:
        self.process, self.processes = process, processes
        self.host, self.port, self.wire = host, port, wire
        self.conns: list[_Conn] = []
        self.senders: dict[int, _Conn] = {}
        self.sender_count = 0
        self.pending: dict[str, tuple[int, float]] = {}
        """client_id -> (step, send time), for posts not answered yet."""
        self.tallies: dict[int, _Tally] = {}

    def open_now(self) -> int:
        return sum(1 for conn in self.conns if not conn.closed)

    async def run(self, command: Any) -> Any:
        if isinstance(command, Open):
            return await self.open(command)
        if isinstance(command, Join):
            return await self.join(command)
        if isinstance(command, Step):
            return await self.step(command)
        if isinstance(command, Expect):
            return await self.expect(command)
        if isinstance(command, Pages):
            return await self.pages(command)
        if isinstance(command, Stop):
            await self.close_all()
            return Stopped()
        raise TypeError(f"unknown command {command!r}")

    async def _connect(self, index: int, path: str, timeout_s: float) -> tuple[_Conn, float, float]:
        """A new connection, welcomed; the ms to its 101 and to its welcome."""
        conn = _Conn(self, index)
        self.conns.append(conn)
        began = time.time()
        upgraded = await conn.open(self.host, self.port, path, timeout_s)
        welcomed, _ = await asyncio.wait_for(conn.welcome, timeout_s)
        return conn, (upgraded - began) * 1000.0, (welcomed - began) * 1000.0

    async def open(self, command: Open) -> Opened:
        started = time.monotonic()
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        path = PATHS[self.wire] + command.query

        async def one(index: int) -> tuple[float, float, int]:
            if command.starts:
                await asyncio.sleep(max(0.0, command.starts[index] - time.time()))
            async with gate:
                conn, upgrade_ms, welcome_ms = await self._connect(index, path, command.timeout_s)
            if command.close:
                conn.close()
            return upgrade_ms, welcome_ms, conn.welcome.result()[1]

        mine = range(self.process, command.count, self.processes)
        outcomes = await asyncio.gather(*(one(i) for i in mine), return_exceptions=True)
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            raise RuntimeError(
                f"{len(failures)} of {len(outcomes)} connections failed; first: {failures[0]!r}"
            )
        good = [o for o in outcomes if not isinstance(o, BaseException)]
        return Opened(
            self.process,
            len(good),
            time.monotonic() - started,
            [welcome for _, welcome, _ in good],
            [upgrade for upgrade, _, _ in good],
            [messages for _, _, messages in good],
        )

    async def join(self, command: Join) -> Joined:
        async def one(conn: _Conn) -> None:
            joining = conn.ask({"type": "join", "username": f"bench{conn.index}"})
            await asyncio.wait_for(joining, command.timeout_s)
            self.senders[conn.index] = conn

        await asyncio.gather(*(one(c) for c in self.conns if 0 <= c.index < command.senders))
        self.sender_count = command.senders
        return Joined(len(self.senders))

    async def step(self, plan: Step) -> Sent:
        tally = self.tallies[plan.number] = _Tally(self.open_now())
        if plan.timeline:
            tally.arrivals = array.array("d")
        senders = self.sender_count
        total = round(plan.rate_per_s * plan.duration_s)
        if total and not senders:
            raise RuntimeError("a step needs senders: Open some first")
        mine = [j for j in range(total) if (j % senders) % self.processes == self.process]
        await asyncio.sleep(max(0.0, plan.start_at - time.time()))
        cpu_start, wall_start = _cpu_s(), time.time()
        for j in mine:
            due = plan.start_at + j / plan.rate_per_s
            if due > time.time():
                await asyncio.sleep(due - time.time())
            tally.max_send_lag_s = max(tally.max_send_lag_s, time.time() - due)
            conn = self.senders[j % senders]
            if conn.closed:
                tally.unsendable += 1
                continue
            client_id = f"s{plan.number}-{j}"
            sent_at = time.time()
            self.pending[client_id] = (plan.number, sent_at)
            tally.pending += 1
            tally.sent += 1
            body = f"{BODY_PREFIX} {plan.number} {sent_at:.6f} {_FILLER}"
            conn.send({"type": "post", "body": body, "client_id": client_id})
        await asyncio.sleep(max(0.0, plan.start_at + plan.duration_s - time.time()))
        tally.cpu_s, tally.window_s = _cpu_s() - cpu_start, time.time() - wall_start
        while tally.pending > 0 and time.time() < plan.answer_deadline:
            await asyncio.sleep(POLL_S)
        return Sent(
            self.process,
            tally.sent,
            list(tally.acked),
            tally.ack_latencies_ms,
            dict(tally.rejected),
            tally.pending + tally.unsendable,
            tally.max_send_lag_s * 1000.0,
        )

    async def expect(self, expect: Expect) -> Received:
        tally = self.tallies[expect.number]
        while time.time() < expect.deadline and not all(
            tally.counts.get(seq, 0) >= self.open_now() for seq in expect.acked
        ):
            await asyncio.sleep(POLL_S)
        del self.tallies[expect.number]  # frames still on their way now count for nothing
        return Received(
            self.process,
            tally.connections,
            self.open_now(),
            tally.counts,
            tally.latencies_ms,
            tally.arrivals if tally.arrivals is not None else array.array("d"),
            tally.out_of_order,
            tally.last_receipt,
            tally.cpu_s,
            tally.window_s,
        )

    async def pages(self, command: Pages) -> Paged:
        conn, _, _ = await self._connect(-1, PATHS[self.wire], command.timeout_s)
        latencies, counts = [], []
        for before in command.befores:
            sent = time.time()
            asked = conn.ask({"type": "history", "before": before, "limit": command.limit})
            at, frame = await asyncio.wait_for(asked, command.timeout_s)
            latencies.append((at - sent) * 1000.0)
            counts.append(len(frame["messages"]))
        conn.close()
        return Paged(latencies, counts)

    async def close_all(self) -> None:
        for conn in self.conns:
            conn.close()
        deadline = time.monotonic() + CLOSE_TIMEOUT_S
        while any(not c.closed for c in self.conns) and time.monotonic() < deadline:
            await asyncio.sleep(POLL_S)
        for conn in self.conns:
            conn.abort()
        self.conns, self.senders = [], {}

    # -- frames -------------------------------------------------------------------------

    def on_text(self, conn: _Conn, payload: bytes) -> None:
        now = time.time()  # before any parsing: the frame is whole now
        frame, reply = decode(self.wire, payload)
        if reply is not None:
            conn.send_text(reply)
        if frame is None:
            return
        kind = frame.get("type")
        if kind == "message":
            self._message(conn, frame["message"], now)
        elif kind == "ack" or (kind == "error" and frame.get("client_id") in self.pending):
            step, sent_at = self.pending.pop(str(frame.get("client_id")), (-1, 0.0))
            tally = self.tallies.get(step)
            if tally is not None:
                tally.pending -= 1
                if kind == "ack":
                    tally.acked.append(frame["seq"])
                    tally.ack_latencies_ms.append((now - sent_at) * 1000.0)
                else:
                    tally.rejected[str(frame.get("code"))] += 1
        elif kind == "welcome" and not conn.welcome.done():
            conn.welcome.set_result((now, len(frame["messages"])))
        elif conn.waiting is not None and not conn.waiting.done():
            if kind == "error":
                conn.waiting.set_exception(RuntimeError(f"refused: {frame}"))
            elif kind in ("joined", "history"):
                conn.waiting.set_result((now, frame))

    def _message(self, conn: _Conn, message: dict[str, Any], now: float) -> None:
        seq = message["seq"]
        in_order = seq > conn.last_seq
        conn.last_seq = max(seq, conn.last_seq)
        parts = message["body"].split(" ", 3)
        tally = self.tallies.get(int(parts[1])) if parts[0] == BODY_PREFIX else None
        if tally is None:
            return  # a message of no step being counted (a late one, or a welcome's)
        tally.out_of_order += not in_order
        tally.counts[seq] = tally.counts.get(seq, 0) + 1
        tally.latencies_ms.append((now - float(parts[2])) * 1000.0)
        if tally.arrivals is not None:
            tally.arrivals.append(now)
        tally.last_receipt = now


async def _serve(pipe: multiprocessing.connection.Connection, generator: _Generator) -> None:
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    tasks: set[asyncio.Task[None]] = set()

    async def handle(command: Any) -> None:
        try:
            answer = await generator.run(command)
        except Exception:
            answer = Failed(generator.process, traceback.format_exc())
        with contextlib.suppress(OSError):
            pipe.send(answer)
        if isinstance(command, Stop):
            stopped.set()

    def readable() -> None:
        # Commands run side by side, so that Stop need not wait for a step to end.
        while not stopped.is_set() and pipe.poll():
            try:
                command = pipe.recv()
            except (EOFError, OSError):  # the orchestrator has gone
                stopped.set()
                return
            task = loop.create_task(handle(command))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    loop.add_reader(pipe.fileno(), readable)
    try:
        await stopped.wait()
    finally:
        loop.remove_reader(pipe.fileno())
        await generator.close_all()


def _process_main(pipe: multiprocessing.connection.Connection, *args: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the orchestrator stops it, in order
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # thousands of sockets
    asyncio.run(_serve(pipe, _Generator(*args)))


# -- the orchestrator's side ------------------------------------------------------------


class ClientProcesses:
    """`count` client processes against ``host:port`` speaking `wire`; every process
    is stopped on exit, then terminated, then killed."""

    def __init__(self, count: int, host: str, port: int, wire: str, name: str) -> None:
        self._args = (count, host, port, wire)
        self._name = name
        self._processes: list[Any] = []
        self._pipes: list[multiprocessing.connection.Connection] = []
        self._asked: list[int] = []

    def __enter__(self) -> ClientProcesses:
        context = multiprocessing.get_context("spawn")  # no inherited threads or sockets
        count, host, port, wire = self._args
        try:
            for index in range(count):
                ours, theirs = context.Pipe()
                process = context.Process(
                    target=_process_main,
                    args=(theirs, index, count, host, port, wire),
                    name=f"{self._name}-{index}",
                    daemon=True,
                )
                process.start()
                theirs.close()
                self._processes.append(process)
                self._pipes.append(ours)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def send(self, commands: Sequence[Any | None]) -> None:
        """Command ``commands[i]`` to process ``i`` (None: nothing); `gather` the answers."""
        self._asked = [i for i, command in enumerate(commands) if command is not None]
        for i in self._asked:
            self._pipes[i].send(commands[i])

    def send_all(self, command: Any) -> None:
        self.send([command] * len(self._pipes))

    def gather(self, kind: type[T], timeout_s: float) -> list[T]:
        """The answers of type `kind` to the last `send`, in process order."""
        answers: dict[int, T] = {}
        deadline = time.monotonic() + timeout_s
        while len(answers) < len(self._asked):
            waiting = [self._pipes[i] for i in self._asked if i not in answers]
            ready = multiprocessing.connection.wait(waiting, max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError(f"no {kind.__name__} from every client process in {timeout_s} s")
            for pipe in ready:
                assert isinstance(pipe, multiprocessing.connection.Connection)
                index = self._pipes.index(pipe)
                try:
                    answer = pipe.recv()
                except EOFError:
                    raise RuntimeError(f"client process {index} died") from None
                if isinstance(answer, Failed):
                    raise RuntimeError(f"client process {index} failed:\n{answer.error}")
                if not isinstance(answer, kind):
                    raise RuntimeError(f"client process {index} answered {answer!r}, not {kind}")
                answers[index] = answer
        return [answers[i] for i in sorted(answers)]

    def ask(self, commands: Sequence[Any | None], kind: type[T], timeout_s: float) -> list[T]:
        self.send(commands)
        return self.gather(kind, timeout_s)

    def ask_all(self, command: Any, kind: type[T], timeout_s: float) -> list[T]:
        self.send_all(command)
        return self.gather(kind, timeout_s)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ask_all(Stop(), Stopped, STOP_TIMEOUT_S)
        for process in self._processes:
            for end in (lambda: None, process.terminate, process.kill):
                if process.is_alive():
                    end()
                    process.join(STOP_TIMEOUT_S)
        for pipe in self._pipes:
            pipe.close()
        self._processes, self._pipes = [], []
