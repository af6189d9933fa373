"""Scenario 3, connection capacity: how many idle connections a server holds, and at what cost.

For each server (the Tornado-demo and python-socketio baselines of
`bench.fanout`, then Chatter)
and each size (1,000, 5,000 and 10,000 connections), on a fresh server process:

1. the idle server's resident memory (RSS) and threads are read from /proc;
2. client processes (`bench._scenario_clients`, a quarter of the connections
   at most 2,500 each, open-files limit raised) open every connection, 50
   handshakes in flight per process, each waiting for its welcome: the time
   from the first connect to the last welcome is *time to connect*;
3. a second later, RSS and threads again: *RSS per connection* is the growth
   over the idle server divided by the connections;
4. one more client joins and posts a message: the number of idle connections
   it reaches, and the time from the post to the last of them.

Chatter runs against an empty embedded PostgreSQL 18 (a welcome carries the
few messages earlier sizes posted), with its connection caps raised to 20,000.
All clients come from 127.0.0.1 to 127.0.0.1: 10,000 connections fit the
28,000 ephemeral ports of one address pair.

``python -m bench.capacity [--quick]`` runs it alone (quick: 300).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench._scenario_clients import (
    AwaitMarker,
    Joined,
    JoinSender,
    MarkerSeen,
    Opened,
    OpenIdle,
    Post,
    Posted,
)
from bench._scenario_common import (
    ClientProcesses,
    embedded_database,
    main_for,
    protocol_of,
    running_server,
    tail,
    versions,
    work_directory,
)
from bench.fanout.servers import CHATTER, DEMO, LABELS, SOCKETIO, process_cost
from bench.section import Progress, Section, Target

__all__ = ["FULL_SIZES", "QUICK_SIZES", "TARGET_KIB", "run"]

FULL_SIZES = (1_000, 5_000, 10_000)
QUICK_SIZES = (300,)
SERVERS = (DEMO, SOCKETIO, CHATTER)
TARGET_CONNECTIONS = 10_000
TARGET_KIB = 40.0
"""The issue's target: 10,000 idle connections held at under 40 KiB each."""
PER_PROCESS = 2_500
"""Connections per client process at most (each holds one socket per connection)."""
SETTLE_S = 1.0
"""Pause before RSS is read, so that buffers of the connect burst are settled."""
QUICK_SETTLE_S = 0.3
CONNECT_TIMEOUT_S = 180.0
"""Longest wait for every connection of one size."""
DELIVERY_TIMEOUT_S = 30.0
"""Longest wait for the one message to reach every connection."""


@dataclass(frozen=True)
class Measurement:
    server: str
    connections: int
    connect_s: float
    idle_rss_kib: int
    rss_kib: int
    idle_threads: int
    threads: int
    reached: int
    fanout_ms: float

    @property
    def per_connection_kib(self) -> float:
        return (self.rss_kib - self.idle_rss_kib) / self.connections


def _measure(
    server_name: str, size: int, work_dir: Path, database_url: str | None, settle_s: float
) -> Measurement:
    processes = max(1, math.ceil(size / PER_PROCESS))
    shares = [size // processes + (1 if i < size % processes else 0) for i in range(processes)]
    with running_server(server_name, work_dir, database_url) as server:
        try:
            time.sleep(settle_s)
            idle = process_cost(server.pid)
            with ClientProcesses(
                processes, server.port, name="capacity-clients", protocol=protocol_of(server_name)
            ) as clients:
                began = time.monotonic()
                opened = clients.ask(
                    [OpenIdle(share) for share in shares], Opened, CONNECT_TIMEOUT_S
                )
                connect_s = time.monotonic() - began
                failed = sum(o.failed for o in opened)
                if failed:
                    first = next(o.first_error for o in opened if o.failed)
                    raise RuntimeError(f"{failed} of {size} connections failed; first: {first}")
                time.sleep(settle_s)
                held = process_cost(server.pid)

                marker = f"capacity-{server_name}-{size}-{time.time_ns()}"
                deadline = time.time() + DELIVERY_TIMEOUT_S
                clients.ask([JoinSender("capacity"), *[None] * (processes - 1)], Joined, 30.0)
                clients.ask_all(AwaitMarker(marker, deadline, wait=False), MarkerSeen, 10.0)
                posted = clients.ask(
                    [Post(f"one for all {marker}", marker), *[None] * (processes - 1)],
                    Posted,
                    DELIVERY_TIMEOUT_S,
                )[0]
                seen = clients.ask_all(
                    AwaitMarker(marker, deadline), MarkerSeen, DELIVERY_TIMEOUT_S + 10.0
                )
        except Exception as error:
            raise RuntimeError(f"{server_name} at {size:,}: {error}\n{tail(server.log)}") from error
    last = max((s.last_at for s in seen if s.last_at is not None), default=math.nan)
    return Measurement(
        server=server_name,
        connections=size,
        connect_s=connect_s,
        idle_rss_kib=idle.rss_kib,
        rss_kib=held.rss_kib,
        idle_threads=idle.threads,
        threads=held.threads,
        reached=sum(s.received for s in seen),
        fanout_ms=(last - posted.sent_at) * 1000.0,
    )


def _table(results: Sequence[Measurement]) -> str:
    lines = [
        "| server | connections | time to connect | connections/s | RSS idle | RSS held "
        "| per connection | threads (idle → held) | message reached | post to last delivery |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in results:
        lines.append(
            f"| {LABELS.get(m.server, m.server)} | {m.connections:,} | {m.connect_s:.2f} s "
            f"| {m.connections / m.connect_s:,.0f} | {m.idle_rss_kib / 1024:.1f} MiB "
            f"| {m.rss_kib / 1024:.1f} MiB | {m.per_connection_kib:.1f} KiB "
            f"| {m.idle_threads} → {m.threads} | {m.reached:,} / {m.connections:,} "
            f"| {m.fanout_ms:.0f} ms |"
        )
    return "\n".join(lines)


def run(quick: bool, progress: Progress) -> Section:
    """Measure every size on each server; everything started is stopped on return."""
    sizes = QUICK_SIZES if quick else FULL_SIZES
    settle_s = QUICK_SETTLE_S if quick else SETTLE_S
    results: list[Measurement] = []
    with work_directory("capacity-") as work_dir:
        progress("[capacity] starting an embedded PostgreSQL for Chatter")
        with embedded_database(work_dir) as database:
            for server_name in SERVERS:
                for size in sizes:
                    progress(f"[capacity] {server_name}: {size:,} idle connections")
                    m = _measure(server_name, size, work_dir, database.conninfo, settle_s)
                    progress(
                        f"[capacity] {server_name} {size:,}: connected in {m.connect_s:.1f} s, "
                        f"{m.per_connection_kib:.1f} KiB each, {m.threads} threads, "
                        f"message reached {m.reached:,}, last after {m.fanout_ms:.0f} ms"
                    )
                    results.append(m)
            postgres = database.version

    figures: dict[str, float] = {}
    for m in results:
        key = f"{m.server}_{m.connections}"
        figures[f"{key}_connect_s"] = m.connect_s
        figures[f"{key}_rss_idle_mib"] = m.idle_rss_kib / 1024
        figures[f"{key}_rss_mib"] = m.rss_kib / 1024
        figures[f"{key}_rss_per_connection_kib"] = m.per_connection_kib
        figures[f"{key}_threads"] = float(m.threads)
        figures[f"{key}_reached_fraction"] = m.reached / m.connections
        figures[f"{key}_fanout_ms"] = m.fanout_ms

    largest = max(sizes)
    chatter = next(m for m in results if m.server == CHATTER and m.connections == largest)
    demo = next(m for m in results if m.server == DEMO and m.connections == largest)
    sio = next(m for m in results if m.server == SOCKETIO and m.connections == largest)
    figures["chatter_over_demo_kib_ratio"] = chatter.per_connection_kib / demo.per_connection_kib
    figures["chatter_over_socketio_kib_ratio"] = chatter.per_connection_kib / sio.per_connection_kib
    at = "" if largest == TARGET_CONNECTIONS else f" (quick run: at {largest:,})"
    held_all = chatter.reached == chatter.connections
    met = chatter.per_connection_kib < TARGET_KIB and held_all
    target = Target(
        name=f"{TARGET_CONNECTIONS:,} idle connections held at under {TARGET_KIB:g} KiB each",
        met=met,
        measured=f"{chatter.per_connection_kib:.1f} KiB per connection{at}",
        detail=(
            ""
            if met
            else f"{chatter.per_connection_kib - TARGET_KIB:+.1f} KiB over; "
            f"message reached {chatter.reached:,} of {chatter.connections:,}"
        ),
    )
    notes = [
        f"Chatter holds {largest:,} idle connections at {chatter.per_connection_kib:.1f} KiB "
        f"each, {figures['chatter_over_demo_kib_ratio']:.2f}x the demo's "
        f"{demo.per_connection_kib:.1f} KiB and "
        f"{figures['chatter_over_socketio_kib_ratio']:.2f}x python-socketio's "
        f"{sio.per_connection_kib:.1f} KiB (the demo keeps no per-connection state beyond "
        "Tornado's handler; Chatter adds a session actor on the event loop, its throttles "
        f"and its group membership), with {chatter.threads} threads whatever the count: "
        "sessions are not threads.",
        "RSS per connection is (RSS held - RSS idle) / connections, each size on a fresh "
        "server process; connections come from separate client processes on the same "
        f"{os.cpu_count()} CPUs, so time to connect includes their work too.",
        f"Measured with {postgres}, {versions('tornado', 'pykka', 'psycopg')}.",
    ]
    markdown = _table(results) + "\n\n" + "\n".join(f"- {note}" for note in notes)
    return Section(
        title="Connection capacity (scenario 3)",
        markdown=markdown,
        figures=figures,
        targets=[target],
    )


def main() -> int:
    return main_for("capacity", run)


if __name__ == "__main__":
    raise SystemExit(main())
