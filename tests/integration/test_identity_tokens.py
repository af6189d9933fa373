"""Tokens over real WebSocket connections: the token from `joined` makes a new
connection that user (holding the name with the connection still open, or
taking it back after it went), survives a switch of names, cannot take a
look-alike held by someone else, and a tampered or garbage token yields a
viewer. More on several connections of one person: test_identity_tabs.py."""

# The tests spell look-alike letters on purpose:
# ruff: noqa: RUF001

from __future__ import annotations

import time

import pytest

from chatter.tokens import issue
from tests.harness.client import Client
from tests.harness.data import stored
from tests.harness.server import SECRET, ChatServer


async def went_offline(server: ChatServer, username: str, watcher: Client) -> str:
    """`username` joins on a connection of its own and closes it; once
    `watcher` has seen it come and go, its token."""
    client = await server.welcomed()
    token: str = (await client.join(username))["token"]
    await watcher.expect("presence", joins=[username])
    client.close()
    await watcher.expect("presence", leaves=[username])
    return token


async def viewer_with(server: ChatServer, token: str) -> Client:
    """A connection made with `token` that the server took for a viewer's: no
    name in its welcome and no `joined` after it."""
    client = await server.welcomed(token=token)
    assert (await client.welcome())["you"] is None
    await client.settle()
    assert "joined" not in client.kinds()
    return client


def test_a_token_holds_the_name_with_the_connection_still_open(
    server: ChatServer, database: str
) -> None:
    async def scenario(server: ChatServer) -> None:
        watcher, old = await server.watched_join("ann")
        token = old.received("joined")[0]["token"]

        new = await server.welcomed(token=token)
        welcome = await new.welcome()
        assert welcome["you"] == {"username": "ann"}
        assert {"username": "ann", "online": True} in welcome["users"]
        joined = await new.expect("joined")
        assert new.kinds()[:2] == ["welcome", "joined"]  # right after the welcome
        assert joined["username"] == "ann"
        assert isinstance(joined["token"], str)
        assert joined["token"]

        # Both connections are ann (issue #17: a token joins the holding, as
        # another tab of the same browser does; nobody is replaced).
        await old.post("from the first", "o-1")
        await old.expect("ack", client_id="o-1")
        await new.post("back again", "n-1")
        await new.expect("ack", client_id="n-1")
        messages = [(await watcher.expect("message"))["message"] for _ in range(2)]
        assert [(m["username"], m["body"]) for m in messages] == [
            ("ann", "from the first"),
            ("ann", "back again"),
        ]

        # The fresh token works as well: a third connection holds the name too.
        newest = await server.welcomed(token=joined["token"])
        welcome = await newest.welcome()
        assert welcome["you"] == {"username": "ann"}
        await newest.expect("joined", username="ann")
        await newest.settle()
        assert "left" not in old.kinds() + new.kinds()
        assert stored(database, "username", "body") == [
            ("ann", "from the first"),
            ("ann", "back again"),
        ]

    server.run(scenario)


def test_a_token_brings_an_offline_user_back_online(server: ChatServer) -> None:
    async def scenario(server: ChatServer) -> None:
        watcher = await server.welcomed()
        token = await went_offline(server, "ann", watcher)

        back = await server.welcomed(token=token)
        welcome = await back.welcome()
        assert welcome["you"] == {"username": "ann"}
        await back.expect("joined", username="ann")
        assert back.kinds()[:2] == ["welcome", "joined"]
        assert (await watcher.expect("presence"))["joins"] == ["ann"]
        await back.post("hello again", "b-1")
        await back.expect("ack", client_id="b-1")

    server.run(scenario)


def test_a_leave_on_one_connection_revokes_the_token_for_all(server: ChatServer) -> None:
    async def scenario(server: ChatServer) -> None:
        old = await server.welcomed()
        token = (await old.join("ann"))["token"]
        new = await server.welcomed(token=token)
        assert (await new.welcome())["you"] == {"username": "ann"}
        await new.expect("joined", username="ann")
        await old.send({"type": "leave"})
        assert await old.expect("left") == {"type": "left"}
        assert await new.expect("left") == {"type": "left", "reason": "left_elsewhere"}
        # The token stopped working: a connection with it is a viewer.
        await viewer_with(server, token)

    server.run(scenario)


def test_a_token_survives_a_switch_of_names(server: ChatServer) -> None:
    async def scenario(server: ChatServer) -> None:
        ann = await server.welcomed()
        token = (await ann.join("ann"))["token"]
        await ann.join("bea")
        back = await server.welcomed(token=token)
        welcome = await back.welcome()
        assert welcome["you"] == {"username": "ann"}
        await back.expect("joined", username="ann")
        # The switched connection keeps its new name.
        await ann.post("still bea", "b-1")
        await ann.expect("ack", client_id="b-1")
        assert "left" not in ann.kinds()

    server.run(scenario)


def test_a_token_cannot_take_a_look_alike_held_by_another_user(server: ChatServer) -> None:
    async def scenario(server: ChatServer) -> None:
        token = await went_offline(server, "paypal", await server.welcomed())
        fake = await server.joined("раураl")  # free while paypal is offline
        await viewer_with(server, token)
        await fake.post("still here", "f-1")
        await fake.expect("ack", client_id="f-1")
        assert "left" not in fake.kinds()

    server.run(scenario)


def _bad_tokens(good: str) -> dict[str, str]:
    payload, _, mac = good.partition(".")
    now = time.time()
    other_payload = issue(SECRET, "bob", 0, now).partition(".")[0]
    flipped_mac = mac[:-2] + ("A" if mac[-2] != "A" else "B") + mac[-1]
    flipped_payload = ("A" if payload[0] != "A" else "B") + payload[1:]
    return {
        "mac altered": f"{payload}.{flipped_mac}",
        "payload altered": f"{flipped_payload}.{mac}",
        "another user's payload": f"{other_payload}.{mac}",
        "mac missing": payload,
        "mac only": mac,
        "truncated": good[: len(good) // 2],
        "garbage": "not-a-token",
        "dots": "...",
        "empty": "",
        "too long": "A" * 4000 + "." + mac,
        "other secret": issue(b"some other secret", "ann", 0, now),
        "expired": issue(SECRET, "ann", 0, now - 25 * 3600),
        "issued in the future": issue(SECRET, "ann", 0, now + 3600),
        "older version": issue(SECRET, "ann", 7, now),
        "unknown user": issue(SECRET, "nobody", 0, now),
    }


@pytest.mark.parametrize("case", list(_bad_tokens("payload.mac-of-43-characters")))
def test_a_tampered_or_garbage_token_yields_a_viewer(server: ChatServer, case: str) -> None:
    async def scenario(server: ChatServer) -> None:
        ann = await server.welcomed()
        good = (await ann.join("ann"))["token"]
        token = _bad_tokens(good)[case]
        intruder = await viewer_with(server, token)
        await intruder.post("am I ann?", "i-1")
        assert (await intruder.expect("error", client_id="i-1"))["code"] == "identity_required"
        # Ann still holds her name, alone.
        await ann.post("I am", "a-1")
        await ann.expect("ack", client_id="a-1")
        assert "left" not in ann.kinds()

    server.run(scenario)
