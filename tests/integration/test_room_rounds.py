"""The room's fan-out rounds: gathered like group commit, and never lost to a crash."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from chatter import room
from chatter.messages import StoredMessage
from chatter.room import Committed
from supervision import inject_crash
from tests.harness.server import ChatServer


def stored(seq: int, body: str) -> StoredMessage:
    return StoredMessage(uuid.uuid4(), seq, "ann", body, datetime.now(UTC), None)


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
            the_room.tell(Committed((stored(10**9, "one"), stored(10**9 + 1, "two"))))
            inject_crash(the_room)

        server.call(commit_then_crash)
        first, second = await bob.expect("message"), await bob.expect("message")
        assert [first["message"]["body"], second["message"]["body"]] == ["one", "two"]

    server.run(scenario)


def test_a_burst_of_commits_reaches_each_session_in_seq_order_once(server: ChatServer) -> None:
    async def scenario(server: ChatServer) -> None:
        bob = await server.connect()
        await bob.welcome()
        the_room = server.whereis(room.NAME)
        base = 10**9

        def burst() -> None:
            # Out of order, and one repeated: the room sends each seq once, in order.
            the_room.tell(Committed((stored(base + 2, "c"), stored(base + 1, "b"))))
            the_room.tell(Committed((stored(base + 2, "c"),)))
            the_room.tell(Committed((stored(base + 3, "d"),)))

        server.call(burst)
        bodies = [(await bob.expect("message"))["message"]["body"] for _ in range(3)]
        assert bodies == ["b", "c", "d"]
        server.call(lambda: the_room.tell(Committed((stored(base + 4, "e"),))))
        assert (await bob.expect("message"))["message"]["body"] == "e"  # no "c" again

    server.run(scenario)


def test_a_round_holding_messages_a_session_has_sent_reaches_it_from_its_next_seq(
    server: ChatServer,
) -> None:
    """A restarted room knows no seq yet, so its first round may hold messages
    that a session has sent already (as a welcome may): that session sends only
    the newer ones, and a session that had none sends the whole round."""

    async def scenario(server: ChatServer) -> None:
        bob = await server.connect()
        await bob.welcome()
        base = 10**9
        registry = server.tree.registry
        server.call(
            lambda: registry.tell(
                room.NAME, Committed((stored(base + 1, "a"), stored(base + 2, "b")))
            )
        )
        assert [(await bob.expect("message"))["message"]["body"] for _ in range(2)] == ["a", "b"]
        server.call(lambda: inject_crash(server.whereis(room.NAME)))
        carol = await server.connect()
        await carol.welcome()

        again = (stored(base + 1, "a"), stored(base + 2, "b"), stored(base + 3, "c"))
        server.call(lambda: registry.tell(room.NAME, Committed(again)))  # held while it restarts

        assert (await bob.expect("message"))["message"]["body"] == "c"
        bodies = [(await carol.expect("message"))["message"]["body"] for _ in range(3)]
        assert bodies == ["a", "b", "c"]
        server.call(lambda: registry.tell(room.NAME, Committed((stored(base + 4, "d"),))))
        assert (await bob.expect("message"))["message"]["body"] == "d"  # nothing between

    server.run(scenario)
