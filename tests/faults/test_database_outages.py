"""PostgreSQL stopped under live traffic, for a short and a long outage, and
restarted abruptly during a burst: posts are refused as `unavailable`,
clients retry with the same client_id, and everything lands exactly once when
the database is back, without a crash loop and with memory bounded.

An outage lasts until what it does has happened, waited for and never timed: a
short one ends once posts and a newcomer are refused; a long one once every
poster backs off as long as it ever does and has stopped writing (its outbox
full), and the newcomer was refused again and again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chatter.database import EmbeddedPostgres
from supervision import EventKind, inject_crash
from tests.faults._traffic import ChatUser, Crowd, while_chatting
from tests.harness.server import ChatServer
from tests.harness.waiting import eventually

MEMORY_GROWTH_BOUND = 64 * 1024 * 1024
"""What this process (server and clients) may grow by during an outage."""
OUTBOX_LIMIT = 12
"""Messages a poster leaves unacked before it stops writing, in the outage
tests: reached in a few seconds of outage (the crowd's usual 40 takes twenty),
and sent again in a few seconds once the database is back."""
LONG_OUTAGE_TIMEOUT_S = 60.0
"""How long a long outage may take to do all it does (about 6 s on an idle machine)."""


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@contextlib.asynccontextmanager
async def database_down(postgres: EmbeddedPostgres, mode: str = "fast") -> AsyncIterator[None]:
    """PostgreSQL stopped (``pg_ctl stop -m mode``) for the block, and running
    again after it, however it ends. Both run off the event loop, which goes on
    serving the clients meanwhile (their pongs, their reads)."""
    try:
        await asyncio.to_thread(postgres.stop, mode)
        yield
    finally:
        await asyncio.to_thread(postgres.start_again)


def long_outage_done(crowd: Crowd, latecomer: ChatUser) -> bool:
    """Whether the outage has done what a long one does: every poster backs off
    as long as it ever does and has stopped writing, and the latecomer was
    refused again and again (reconnecting each time)."""
    posters = [user for user in crowd.posters if user is not latecomer]
    backed_off = all(u.backing_off_longest and u.outbox_full for u in posters)
    return backed_off and latecomer.unavailable >= 5


@pytest.mark.parametrize("length", ["short", "long"])
def test_a_database_outage_under_traffic_loses_nothing_and_restarts_nothing(
    server: ChatServer, database: str, postgres: EmbeddedPostgres, length: str
) -> None:
    async def outage(crowd: Crowd) -> None:
        latecomer = ChatUser("latecomer", server.ws_url, crowd.changes)
        async with database_down(postgres):
            await crowd.until(lambda: crowd.unavailable >= 6, "posts refused as unavailable")
            # Someone opens the chat during the outage: refused, and retrying.
            crowd.users.append(latecomer)
            crowd.launch([latecomer])
            await crowd.until(lambda: latecomer.unavailable >= 1, "latecomer refused")
            before = peak = rss_bytes()

            def done() -> bool:
                nonlocal peak
                peak = max(peak, rss_bytes())
                return long_outage_done(crowd, latecomer)

            if length == "long":
                await eventually(done, crowd.state, LONG_OUTAGE_TIMEOUT_S)
            refused = crowd.unavailable
        latecomer.type_messages(True)
        await crowd.until(lambda: latecomer.joined, "latecomer joined", 30)
        await crowd.lost_nothing(database, server.url, reconnects_allowed=["latecomer"])
        assert refused >= 6
        assert peak - before < MEMORY_GROWTH_BOUND, f"grew {(peak - before) >> 20} MiB"

    while_chatting(server.ws_url, outage, posters=6, acked=15, outbox_limit=OUTBOX_LIMIT)
    assert server.log.restarts() == []


def test_an_immediate_database_restart_during_a_burst_loses_nothing(
    server: ChatServer, database: str, postgres: EmbeddedPostgres
) -> None:
    async def crash_of_the_database(crowd: Crowd) -> None:
        # As a crash would: no checkpoint, connections cut mid-transaction.
        async with database_down(postgres, "immediate"):
            pass  # and started again at once
        await crowd.lost_nothing(database, server.url, more_acks=40)

    while_chatting(server.ws_url, crash_of_the_database, posters=16, acked=40)
    assert server.log.restarts() == []


def test_persistence_killed_during_an_outage_comes_back_and_loses_nothing(
    server: ChatServer, database: str, postgres: EmbeddedPostgres
) -> None:
    async def kill_during_the_outage(crowd: Crowd) -> None:
        async with database_down(postgres):
            await crowd.until(lambda: crowd.unavailable >= 6, "posts refused as unavailable")
            persistence = server.whereis("persistence")
            inject_crash(persistence, "fault suite: persistence, database down")
            # Its new incarnation starts without the database, and refuses
            # posts as unavailable until it is back.
            await asyncio.to_thread(server.log.wait, EventKind.RESTARTED, "persistence", 10.0)
            refused = crowd.unavailable
            await crowd.until(
                lambda: crowd.unavailable >= refused + 6, "the new incarnation refusing posts"
            )
        await crowd.lost_nothing(database, server.url)

    while_chatting(server.ws_url, kill_during_the_outage, posters=6, acked=15)
    assert [e.child for e in server.log.restarts()] == ["persistence"]  # and none gave up
