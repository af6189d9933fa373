"""The chat over real WebSocket connections to a real server, per the wire contract."""

from __future__ import annotations

from supervision import inject_crash
from tests.harness.data import seed_messages
from tests.harness.server import ChatServer


def numbered(word: str, count: int) -> list[str]:
    """`word`1 to `word``count`."""
    return [f"{word}{n}" for n in range(1, count + 1)]


def test_two_clients_chat_both_ways(server: ChatServer) -> None:
    async def scenario(server: ChatServer) -> None:
        ann, bob = await server.connect(), await server.connect()
        for client in (ann, bob):
            welcome = await client.welcome()
            assert welcome["messages"] == []
            assert welcome["you"] is None
        await ann.post("hello bob", "a-1", username="ann")
        joined = await ann.expect("joined")
        assert joined["username"] == "ann"
        assert joined["token"]
        ack = await ann.expect("ack", client_id="a-1")
        seen_by_bob = await bob.expect("message")
        seen_by_ann = await ann.expect("message")
        assert seen_by_bob == seen_by_ann
        message = seen_by_bob["message"]
        assert (message["id"], message["seq"]) == (ack["id"], ack["seq"])
        assert (message["username"], message["body"]) == ("ann", "hello bob")
        assert (await bob.expect("presence"))["joins"] == ["ann"]

        await bob.post("hi ann", "b-1", username="bob")
        reply = await ann.expect("message")
        assert reply["message"]["body"] == "hi ann"
        assert reply["message"]["seq"] > message["seq"]
        ann.close()
        bob.close()

    server.run(scenario)


def test_welcome_has_the_newest_500_and_the_people(server: ChatServer, database: str) -> None:
    last = seed_messages(database, "old", numbered("m", 600))

    async def scenario(server: ChatServer) -> None:
        await server.heard(last)
        await server.joined("ann")
        bob = await server.connect()
        welcome = await bob.welcome()
        assert len(welcome["messages"]) == 500
        assert welcome["has_more"]
        assert welcome["messages"][0]["body"] == "m101"
        assert welcome["messages"][-1]["body"] == "m600"
        assert {"username": "ann", "online": True} in welcome["users"]
        assert {"username": "old", "online": False} in welcome["users"]
        assert welcome["total_users"] == 2

    server.run(scenario)


def test_history_pages_back_to_the_very_first_message(server: ChatServer, database: str) -> None:
    last = seed_messages(database, "old", numbered("m", 730))

    async def scenario(server: ChatServer) -> None:
        await server.heard(last)
        client = await server.connect()
        welcome = await client.welcome()
        bodies = [m["body"] for m in welcome["messages"]]
        before, has_more = welcome["messages"][0]["seq"], welcome["has_more"]
        while has_more:
            await client.send({"type": "history", "before": before})
            page = await client.expect("history")
            assert 1 <= len(page["messages"]) <= 100
            bodies = [m["body"] for m in page["messages"]] + bodies
            before, has_more = page["messages"][0]["seq"], page["has_more"]
        assert bodies == [f"m{n}" for n in range(1, 731)]
        await client.send({"type": "history", "before": before, "limit": 1000})
        assert await client.expect("history") == {
            "type": "history",
            "messages": [],
            "has_more": False,
        }

    server.run(scenario)


def test_resume_delivers_every_missed_message_once_in_order(
    server: ChatServer, database: str
) -> None:
    async def scenario(server: ChatServer) -> None:
        ann = await server.welcomed()
        await ann.post("before the gap", "a-1", username="ann")
        last_seq = (await ann.expect("message"))["message"]["seq"]
        ann.close()
        await server.heard(seed_messages(database, "bob", numbered("missed", 1000)))
        back = await server.connect(after=last_seq)
        welcome = await back.welcome()
        assert [m["body"] for m in welcome["messages"]] == [f"missed{n}" for n in range(1, 1001)]
        seqs = [m["seq"] for m in welcome["messages"]]
        assert seqs == sorted(set(seqs))
        assert seqs[0] > last_seq
        assert welcome["has_more"] is False

    server.run(scenario)


def test_resume_after_more_than_5000_sends_the_newest_500(
    server: ChatServer, database: str
) -> None:
    last = seed_messages(database, "bob", numbered("m", 5600))

    async def scenario(server: ChatServer) -> None:
        await server.heard(last)
        client = await server.connect(after=1)
        welcome = await client.welcome()
        assert len(welcome["messages"]) == 500
        assert welcome["has_more"]
        assert welcome["messages"][-1]["body"] == "m5600"

    server.run(scenario)


def test_a_repeated_client_id_is_acked_again_and_not_broadcast_again(server: ChatServer) -> None:
    async def scenario(server: ChatServer) -> None:
        ann, bob = await server.welcomed(), await server.welcomed()
        await ann.post("once", "same-id", username="ann")
        first = await ann.expect("ack", client_id="same-id")
        await ann.post("once", "same-id")
        again = await ann.expect("ack", client_id="same-id")
        assert (again["id"], again["seq"]) == (first["id"], first["seq"])
        await ann.post("next", "other-id")
        await bob.expect("message")  # "once"
        assert (await bob.expect("message"))["message"]["body"] == "next"

    server.run(scenario)


def test_leave_releases_the_name_and_revokes_the_token(server: ChatServer) -> None:
    async def scenario(server: ChatServer) -> None:
        ann, bob = await server.welcomed(), await server.welcomed()
        token = (await ann.join("ann"))["token"]
        await bob.expect("presence", joins=["ann"])
        await ann.send({"type": "leave"})
        assert await ann.expect("left") == {"type": "left"}
        assert (await bob.expect("presence"))["leaves"] == ["ann"]
        await ann.post("still here?", "x")
        assert (await ann.expect("error"))["code"] == "identity_required"
        await bob.join("ann")  # the name is free again
        back = await server.connect(token=token)
        assert (await back.welcome())["you"] is None  # the old token no longer works

    server.run(scenario)


def test_leave_without_a_name_is_answered_too(server: ChatServer) -> None:
    async def scenario(server: ChatServer) -> None:
        client = await server.welcomed()
        await client.send({"type": "leave"})
        assert await client.expect("left") == {"type": "left"}

    server.run(scenario)


def test_presence_follows_joins_and_disconnects(server: ChatServer) -> None:
    async def scenario(server: ChatServer) -> None:
        watcher, ann = await server.watched_join("ann")
        ann.close()
        assert (await watcher.expect("presence"))["leaves"] == ["ann"]

    server.run(scenario)


def test_a_join_tells_everyone_how_many_users_there_are_now(server: ChatServer) -> None:
    async def scenario(server: ChatServer) -> None:
        watcher = await server.welcomed()
        ann = await server.joined("ann")
        assert await watcher.expect("presence") == {
            "type": "presence",
            "joins": ["ann"],
            "leaves": [],
            "total_users": 1,
        }
        await ann.post("a word from ann", "a-1")  # she took part: counted when offline
        await ann.expect("ack", client_id="a-1")
        await ann.join("bob")  # a switch: ann goes offline, bob is new
        assert await watcher.expect("presence") == {
            "type": "presence",
            "joins": [],
            "leaves": ["ann"],
        }
        assert (await watcher.expect("presence"))["total_users"] == 2
        await ann.join("ANN")  # back to ann (now spelled ANN): no one new, and bob,
        await watcher.expect("presence", leaves=["bob"])  # who never posted, not counted
        assert (await watcher.expect("presence", joins=["ANN"]))["total_users"] == 1
        ann.close()
        assert "total_users" not in await watcher.expect("presence", leaves=["ANN"])

    server.run(scenario)


def test_resume_from_beyond_the_newest_seq_still_gets_what_comes_next(
    server: ChatServer,
) -> None:
    async def scenario(server: ChatServer) -> None:
        viewer = await server.connect(after=10_000)
        welcome = await viewer.welcome()
        assert welcome["messages"] == []
        poster = await server.welcomed()
        await poster.post("after a bogus after", "p-1", username="poster")
        assert (await viewer.expect("message"))["message"]["body"] == "after a bogus after"

    server.run(scenario)


def test_errors_echo_the_client_id_of_any_frame_that_carried_one(server: ChatServer) -> None:
    async def scenario(server: ChatServer) -> None:
        client = await server.welcomed()
        await client.send({"type": "join", "username": "no spaces", "client_id": "j-1"})
        error = await client.expect("error")
        assert (error["code"], error["client_id"]) == ("invalid_username", "j-1")

    server.run(scenario)


def test_stopping_the_sessions_supervisor_closes_the_sockets(server: ChatServer) -> None:
    async def scenario(server: ChatServer) -> None:
        client = await server.welcomed()
        inject_crash(server.whereis("sessions"))
        assert await client.closed() == 1001

    server.run(scenario)
