"""One client process of the load generator (`bench.clients` drives it).

Its connections and the commands that drive them run on one asyncio loop;
commands run side by side as tasks, so that `Stop` need not wait for a step to
end. Every connection counts the message frames it receives by seq and records
each one's latency, with the receive time read before any parsing.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing.connection
import os
import resource
import signal
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from bench.clients import (
    BODY_PREFIX,
    FILLER,
    Acked,
    Done,
    Expect,
    Failed,
    Join,
    Open,
    Opened,
    Paged,
    Pages,
    Step,
    Stop,
    Tally,
)
from bench.servers import raise_files_limit
from bench.wsclient import PATHS, WebSocketClient, decode, encode

__all__ = ["serve"]

CONNECT_CONCURRENCY = 50
"""Handshakes in flight at once: fast, without a storm of SYNs."""
POLL_S = 0.01
"""How often a waiting command checks whether everything has arrived."""
CLOSE_TIMEOUT_S = 3.0
"""How long closing waits for the server to answer the close frames."""


class _Conn(WebSocketClient):
    def __init__(self, generator: _Generator, index: int) -> None:
        super().__init__()
        self.generator = generator
        self.index = index
        self.last_seq = 0
        self.acks = 0
        self.closed = False
        self.welcome: asyncio.Future[tuple[float, int]] = asyncio.get_running_loop().create_future()
        self.waiting: asyncio.Future[tuple[float, dict[str, Any]]] | None = None
        """A ``joined`` or ``history`` answer being awaited."""

    def on_text(self, payload: bytes) -> None:
        self.generator.on_text(self, payload)

    def on_close(self, code: int) -> None:
        self.closed = True
        for waiter in (self.welcome, self.waiting):
            if waiter is not None and not waiter.done():
                waiter.set_exception(ConnectionError(f"closed with {code}"))

    def send(self, frame: dict[str, Any]) -> None:
        self.acks += 1
        self.send_text(encode(self.generator.wire, frame, self.acks))

    def ask(self, frame: dict[str, Any]) -> asyncio.Future[tuple[float, dict[str, Any]]]:
        self.waiting = asyncio.get_running_loop().create_future()
        self.send(frame)
        return self.waiting


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Generator:
    def __init__(self, process: int, processes: int, host: str, port: int, wire: str) -> None:
        self.process, self.processes = process, processes
        self.host, self.port, self.wire = host, port, wire
        self.conns: list[_Conn] = []
        self.senders: dict[int, _Conn] = {}
        """This process's senders, by index."""
        self.sender_count = 0
        """Senders over every process."""
        self.pending: dict[str, tuple[int, float]] = {}
        """client_id -> (step, send time), for posts not answered yet."""
        self.tallies: dict[int, Tally] = {}
        self.nonce = os.urandom(4).hex()
        """In every client_id: Chatter stores a client_id once, and acks a repeated one
        without broadcasting it again, so ids must not repeat against one database."""

    def open_now(self) -> int:
        return sum(1 for conn in self.conns if not conn.closed)

    async def run(self, command: Any) -> Any:
        handlers: dict[type, Callable[[Any], Awaitable[Any]]] = {
            Open: self.open,
            Join: self.join,
            Step: self.step,
            Expect: self.expect,
            Pages: self.pages,
            Stop: self.stop,
        }
        return await handlers[type(command)](command)

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

        async def one(index: int) -> tuple[float, float, int]:
            if command.starts:
                await asyncio.sleep(max(0.0, command.starts[index] - time.time()))
            async with gate:
                path = PATHS[self.wire] + command.query
                conn, upgrade_ms, welcome_ms = await self._connect(index, path, command.timeout_s)
            if command.close:
                conn.close()
            return welcome_ms, upgrade_ms, conn.welcome.result()[1]

        mine = range(self.process, command.count, self.processes)
        outcomes = await asyncio.gather(*(one(i) for i in mine), return_exceptions=True)
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            raise RuntimeError(
                f"{len(failures)} of {len(outcomes)} connections failed; first: {failures[0]!r}"
            )
        good = [o for o in outcomes if not isinstance(o, BaseException)]
        columns = [list(column) for column in zip(*good, strict=True)] or [[], [], []]
        return Opened(time.monotonic() - started, *columns)

    async def join(self, command: Join) -> Done:
        async def one(conn: _Conn) -> None:
            name = f"bench{command.names_from + conn.index}"
            joining = conn.ask({"type": "join", "username": name})
            await asyncio.wait_for(joining, command.timeout_s)
            self.senders[conn.index] = conn

        await asyncio.gather(*(one(c) for c in self.conns if 0 <= c.index < command.senders))
        self.sender_count = command.senders
        return Done()

    async def step(self, plan: Step) -> Acked:
        tally = Tally(self.process, self.open_now(), timeline=plan.timeline)
        self.tallies[plan.number] = tally
        senders = self.sender_count
        total = round(plan.rate_per_s * plan.duration_s)
        mine = [j for j in range(total) if senders and j % senders in self.senders]
        await asyncio.sleep(max(0.0, plan.start_at - time.time()))
        cpu_start, wall_start = _cpu_s(), time.time()
        for j in mine:
            due = plan.start_at + j / plan.rate_per_s
            if due > time.time():
                await asyncio.sleep(due - time.time())
            conn = self.senders[j % senders]
            if conn.closed:
                tally.unanswered += 1
                continue
            client_id = f"{self.nonce}-{plan.number}-{j}"
            sent_at = time.time()
            self.pending[client_id] = (plan.number, sent_at)
            tally.sent += 1
            body = f"{BODY_PREFIX} {plan.number} {sent_at:.6f} {FILLER}"
            conn.send({"type": "post", "body": body, "client_id": client_id})
        await asyncio.sleep(max(0.0, plan.start_at + plan.duration_s - time.time()))
        tally.cpu_s, tally.window_s = _cpu_s() - cpu_start, time.time() - wall_start
        while self._unanswered(plan.number) and time.time() < plan.answer_deadline:
            await asyncio.sleep(POLL_S)
        tally.unanswered += self._unanswered(plan.number)
        return Acked(tally.acked)

    def _unanswered(self, step: int) -> int:
        return sum(1 for number, _ in self.pending.values() if number == step)

    async def expect(self, expect: Expect) -> Tally:
        tally = self.tallies[expect.number]
        while time.time() < expect.deadline and not all(
            tally.counts.get(seq, 0) >= self.open_now() for seq in expect.acked
        ):
            await asyncio.sleep(POLL_S)
        del self.tallies[expect.number]  # frames still on their way now count for nothing
        tally.open_at_end = self.open_now()
        return tally

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

    async def stop(self, _: Stop) -> Done:
        await self.close_all()
        return Done()

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
            if tally is not None and kind == "ack":
                tally.acked.append(frame["seq"])
                tally.ack_latencies_ms.append((now - sent_at) * 1000.0)
            elif tally is not None:
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
        if tally.timeline:
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
            answer = Failed(traceback.format_exc())
        with contextlib.suppress(OSError):
            pipe.send(answer)
        if isinstance(command, Stop):
            stopped.set()

    def readable() -> None:
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


def serve(pipe: multiprocessing.connection.Connection, *args: Any) -> None:
    """The process's entry point: ``args`` are the process's index, the processes,
    the server's host and port, and its wire."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the orchestrator stops it, in order
    raise_files_limit()  # thousands of sockets
    asyncio.run(_serve(pipe, _Generator(*args)))
