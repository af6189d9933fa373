"""Scenario 4, joins with history: a crowd arriving at a room with a million messages.

On an embedded PostgreSQL 18 seeded with 1,000,000 messages (`chatter.seed`,
one COPY, then ``VACUUM ANALYZE`` as autovacuum would do soon after), one
Chatter server, warmed by a single connection, then:

1. **joins**: 200 clients start connecting within one second (evenly spread,
   from two client processes) and stay; each is timed from the start of its
   TCP connect to its whole ``welcome`` frame, which carries the newest 500
   messages: p50, p99 and max;
2. **history deep in the past**: four clients, each asking 50 ``history``
   pages (100 messages) one at a time, ``before`` drawn from the oldest tenth
   of the room: the time from request to the whole ``history`` frame;
3. **resume after 5,000 missed**: clients connect with ``?after=`` the
   newest seq minus 5,000, one at a time, each timed to its welcome, which
   carries all 5,000.

``python -m bench.history [--quick]`` runs it alone (quick: 20,000 messages,
50 joins, 20 pages, 3 resumes).
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass

from bench._scenario_clients import HistoryPages, Pages, TimedWelcomes, Welcomes
from bench._scenario_common import (
    ClientProcesses,
    embedded_database,
    main_for,
    percentile,
    running_server,
    tail,
    versions,
    work_directory,
)
from bench.fanout.servers import CHATTER, HostCpu, process_cost
from bench.section import Progress, Section, Target

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
    messages=1_000_000,
    joins=200,
    join_window_s=1.0,
    history_clients=4,
    pages_each=50,
    resumes=20,
)
QUICK = Settings(
    messages=20_000, joins=50, join_window_s=1.0, history_clients=2, pages_each=10, resumes=3
)


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
    assert row is not None
    assert row[1] == messages, row
    return seed_s, int(row[0])


def run(quick: bool, progress: Progress) -> Section:
    """Seed, serve, and time joins, history pages and resumes; everything started
    is stopped on return."""
    settings = QUICK if quick else FULL
    rng = random.Random(8)
    with work_directory("history-") as work_dir:
        progress("[history] starting an embedded PostgreSQL")
        with embedded_database(work_dir) as database:
            progress(f"[history] seeding {settings.messages:,} messages")
            seed_s, newest = _seed(database.conninfo, settings.messages, progress)
            progress(f"[history] seeded in {seed_s:.1f} s; starting Chatter")
            with running_server(CHATTER, work_dir, database.conninfo) as server:
                try:
                    with ClientProcesses(
                        CLIENT_PROCESSES, server.port, name="history-clients"
                    ) as c:
                        c.ask([TimedWelcomes((time.time(),)), None], Welcomes, ANSWER_TIMEOUT_S)

                        progress(
                            f"[history] {settings.joins} clients joining within "
                            f"{settings.join_window_s:g} s"
                        )
                        start = time.time() + LEAD_S
                        starts = [
                            start + i * settings.join_window_s / settings.joins
                            for i in range(settings.joins)
                        ]
                        c.send(
                            [
                                TimedWelcomes(tuple(starts[p::CLIENT_PROCESSES]), close=False)
                                for p in range(CLIENT_PROCESSES)
                            ]
                        )
                        time.sleep(max(0.0, start - time.time()))
                        before, host_before = process_cost(server.pid), HostCpu.now()
                        joins = c.gather(Welcomes, ANSWER_TIMEOUT_S)
                        after, host_after = process_cost(server.pid), HostCpu.now()
                        join_wall_s = time.time() - start

                        progress("[history] history pages deep in the past")
                        deep = max(2, settings.messages // 10)
                        plans = [
                            HistoryPages(
                                tuple(rng.randrange(101, deep) for _ in range(settings.pages_each))
                            )
                            for _ in range(settings.history_clients)
                        ]
                        pages: list[Pages] = []
                        for p in range(0, len(plans), CLIENT_PROCESSES):
                            batch = plans[p : p + CLIENT_PROCESSES]
                            batch += [None] * (CLIENT_PROCESSES - len(batch))  # type: ignore[list-item]
                            pages += c.ask(batch, Pages, ANSWER_TIMEOUT_S)

                        progress(f"[history] {settings.resumes} resumes after {MISSED:,} missed")
                        first = time.time() + LEAD_S
                        resume_starts = tuple(
                            first + i * RESUME_GAP_S for i in range(settings.resumes)
                        )
                        resumes = c.ask(
                            [TimedWelcomes(resume_starts, after=newest - MISSED), None],
                            Welcomes,
                            ANSWER_TIMEOUT_S,
                        )[0]
                except Exception as error:
                    raise RuntimeError(f"{error}\n{tail(server.log)}") from error
            postgres = database.version

    failed = sum(j.failed for j in joins) + resumes.failed
    if failed:
        first_error = next(w.first_error for w in [*joins, resumes] if w.failed)
        raise RuntimeError(f"{failed} connections failed; first: {first_error}")
    welcome_ms = [latency for j in joins for latency in j.latencies_ms]
    upgrade_ms = [latency for j in joins for latency in j.upgrade_ms]
    welcome_counts = [n for j in joins for n in j.messages]
    page_ms = [latency for p in pages for latency in p.latencies_ms]
    page_counts = [n for p in pages for n in p.messages]
    figures = {
        "messages_stored": float(settings.messages),
        "seed_s": seed_s,
        "joins": float(len(welcome_ms)),
        "welcome_messages_min": float(min(welcome_counts)),
        "welcome_p50_ms": percentile(welcome_ms, 50),
        "welcome_p99_ms": percentile(welcome_ms, 99),
        "welcome_max_ms": max(welcome_ms),
        "upgrade_p50_ms": percentile(upgrade_ms, 50),
        "upgrade_p99_ms": percentile(upgrade_ms, 99),
        "join_server_cpu_percent": 100.0 * (after.cpu_s - before.cpu_s) / join_wall_s,
        "join_host_busy_percent": host_after.busy_percent_since(host_before),
        "history_pages": float(len(page_ms)),
        "history_page_messages_min": float(min(page_counts)),
        "history_p50_ms": percentile(page_ms, 50),
        "history_p99_ms": percentile(page_ms, 99),
        "resumes": float(len(resumes.latencies_ms)),
        "resume_messages_min": float(min(resumes.messages)),
        "resume_p50_ms": percentile(resumes.latencies_ms, 50),
        "resume_max_ms": max(resumes.latencies_ms),
    }
    p99 = figures["welcome_p99_ms"]
    full_welcomes = figures["welcome_messages_min"] == WELCOME_MESSAGES
    target = Target(
        name=f"welcome p99 under {TARGET_WELCOME_P99_MS:g} ms, 200 joins in a second, "
        f"{WELCOME_MESSAGES} messages each",
        met=p99 < TARGET_WELCOME_P99_MS and full_welcomes,
        measured=f"{p99:.1f} ms"
        + (
            ""
            if not quick
            else f" (quick run: {settings.joins} joins, {settings.messages:,} messages)"
        ),
        detail=(
            ""
            if p99 < TARGET_WELCOME_P99_MS
            else f"{p99 - TARGET_WELCOME_P99_MS:.1f} ms over "
            f"({p99 / TARGET_WELCOME_P99_MS:.2f}x the target)"
        ),
    )
    rows = [
        (
            f"welcome (newest 500), {len(welcome_ms)} joins in {settings.join_window_s:g} s",
            welcome_ms,
            f"{min(welcome_counts)}",
        ),
        ("of which: the WebSocket handshake answered (101)", upgrade_ms, "-"),
        (
            f"history page deep in the past (before < {settings.messages // 10:,})",
            page_ms,
            f"{min(page_counts)}",
        ),
        (
            f"resume after {MISSED:,} missed, one at a time",
            resumes.latencies_ms,
            f"{min(resumes.messages):,}",
        ),
    ]
    lines = [
        "| what | count | messages each | p50 | p99 | max |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, values, each in rows:
        lines.append(
            f"| {label} | {len(values)} | {each} | {percentile(values, 50):.1f} ms "
            f"| {percentile(values, 99):.1f} ms | {max(values):.1f} ms |"
        )
    notes = [
        f"{settings.messages:,} messages stored (seeded in {seed_s:.1f} s with COPY); "
        "times run from the start of the TCP connect (or the request) to the whole frame "
        "at the client; clients run in separate processes on the same machine.",
        f"While the crowd joined ({join_wall_s:.1f} s), Chatter used "
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
        f"Measured with {postgres}, {versions('tornado', 'pykka', 'psycopg')}.",
    ]
    return Section(
        title="Joins with history (scenario 4)",
        markdown="\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes),
        figures=figures,
        targets=[target],
    )


def main() -> int:
    return main_for("history", run)


if __name__ == "__main__":
    raise SystemExit(main())
