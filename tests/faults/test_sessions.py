"""Faults confined to one connection: a session actor that crashes, and a
client that stops reading. Everyone else carries on, losing nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import pykka

from chatter.sessions import is_sessions_partition
from supervision import EventKind, inject_crash, which_children
from tests.faults._traffic import Crowd, chatting
from tests.harness.raw import raw_socket
from tests.harness.server import ChatServer, ServerFactory
from tests.harness.waiting import EventLog

CLOSE_INTERNAL_ERROR = 1011
SLOW_BOUND = 64 * 1024
"""The pending-output bound the slow-reader test runs the server with."""


def test_a_session_crash_under_traffic_affects_only_its_own_connection(
    server: ChatServer, database: str
) -> None:
    async def scenario() -> None:
        crowd = Crowd(server.ws_url, posters=6, viewers=1)
        victim = crowd.users[0]
        try:
            await crowd.start([victim])
            (victims_session,) = await server.live_sessions()
            await crowd.start()
            crowd.type_messages(True)
            await crowd.acked_at_least(20)
            inject_crash(victims_session, "fault suite: one session")
            await crowd.until(lambda: victim.connects == 2 and victim.joined, "victim is back")
            await crowd.lost_nothing(database, server.url, reconnects_allowed=[victim.name])
            assert victim.closes == [CLOSE_INTERNAL_ERROR]
            assert len(await server.live_sessions()) == len(crowd.users)
        finally:
            await crowd.close()

    asyncio.run(scenario())
    exited = [e for e in server.log.events if e.kind is EventKind.EXITED]
    crashed = [e for e in exited if is_sessions_partition(e.supervisor)]
    assert [e.reason for e in crashed if "crash" in (e.reason or "")], crashed
    assert server.log.count(EventKind.RESTARTED) == 0


async def started_session(server: ChatServer, log: EventLog) -> pykka.ActorRef[Any]:
    """The one session started since `log` began, once its supervisor says so."""
    event = await asyncio.to_thread(
        log.wait_for,
        lambda e: is_sessions_partition(e.supervisor) and e.kind is EventKind.STARTED,
    )
    assert event.supervisor is not None
    partition = server.whereis(event.supervisor)
    (ref,) = [c.ref for c in await which_children(partition) if c.id == event.child]
    assert ref is not None
    return ref


LONG_PADDING = " " + "\U0001f4ac" * 1900
"""About 7.6 KB of UTF-8 per message, so a reader that stops falls behind fast."""


def test_a_client_that_stops_reading_is_dropped_without_slowing_anyone(
    start_server: ServerFactory, database: str
) -> None:
    server = start_server(max_pending_output=SLOW_BOUND)

    async def scenario() -> None:
        async with chatting(server.ws_url, posters=10, padding=LONG_PADDING) as crowd:
            log = EventLog(server.tree.events)
            with raw_socket(server.port, receive_buffer=4096) as slow:
                assert slow.upgrade() == 101  # and from now on it reads nothing
                slow_session = await started_session(server, log)
                await crowd.until(
                    lambda: not slow_session.is_alive(), "the slow reader dropped", 60
                )
                assert await asyncio.to_thread(slow.closed_by_server)
            await crowd.lost_nothing(database, server.url)
            waits = sorted(w for u in crowd.users for w in u.ack_waits)
            assert waits[-1] < 2.0, f"an ack took {waits[-1]:.2f} s while a reader lagged"

    asyncio.run(scenario())
