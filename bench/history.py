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
import time
from dataclasses import dataclass

from bench.clients import ClientProcesses, Open, Opened, Paged, Pages
from bench.report import Progress, Section, Target, bullets, table
from bench.servers import CHATTER, Meter, RunningServer, embedded_database, running_server
from bench.stats import percent, percentile, percentiles

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


def _measure(
    server: RunningServer, settings: Settings, newest: int, progress: Progress
) -> dict[str, list[float]]:
    """Every time measured, by what (ms), and the messages each answer carried."""
    rng = random.Random(8)
    deep = _deep(settings)
    with ClientProcesses(CLIENT_PROCESSES, server, "history") as c:
        c.ask(Open(1, close=True), Opened, ANSWER_TIMEOUT_S)  # a warm-up
        progress(f"[history] {settings.joins} joining within {settings.join_window_s:g} s")
        c.send(Open(settings.joins, starts=_crowd(settings.joins, settings.join_window_s)))
        time.sleep(LEAD_S)
        meter = Meter(server.pid)
        joins = c.gather(Opened, ANSWER_TIMEOUT_S)
        cost = meter.stop()

        progress("[history] history pages deep in the past")
        pages: list[Paged] = []
        for _ in range(0, settings.history_clients, CLIENT_PROCESSES):
            befores = [
                tuple(rng.randrange(101, deep) for _ in range(settings.pages_each))
                for _ in range(CLIENT_PROCESSES)
            ]
            pages += c.ask([Pages(b) for b in befores], Paged, ANSWER_TIMEOUT_S)

        progress(f"[history] {settings.resumes} resumes after {MISSED:,} missed")
        starts = _crowd(settings.resumes, 0.0, RESUME_GAP_S)
        resume = Open(
            settings.resumes, starts=starts, query=f"?after={newest - MISSED}", close=True
        )
        resumes = c.ask(resume, Opened, ANSWER_TIMEOUT_S)
    return {
        "welcome": [x for j in joins for x in j.welcome_ms],
        "welcome_messages": [n for j in joins for n in j.welcome_messages],
        "upgrade": [x for j in joins for x in j.upgrade_ms],
        "history": [x for p in pages for x in p.latencies_ms],
        "history_messages": [n for p in pages for n in p.messages],
        "resume": [x for r in resumes for x in r.welcome_ms],
        "resume_messages": [n for r in resumes for n in r.welcome_messages],
        "join": [cost.window_s, percent(cost.cpu_s, cost.window_s), cost.host_busy_percent],
    }


def _deep(settings: Settings) -> int:
    """History pages are asked before seqs below this: the oldest tenth of the room."""
    return max(2, settings.messages // 10)


def run(quick: bool, progress: Progress) -> Section:
    """Seed, serve, and time joins, history pages and resumes; everything started
    is stopped on return."""
    settings = QUICK if quick else FULL
    with embedded_database("history", progress) as database:
        progress(f"[history] seeding {settings.messages:,} messages")
        seed_s, newest = _seed(database.conninfo, settings.messages, progress)
        progress(f"[history] seeded in {seed_s:.1f} s; starting Chatter")
        with running_server(CHATTER, database.work_dir, database) as server:
            m = _measure(server, settings, newest, progress)
    welcome_p50, welcome_p99, welcome_max = percentiles(m["welcome"], 50, 99, 100)
    join_wall_s, join_cpu, join_busy = m["join"]
    figures = {
        "messages_stored": float(settings.messages),
        "seed_s": seed_s,
        "joins": float(len(m["welcome"])),
        "welcome_messages_min": float(min(m["welcome_messages"])),
        "welcome_p50_ms": welcome_p50,
        "welcome_p99_ms": welcome_p99,
        "welcome_max_ms": welcome_max,
        "upgrade_p50_ms": percentile(m["upgrade"], 50),
        "upgrade_p99_ms": percentile(m["upgrade"], 99),
        "join_server_cpu_percent": join_cpu,
        "join_host_busy_percent": join_busy,
        "history_pages": float(len(m["history"])),
        "history_page_messages_min": float(min(m["history_messages"])),
        "history_p50_ms": percentile(m["history"], 50),
        "history_p99_ms": percentile(m["history"], 99),
        "resumes": float(len(m["resume"])),
        "resume_messages_min": float(min(m["resume_messages"])),
        "resume_p50_ms": percentile(m["resume"], 50),
        "resume_max_ms": percentile(m["resume"], 100),
    }
    full = figures["welcome_messages_min"] == WELCOME_MESSAGES
    met = welcome_p99 < TARGET_WELCOME_P99_MS and full
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
        else f"{welcome_p99 - TARGET_WELCOME_P99_MS:+.1f} ms against the target"
        + ("" if full else f"; a welcome held only {figures['welcome_messages_min']:.0f} messages"),
    )
    rows = []
    for label, key in (
        (
            f"welcome (newest 500), {len(m['welcome'])} joins in {settings.join_window_s:g} s",
            "welcome",
        ),
        ("of which: the WebSocket handshake answered (101)", "upgrade"),
        (f"history page deep in the past (before < {_deep(settings):,})", "history"),
        (f"resume after {MISSED:,} missed, one at a time", "resume"),
    ):
        p50, p99, top = percentiles(m[key], 50, 99, 100)
        each = f"{min(m[key + '_messages']):,}" if key + "_messages" in m else "-"
        rows.append(
            [label, f"{len(m[key])}", each, f"{p50:.1f} ms", f"{p99:.1f} ms", f"{top:.1f} ms"]
        )
    notes = [
        f"{settings.messages:,} messages stored (seeded in {seed_s:.1f} s with COPY) in "
        f"{database.version}; times run from the start of the TCP connect (or the request) to the "
        "whole frame at the client; clients run in separate processes on the same machine.",
        f"While the crowd joined ({join_wall_s:.1f} s), Chatter used {join_cpu:.0f}% of one "
        f"CPU and the machine was {join_busy:.0f}% busy over its {os.cpu_count()} CPUs "
        "(the server, PostgreSQL, the clients, and anything else running).",
    ]
    return Section(
        "Joins with history (scenario 4)",
        table("what|count|messages each|p50|p99|max", rows, "<>>>>>") + "\n\n" + bullets(notes),
        figures,
        [target],
    )
