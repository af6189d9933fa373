"""The limits at the edge, per the wire contract: the Origin check, the frame
size, the connection caps, a bad resume cursor, a client that stops reading
and a peer that stops answering pings. Each against a real server; the
misbehaving clients are plain sockets speaking WebSocket by hand, since no
client library would misbehave on purpose."""

from __future__ import annotations

import asyncio
import json

import pytest

from chatter.config import Environment, Settings
from chatter.sessions import is_sessions_partition
from chatter.throttle import POST_BURST, Limit, NameClaimLimits
from supervision import EventKind
from tests.harness.client import Reader
from tests.harness.data import stored
from tests.harness.raw import raw_socket, upgrade_status, welcomed_raw_socket
from tests.harness.server import ChatServer, ServerFactory
from tests.harness.waiting import TIMEOUT_S, eventually

MAX_FRAME = 64 * 1024
SLOW_BOUND = 64 * 1024
"""The pending-output bound the slow-client test runs the server with."""


def sessions_started(server: ChatServer) -> int:
    """How many session actors the sessions supervisor has started so far."""
    return server.log.count(EventKind.STARTED, supervisor=is_sessions_partition)


async def sessions_adopted(server: ChatServer, count: int) -> int:
    """Wait until `count` sessions have been started (a session is welcomed
    before its partition has adopted it and said so); `count`."""
    await server.log.reaches(lambda: sessions_started(server) == count, f"{count} sessions started")
    return count


async def session_count_becomes(server: ChatServer, count: int) -> None:
    async def reached() -> bool:
        return len(await server.live_sessions()) == count

    await eventually(reached, f"{count} live sessions")


# -- Origin --------------------------------------------------------------------------------


def test_a_foreign_origin_is_refused_with_403(start_server: ServerFactory) -> None:
    server = start_server()
    for origin in ("http://evil.example", "https://evil.example", "http://127.0.0.1:1"):
        status = upgrade_status(server.port, headers={"Origin": origin})
        assert status == 403, origin
    assert server.open_connections() == 0  # the refused upgrades gave their slots back
    assert sessions_started(server) == 0


def test_the_same_host_and_no_origin_at_all_are_accepted(start_server: ServerFactory) -> None:
    server = start_server()

    async def scenario(server: ChatServer) -> None:
        same_host = await server.connect(origin=f"http://127.0.0.1:{server.port}")
        not_a_browser = await server.connect()
        for client in (same_host, not_a_browser):
            assert (await client.welcome())["type"] == "welcome"

    server.run(scenario)


def test_the_configured_public_host_is_accepted_as_an_origin(start_server: ServerFactory) -> None:
    server = start_server(Settings(env=Environment.TEST, public_host="chat.example.org"))

    async def scenario(server: ChatServer) -> None:
        for origin in ("https://chat.example.org", "https://CHAT.example.org:8443"):
            client = await server.connect(origin=origin)
            assert (await client.welcome())["type"] == "welcome"
        assert upgrade_status(server.port, headers={"Origin": "https://evil.example"}) == 403

    server.run(scenario)


# -- frame size ----------------------------------------------------------------------------


def _post_frame_of(size: int) -> str:
    """A post frame, first post with a username, whose UTF-8 text is exactly `size` bytes."""
    empty = json.dumps({"type": "post", "username": "big", "client_id": "big-1", "body": ""})
    frame = json.dumps(
        {"type": "post", "username": "big", "client_id": "big-1", "body": "b" * (size - len(empty))}
    )
    assert len(frame.encode()) == size
    return frame


def test_a_frame_over_64_kib_closes_the_socket_with_1009(start_server: ServerFactory) -> None:
    server = start_server()

    async def scenario(server: ChatServer) -> None:
        client = await server.welcomed()
        await client.send(_post_frame_of(MAX_FRAME + 1))
        assert await client.closed() == 1009
        await session_count_becomes(server, 0)

    server.run(scenario)


def test_a_frame_of_64_kib_is_handled_and_the_connection_stays(
    start_server: ServerFactory,
) -> None:
    server = start_server()

    async def scenario(server: ChatServer) -> None:
        client = await server.welcomed()
        await client.send(_post_frame_of(MAX_FRAME))
        assert (await client.expect("joined"))["username"] == "big"
        error = await client.expect("error")
        assert (error["code"], error["client_id"]) == ("invalid_body", "big-1")
        await client.post("a normal line", "small-1")  # still connected, still served
        assert (await client.expect("ack"))["client_id"] == "small-1"

    server.run(scenario)


# -- connection caps -----------------------------------------------------------------------


def test_a_connection_over_the_per_address_cap_is_refused_with_503_and_starts_no_session(
    start_server: ServerFactory,
) -> None:
    server = start_server(Settings(env=Environment.TEST, max_connections_per_ip=2))

    async def scenario(server: ChatServer) -> None:
        first, second = await server.welcomed(), await server.welcomed()
        assert len(await server.live_sessions()) == 2
        started = await sessions_adopted(server, 2)

        assert upgrade_status(server.port) == 503
        assert len(await server.live_sessions()) == 2
        assert sessions_started(server) == started  # refused before any actor
        assert server.open_connections() == 2

        # The cap is per address: another one still gets in.
        with welcomed_raw_socket(server.port, source="127.0.0.2"):
            pass
        await session_count_becomes(server, 2)

        first.close()  # frees one of 127.0.0.1's slots
        await eventually(lambda: server.open_connections() == 1, "the slot is released")
        third = await server.connect()
        assert (await third.welcome())["type"] == "welcome"
        assert upgrade_status(server.port) == 503  # and the cap holds again
        await second.post("still here", "s-1", username="second")
        assert (await second.expect("ack"))["client_id"] == "s-1"

    server.run(scenario)


def test_a_connection_over_the_total_cap_is_refused_with_503_and_starts_no_session(
    start_server: ServerFactory,
) -> None:
    server = start_server(
        Settings(env=Environment.TEST, max_connections=2, max_connections_per_ip=100)
    )

    async def scenario(server: ChatServer) -> None:
        await server.welcomed()  # holds one of the two places
        with welcomed_raw_socket(server.port, source="127.0.0.2"):
            started = await sessions_adopted(server, 2)

            for source in ("127.0.0.1", "127.0.0.3"):  # whatever the address
                assert upgrade_status(server.port, source=source) == 503
            assert len(await server.live_sessions()) == 2
            assert sessions_started(server) == started
        await eventually(lambda: server.open_connections() == 1, "the slot is released")
        third = await server.connect()
        assert (await third.welcome())["type"] == "welcome"
        assert upgrade_status(server.port, source="127.0.0.4") == 503

    server.run(scenario)


# -- a bad resume cursor -------------------------------------------------------------------


@pytest.mark.parametrize("after", ["abc", "1.5", "12abc", "", "%20"])
def test_an_after_that_is_not_an_integer_is_refused_with_400(
    start_server: ServerFactory, after: str
) -> None:
    server = start_server()
    assert upgrade_status(server.port, f"/ws?after={after}") == 400
    assert server.open_connections() == 0
    assert sessions_started(server) == 0


# -- a client that stops reading -----------------------------------------------------------


LONG_BODY = "\U0001f4ac" * 1990
"""Four bytes each in UTF-8: about 8 KB a frame, near the largest a body makes."""


async def post_and_go(server: ChatServer, name: str, after: int, acked: dict[int, float]) -> None:
    """A new connection (resuming after `after`, so its welcome is short) posts
    its burst of long messages as fast as the rate allows, notes when each ack
    came, and goes."""
    loop = asyncio.get_running_loop()
    client = await server.welcomed(after=after)
    client_ids = [f"{name}-{k}" for k in range(POST_BURST)]
    for k, client_id in enumerate(client_ids):
        identity = {"username": name} if k == 0 else {}
        await client.post(f"{client_id} {LONG_BODY}", client_id, **identity)
    waiting = set(client_ids)
    deadline = loop.time() + TIMEOUT_S
    while waiting:
        frame = await client.receive(max(0.01, deadline - loop.time()))
        assert frame is not None, f"{name} was closed ({client.closed_code})"
        if frame.get("client_id") in waiting:
            assert frame["type"] == "ack", frame
            waiting.discard(frame["client_id"])
            acked[frame["seq"]] = loop.time()
    client.close()
    await client.closed()


def test_a_client_that_stops_reading_is_dropped_and_the_others_miss_nothing(
    start_server: ServerFactory, database: str
) -> None:
    # Every wave's posters take new names, all from one address.
    crowd = NameClaimLimits(per_address=Limit(1000, 100.0))
    server = start_server(max_pending_output=SLOW_BOUND, name_claims=crowd)
    wave_size, most_waves = 10, 30  # the kernel's buffers take a few MB before the bound counts

    async def scenario(server: ChatServer) -> None:
        normal = await server.welcomed()
        normal_reader = Reader(normal)
        before = {ref.actor_urn for ref in await server.live_sessions()}

        with raw_socket(server.port, receive_buffer=4096) as slow:
            assert slow.upgrade() == 101  # and from now on it reads nothing
            await session_count_becomes(server, len(before) + 1)
            (slow_session,) = [r for r in await server.live_sessions() if r.actor_urn not in before]

            acked: dict[int, float] = {}  # seq -> when its sender had the ack
            waves_after_the_drop = 0
            for wave in range(most_waves):
                after = max(acked, default=0)
                await asyncio.gather(
                    *(post_and_go(server, f"w{wave}p{n}", after, acked) for n in range(wave_size))
                )
                if not slow_session.is_alive():
                    waves_after_the_drop += 1
                    if waves_after_the_drop == 2:
                        break
            assert not slow_session.is_alive(), f"not dropped after {len(acked)} messages"
            assert await asyncio.to_thread(slow.closed_by_server)

        # The normal client has every message, in order, once, and promptly.
        await normal_reader.first(lambda f: f.get("message", {}).get("seq") == max(acked))
        seqs = stored(database, "seq")
        assert seqs == sorted(acked)
        assert normal_reader.message_seqs() == seqs
        arrived = {f["message"]["seq"]: at for at, f in normal_reader.arrivals if "message" in f}
        lag_s = max(arrived[seq] - at for seq, at in acked.items())
        assert lag_s < 2.0, f"a message reached the normal client {lag_s:.2f} s after its ack"
        assert not normal_reader.ended
        assert normal_reader.errors() == []
        await session_count_becomes(server, 1)
        await normal_reader.stop()

    server.run(scenario)


# -- a peer that stops answering pings -----------------------------------------------------


def test_a_peer_that_does_not_answer_pings_is_dropped_and_its_name_freed(
    start_server: ServerFactory,
) -> None:
    server = start_server(ping_interval_s=0.5)

    async def scenario(server: ChatServer) -> None:
        watcher = await server.connect()  # a library client: it answers pings
        await watcher.welcome()
        with welcomed_raw_socket(server.port) as ghost:
            ghost.send_text(json.dumps({"type": "join", "username": "ghost"}))
            assert ghost.expect("joined")["username"] == "ghost"
            await watcher.expect("presence", joins=["ghost"])
            # From now on the ghost reads nothing and answers no ping.
            await watcher.expect("presence", leaves=["ghost"], timeout_s=15)
            assert await asyncio.to_thread(ghost.closed_by_server)
        await session_count_becomes(server, 1)
        taker = await server.welcomed()
        assert (await taker.join("ghost"))["username"] == "ghost"
        await watcher.expect("presence", joins=["ghost"])  # the watcher was never dropped

    server.run(scenario)
