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
thread runtimes showed 0 KiB per actor), or even negative while the threads of
the one before are still being torn down. The loop goes first, as its figure is
the smallest and the most easily hidden; ``--runtime NAME`` measures one alone.
The producer sends as fast as it can, so the latencies include queueing behind
the backlog: they are latencies under saturation, not at a light load.

Run it with ``make bench-actors`` or ``python -m bench.actors --help``. Linux only
(it reads /proc).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import pykka

from bench.report import machine
from bench.servers import process_cost
from bench.stats import percentiles
from supervision import LoopActor, ThreadActor

__all__ = ["Report", "RuntimeResult", "main", "run"]

DEFAULT_ACTORS, DEFAULT_MESSAGES = 1_000, 500_000
QUICK_ACTORS, QUICK_MESSAGES = 100, 10_000
RUNTIMES = ("loop", "thread", "pykka")
"""In the order measured: see the module docstring on RSS for why the loop goes first."""
START_TIMEOUT_S = 60.0
"""Longest wait for all N actors to have run ``on_start``."""
DELIVERY_TIMEOUT_S = 120.0
"""Longest wait for every message to be delivered, from the first send."""
STOP_TIMEOUT_S = 30.0
"""Longest wait for all actors (and their threads, and the loop) to end."""


class _Tally:
    """What the actors of one runtime share: latency slots and two countdowns."""

    def __init__(self, actors: int, messages: int) -> None:
        self.actors, self.messages = actors, messages
        self.latencies_ns = [-1] * messages
        """Slot i: the latency of message i, or -1 while it is undelivered."""
        self.all_started, self.all_delivered = threading.Event(), threading.Event()
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


class _Records:
    """An actor's work per message, the same in every runtime: a clock read, a store
    into its own preallocated slot, a count."""

    def __init__(self, tally: _Tally, index: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._tally = tally
        self._slot = index  # round-robin: actor i gets messages i, i + N, i + 2N...
        self._remaining = len(range(index, tally.messages, tally.actors))

    def on_start(self) -> None:
        self._tally.started()

    def on_receive(self, message: Any) -> None:
        now_ns = time.perf_counter_ns()
        self._tally.latencies_ns[self._slot] = now_ns - message  # its send time
        self._slot += self._tally.actors
        self._remaining -= 1
        if self._remaining == 0:
            self._tally.finished(now_ns)


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
class Report:
    machine: dict[str, Any]
    """As `bench.report.machine` describes it for ``python -m bench``."""
    results: list[RuntimeResult]
    loop_over_thread: float | None
    """LoopActor deliveries/s divided by ThreadActor deliveries/s, this run."""


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@contextmanager
def _runtime(name: str) -> Iterator[Callable[[_Tally, int], pykka.ActorRef[Any]]]:
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
            yield lambda tally, index: _LoopActor.start(tally, index, loop=loop)
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
    for future in [ref.stop(block=False) for ref in refs]:
        future.get(timeout=max(0.0, deadline - time.monotonic()))
    for thread in set(threading.enumerate()) - threads_before:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))


def _measure(name: str, actors: int, messages: int) -> RuntimeResult:
    tally = _Tally(actors, messages)
    gc.collect()
    rss_before_kib = process_cost(os.getpid()).rss_kib
    refs: list[pykka.ActorRef[Any]] = []
    with _runtime(name) as start_actor:
        threads_before = set(threading.enumerate())
        try:
            _log(f"[{name}] starting {actors:,} actors")
            started_ns = time.perf_counter_ns()
            refs.extend(start_actor(tally, index) for index in range(actors))
            if not tally.all_started.wait(START_TIMEOUT_S):
                raise TimeoutError(f"[{name}] actors not started in {START_TIMEOUT_S} s")
            start_up_ns = time.perf_counter_ns() - started_ns
            running = process_cost(os.getpid())

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

    p50, p99, top = (ns / 1e6 for ns in percentiles(tally.latencies_ns, 50, 99, 100))
    wall_s = (tally.last_delivery_ns - first_send_ns) / 1e9
    return RuntimeResult(
        runtime=name,
        actors=actors,
        messages_sent=messages,
        messages_delivered=sum(1 for latency in tally.latencies_ns if latency >= 0),
        start_up_s=start_up_ns / 1e9,
        rss_growth_per_actor_kib=(running.rss_kib - rss_before_kib) / actors,
        threads=running.threads,
        wall_s=wall_s,
        deliveries_per_s=messages / wall_s,
        latency_p50_ms=p50,
        latency_p99_ms=p99,
        latency_max_ms=top,
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
        results.append(result := _measure(name, actors, messages))
        _log(f"[{name}] {result.deliveries_per_s:,.0f} deliveries/s")
    by_name = {result.runtime: result.deliveries_per_s for result in results}
    ratio = by_name["loop"] / by_name["thread"] if {"loop", "thread"} <= set(by_name) else None
    return Report(machine(), results, ratio)


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
    pykka_version = m["versions"].get("pykka", "?")
    lines = [f"{m['cpus']} CPUs, Python {m['python']}, pykka {pykka_version}, {m['platform']}", ""]
    for row in rows:
        cells = zip(row, _COLUMNS, widths, strict=True)
        lines.append("  ".join(f"{text:{align}{width}}" for text, (_, align, _), width in cells))
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
    actors = args.actors or (QUICK_ACTORS if args.quick else DEFAULT_ACTORS)
    messages = args.messages or (QUICK_MESSAGES if args.quick else DEFAULT_MESSAGES)
    report = run(actors, messages, args.runtime or RUNTIMES)
    print(format_report(report))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(asdict(report), out, indent=2)
            out.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
