"""Who may hold which name, over real WebSocket connections: a name held by an
online user cannot be taken, in any case, width or look-alike spelling, not
even by many connections claiming it at once; an offline user's name can be
reclaimed."""

# The tests spell look-alike letters on purpose:
# ruff: noqa: RUF001, RUF003

from __future__ import annotations

import asyncio

import pytest

from tests.harness.client import Client
from tests.harness.contract import error_code
from tests.harness.data import stored, user_names
from tests.harness.server import ChatServer

# -- names held by others --------------------------------------------------------------------


def test_an_online_users_name_cannot_be_taken(server: ChatServer, database: str) -> None:
    async def scenario(server: ChatServer) -> None:
        ann = await server.welcomed()
        bob = await server.welcomed()
        await ann.join("ann")
        await bob.post("I am ann", "b-1", username="ann")
        error = await bob.expect("error")
        assert error["code"] == "username_taken"
        assert error["client_id"] == "b-1"
        await bob.send({"type": "join", "username": "ann"})
        assert await error_code(bob) == "username_taken"
        # Bob is still nobody, and nothing was stored for him.
        await bob.post("who am I", "b-2")
        assert (await bob.expect("error", client_id="b-2"))["code"] == "identity_required"
        assert "joined" not in bob.kinds()
        assert stored(database, "username", "body") == []
        # Ann keeps her name.
        await ann.post("still me", "a-1")
        await ann.expect("ack", client_id="a-1")
        assert stored(database, "username", "body") == [("ann", "still me")]
        assert user_names(database) == ["ann"]

    server.run(scenario)


async def held_and_refused(server: ChatServer, holder: str, claimant: str) -> tuple[Client, Client]:
    """One connection joins as `holder`; another claims `claimant`, by a post
    and by a join, and is refused as taken each time. The two connections."""
    first, second = await server.welcomed(), await server.welcomed()
    await first.join(holder)
    await second.post("hi", "c-1", username=claimant)
    assert (await second.expect("error", client_id="c-1"))["code"] == "username_taken"
    await second.send({"type": "join", "username": claimant})
    assert await error_code(second) == "username_taken"
    return first, second


@pytest.mark.parametrize(
    ("holder", "claimant"),
    [
        ("ann", "ANN"),
        ("ann", "Ann"),
        ("ANN", "ann"),
        ("ann", "ａｎｎ"),  # full-width letters: NFKC makes them "ann"
        ("ａｎｎ", "Ann"),
        ("Straße", "STRASSE"),  # case folding: ß folds to ss
    ],
)
def test_the_same_name_in_another_case_or_width_is_taken(
    server: ChatServer, holder: str, claimant: str
) -> None:
    async def scenario(server: ChatServer) -> None:
        await held_and_refused(server, holder, claimant)

    server.run(scenario)


@pytest.mark.parametrize(
    ("holder", "claimant"),
    [
        ("paypal", "раураl"),  # Cyrillic р, а, у
        ("раураl", "paypal"),
        ("PayPal", "раураl"),
        ("mary", "rnary"),  # "rn" looks like "m"
        ("rnary", "mary"),
        ("ADMIN", "АDМІN"),  # Cyrillic capitals А, М, І
        ("АDМІN", "ADMIN"),
        ("HELLO", "ΗΕLLΟ"),  # Greek capitals: only the capitals look alike
        ("ΗΕLLΟ", "HELLO"),
        ("google", "g00gle"),
        ("alice", "Ꭺlice"),  # Cherokee Ꭺ
    ],
)
def test_a_confusable_look_alike_of_an_online_name_is_taken_until_it_goes(
    server: ChatServer, holder: str, claimant: str
) -> None:
    async def scenario(server: ChatServer) -> None:
        first, second = await held_and_refused(server, holder, claimant)
        # Taken only while the holder is online: once it leaves, the look-alike is free.
        await first.send({"type": "leave"})
        await first.expect("left")
        assert (await second.join(claimant))["username"] == claimant

    server.run(scenario)


def test_an_offline_users_name_can_be_reclaimed_by_posting_with_it(
    server: ChatServer, database: str
) -> None:
    async def scenario(server: ChatServer) -> None:
        watcher, ann = await server.watched_join("ann")
        await ann.post("first", "a-1")
        await ann.expect("ack", client_id="a-1")
        ann.close()
        assert (await watcher.expect("presence"))["leaves"] == ["ann"]

        other = await server.welcomed()
        await other.post("second", "o-1", username="Ann")
        assert (await other.expect("joined"))["username"] == "Ann"
        await other.expect("ack", client_id="o-1")
        assert (await watcher.expect("presence"))["joins"] == ["Ann"]
        assert (await watcher.expect("message"))["message"]["body"] == "first"
        message = (await watcher.expect("message"))["message"]
        assert (message["username"], message["body"]) == ("Ann", "second")
        assert user_names(database) == ["Ann"]  # the same user, spelt as last claimed
        welcome = await server.welcome()
        assert [m["username"] for m in welcome["messages"]] == ["Ann", "Ann"]

    server.run(scenario)


# -- races -----------------------------------------------------------------------------------


RACERS = 10


def test_concurrent_joins_of_one_name_grant_it_exactly_once(server: ChatServer) -> None:
    async def scenario(server: ChatServer) -> None:
        clients = [await server.welcomed() for _ in range(RACERS)]
        await asyncio.gather(*(c.send({"type": "join", "username": "race"}) for c in clients))
        answers = await asyncio.gather(*(c.answer("joined", "error") for c in clients))
        assert sorted(a["type"] for a in answers) == ["error"] * (RACERS - 1) + ["joined"]
        assert {a["code"] for a in answers if a["type"] == "error"} == {"username_taken"}

    server.run(scenario)


def test_concurrent_first_posts_with_one_name_grant_it_exactly_once(
    server: ChatServer, database: str
) -> None:
    async def scenario(server: ChatServer) -> None:
        clients = [await server.welcomed() for _ in range(RACERS)]
        await asyncio.gather(
            *(c.post(f"post {n}", f"c-{n}", username="race") for n, c in enumerate(clients))
        )
        answers = await asyncio.gather(*(c.answer("ack", "error") for c in clients))
        acked = [n for n, a in enumerate(answers) if a["type"] == "ack"]
        assert len(acked) == 1
        for n, a in enumerate(answers):
            assert a["client_id"] == f"c-{n}"
            if n not in acked:
                assert a["code"] == "username_taken"
        assert "joined" in clients[acked[0]].kinds()
        assert stored(database, "username", "body") == [("race", f"post {acked[0]}")]

    server.run(scenario)


def test_concurrent_claims_of_spellings_and_look_alikes_of_one_name_grant_one(
    server: ChatServer,
) -> None:
    spellings = [
        "race",
        "RACE",
        "Race",
        "ｒａｃｅ",  # full width
        "rаce",  # Cyrillic а
        "racе",  # Cyrillic е
        "raсe",  # Cyrillic с
        "RACЕ",  # Cyrillic Е
        "race",
        "Race",
    ]

    async def scenario(server: ChatServer) -> None:
        clients = [await server.welcomed() for _ in spellings]
        await asyncio.gather(
            *(
                c.send({"type": "join", "username": s})
                for c, s in zip(clients, spellings, strict=True)
            )
        )
        answers = await asyncio.gather(*(c.answer("joined", "error") for c in clients))
        assert [a["type"] for a in answers].count("joined") == 1, answers
        assert {a["code"] for a in answers if a["type"] == "error"} == {"username_taken"}

    server.run(scenario)
