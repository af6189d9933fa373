"""PostgreSQL stopped under live traffic, for a short and a long outage, and
restarted abruptly during a burst: posts are refused as `unavailable`,
clients retry with the same client_id, and everything lands exactly once when
the database is back, without a crash loop and with memory bounded."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatter.database import EmbeddedPostgres
from supervision import EventKind, inject_crash
from tests.faults._traffic import ChatUser, chatting
from tests.harness.server import ChatServer

MEMORY_GROWTH_BOUND = 64 * 1024 * 1024
"""What this process (server and clients) may grow by during an outage."""


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@contextlib.contextmanager
def database_back_at_the_end(postgres: EmbeddedPostgres) -> Iterator[None]:
    """Whatever happens, the shared server is running again afterwards."""
    try:
        yield
    finally:
        postgres.start_again()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("outage_s", [5, pytest.param(60, marks=pytest.mark.slow)])
def test_a_database_outage_under_traffic_loses_nothing_and_restarts_nothing(
    server: ChatServer,
    database: str,
    postgres: EmbeddedPostgres,
    outage_s: int,
) -> None:
    async def scenario() -> None:
        async with chatting(server.ws_url, posters=6, acked=15) as crowd:
            latecomer = ChatUser("latecomer", server.ws_url, crowd.changes)
            with database_back_at_the_end(postgres):
                await asyncio.to_thread(postgres.stop, "fast")
                loop = asyncio.get_running_loop()
                stopped_at = loop.time()
                await crowd.until(lambda: crowd.unavailable >= 6, "posts refused as unavailable")
                # Someone opens the chat during the outage: refused, and retrying.
                crowd.users.append(latecomer)
                crowd.launch([latecomer])
                await crowd.until(lambda: latecomer.unavailable >= 1, "latecomer refused")
                before = peak = rss_bytes()
                while (left := stopped_at + outage_s - loop.time()) > 0:
                    await asyncio.sleep(min(1.0, left))  # the outage's length is the fault
                    peak = max(peak, rss_bytes())
                refused = crowd.unavailable
            latecomer.type_messages(True)
            await crowd.until(lambda: latecomer.joined, "latecomer joined", 30)
            await crowd.lost_nothing(database, server.url, reconnects_allowed=["latecomer"])
            assert refused >= 6
            assert peak - before < MEMORY_GROWTH_BOUND, f"grew {(peak - before) >> 20} MiB"

    asyncio.run(scenario())
    assert server.log.restarts() == []


def test_an_immediate_database_restart_during_a_burst_loses_nothing(
    server: ChatServer, database: str, postgres: EmbeddedPostgres
) -> None:
    async def scenario() -> None:
        async with chatting(server.ws_url, posters=16, acked=40) as crowd:
            with database_back_at_the_end(postgres):
                # As a crash would: no checkpoint, connections cut mid-transaction.
                await asyncio.to_thread(postgres.stop, "immediate")
            await crowd.lost_nothing(database, server.url, more_acks=40)

    asyncio.run(scenario())
    assert server.log.restarts() == []


def test_persistence_killed_during_an_outage_comes_back_and_loses_nothing(
    server: ChatServer, database: str, postgres: EmbeddedPostgres
) -> None:
    async def scenario() -> None:
        async with chatting(server.ws_url, posters=6, acked=15) as crowd:
            with database_back_at_the_end(postgres):
                await asyncio.to_thread(postgres.stop, "fast")
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

    asyncio.run(scenario())
    assert [e.child for e in server.log.restarts()] == ["persistence"]  # and none gave up
