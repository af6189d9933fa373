"""A welcome's messages come from the room's memory of the newest it sent, not
from a read of the log per connection, and are exactly what a read would give:
the newest page, a resume the room remembers, a resume beyond it (read from the
log), and a welcome asked while the room restarts, which loses nothing."""

from __future__ import annotations

import asyncio

from chatter import room
from chatter.metrics import ChatMetrics
from supervision import EventKind, inject_crash
from tests.harness.data import commit_as_another_node, seed_messages
from tests.harness.server import ChatServer
from tests.harness.waiting import TIMEOUT_S


def recalls(metrics: ChatMetrics) -> tuple[float, float]:
    """(remembered, not remembered) so far."""
    return metrics.recalls_remembered._value.get(), metrics.recalls_not_remembered._value.get()


def test_a_welcome_holds_the_newest_messages_from_the_rooms_memory(server: ChatServer) -> None:
    async def scenario(server: ChatServer) -> None:
        ann = await server.welcomed()
        for n in range(1, 4):
            await ann.post(f"hello {n}", f"a-{n}", username="ann")
            await ann.expect("ack", client_id=f"a-{n}")
        before = recalls(server.tree.metrics)
        welcome = await server.welcome()
        assert [m["body"] for m in welcome["messages"]] == ["hello 1", "hello 2", "hello 3"]
        assert welcome["has_more"] is False
        assert recalls(server.tree.metrics) == (before[0] + 1, before[1])

    server.run(scenario)


def test_a_resume_the_room_remembers_sends_just_what_was_missed(server: ChatServer) -> None:
    async def scenario(server: ChatServer) -> None:
        ann = await server.welcomed()
        seqs = []
        for n in range(1, 5):  # and one more below: the post burst allows five
            await ann.post(f"m{n}", f"a-{n}", username="ann")
            seqs.append((await ann.expect("ack", client_id=f"a-{n}"))["seq"])
        before = recalls(server.tree.metrics)
        welcome = await server.welcome(after=seqs[1])
        assert [m["body"] for m in welcome["messages"]] == ["m3", "m4"]
        assert welcome["has_more"] is False
        bob = await server.connect(after=seqs[-1] + 100)  # beyond the log
        assert (await bob.welcome())["messages"] == []
        await ann.post("m5", "a-5")
        assert (await bob.expect("message"))["message"]["body"] == "m5"  # not hidden by it
        assert recalls(server.tree.metrics) == (before[0] + 2, before[1])

    server.run(scenario)


def test_a_resume_that_missed_more_than_the_room_remembers_is_read_from_the_log(
    server: ChatServer, database: str
) -> None:
    async def scenario(server: ChatServer) -> None:
        ann = await server.welcomed()
        await ann.post("before", "a-1", username="ann")
        first = (await ann.expect("ack", client_id="a-1"))["seq"]
        await server.heard(seed_messages(database, "bob", [f"m{n}" for n in range(1, 701)]))
        before = recalls(server.tree.metrics)
        welcome = await server.welcome(after=first)
        assert [m["body"] for m in welcome["messages"]] == [f"m{n}" for n in range(1, 701)]
        assert welcome["has_more"] is False
        assert recalls(server.tree.metrics) == (before[0], before[1] + 1)

    server.run(scenario)


def test_a_welcome_asked_while_the_room_restarts_holds_every_message_once(
    server: ChatServer,
) -> None:
    """The ask waits for the next room (held by the registry with everything
    else for it), which knows the log's newest page once it starts; the
    session asks that room again when told to catch up, and sends one welcome."""

    async def scenario(server: ChatServer) -> None:
        registry = server.tree.registry
        the_room = server.whereis(room.NAME)
        before = recalls(server.tree.metrics)
        server.call(lambda: registry.suspend(room.NAME))
        bob = await server.connect()
        missed = commit_as_another_node(server.conninfo, "zed", ["missed 1", "missed 2"])
        server.call(lambda: inject_crash(the_room))
        await asyncio.to_thread(server.log.wait, EventKind.RESTARTED, room.NAME, TIMEOUT_S)

        welcome = await bob.welcome()
        assert [m["seq"] for m in welcome["messages"]] == missed
        live = commit_as_another_node(server.conninfo, "zed", ["live"])
        assert (await bob.expect("message"))["message"]["seq"] == live[0]
        await bob.settle()
        assert bob.kinds().count("welcome") == 1
        assert bob.message_seqs() == live  # nothing in the welcome came again
        assert recalls(server.tree.metrics) == (before[0] + 2, before[1])  # asked again

    server.run(scenario)


def test_a_welcome_lists_a_user_recorded_and_gone_just_before_it_as_offline(
    server: ChatServer,
) -> None:
    """Presence answers the welcome's people from its own page of recent
    users, which a user's recording and last visit on this node renew before
    any welcome asked after them is answered."""

    async def scenario(server: ChatServer) -> None:
        watcher, ann = await server.watched_join("ann", first_post=("hello", "a-1"))
        ann.close()
        assert (await watcher.expect("presence"))["leaves"] == ["ann"]
        welcome = await server.welcome()
        assert welcome["users"] == [{"username": "ann", "online": False}]
        assert welcome["total_users"] == 1
        zed = await server.welcomed()
        await zed.join("zed")
        welcome = await server.welcome()
        assert welcome["users"] == [
            {"username": "zed", "online": True},
            {"username": "ann", "online": False},
        ]
        assert welcome["total_users"] == 2

    server.run(scenario)
