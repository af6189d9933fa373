"""How many deliveries a second each actor runtime carries to 1,000 actors.

A thread per actor cannot carry a chat room of 1,000 sessions: each delivery
is a thread wake-up, and each actor a thread's stack. `supervision.LoopActor`
is the answer to that; this benchmark checks the claim by measuring, in one run
and on one machine, three runtimes side by side:

- ``loop``: `supervision.LoopActor` (every actor on one asyncio loop thread);
- ``thread``: `supervision.ThreadActor` (pykka's thread per actor, supervised);
- ``pykka``: plain `pykka.ThreadingActor`, the baseline.

For each, it starts N actors (default 1,000), then one producer thread tells
them M messages in all, round-robin, each carrying its send time
(`time.perf_counter_ns`). Every actor does the same small work per message: it
stores receive time minus send time into a preallocated slot and counts. It
reports deliveries per second (M / wall time from first send to last delivery),
delivery latency p50/p99/max, the time to start all N actors (until every
``on_start`` has run), RSS growth per actor (VmRSS before and after starting
them), and the process's thread count with the actors running.

RSS growth is approximate: a runtime measured later in the same process reuses
memory an earlier one freed and so looks smaller (LoopActor measured after the
thread runtimes showed 0 KiB per actor). The loop goes first, as its figure is
the smallest and the most easily hidden; ``--runtime NAME`` measures one alone.

The producer sends as fast as it can, so the latencies include queueing behind
the backlog: they are latencies under saturation, not at a light load.

Run it with ``make bench-actors`` or ``python -m bench.actors --help``. Linux only
(it reads /proc/self/status).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.metadata
import json
import os
import platform
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import pykka

from bench.stats import percentiles
from supervision import LoopActor, ThreadActor

__all__ = ["Machine", "Report", "RuntimeResult", "main", "run"]

DEFAULT_ACTORS = 1_000
DEFAULT_MESSAGES = 500_000
QUICK_ACTORS = 100
QUICK_MESSAGES = 10_000
RUNTIMES = ("loop", "thread", "pykka")
"""In the order measured: see the module docstring on RSS for why the loop goes first."""

START_TIMEOUT_S = 60.0
"""Longest wait for all N actors to have run ``on_start``."""
DELIVERY_TIMEOUT_S = 120.0
"""Longest wait for every message to be delivered, from the first send."""
STOP_TIMEOUT_S = 30.0
"""Longest wait for all actors (and their threads, and the loop) to end."""

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000


class _Tally:
    """What the actors of one runtime share: latency slots and two countdowns."""

    def __init__(self, actors: int, messages: int) -> None:
        self.latencies_ns = [-1] * messages
        """Slot i: the latency of message i, or -1 while it is undelivered."""
        self.all_started = threading.Event()
        self.all_delivered = threading.Event()
        self.last_delivery_ns = 0
        self._lock = threading.Lock()
        self._starting = actors
        self._receiving = min(actors, messages)  # actors with at least one message

    def started(self) -> None:
        with self._lock:
            self._starting -= 1
            if self._starting == 0:
                self.all_started.set()

    def finished(self, last_delivery_ns: int) -> None:
        with self._lock:
            self.last_delivery_ns = max(self.last_delivery_ns, last_delivery_ns)
            self._receiving -= 1
            if self._receiving == 0:
                self.all_delivered.set()


class _Recorder:
    """One actor's work per message, the same in every runtime: a clock read,
    a store into its own preallocated slot, a count."""

    __slots__ = ("_expected", "_slot", "_stride", "_tally", "received")

    def __init__(self, tally: _Tally, index: int, actors: int, messages: int) -> None:
        self._tally = tally
        self._slot = index  # round-robin: actor i gets messages i, i + N, i + 2N...
        self._stride = actors
        self._expected = len(range(index, messages, actors))
        self.received = 0

    def started(self) -> None:
        self._tally.started()

    def receive(self, sent_ns: int) -> None:
        now_ns = time.perf_counter_ns()
        self._tally.latencies_ns[self._slot] = now_ns - sent_ns
        self._slot += self._stride
        self.received += 1
        if self.received == self._expected:
            self._tally.finished(now_ns)


class _Records:
    """The actor's side, the same in every runtime: hand each message to the recorder."""

    def __init__(self, recorder: _Recorder, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.recorder = recorder

    def on_start(self) -> None:
        self.recorder.started()

    def on_receive(self, message: Any) -> None:
        self.recorder.receive(message)


class _PykkaActor(_Records, pykka.ThreadingActor):
    pass


class _ThreadActor(_Records, ThreadActor):
    pass


class _LoopActor(_Records, LoopActor):
    pass


@dataclass(frozen=True)
class RuntimeResult:
    """The figures for one runtime."""

    runtime: str
    actors: int
    messages_sent: int
    messages_delivered: int
    start_up_s: float
    rss_growth_per_actor_kib: float
    threads: int
    wall_s: float
    deliveries_per_s: float
    latency_p50_ms: float
    latency_p99_ms: float
    latency_max_ms: float


@dataclass(frozen=True)
class Machine:
    cpus: int
    python: str
    pykka: str
    platform: str


@dataclass(frozen=True)
class Report:
    machine: Machine
    results: list[RuntimeResult]
    loop_over_thread: float | None
    """LoopActor deliveries/s divided by ThreadActor deliveries/s, this run."""


def _proc_status(field: str) -> int:
    """An integer field of /proc/self/status (VmRSS is in KiB)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(f"no {field} in /proc/self/status")


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@contextmanager
def _runtime(name: str) -> Iterator[Callable[[_Recorder], pykka.ActorRef[Any]]]:
    """A way to start one actor of runtime `name`; on exit, the loop (if any) ends."""
    if name == "pykka":
        yield _PykkaActor.start
    elif name == "thread":
        yield _ThreadActor.start
    elif name == "loop":
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="bench-loop", daemon=True)
        thread.start()
        try:
            yield lambda recorder: _LoopActor.start(recorder, loop=loop)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=STOP_TIMEOUT_S)
            if not thread.is_alive():
                loop.close()
    else:
        raise ValueError(f"unknown runtime {name!r}; choose from {RUNTIMES}")


def _stop(refs: list[pykka.ActorRef[Any]], threads_before: set[threading.Thread]) -> None:
    """Stop every actor and wait for the threads they ran on to end."""
    deadline = time.monotonic() + STOP_TIMEOUT_S
    stopping = [ref.stop(block=False) for ref in refs]
    for future in stopping:
        future.get(timeout=max(0.0, deadline - time.monotonic()))
    for thread in threading.enumerate():
        if thread not in threads_before:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))


def _measure(name: str, actors: int, messages: int) -> RuntimeResult:
    tally = _Tally(actors, messages)
    recorders = [_Recorder(tally, i, actors, messages) for i in range(actors)]
    gc.collect()
    rss_before_kib = _proc_status("VmRSS")
    refs: list[pykka.ActorRef[Any]] = []
    with _runtime(name) as start_actor:
        threads_before = set(threading.enumerate())
        try:
            _log(f"[{name}] starting {actors:,} actors")
            started_ns = time.perf_counter_ns()
            refs.extend(start_actor(recorder) for recorder in recorders)
            if not tally.all_started.wait(START_TIMEOUT_S):
                raise TimeoutError(f"[{name}] actors not started in {START_TIMEOUT_S} s")
            start_up_ns = time.perf_counter_ns() - started_ns
            rss_after_kib = _proc_status("VmRSS")
            threads = _proc_status("Threads")

            _log(f"[{name}] sending {messages:,} messages")
            tells = [ref.tell for ref in refs]
            first_send_ns = time.perf_counter_ns()

            def produce() -> None:
                for i in range(messages):
                    tells[i % actors](time.perf_counter_ns())

            producer = threading.Thread(target=produce, name="bench-producer")
            producer.start()
            delivered_in_time = tally.all_delivered.wait(DELIVERY_TIMEOUT_S)
            producer.join(timeout=STOP_TIMEOUT_S)
            if not delivered_in_time:
                raise TimeoutError(f"[{name}] messages not delivered in {DELIVERY_TIMEOUT_S} s")
        finally:
            _log(f"[{name}] stopping")
            _stop(refs, threads_before)

    p50_ns, p99_ns, max_ns = percentiles(tally.latencies_ns, 50, 99, 100)
    wall_ns = tally.last_delivery_ns - first_send_ns
    return RuntimeResult(
        runtime=name,
        actors=actors,
        messages_sent=messages,
        messages_delivered=sum(recorder.received for recorder in recorders),
        start_up_s=start_up_ns / NS_PER_S,
        rss_growth_per_actor_kib=(rss_after_kib - rss_before_kib) / actors,
        threads=threads,
        wall_s=wall_ns / NS_PER_S,
        deliveries_per_s=messages * NS_PER_S / wall_ns,
        latency_p50_ms=p50_ns / NS_PER_MS,
        latency_p99_ms=p99_ns / NS_PER_MS,
        latency_max_ms=max_ns / NS_PER_MS,
    )


def run(
    actors: int = DEFAULT_ACTORS,
    messages: int = DEFAULT_MESSAGES,
    runtimes: Sequence[str] = RUNTIMES,
) -> Report:
    """Measure each runtime in turn, in this process, and return the figures."""
    if actors < 1 or messages < 1:
        raise ValueError("need at least one actor and one message")
    results = []
    for name in runtimes:
        result = _measure(name, actors, messages)
        _log(f"[{name}] {result.deliveries_per_s:,.0f} deliveries/s")
        results.append(result)
    by_name = {result.runtime: result for result in results}
    ratio = None
    if "loop" in by_name and "thread" in by_name:
        ratio = by_name["loop"].deliveries_per_s / by_name["thread"].deliveries_per_s
    machine = Machine(
        cpus=os.cpu_count() or 0,
        python=platform.python_version(),
        pykka=importlib.metadata.version("pykka"),
        platform=platform.platform(),
    )
    return Report(machine=machine, results=results, loop_over_thread=ratio)


_COLUMNS: list[tuple[str, str, Callable[[RuntimeResult], str]]] = [
    ("runtime", "<", lambda r: r.runtime),
    ("actors", ">", lambda r: f"{r.actors:,}"),
    ("delivered", ">", lambda r: f"{r.messages_delivered:,}/{r.messages_sent:,}"),
    ("deliveries/s", ">", lambda r: f"{r.deliveries_per_s:,.0f}"),
    ("p50 ms", ">", lambda r: f"{r.latency_p50_ms:.2f}"),
    ("p99 ms", ">", lambda r: f"{r.latency_p99_ms:.2f}"),
    ("max ms", ">", lambda r: f"{r.latency_max_ms:.2f}"),
    ("start-up s", ">", lambda r: f"{r.start_up_s:.3f}"),
    ("RSS KiB/actor", ">", lambda r: f"{r.rss_growth_per_actor_kib:.1f}"),
    ("threads", ">", lambda r: f"{r.threads:,}"),
]


def format_report(report: Report) -> str:
    """The report as a plain-text table."""
    m = report.machine
    rows = [[title for title, _, _ in _COLUMNS]]
    rows += [[cell(result) for _, _, cell in _COLUMNS] for result in report.results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    lines = [f"{m.cpus} CPUs, Python {m.python}, pykka {m.pykka}, {m.platform}", ""]
    for row in rows:
        cells = (
            f"{text:{align}{width}}"
            for text, (_, align, _), width in zip(row, _COLUMNS, widths, strict=True)
        )
        lines.append("  ".join(cells))
    if report.loop_over_thread is not None:
        lines += ["", f"LoopActor / ThreadActor deliveries/s: {report.loop_over_thread:.2f}x"]
    return "\n".join(lines)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.actors", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--actors", type=_positive_int, help=f"actors per runtime (default {DEFAULT_ACTORS:,})"
    )
    parser.add_argument(
        "--messages",
        type=_positive_int,
        help=f"messages per runtime, in all (default {DEFAULT_MESSAGES:,})",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a small run: {QUICK_ACTORS} actors, {QUICK_MESSAGES:,} messages unless given",
    )
    parser.add_argument(
        "--runtime", action="append", choices=RUNTIMES, help="only this runtime (repeatable)"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON to PATH")
    args = parser.parse_args(argv)
    if args.actors is None:
        args.actors = QUICK_ACTORS if args.quick else DEFAULT_ACTORS
    if args.messages is None:
        args.messages = QUICK_MESSAGES if args.quick else DEFAULT_MESSAGES

    report = run(args.actors, args.messages, args.runtime or RUNTIMES)
    print(format_report(report))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(asdict(report), out, indent=2)
            out.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
