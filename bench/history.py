"""Scenario 4, joins with history: a crowd arriving at a room with a million messages.

On an embedded PostgreSQL 18 seeded with 1,000,000 messages (`chatter.seed`,
one COPY, then ``VACUUM ANALYZE`` as autovacuum would do soon after), one
Chatter server, warmed by a single connection, then:

1. **joins**: 200 clients start connecting within one second (evenly spread,
   from two client processes) and stay; each is timed from the start of its
   TCP connect to its whole ``welcome`` frame, which carries the newest 500
   messages;
2. **history deep in the past**: four clients, each asking 50 ``history``
   pages (100 messages) one at a time, ``before`` drawn from the oldest tenth
   of the room: the time from request to the whole ``history`` frame;
3. **resume after 5,000 missed**: clients connect with ``?after=`` the
   newest seq minus 5,000, one at a time, each timed to its welcome, which
   carries all 5,000.

Quick: 20,000 messages, 50 joins, 20 pages, 3 resumes.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.clients import ClientProcesses, Open, Opened, Paged, Pages
from bench.report import Progress, Section, Target, table
from bench.servers import (
    CHATTER,
    HOST,
    HostCpu,
    RunningServer,
    embedded_database,
    process_cost,
    running_server,
    tail,
    wire_of,
)
from bench.stats import percent, percentiles

__all__ = ["FULL", "QUICK", "Settings", "run"]

WELCOME_MESSAGES = 500
"""What a welcome carries (chatter.session.WELCOME_MESSAGES)."""
MISSED = 5_000
"""Messages a resuming client has missed: the most a resume carries at once."""
TARGET_WELCOME_P99_MS = 100.0
CLIENT_PROCESSES = 2
LEAD_S = 0.5
"""Time between sending the join plan and the first start, for both processes to get it."""
RESUME_GAP_S = 0.3
"""Between resumes: one at a time, each on a quiet server."""
ANSWER_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Settings:
    messages: int
    joins: int
    join_window_s: float
    history_clients: int
    pages_each: int
    resumes: int


FULL = Settings(
    1_000_000, joins=200, join_window_s=1.0, history_clients=4, pages_each=50, resumes=20
)
QUICK = Settings(20_000, joins=50, join_window_s=1.0, history_clients=2, pages_each=10, resumes=3)


def _seed(conninfo: str, messages: int, progress: Progress) -> tuple[float, int]:
    """Seed the room; returns the seconds it took and the newest seq."""
    import psycopg

    from chatter.seed import seed

    began = time.monotonic()
    seed(
        conninfo,
        messages,
        progress=lambda done, total: progress(f"[history] seeded {done:,} of {total:,}"),
    )
    seed_s = time.monotonic() - began
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE messages")
        row = conn.execute("SELECT max(seq), count(*) FROM messages").fetchone()
    if row is None or row[1] != messages:
        raise RuntimeError(f"seeded {messages:,} messages, found {row}")
    return seed_s, int(row[0])


def _crowd(count: int, window_s: float, gap_s: float = 0.0) -> tuple[float, ...]:
    """Start times of `count` connections spread over `window_s` (or `gap_s` apart)."""
    first = time.time() + LEAD_S
    return tuple(first + i * (gap_s or window_s / count) for i in range(count))


@dataclass(frozen=True)
class _Measured:
    joins: list[Opened]
    join_wall_s: float
    join_server_cpu_s: float
    join_host_busy_percent: float
    pages: list[Paged]
    resumes: list[Opened]


def _measure(
    server: RunningServer, settings: Settings, newest: int, progress: Progress
) -> _Measured:
    rng = random.Random(8)
    with ClientProcesses(CLIENT_PROCESSES, HOST, server.port, wire_of(CHATTER), "history") as c:
        c.ask_all(Open(1, close=True), Opened, ANSWER_TIMEOUT_S)  # a warm-up
        progress(f"[history] {settings.joins} joining within {settings.join_window_s:g} s")
        c.send_all(Open(settings.joins, starts=_crowd(settings.joins, settings.join_window_s)))
        time.sleep(LEAD_S)
        before, host_before, began = process_cost(server.pid), HostCpu.now(), time.time()
        joins = c.gather(Opened, ANSWER_TIMEOUT_S)
        after, host_after, join_wall_s = (
            process_cost(server.pid),
            HostCpu.now(),
            time.time() - began,
        )

        progress("[history] history pages deep in the past")
        pages: list[Paged] = []
        for _ in range(0, settings.history_clients, CLIENT_PROCESSES):
            befores = [
                tuple(rng.randrange(101, _deep(settings)) for _ in range(settings.pages_each))
                for _ in range(CLIENT_PROCESSES)
            ]
            pages += c.ask([Pages(b) for b in befores], Paged, ANSWER_TIMEOUT_S)

        progress(f"[history] {settings.resumes} resumes after {MISSED:,} missed")
        starts = _crowd(settings.resumes, 0.0, RESUME_GAP_S)
        query = f"?after={newest - MISSED}"
        resumes = c.ask_all(
            Open(settings.resumes, starts=starts, query=query, close=True), Opened, ANSWER_TIMEOUT_S
        )
    return _Measured(
        joins,
        join_wall_s,
        after.cpu_s - before.cpu_s,
        host_after.busy_percent_since(host_before),
        pages,
        resumes,
    )


def _deep(settings: Settings) -> int:
    """History pages are asked before seqs below this: the oldest tenth of the room."""
    return max(2, settings.messages // 10)


def run(quick: bool, progress: Progress) -> Section:
    """Seed, serve, and time joins, history pages and resumes; everything started
    is stopped on return."""
    settings = QUICK if quick else FULL
    with tempfile.TemporaryDirectory(prefix="history-", ignore_cleanup_errors=True) as tmp:
        progress("[history] starting an embedded PostgreSQL")
        with embedded_database(Path(tmp)) as database:
            progress(f"[history] seeding {settings.messages:,} messages")
            seed_s, newest = _seed(database.conninfo, settings.messages, progress)
            progress(f"[history] seeded in {seed_s:.1f} s; starting Chatter")
            with running_server(CHATTER, Path(tmp), database.conninfo) as server:
                try:
                    measured = _measure(server, settings, newest, progress)
                except Exception as error:
                    raise RuntimeError(f"{error}\n{tail(server.log)}") from error
            postgres = database.version
    joins, pages, resumes = measured.joins, measured.pages, measured.resumes
    welcome_ms = [x for j in joins for x in j.welcome_ms]
    upgrade_ms = [x for j in joins for x in j.upgrade_ms]
    page_ms = [x for p in pages for x in p.latencies_ms]
    resume_ms = [x for r in resumes for x in r.welcome_ms]
    welcome_min = min(n for j in joins for n in j.welcome_messages)
    page_min = min(n for p in pages for n in p.messages)
    resume_min = min(n for r in resumes for n in r.welcome_messages)
    welcome_p50, welcome_p99, welcome_max = percentiles(welcome_ms, 50, 99, 100)
    upgrade_p50, upgrade_p99 = percentiles(upgrade_ms, 50, 99)
    history_p50, history_p99 = percentiles(page_ms, 50, 99)
    resume_p50, resume_max = percentiles(resume_ms, 50, 100)
    figures = {
        "messages_stored": float(settings.messages),
        "seed_s": seed_s,
        "joins": float(len(welcome_ms)),
        "welcome_messages_min": float(welcome_min),
        "welcome_p50_ms": welcome_p50,
        "welcome_p99_ms": welcome_p99,
        "welcome_max_ms": welcome_max,
        "upgrade_p50_ms": upgrade_p50,
        "upgrade_p99_ms": upgrade_p99,
        "join_server_cpu_percent": percent(measured.join_server_cpu_s, measured.join_wall_s),
        "join_host_busy_percent": measured.join_host_busy_percent,
        "history_pages": float(len(page_ms)),
        "history_page_messages_min": float(page_min),
        "history_p50_ms": history_p50,
        "history_p99_ms": history_p99,
        "resumes": float(len(resume_ms)),
        "resume_messages_min": float(resume_min),
        "resume_p50_ms": resume_p50,
        "resume_max_ms": resume_max,
    }
    met = welcome_p99 < TARGET_WELCOME_P99_MS and welcome_min == WELCOME_MESSAGES
    target = Target(
        f"welcome p99 under {TARGET_WELCOME_P99_MS:g} ms, 200 joins in a second, "
        f"{WELCOME_MESSAGES} messages each",
        met,
        f"{welcome_p99:.1f} ms"
        + (
            f" (quick run: {settings.joins} joins, {settings.messages:,} messages)" if quick else ""
        ),
        ""
        if met
        else f"{welcome_p99 - TARGET_WELCOME_P99_MS:.1f} ms over "
        f"({welcome_p99 / TARGET_WELCOME_P99_MS:.2f}x the target); {welcome_min} messages "
        "in the smallest welcome",
    )
    rows = [
        (
            f"welcome (newest 500), {len(welcome_ms)} joins in {settings.join_window_s:g} s",
            welcome_ms,
            f"{welcome_min}",
        ),
        ("of which: the WebSocket handshake answered (101)", upgrade_ms, "-"),
        (f"history page deep in the past (before < {_deep(settings):,})", page_ms, f"{page_min}"),
        (f"resume after {MISSED:,} missed, one at a time", resume_ms, f"{resume_min:,}"),
    ]
    lines = []
    for label, values, each in rows:
        p50, p99, top = percentiles(values, 50, 99, 100)
        lines.append(
            [label, f"{len(values)}", each, f"{p50:.1f} ms", f"{p99:.1f} ms", f"{top:.1f} ms"]
        )
    notes = [
        f"{settings.messages:,} messages stored (seeded in {seed_s:.1f} s with COPY); "
        "times run from the start of the TCP connect (or the request) to the whole frame "
        "at the client; clients run in separate processes on the same machine.",
        f"While the crowd joined ({measured.join_wall_s:.1f} s), Chatter used "
        f"{figures['join_server_cpu_percent']:.0f}% of one CPU and the machine was "
        f"{figures['join_host_busy_percent']:.0f}% busy over its {os.cpu_count()} CPUs "
        "(the server, PostgreSQL, the clients, and anything else running).",
        "How a welcome is made: the session joins the room, then asks for the newest "
        "page, the online names and the recent users at once. Asks for the newest page "
        "that overlap share one read (`SharedRead`, as group commit shares a commit), and "
        "an unchanged page is answered with the same object, so its 500 messages are "
        "encoded to JSON once for as long as the room is quiet (`Page.wire_json`). What "
        "remains per join is the handshake, the session's start (the sessions "
        "supervisor starts the sessions asked for together, in rounds that share the "
        "event loop's turns) and the write of the frame.",
        f"Measured with {postgres}.",
    ]
    return Section(
        "Joins with history (scenario 4)",
        table(["what", "count", "messages each", "p50", "p99", "max"], lines, "<>>>>>")
        + "\n\n"
        + "\n".join(f"- {n}" for n in notes),
        figures,
        [target],
    )
