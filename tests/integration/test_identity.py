"""Identity over real WebSocket connections, per the contract's identity rules:
who may hold which name, look-alikes, tokens, switching names and races."""

# The tests spell look-alike letters on purpose:
# ruff: noqa: RUF001, RUF003

from __future__ import annotations

import asyncio
import threading
import time
import unicodedata
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import psycopg
import pytest

from chatter.tokens import issue
from supervision import EventKind, EventStream, SupervisionEvent
from tests.integration.chat_server import SECRET, TIMEOUT_S, ChatServer, Client, run_scenario

Scenario = Callable[[ChatServer], Awaitable[None]]

# A frame that is always answered with an empty history page: frames are answered
# in order, so its answer proves that everything sent before it has been handled.
SENTINEL = {"type": "history", "before": 0}


@pytest.fixture
def server(database: str) -> Iterator[ChatServer]:
    chat = ChatServer(database)
    yield chat
    chat.stop()


def run(server: ChatServer, scenario: Scenario) -> None:
    asyncio.run(run_scenario(server, scenario))


# -- helpers ---------------------------------------------------------------------------------


async def answer(client: Client, *kinds: str, timeout_s: float = TIMEOUT_S) -> dict[str, Any]:
    """The first unread frame of any of `kinds`; frames of other kinds stay unread."""
    for index, frame in enumerate(client.unread):
        if frame["type"] in kinds:
            return client.unread.pop(index)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        received = await client.receive(max(0.01, deadline - loop.time()))
        if received is None:
            raise AssertionError(f"closed ({client.closed_code}) while waiting for {kinds}")
        if received["type"] in kinds:
            return received
        client.unread.append(received)


async def connected(server: ChatServer, **options: Any) -> tuple[Client, dict[str, Any]]:
    """A client and its welcome."""
    client = await server.connect(**options)
    return client, await client.welcome()


async def settle(client: Client) -> None:
    """Wait until the session has handled every frame `client` sent so far (and
    everything those frames made it send has arrived)."""
    await client.send(SENTINEL)
    await client.expect("history", messages=[], has_more=False)


async def error_code(client: Client) -> str:
    code: str = (await client.expect("error"))["code"]
    return code


def kinds(frames: list[dict[str, Any]]) -> list[str]:
    return [frame["type"] for frame in frames]


def stored_bodies(conninfo: str) -> list[tuple[str, str]]:
    """(username, body) of every stored message, in seq order."""
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT u.username, m.body FROM messages m JOIN users u ON u.id = m.user_id "
            "ORDER BY m.seq"
        ).fetchall()
    return [(row[0], row[1]) for row in rows]


def user_names(conninfo: str) -> list[str]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute("SELECT username FROM users ORDER BY username").fetchall()
    return [row[0] for row in rows]


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class SessionExits:
    """Counts sessions that ended, from the tree's supervision events, and lets a
    scenario wait for the next one."""

    def __init__(self, events: EventStream) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self.unsubscribe = events.subscribe(self._seen)

    def _seen(self, event: SupervisionEvent) -> None:
        if event.supervisor != "sessions" or event.kind is not EventKind.EXITED:
            return
        with self._lock:
            self._count += 1
            ready = [w for w in self._waiters if w[0] <= self._count]
        for _, loop, future in ready:
            loop.call_soon_threadsafe(_resolve, future)

    @property
    def count(self) -> int:
        with self._lock:
            return self._count

    async def reach(self, count: int, timeout_s: float = TIMEOUT_S) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._count >= count:
                return
            self._waiters.append((count, loop, future))
        await asyncio.wait_for(future, timeout_s)


# -- the first post, and join ----------------------------------------------------------------


def test_first_post_with_a_username_joins_then_posts(server: ChatServer) -> None:
    async def scenario(server: ChatServer) -> None:
        ann, _ = await connected(server)
        bob, _ = await connected(server)
        await ann.post("hello", "a-1", username="ann")
        joined = await ann.expect("joined")
        assert joined["username"] == "ann"
        assert isinstance(joined["token"], str)
        assert joined["token"]
        ack = await ann.expect("ack", client_id="a-1")
        presence = await bob.expect("presence")
        assert presence == {"type": "presence", "joins": ["ann"], "leaves": [], "total_users": 1}
        message = (await bob.expect("message"))["message"]
        assert (message["username"], message["body"], message["seq"]) == (
            "ann",
            "hello",
            ack["seq"],
        )
        # The presence change comes before the message, for everyone; joined before the ack.
        assert kinds(bob.frames).index("presence") < kinds(bob.frames).index("message")
        assert (await ann.expect("presence"))["joins"] == ["ann"]
        await ann.expect("message")
        assert kinds(ann.frames).index("joined") < kinds(ann.frames).index("ack")
        assert kinds(ann.frames).index("presence") < kinds(ann.frames).index("message")

        _, welcome = await connected(server)
        assert {"username": "ann", "online": True} in welcome["users"]
        assert welcome["you"] is None

    run(server, scenario)


def test_a_join_sets_the_name_without_posting(server: ChatServer, database: str) -> None:
    async def scenario(server: ChatServer) -> None:
        ann, _ = await connected(server)
        bob, _ = await connected(server)
        joined = await ann.join("ann")
        assert joined["username"] == "ann"
        assert joined["token"]
        assert await bob.expect("presence") == {
            "type": "presence",
            "joins": ["ann"],
            "leaves": [],
            "total_users": 1,
        }
        assert stored_bodies(database) == []
        _, welcome = await connected(server)
        assert {"username": "ann", "online": True} in welcome["users"]
        assert welcome["total_users"] == 1

        await ann.post("now with a name", "a-1")  # no username needed any more
        await ann.expect("ack", client_id="a-1")
        assert (await bob.expect("message"))["message"]["username"] == "ann"
        await settle(ann)
        assert kinds(ann.frames).count("joined") == 1  # the post did not join again

    run(server, scenario)


def test_joining_again_with_the_name_already_held_is_answered_with_joined(
    server: ChatServer,
) -> None:
    """The contract: a join is answered with `joined` or an error, as a first post is."""

    async def scenario(server: ChatServer) -> None:
        ann, _ = await connected(server)
        await ann.join("ann")
        await ann.send({"type": "join", "username": "ann"})
        await settle(ann)
        answers = [f for f in ann.frames if f["type"] in ("joined", "error")]
        assert len(answers) == 2, f"the second join got no answer: {ann.frames}"
        assert answers[1]["type"] == "joined"
        assert answers[1]["username"] == "ann"

    run(server, scenario)


def test_the_held_name_in_another_spelling_changes_nothing(
    server: ChatServer, database: str
) -> None:
    async def scenario(server: ChatServer) -> None:
        eve, _ = await connected(server)
        await eve.join("EVE")
        await eve.post("hi", "e-1", username="eve")
        await eve.expect("ack", client_id="e-1")
        assert (await eve.expect("message"))["message"]["username"] == "EVE"
        await settle(eve)
        assert kinds(eve.frames).count("joined") == 1  # no joined for the post
        await eve.send({"type": "join", "username": "ｅｖｅ"})
        assert (await eve.expect("joined"))["username"] == "EVE"  # the name as held
        assert user_names(database) == ["EVE"]
        assert kinds(eve.frames).count("presence") == 1  # only the first join

    run(server, scenario)


# -- names held by others --------------------------------------------------------------------


def test_an_online_users_name_cannot_be_taken(server: ChatServer, database: str) -> None:
    async def scenario(server: ChatServer) -> None:
        ann, _ = await connected(server)
        bob, _ = await connected(server)
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
        assert "joined" not in kinds(bob.frames)
        assert stored_bodies(database) == []
        # Ann keeps her name.
        await ann.post("still me", "a-1")
        await ann.expect("ack", client_id="a-1")
        assert stored_bodies(database) == [("ann", "still me")]
        assert user_names(database) == ["ann"]

    run(server, scenario)


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
        first, _ = await connected(server)
        second, _ = await connected(server)
        await first.join(holder)
        await second.post("hi", "c-1", username=claimant)
        error = await second.expect("error", client_id="c-1")
        assert error["code"] == "username_taken"
        await second.send({"type": "join", "username": claimant})
        assert await error_code(second) == "username_taken"

    run(server, scenario)


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
        first, _ = await connected(server)
        second, _ = await connected(server)
        await first.join(holder)
        await second.post("hi", "c-1", username=claimant)
        error = await second.expect("error", client_id="c-1")
        assert error["code"] == "username_taken"
        await second.send({"type": "join", "username": claimant})
        assert await error_code(second) == "username_taken"
        # Taken only while the holder is online: once it leaves, the look-alike is free.
        await first.send({"type": "leave"})
        await first.expect("left")
        assert (await second.join(claimant))["username"] == claimant

    run(server, scenario)


def test_an_offline_users_name_can_be_reclaimed_by_posting_with_it(
    server: ChatServer, database: str
) -> None:
    async def scenario(server: ChatServer) -> None:
        watcher, _ = await connected(server)
        ann, _ = await connected(server)
        await ann.post("first", "a-1", username="ann")
        await ann.expect("ack", client_id="a-1")
        assert (await watcher.expect("presence"))["joins"] == ["ann"]
        ann.close()
        assert (await watcher.expect("presence"))["leaves"] == ["ann"]

        other, _ = await connected(server)
        await other.post("second", "o-1", username="Ann")
        assert (await other.expect("joined"))["username"] == "Ann"
        await other.expect("ack", client_id="o-1")
        assert (await watcher.expect("presence"))["joins"] == ["Ann"]
        assert (await watcher.expect("message"))["message"]["body"] == "first"
        message = (await watcher.expect("message"))["message"]
        assert (message["username"], message["body"]) == ("Ann", "second")
        assert user_names(database) == ["Ann"]  # the same user, spelt as last claimed
        _, welcome = await connected(server)
        assert [m["username"] for m in welcome["messages"]] == ["Ann", "Ann"]

    run(server, scenario)


# -- tokens ----------------------------------------------------------------------------------


def test_a_token_takes_the_name_back_while_the_old_connection_is_still_open(
    server: ChatServer, database: str
) -> None:
    async def scenario(server: ChatServer) -> None:
        exits = SessionExits(server.tree.events)
        watcher, _ = await connected(server)
        old, _ = await connected(server)
        token = (await old.join("ann"))["token"]
        assert (await watcher.expect("presence"))["joins"] == ["ann"]

        new, welcome = await connected(server, token=token)
        assert welcome["you"] == {"username": "ann"}
        assert {"username": "ann", "online": True} in welcome["users"]
        joined = await new.expect("joined")
        assert kinds(new.frames)[:2] == ["welcome", "joined"]  # right after the welcome
        assert joined["username"] == "ann"
        assert isinstance(joined["token"], str)
        assert joined["token"]
        assert await old.expect("left") == {"type": "left", "reason": "replaced"}

        # The old connection is a viewer now: it cannot post, nor take the name back.
        await old.post("am I still ann?", "o-1")
        error = await old.expect("error", client_id="o-1")
        assert error["code"] == "identity_required"
        await old.post("give it back", "o-2", username="ann")
        assert (await old.expect("error", client_id="o-2"))["code"] == "username_taken"

        await new.post("back again", "n-1")
        await new.expect("ack", client_id="n-1")
        message = (await watcher.expect("message"))["message"]
        assert (message["username"], message["body"]) == ("ann", "back again")

        # The fresh token works as well: a third connection takes the name over.
        newest, welcome = await connected(server, token=joined["token"])
        assert welcome["you"] == {"username": "ann"}
        await newest.expect("joined", username="ann")
        assert await new.expect("left") == {"type": "left", "reason": "replaced"}

        # The name stayed online throughout, and closing the replaced connections
        # does not release it: the watcher's next presence change is someone else's.
        closed_before = exits.count
        old.close()
        new.close()
        await exits.reach(closed_before + 2)
        zed, _ = await connected(server)
        await zed.join("zed")
        presence = await watcher.expect("presence")
        assert presence == {"type": "presence", "joins": ["zed"], "leaves": [], "total_users": 2}
        await newest.post("still ann", "x-1")
        await newest.expect("ack", client_id="x-1")
        assert stored_bodies(database) == [("ann", "back again"), ("ann", "still ann")]
        exits.unsubscribe()

    run(server, scenario)


def test_a_token_brings_an_offline_user_back_online(server: ChatServer) -> None:
    async def scenario(server: ChatServer) -> None:
        watcher, _ = await connected(server)
        ann, _ = await connected(server)
        token = (await ann.join("ann"))["token"]
        assert (await watcher.expect("presence"))["joins"] == ["ann"]
        ann.close()
        assert (await watcher.expect("presence"))["leaves"] == ["ann"]

        back, welcome = await connected(server, token=token)
        assert welcome["you"] == {"username": "ann"}
        await back.expect("joined", username="ann")
        assert kinds(back.frames)[:2] == ["welcome", "joined"]
        assert (await watcher.expect("presence"))["joins"] == ["ann"]
        await back.post("hello again", "b-1")
        await back.expect("ack", client_id="b-1")

    run(server, scenario)


def test_a_replaced_connections_leave_revokes_nothing(server: ChatServer) -> None:
    async def scenario(server: ChatServer) -> None:
        old, _ = await connected(server)
        token = (await old.join("ann"))["token"]
        new, welcome = await connected(server, token=token)
        assert welcome["you"] == {"username": "ann"}
        await old.expect("left", reason="replaced")
        await old.send({"type": "leave"})
        assert await old.expect("left") == {"type": "left"}
        # The new connection still holds the name, and the token still works.
        await new.post("mine", "n-1")
        await new.expect("ack", client_id="n-1")
        _, welcome = await connected(server, token=token)
        assert welcome["you"] == {"username": "ann"}

    run(server, scenario)


def test_a_token_survives_a_switch_of_names(server: ChatServer) -> None:
    async def scenario(server: ChatServer) -> None:
        ann, _ = await connected(server)
        token = (await ann.join("ann"))["token"]
        await ann.join("bea")
        back, welcome = await connected(server, token=token)
        assert welcome["you"] == {"username": "ann"}
        await back.expect("joined", username="ann")
        # The switched connection keeps its new name.
        await ann.post("still bea", "b-1")
        await ann.expect("ack", client_id="b-1")
        assert "left" not in kinds(ann.frames)

    run(server, scenario)


def test_a_token_cannot_take_over_a_look_alike_held_by_another_user(server: ChatServer) -> None:
    async def scenario(server: ChatServer) -> None:
        watcher, _ = await connected(server)
        paypal, _ = await connected(server)
        token = (await paypal.join("paypal"))["token"]
        paypal.close()
        await watcher.expect("presence", leaves=["paypal"])
        fake, _ = await connected(server)
        await fake.join("раураl")  # free while paypal is offline
        back, welcome = await connected(server, token=token)
        assert welcome["you"] is None
        await settle(back)
        assert "joined" not in kinds(back.frames)
        await fake.post("still here", "f-1")
        await fake.expect("ack", client_id="f-1")
        assert "left" not in kinds(fake.frames)

    run(server, scenario)


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
        ann, _ = await connected(server)
        good = (await ann.join("ann"))["token"]
        token = _bad_tokens(good)[case]
        intruder, welcome = await connected(server, token=token)
        assert welcome["you"] is None
        await settle(intruder)
        assert "joined" not in kinds(intruder.frames)
        await intruder.post("am I ann?", "i-1")
        assert (await intruder.expect("error", client_id="i-1"))["code"] == "identity_required"
        # Ann was not replaced: she still holds her name.
        await ann.post("I am", "a-1")
        await ann.expect("ack", client_id="a-1")
        assert "left" not in kinds(ann.frames)

    run(server, scenario)


# -- switching names -------------------------------------------------------------------------


def test_joining_with_another_name_releases_the_old_one(server: ChatServer) -> None:
    async def scenario(server: ChatServer) -> None:
        watcher, _ = await connected(server)
        ann, _ = await connected(server)
        await ann.join("ann")
        assert (await watcher.expect("presence"))["joins"] == ["ann"]

        assert (await ann.join("bea"))["username"] == "bea"
        # Two frames: the old name leaves, then the new one joins.
        assert await watcher.expect("presence") == {
            "type": "presence",
            "joins": [],
            "leaves": ["ann"],
        }
        assert await watcher.expect("presence") == {
            "type": "presence",
            "joins": ["bea"],
            "leaves": [],
            "total_users": 2,
        }

        bob, _ = await connected(server)
        assert (await bob.join("ann"))["username"] == "ann"  # the old name is free
        await ann.post("as bea", "a-1")
        await ann.expect("ack", client_id="a-1")
        message = (await watcher.expect("message"))["message"]
        assert message["username"] == "bea"
        # And the new one is held.
        carl, _ = await connected(server)
        await carl.send({"type": "join", "username": "BEA"})
        assert await error_code(carl) == "username_taken"

    run(server, scenario)


def test_a_post_with_another_username_switches_the_identity_then_posts(
    server: ChatServer, database: str
) -> None:
    async def scenario(server: ChatServer) -> None:
        watcher, _ = await connected(server)
        ann, _ = await connected(server)
        await ann.post("as ann", "a-1", username="ann")
        await ann.expect("ack", client_id="a-1")
        assert (await watcher.expect("presence"))["joins"] == ["ann"]
        await ann.post("as bea", "a-2", username="bea")
        await ann.expect("joined", username="bea")
        await ann.expect("ack", client_id="a-2")
        assert (await watcher.expect("presence"))["leaves"] == ["ann"]
        assert (await watcher.expect("presence"))["joins"] == ["bea"]
        await watcher.expect("message")
        assert (await watcher.expect("message"))["message"]["username"] == "bea"
        assert stored_bodies(database) == [("ann", "as ann"), ("bea", "as bea")]
        bob, _ = await connected(server)
        assert (await bob.join("ann"))["username"] == "ann"

    run(server, scenario)


def test_a_refused_switch_keeps_the_name_held(server: ChatServer) -> None:
    async def scenario(server: ChatServer) -> None:
        ann, _ = await connected(server)
        bob, _ = await connected(server)
        await ann.join("ann")
        await bob.join("bob")
        await ann.send({"type": "join", "username": "bob"})
        assert await error_code(ann) == "username_taken"
        await ann.post("still ann", "a-1")
        await ann.expect("ack", client_id="a-1")
        assert (await bob.expect("message"))["message"]["username"] == "ann"
        carl, _ = await connected(server)
        await carl.send({"type": "join", "username": "ann"})
        assert await error_code(carl) == "username_taken"

    run(server, scenario)


# -- races -----------------------------------------------------------------------------------


RACERS = 10


def test_concurrent_joins_of_one_name_grant_it_exactly_once(server: ChatServer) -> None:
    async def scenario(server: ChatServer) -> None:
        clients = [client for client, _ in [await connected(server) for _ in range(RACERS)]]
        await asyncio.gather(*(c.send({"type": "join", "username": "race"}) for c in clients))
        answers = await asyncio.gather(*(answer(c, "joined", "error") for c in clients))
        assert sorted(a["type"] for a in answers) == ["error"] * (RACERS - 1) + ["joined"]
        assert {a["code"] for a in answers if a["type"] == "error"} == {"username_taken"}

    run(server, scenario)


def test_concurrent_first_posts_with_one_name_grant_it_exactly_once(
    server: ChatServer, database: str
) -> None:
    async def scenario(server: ChatServer) -> None:
        clients = [client for client, _ in [await connected(server) for _ in range(RACERS)]]
        await asyncio.gather(
            *(c.post(f"post {n}", f"c-{n}", username="race") for n, c in enumerate(clients))
        )
        answers = await asyncio.gather(*(answer(c, "ack", "error") for c in clients))
        acked = [n for n, a in enumerate(answers) if a["type"] == "ack"]
        assert len(acked) == 1
        for n, a in enumerate(answers):
            assert a["client_id"] == f"c-{n}"
            if n not in acked:
                assert a["code"] == "username_taken"
        assert "joined" in kinds(clients[acked[0]].frames)
        assert stored_bodies(database) == [("race", f"post {acked[0]}")]

    run(server, scenario)


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
        clients = [client for client, _ in [await connected(server) for _ in spellings]]
        await asyncio.gather(
            *(
                c.send({"type": "join", "username": s})
                for c, s in zip(clients, spellings, strict=True)
            )
        )
        answers = await asyncio.gather(*(answer(c, "joined", "error") for c in clients))
        assert [a["type"] for a in answers].count("joined") == 1, answers
        assert {a["code"] for a in answers if a["type"] == "error"} == {"username_taken"}

    run(server, scenario)


# -- refused bodies and refused names --------------------------------------------------------


@pytest.mark.parametrize("body", ["", "   \n\t ", "x" * 2001, "nul\x00here", "bell\x07"])
def test_the_first_posts_username_is_established_even_if_its_body_is_refused(
    server: ChatServer, database: str, body: str
) -> None:
    async def scenario(server: ChatServer) -> None:
        watcher, _ = await connected(server)
        ann, _ = await connected(server)
        await ann.post(body, "a-1", username="ann")
        joined = await ann.expect("joined")
        assert joined["username"] == "ann"
        error = await ann.expect("error", client_id="a-1")
        assert error["code"] == "invalid_body"
        assert kinds(ann.frames).index("joined") < kinds(ann.frames).index("error")
        assert (await watcher.expect("presence"))["joins"] == ["ann"]
        assert stored_bodies(database) == []
        await ann.post("a proper one", "a-2")
        await ann.expect("ack", client_id="a-2")
        assert stored_bodies(database) == [("ann", "a proper one")]

    run(server, scenario)


INVALID_USERNAMES = {
    "empty": "",
    "33 characters": "a" * 33,
    "33 characters after NFKC": "\ufdfa\ufdfa",  # each expands to 18 characters
    "a space": "ann smith",
    "leading space": " ann",
    "angle bracket": "<ann>",
    "script tag": "<script>",
    "at sign": "ann@home",
    "bidi override U+202E": "ann\u202egpj",
    "bidi isolate U+2066": "\u2066ann",
    "zero-width space U+200B": "a\u200bnn",
    "zero-width joiner U+200D": "an\u200dn",
    "soft hyphen": "an\u00adn",
    "Hangul filler": "\u3164",
    "byte order mark": "\ufeffann",
    "NUL": "ann\x00",
    "control character": "a\x01nn",
    "newline": "ann\n",
    "tab": "an\tn",
    "DEL": "ann\x7f",
    "starts with a combining mark": "\u0301ann",
    "emoji": "ann\U0001f600",
    "lone surrogate": "ann\ud800",
}


def test_invalid_usernames_are_refused_and_change_nothing(
    server: ChatServer, database: str
) -> None:
    async def scenario(server: ChatServer) -> None:
        watcher, _ = await connected(server)
        ann, _ = await connected(server)
        viewer, _ = await connected(server)
        await ann.join("ann")
        assert (await watcher.expect("presence"))["joins"] == ["ann"]
        for case, name in INVALID_USERNAMES.items():
            for client in (viewer, ann):
                await client.send({"type": "join", "username": name})
                assert await error_code(client) == "invalid_username", case
                await client.post("hello", f"{case}-post", username=name)
                error = await client.expect("error")
                assert (error["code"], error.get("client_id")) == (
                    "invalid_username",
                    f"{case}-post",
                ), case
        # Nothing changed: the viewer is nobody, ann is ann, nobody new was recorded,
        # nothing was stored, and nobody came or went.
        await settle(viewer)
        assert "joined" not in kinds(viewer.frames)
        await viewer.post("hello", "v-1")
        assert (await viewer.expect("error", client_id="v-1"))["code"] == "identity_required"
        await ann.post("still ann", "a-1")
        await ann.expect("ack", client_id="a-1")
        assert stored_bodies(database) == [("ann", "still ann")]
        assert user_names(database) == ["ann"]
        zed, _ = await connected(server)
        await zed.join("zed")
        assert await watcher.expect("presence") == {
            "type": "presence",
            "joins": ["zed"],
            "leaves": [],
            "total_users": 2,
        }

    run(server, scenario)


@pytest.mark.parametrize(
    "name",
    [
        "a" * 32,
        "e\u0301" * 20,  # 40 code points, 20 characters after NFKC
        "user_1.x-y",
        "Дмитрий",
        "山田太郎",
        "محمد",
        "देवनागरी",  # combining vowel signs
        "Ünïcödé",
        "١٢٣",  # Arabic-Indic digits
        ".",
    ],
)
def test_valid_names_of_any_script_are_accepted(server: ChatServer, name: str) -> None:
    async def scenario(server: ChatServer) -> None:
        client, _ = await connected(server)
        joined = await client.join(name)
        assert joined["username"] == unicodedata.normalize("NFKC", name)

    run(server, scenario)
