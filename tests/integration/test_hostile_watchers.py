"""Watchers of the live tree (``/api/supervision/events``) that would cost the
server: too many of them, session churn sent to each, one that never reads, and
ones that vanish with writes pending (issue #12, item 3).

Each test runs against a real server while an honest chat client stays
connected (`attack`): it posts before and after the attack and must have each
post acked and delivered, ``/healthz`` must stay 200, and no actor may restart. The
misbehaving watchers are plain sockets speaking WebSocket by hand, since no
client library would misbehave on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import tornado.web
from tornado.iostream import IOStream

from chatter.config import Environment, Settings
from chatter.sessions import is_sessions_partition
from supervision import EventKind
from tests.harness.client import Client, Reader
from tests.harness.honest import attack
from tests.harness.raw import RawSocket
from tests.harness.server import ChatServer, ServerFactory
from tests.harness.waiting import eventually
from web.events import EVENTS_ROUTE_NAME, SupervisionEventsSocket
from web.limits import ConnectionLimits
from web.watchers import WATCHER_FLUSH_INTERVAL_S, WatcherHub

SMALL_SEND_BUFFER = 4096
"""What a test sets the server's kernel send buffer of a non-reading watcher
to: the kernel would otherwise take megabytes (tens of thousands of events)
before Tornado's own buffer, which the bound counts, holds anything."""

WATCHER_BOUND = 16 * 1024
"""The unread-output bound the dropping test runs the server with."""

CHURN_AT_ONCE = 20
"""Chat connections a churn round opens together (and then closes together):
few enough for the per-address caps at the edge."""


# -- looking at the server -----------------------------------------------------------------


def _route_options(server: ChatServer) -> dict[str, Any]:
    app = server.http.request_callback
    assert isinstance(app, tornado.web.Application)
    options: dict[str, Any] = app.wildcard_router.named_rules[EVENTS_ROUTE_NAME].target_kwargs
    return options


def hub_of(server: ChatServer) -> WatcherHub:
    hub = _route_options(server)["hub"]
    assert isinstance(hub, WatcherHub)
    return hub


def watcher_limits_of(server: ChatServer) -> ConnectionLimits:
    limits = _route_options(server)["watcher_limits"]
    assert isinstance(limits, ConnectionLimits)
    return limits


def watchers_open(server: ChatServer) -> int:
    """Watcher slots held now (read on the server's loop)."""
    limits = watcher_limits_of(server)
    total: int = server.call(lambda: limits.total)
    return total


def watching(server: ChatServer) -> int:
    """Watchers the hub is feeding now."""
    hub = hub_of(server)
    count: int = server.call(lambda: len(hub.watchers))
    return count


def _peer_port(watcher: object) -> int | None:
    """The client's port of a watcher socket; None once its socket is gone."""
    assert isinstance(watcher, SupervisionEventsSocket)
    connection = watcher.ws_connection
    if connection is None or connection.stream is None or connection.stream.closed():
        return None
    try:
        port: int = connection.stream.socket.getpeername()[1]
    except OSError:  # reset by the client
        return None
    return port


def _stream_on(hub: WatcherHub, port: int) -> IOStream | None:
    """The stream of the watcher whose client is on local `port`; None if it is
    gone. On the server's loop."""
    for watcher in hub.watchers:
        if _peer_port(watcher) == port:
            assert isinstance(watcher, SupervisionEventsSocket)
            assert watcher.ws_connection is not None
            return watcher.ws_connection.stream
    return None


def shrink_send_buffer(server: ChatServer, port: int) -> None:
    """Make the kernel hold little for the watcher on `port` (see SMALL_SEND_BUFFER)."""
    hub = hub_of(server)

    def shrink() -> None:
        stream = _stream_on(hub, port)
        assert stream is not None, f"no watcher on port {port}"
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_SEND_BUFFER)

    server.call(shrink)


def unread_output(server: ChatServer, port: int) -> int:
    """The bytes Tornado holds for the watcher on `port` (0 once it has gone)."""
    hub = hub_of(server)

    def pending() -> int:
        stream = _stream_on(hub, port)
        return 0 if stream is None else len(stream._write_buffer)

    return server.call(pending)


class Watching:
    """A well-behaved watcher: a library client that reads every frame as it comes."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    @classmethod
    async def connect(cls, server: ChatServer) -> Watching:
        url = f"ws://127.0.0.1:{server.port}/api/supervision/events"
        return cls(Reader(await Client.connect(url)))

    @property
    def ended(self) -> bool:
        return self.reader.ended

    def seen(self) -> list[dict[str, Any]]:
        """Every event received: the snapshot's, then each pushed one."""
        frames = self.reader.frames
        if not frames:
            return []
        snapshot, *live = frames
        assert snapshot["type"] == "events", snapshot
        assert all(frame["type"] == "event" for frame in live), live
        return [*snapshot["events"], *(frame["event"] for frame in live)]

    @property
    def live(self) -> list[dict[str, Any]]:
        """The events pushed since the snapshot."""
        return [frame["event"] for frame in self.reader.frames[1:]]

    async def until(self, holds: Callable[[], bool], what: str) -> None:
        await self.reader.until(holds, what)

    async def close(self) -> None:
        await self.reader.close()


@contextlib.contextmanager
def raw_sockets() -> Iterator[list[RawSocket]]:
    """A list to put raw sockets in; every one is closed at the end."""
    opened: list[RawSocket] = []
    try:
        yield opened
    finally:
        for raw in opened:
            raw.close()


def raw_watcher(
    server: ChatServer,
    opened: list[RawSocket],
    source: str = "127.0.0.1",
    headers: dict[str, str] | None = None,
    **options: Any,
) -> tuple[int, bytes, RawSocket]:
    """A raw watcher from `source`: the upgrade's status and body, and the socket."""
    raw = RawSocket(server.port, source=source, **options)
    opened.append(raw)
    status = raw.upgrade("/api/supervision/events", headers=headers)
    return status, raw.body, raw


# -- session churn -------------------------------------------------------------------------


def sessions(server: ChatServer, kind: EventKind) -> int:
    """Session events of `kind` since the server started."""
    return server.log.count(kind, supervisor=is_sessions_partition)


async def churn(server: ChatServer, connections: int) -> None:
    """Open `connections` chat connections together, then close them together,
    and wait until every one of their sessions has stopped."""
    stopped = sessions(server, EventKind.EXITED) + connections
    clients = await asyncio.gather(*(Client.connect(server.ws_url) for _ in range(connections)))
    for client in clients:
        await client.welcome()
        client.close()
    await asyncio.gather(*(client.closed() for client in clients))
    await server.log.reaches(
        lambda: sessions(server, EventKind.EXITED) >= stopped, "the sessions stop"
    )


# -- the caps ------------------------------------------------------------------------------


def test_watchers_over_the_per_address_cap_are_refused_with_503(
    start_server: ServerFactory,
) -> None:
    server = start_server(Settings(env=Environment.TEST, max_watchers=3, max_watchers_per_ip=2))
    refusal = {"error": "unavailable", "message": "too many watchers; retry later"}

    async def scenario(server: ChatServer) -> None:
        with raw_sockets() as opened:
            for _ in range(2):
                status, _, raw = raw_watcher(server, opened)
                assert status == 101
                raw.expect("events")  # the snapshot comes first
            status, body, _ = raw_watcher(server, opened)
            assert (status, json.loads(body)) == (503, refusal)
            assert watchers_open(server) == 2  # the refused one holds no slot

            # Watchers take no chat client's place: chat connections still come in.
            chat = await server.connect()
            assert (await chat.welcome())["type"] == "welcome"

            # The per-address cap leaves room for another address, up to the total cap.
            status, _, other = raw_watcher(server, opened, source="127.0.0.2")
            assert status == 101
            for source in ("127.0.0.1", "127.0.0.3"):
                status, body, _ = raw_watcher(server, opened, source=source)
                assert (status, json.loads(body)) == (503, refusal), source
            assert watchers_open(server) == 3

            # A watcher that vanishes gives its slot back, and so does an
            # upgrade refused for its Origin.
            opened[0].vanish()
            await eventually(lambda: watchers_open(server) == 2, "the vanished watcher's slot")
            status, _, _ = raw_watcher(
                server, opened, source="127.0.0.4", headers={"Origin": "http://evil.example"}
            )
            assert status == 403
            assert watchers_open(server) == 2

            # The slot given back lets a new one in from that address.
            status, _, again = raw_watcher(server, opened)
            assert status == 101
            again.expect("events")
            assert watchers_open(server) == 3
            status, _, _ = raw_watcher(server, opened, source="127.0.0.5")
            assert status == 503

            other.close()
            again.close()
            opened[1].close()
            await eventually(lambda: watchers_open(server) == 0, "every slot given back")

        hub = hub_of(server)
        assert server.call(lambda: (hub.subscribed, len(hub.watchers))) == (False, 0)

    attack(server, scenario)


# -- session churn -------------------------------------------------------------------------


def test_session_churn_reaches_watchers_batched(start_server: ServerFactory) -> None:
    server = start_server()
    hub = hub_of(server)

    async def scenario(server: ChatServer) -> None:
        loop = asyncio.get_running_loop()
        assert server.call(lambda: hub.flushes) == 0  # nobody watched yet

        # The watcher comes in while sessions start and stop: its snapshot and
        # its stream must meet with no event missing and none twice.
        began = loop.time()
        started = sessions(server, EventKind.STARTED)
        first_round = asyncio.create_task(churn(server, CHURN_AT_ONCE))
        await server.log.reaches(
            lambda: sessions(server, EventKind.STARTED) > started + 2, "churn under way"
        )
        watcher = await Watching.connect(server)
        await first_round
        for _ in range(2):
            await churn(server, CHURN_AT_ONCE)

        every_event = [event.to_dict() for event in server.tree.events.recent()]
        assert len(every_event) < 200  # all of them, since the server started
        await watcher.until(lambda: len(watcher.seen()) >= len(every_event), "the watcher has all")
        ended = loop.time()
        flushes = server.call(lambda: hub.flushes)

        assert watcher.seen() == every_event  # each once, in order
        churned = [e for e in watcher.seen() if is_sessions_partition(e["supervisor"])]
        assert len(churned) == 2 * 3 * CHURN_AT_ONCE + 1  # and the honest client's start
        # Batched: at most one write per flush interval, several events in each.
        assert flushes <= (ended - began) / WATCHER_FLUSH_INTERVAL_S + 1
        assert flushes <= len(watcher.live) / 2, (flushes, len(watcher.live))

        await watcher.close()

    attack(server, scenario)


# -- a watcher that does not read ----------------------------------------------------------


def test_a_watcher_that_does_not_read_is_dropped(start_server: ServerFactory) -> None:
    server = start_server(max_watcher_pending_output=WATCHER_BOUND)
    most_rounds = 100  # about 4,000 events: far more than the bound and the kernel's share

    async def scenario(server: ChatServer) -> None:
        reading = await Watching.connect(server)
        await reading.until(lambda: bool(reading.seen()), "the reading watcher's snapshot")

        with raw_sockets() as opened:
            status, _, slow = raw_watcher(server, opened, receive_buffer=4096)
            assert status == 101  # and from now on it reads nothing
            shrink_send_buffer(server, slow.local_port)
            await eventually(lambda: watching(server) == 2, "both watchers are fed")
            rounds = 0
            while watching(server) == 2 and rounds < most_rounds:
                await churn(server, CHURN_AT_ONCE)
                rounds += 1
            assert watching(server) == 1, f"not dropped after {rounds} rounds"
            assert await asyncio.to_thread(slow.closed_by_server)
            await eventually(lambda: watchers_open(server) == 1, "its slot is given back")

        # The reading watcher was never dropped and has every event once, in order.
        await churn(server, 1)
        since_start = [e.to_dict() for e in server.log.events]
        await reading.until(
            lambda: reading.seen()[-len(since_start) :] == since_start, "the reader caught up"
        )
        assert not reading.ended
        seen = [(e["time"], e["child"], e["kind"]) for e in reading.seen()]
        assert len(seen) == len(set(seen))
        await reading.close()

    attack(server, scenario)


# -- watchers that vanish ------------------------------------------------------------------


def test_closed_watchers_leave_no_unretrieved_task_exceptions(
    start_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = start_server()
    caplog.set_level(logging.WARNING)
    vanishing = 6

    async def scenario(server: ChatServer) -> None:
        reading = await Watching.connect(server)

        with raw_sockets() as opened:
            stuck = []
            for _ in range(vanishing):
                status, _, raw = raw_watcher(server, opened, receive_buffer=4096)
                assert status == 101  # and it reads nothing
                shrink_send_buffer(server, raw.local_port)
                stuck.append(raw)
            # Churn until each has writes pending in Tornado's buffer: the
            # writes whose futures fail when the socket goes.
            for _ in range(100):
                if all(unread_output(server, raw.local_port) for raw in stuck):
                    break
                await churn(server, CHURN_AT_ONCE)
            assert all(unread_output(server, raw.local_port) for raw in stuck)

            # They vanish while events still flow.
            flowing = asyncio.create_task(churn(server, CHURN_AT_ONCE))
            for raw in stuck:
                raw.vanish()
            await flowing
            await eventually(lambda: watchers_open(server) == 1, "the vanished ones are gone")

        await churn(server, CHURN_AT_ONCE)  # the hub writes on to the one left
        await reading.close()
        await eventually(lambda: watchers_open(server) == 0, "every watcher is gone")

    attack(server, scenario)
    gc.collect()  # an unretrieved exception is reported when its task is collected
    unretrieved = [r for r in caplog.records if "never retrieved" in r.getMessage()]
    assert unretrieved == []
    loop_errors = [r for r in caplog.records if r.name == "asyncio" and r.levelno >= logging.ERROR]
    assert loop_errors == []
