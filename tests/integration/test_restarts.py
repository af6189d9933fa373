"""Restarts lose nothing and disconnect nobody: each actor of the tree crashes
from inside (as a fault would) under live clients, and the clients see only
what the contract promises."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import psycopg
import pykka
import pytest

from chatter.session import Inbound
from chatter.throttle import POST_BURST
from chatter.tree import SESSIONS
from supervision import EventKind, SupervisionEvent, inject_crash, which_children
from tests.conftest import EventLog
from tests.integration.chat_server import TIMEOUT_S, ChatServer, Client, run_scenario

Scenario = Callable[[ChatServer], Awaitable[None]]


@pytest.fixture
def server(database: str) -> Iterator[ChatServer]:
    chat = ChatServer(database)
    yield chat
    chat.stop()


@pytest.fixture
def log(server: ChatServer) -> EventLog:
    return EventLog(server.tree.events)


def run(server: ChatServer, scenario: Scenario) -> None:
    asyncio.run(run_scenario(server, scenario))


def whereis(server: ChatServer, name: str) -> pykka.ActorRef[Any]:
    ref = server.tree.registry.whereis(name)
    assert ref is not None, f"{name} is not registered"
    return ref


async def restarted(log: EventLog, child: str) -> None:
    """Wait (off the loop, so clients keep reading) for `child`'s RESTARTED event."""
    await asyncio.to_thread(log.wait, EventKind.RESTARTED, child, TIMEOUT_S)


async def live_sessions(server: ChatServer) -> list[pykka.ActorRef[Any]]:
    children = await which_children(whereis(server, SESSIONS))
    return [c.ref for c in children if c.ref is not None and c.ref.is_alive()]


async def connect_with_session(server: ChatServer) -> tuple[Client, pykka.ActorRef[Any]]:
    """A new, welcomed client and its session actor."""
    before = {ref.actor_urn for ref in await live_sessions(server)}
    client = await server.connect()
    await client.welcome()
    (session,) = [ref for ref in await live_sessions(server) if ref.actor_urn not in before]
    return client, session


def message_seqs(client: Client) -> list[int]:
    """The seqs of every message frame the client received, in order."""
    return [f["message"]["seq"] for f in client.frames if f["type"] == "message"]


async def read_through(client: Client, last_seq: int, timeout_s: float = TIMEOUT_S) -> list[int]:
    """Read until the message `last_seq` has come (or the time is up); every
    message seq received, in order."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while last_seq not in message_seqs(client):
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        try:
            if await client.receive(remaining) is None:
                break
        except TimeoutError:
            break
    return message_seqs(client)


async def first_unread(
    client: Client, matches: Callable[[dict[str, Any]], bool], timeout_s: float = TIMEOUT_S
) -> dict[str, Any]:
    """The first unread frame that `matches`, reading more until it comes;
    other frames stay unread, in order (as `Client.expect` does)."""
    for index, frame in enumerate(client.unread):
        if matches(frame):
            return client.unread.pop(index)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        received = await client.receive(max(0.01, deadline - loop.time()))
        if received is None:
            raise AssertionError(f"closed ({client.closed_code}) while waiting")
        if matches(received):
            return received
        client.unread.append(received)


async def answer_to(client: Client, client_id: str) -> dict[str, Any]:
    """The ack or error answering the post `client_id`."""
    return await first_unread(
        client, lambda f: f["type"] in ("ack", "error") and f.get("client_id") == client_id
    )


async def first_of(client: Client, *kinds: str) -> dict[str, Any]:
    """The first unread frame of any of `kinds`."""
    return await first_unread(client, lambda f: f["type"] in kinds)


def stored_seqs(database: str) -> list[int]:
    with psycopg.connect(database) as conn:
        return [row[0] for row in conn.execute("SELECT seq FROM messages ORDER BY seq")]


def online(welcome_or_presence: dict[str, Any]) -> list[str]:
    return [u["username"] for u in welcome_or_presence["users"] if u["online"]]


# -- the room ------------------------------------------------------------------------------


def test_a_room_crash_while_clients_post_loses_no_message_and_disconnects_nobody(
    server: ChatServer, log: EventLog, database: str
) -> None:
    posters_count, watchers_count = 8, 2

    async def scenario(server: ChatServer) -> None:
        posters = [await server.connect() for _ in range(posters_count)]
        watchers = [await server.connect() for _ in range(watchers_count)]
        everyone = posters + watchers
        for client in everyone:
            await client.welcome()
        acks: list[int] = []
        some_acked = asyncio.Event()
        old_room = whereis(server, "room")

        async def post(poster: Client, n: int) -> None:
            client_ids = [f"p{n}-{k}" for k in range(POST_BURST)]
            for k, client_id in enumerate(client_ids):  # a burst, not waiting for acks
                identity = {"username": f"poster-{n}"} if k == 0 else {}
                await poster.post(f"message {k} from poster {n}", client_id, **identity)
            for client_id in client_ids:
                answer = await answer_to(poster, client_id)
                assert answer["type"] == "ack", answer
                acks.append(answer["seq"])
                if len(acks) >= posters_count:
                    some_acked.set()

        async def crash_the_room() -> None:
            await asyncio.wait_for(some_acked.wait(), TIMEOUT_S)
            inject_crash(old_room)  # while posts are still in flight
            await restarted(log, "room")

        await asyncio.gather(crash_the_room(), *(post(p, n) for n, p in enumerate(posters)))
        assert whereis(server, "room") is not old_room
        await watchers[0].post("after the restart", "w-1", username="watcher")
        acks.append((await answer_to(watchers[0], "w-1"))["seq"])

        stored = stored_seqs(database)
        assert sorted(acks) == stored
        for client in everyone:
            assert await read_through(client, stored[-1]) == stored  # once each, in order
            assert client.closed_code is None
        assert len(await live_sessions(server)) == len(everyone)

    run(server, scenario)


# -- presence ------------------------------------------------------------------------------


def test_a_presence_crash_keeps_every_online_name_held_and_presence_working(
    server: ChatServer, log: EventLog
) -> None:
    async def scenario(server: ChatServer) -> None:
        ann = await server.connect()
        await ann.welcome()
        bob, bob_session = await connect_with_session(server)
        carol = await server.connect()
        await carol.welcome()
        await ann.join("ann")
        for client in (bob, carol):
            await client.expect("presence", joins=["ann"])

        presence = whereis(server, "presence")

        def crash_with_a_claim_arriving() -> None:
            # On the server's loop, in one turn: presence crashes, and bob's
            # frame claiming "ann" reaches his session right behind the crash,
            # as a frame read from his socket at that moment would. (Sent over
            # the socket instead, it lands there most of the time, not always.)
            inject_crash(presence)
            bob_session.tell(Inbound(json.dumps({"type": "join", "username": "ann"})))

        server.call(crash_with_a_claim_arriving)
        answer = await first_of(bob, "joined", "error")
        assert (answer["type"], answer.get("code")) == ("error", "username_taken"), answer
        await restarted(log, "presence")
        for client in (ann, bob, carol):  # a fresh picture for everyone (no user count:
            # that comes with a join as it is recorded)
            assert await client.expect("presence", total_users=None) == {
                "type": "presence",
                "joins": ["ann"],
                "leaves": [],
            }
        await bob.send({"type": "join", "username": "ANN"})  # after the restart
        answer = await first_of(bob, "joined", "error")
        assert (answer["type"], answer.get("code")) == ("error", "username_taken"), answer
        watcher = await server.connect()
        assert online(await watcher.welcome()) == ["ann"]

        await carol.join("carol")  # joins and leaves work as before
        for client in (ann, bob, watcher):
            await client.expect("presence", joins=["carol"])
        await ann.send({"type": "leave"})
        await ann.expect("left")
        for client in (bob, carol, watcher):
            await client.expect("presence", leaves=["ann"])
        assert (await bob.join("ann"))["username"] == "ann"  # now it is free
        for client in (carol, watcher):
            await client.expect("presence", joins=["ann"])

    run(server, scenario)


# -- persistence ---------------------------------------------------------------------------


def test_a_persistence_crash_is_restarted_and_a_retried_post_is_stored_once(
    server: ChatServer, log: EventLog, database: str
) -> None:
    async def scenario(server: ChatServer) -> None:
        ann, ann_session = await connect_with_session(server)
        bob = await server.connect()
        await bob.welcome()
        await ann.join("ann")
        await ann.post("before the crash", "before")
        await ann.expect("ack", client_id="before")

        persistence = whereis(server, "persistence")
        during = {"type": "post", "body": "during the crash", "client_id": "during"}

        def post_then_crash() -> None:
            # On the server's loop: ann's post reaches her session, and the
            # crash is sent right behind the store it makes, so that the
            # message is most likely caught in the batch the crash fails.
            ann_session.tell(Inbound(json.dumps(during)))
            server.loop.call_soon(inject_crash, persistence)

        server.call(post_then_crash)
        answer = await answer_to(ann, "during")
        await restarted(log, "persistence")
        for _ in range(3):  # a post caught by the crash may be refused: retry it
            if answer["type"] == "ack":
                break
            assert answer["code"] == "unavailable", answer
            await ann.send(during)
            answer = await answer_to(ann, "during")
        assert answer["type"] == "ack", answer

        await ann.post("after the crash", "after")
        await ann.expect("ack", client_id="after")
        with psycopg.connect(database) as conn:
            rows = conn.execute("SELECT client_id FROM messages ORDER BY seq").fetchall()
        assert [row[0] for row in rows] == ["before", "during", "after"]
        stored = stored_seqs(database)
        for client in (ann, bob):
            assert await read_through(client, stored[-1]) == stored
            assert client.closed_code is None

    run(server, scenario)


# -- sessions ------------------------------------------------------------------------------


def session_exits(log: EventLog) -> list[SupervisionEvent]:
    return [e for e in log.events if e.supervisor == SESSIONS and e.kind is EventKind.EXITED]


def test_a_session_crash_closes_only_its_own_connection_with_1011_and_frees_its_name(
    server: ChatServer, log: EventLog
) -> None:
    async def scenario(server: ChatServer) -> None:
        ann, ann_session = await connect_with_session(server)
        bob, carol = await server.connect(), await server.connect()
        await bob.welcome()
        await carol.welcome()
        await ann.join("ann")
        await bob.join("bob")
        for client in (bob, carol):
            await client.expect("presence", joins=["ann"])

        inject_crash(ann_session)
        assert await ann.closed() == 1011
        for client in (bob, carol):
            await client.expect("presence", leaves=["ann"])
        await bob.post("still here", "b-1")
        await bob.expect("ack", client_id="b-1")
        assert (await carol.expect("message"))["message"]["body"] == "still here"
        assert (await carol.join("ann"))["username"] == "ann"
        assert len(await live_sessions(server)) == 2
        assert (bob.closed_code, carol.closed_code) == (None, None)
        assert "restarted" not in log.kinds()

    run(server, scenario)


def test_session_crashes_never_spend_the_roots_restart_budget(
    server: ChatServer, log: EventLog
) -> None:
    crashes = 6  # twice the default intensity of 3 restarts in 5 seconds

    async def scenario(server: ChatServer) -> None:
        singletons = {name: whereis(server, name) for name in ("persistence", "presence", "room")}
        sessions = whereis(server, SESSIONS)
        survivor = await server.connect()
        await survivor.welcome()
        doomed = [await connect_with_session(server) for _ in range(crashes)]
        for n, (client, _) in enumerate(doomed):
            await client.join(f"doomed-{n}")

        for _, session in doomed:
            inject_crash(session)
        for client, _ in doomed:
            assert await client.closed() == 1011
        for n in range(crashes):
            await survivor.expect("presence", leaves=[f"doomed-{n}"])

        assert server.tree.root.is_alive()
        assert whereis(server, SESSIONS) is sessions
        assert {name: whereis(server, name) for name in singletons} == singletons
        await asyncio.to_thread(
            log.wait_for, lambda _: len(session_exits(log)) == crashes, TIMEOUT_S
        )
        assert all(e.reason and e.reason.startswith("crashed") for e in session_exits(log))
        kinds = log.kinds()
        assert "restarted" not in kinds
        assert "gave_up" not in kinds
        # Everything still works, and one more crash elsewhere is still restarted.
        newcomer = await server.connect()
        await newcomer.welcome()
        await survivor.post("after the crashes", "s-1", username="survivor")
        await survivor.expect("ack", client_id="s-1")
        assert (await newcomer.expect("message"))["message"]["body"] == "after the crashes"
        inject_crash(whereis(server, "room"))
        await restarted(log, "room")
        assert server.tree.root.is_alive()

    run(server, scenario)
