"""The room's fan-out: rounds gathered like group commit and never lost to a
crash, and the messages log sent in seq order, once, whoever committed it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from chatter import room
from chatter.messages import StoredMessage
from chatter.room import Committed
from supervision import EventKind, inject_crash
from tests.harness.client import Client
from tests.harness.data import commit_as_another_node
from tests.harness.server import ChatServer
from tests.harness.waiting import TIMEOUT_S


def stored(seq: int, body: str) -> StoredMessage:
    """A commit as the room is told it (the room does not read it back while
    each follows on from the last seq it sent)."""
    return StoredMessage(uuid.uuid4(), seq, "ann", body, datetime.now(UTC), None)


async def bodies(client: Client, count: int) -> list[str]:
    return [(await client.expect("message"))["message"]["body"] for _ in range(count)]


def test_a_round_gathered_when_the_room_crashes_still_reaches_the_connected(
    server: ChatServer,
) -> None:
    async def scenario(server: ChatServer) -> None:
        bob = await server.connect()
        await bob.welcome()
        the_room = server.whereis(room.NAME)

        def commit_then_crash() -> None:
            # On the room's loop, in one go: the room gathers the round, and the
            # crash is handled before the round's own fan-out message.
            the_room.tell(Committed((stored(1, "one"), stored(2, "two"))))
            inject_crash(the_room)

        server.call(commit_then_crash)
        assert await bodies(bob, 2) == ["one", "two"]

    server.run(scenario)


def test_a_burst_of_commits_reaches_each_session_in_seq_order_once(server: ChatServer) -> None:
    async def scenario(server: ChatServer) -> None:
        bob = await server.connect()
        await bob.welcome()
        the_room = server.whereis(room.NAME)

        def burst() -> None:
            # Out of order, and one repeated: the room sends each seq once, in order.
            the_room.tell(Committed((stored(2, "c"), stored(1, "b"))))
            the_room.tell(Committed((stored(2, "c"),)))
            the_room.tell(Committed((stored(3, "d"),)))

        server.call(burst)
        assert await bodies(bob, 3) == ["b", "c", "d"]
        server.call(lambda: the_room.tell(Committed((stored(4, "e"),))))
        assert await bodies(bob, 1) == ["e"]  # no "c" again

    server.run(scenario)


def test_messages_another_node_commits_reach_every_session_in_seq_order(
    server: ChatServer,
) -> None:
    """Another node's commits reach this room only as a notification: the
    room reads the log after its last seq and sends what it finds."""

    async def scenario(server: ChatServer) -> None:
        bob = await server.connect()
        await bob.welcome()
        ann = await server.connect()
        await ann.join("ann")
        await bob.expect("presence")
        await ann.post("mine")
        elsewhere = commit_as_another_node(server.conninfo, "zed", ["theirs 1", "theirs 2"])
        await ann.post("mine again")
        got = [(await bob.expect("message"))["message"] for _ in range(4)]
        assert [m["seq"] for m in got] == sorted(m["seq"] for m in got)
        assert {m["body"] for m in got} == {"mine", "theirs 1", "theirs 2", "mine again"}
        assert elsewhere == [m["seq"] for m in got if m["username"] == "zed"]

    server.run(scenario)


def test_a_commit_after_a_gap_is_sent_once_the_log_fills_the_gap(server: ChatServer) -> None:
    """A commit of this node that does not follow on from the last seq sent
    (another node's commit came between and its notification is still on the
    way) waits for the read of the log, which sends both in order."""

    async def scenario(server: ChatServer) -> None:
        bob = await server.connect()
        await bob.welcome()
        (between,) = commit_as_another_node(server.conninfo, "zed", ["between"])
        the_room = server.whereis(room.NAME)
        server.call(lambda: the_room.tell(Committed((stored(between + 1, "after"),))))
        (first,) = [(await bob.expect("message"))["message"]]
        assert (first["seq"], first["body"]) == (between, "between")

    server.run(scenario)


def test_sessions_catch_up_on_what_committed_while_no_room_ran(server: ChatServer) -> None:
    """A restarted room starts at the end of the log and tells each session to
    catch up from the last seq it has: what committed while no room ran
    reaches every client once, in order, then live messages follow."""

    async def scenario(server: ChatServer) -> None:
        bob = await server.connect()
        await bob.welcome()
        registry = server.tree.registry
        the_room = server.whereis(room.NAME)

        # Hold everything for the room (its commits, the listener's wake-ups)
        # and let it die: its successor never hears of these two.
        server.call(lambda: registry.suspend(room.NAME))
        missed = commit_as_another_node(server.conninfo, "zed", ["missed 1", "missed 2"])
        server.call(lambda: inject_crash(the_room))
        await asyncio.to_thread(server.log.wait, EventKind.RESTARTED, room.NAME, TIMEOUT_S)

        got = [(await bob.expect("message"))["message"] for _ in range(2)]
        assert [m["seq"] for m in got] == missed
        live = commit_as_another_node(server.conninfo, "zed", ["live"])
        (after,) = [(await bob.expect("message"))["message"]]
        assert after["seq"] == live[0]

    server.run(scenario)
