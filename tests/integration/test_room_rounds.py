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
