"""Taking a name over real WebSocket connections, per the contract's identity
rules: a first post or a join establishes it (even when the post's body is
refused), joining again or posting under another name switches it, and names
that break the rules are refused and change nothing."""

# The tests spell look-alike letters on purpose:
# ruff: noqa: RUF001

from __future__ import annotations

import unicodedata

import pytest

from tests.harness.contract import error_code
from tests.harness.data import stored, user_names
from tests.harness.server import ChatServer

# -- the first post, and join ----------------------------------------------------------------


def test_first_post_with_a_username_joins_then_posts(server: ChatServer) -> None:
    async def scenario(server: ChatServer) -> None:
        ann = await server.welcomed()
        bob = await server.welcomed()
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
        assert bob.kinds().index("presence") < bob.kinds().index("message")
        assert (await ann.expect("presence"))["joins"] == ["ann"]
        await ann.expect("message")
        assert ann.kinds().index("joined") < ann.kinds().index("ack")
        assert ann.kinds().index("presence") < ann.kinds().index("message")

        welcome = await server.welcome()
        assert {"username": "ann", "online": True} in welcome["users"]
        assert welcome["you"] is None

    server.run(scenario)


def test_a_join_sets_the_name_without_posting(server: ChatServer, database: str) -> None:
    async def scenario(server: ChatServer) -> None:
        ann = await server.welcomed()
        bob = await server.welcomed()
        joined = await ann.join("ann")
        assert joined["username"] == "ann"
        assert joined["token"]
        assert await bob.expect("presence") == {
            "type": "presence",
            "joins": ["ann"],
            "leaves": [],
            "total_users": 1,
        }
        assert stored(database, "username", "body") == []
        welcome = await server.welcome()
        assert {"username": "ann", "online": True} in welcome["users"]
        assert welcome["total_users"] == 1

        await ann.post("now with a name", "a-1")  # no username needed any more
        await ann.expect("ack", client_id="a-1")
        assert (await bob.expect("message"))["message"]["username"] == "ann"
        await ann.settle()
        assert ann.kinds().count("joined") == 1  # the post did not join again

    server.run(scenario)


def test_joining_again_with_the_name_already_held_is_answered_with_joined(
    server: ChatServer,
) -> None:
    """The contract: a join is answered with `joined` or an error, as a first post is."""

    async def scenario(server: ChatServer) -> None:
        ann = await server.joined("ann")
        await ann.send({"type": "join", "username": "ann"})
        await ann.settle()
        answers = [f for f in ann.frames if f["type"] in ("joined", "error")]
        assert len(answers) == 2, f"the second join got no answer: {ann.frames}"
        assert answers[1]["type"] == "joined"
        assert answers[1]["username"] == "ann"

    server.run(scenario)


def test_the_held_name_in_another_spelling_changes_nothing(
    server: ChatServer, database: str
) -> None:
    async def scenario(server: ChatServer) -> None:
        eve = await server.joined("EVE")
        await eve.post("hi", "e-1", username="eve")
        await eve.expect("ack", client_id="e-1")
        assert (await eve.expect("message"))["message"]["username"] == "EVE"
        await eve.settle()
        assert eve.kinds().count("joined") == 1  # no joined for the post
        await eve.send({"type": "join", "username": "ｅｖｅ"})
        assert (await eve.expect("joined"))["username"] == "EVE"  # the name as held
        assert user_names(database) == ["EVE"]
        assert eve.kinds().count("presence") == 1  # only the first join

    server.run(scenario)


# -- switching names -------------------------------------------------------------------------


def test_joining_with_another_name_releases_the_old_one(server: ChatServer) -> None:
    async def scenario(server: ChatServer) -> None:
        watcher, ann = await server.watched_join("ann")

        assert (await ann.join("bea"))["username"] == "bea"
        # Two frames: the old name leaves (never having posted, no longer
        # listed), then the new one joins (counted: online; ann is not).
        assert await watcher.expect("presence") == {
            "type": "presence",
            "joins": [],
            "leaves": ["ann"],
            "unlisted": ["ann"],
        }
        assert await watcher.expect("presence") == {
            "type": "presence",
            "joins": ["bea"],
            "leaves": [],
            "total_users": 1,
        }

        bob = await server.welcomed()
        assert (await bob.join("ann"))["username"] == "ann"  # the old name is free
        await ann.post("as bea", "a-1")
        await ann.expect("ack", client_id="a-1")
        message = (await watcher.expect("message"))["message"]
        assert message["username"] == "bea"
        # And the new one is held.
        carl = await server.welcomed()
        await carl.send({"type": "join", "username": "BEA"})
        assert await error_code(carl) == "username_taken"

    server.run(scenario)


def test_a_post_with_another_username_switches_the_identity_then_posts(
    server: ChatServer, database: str
) -> None:
    async def scenario(server: ChatServer) -> None:
        watcher, ann = await server.watched_join("ann", first_post=("as ann", "a-1"))
        await ann.post("as bea", "a-2", username="bea")
        await ann.expect("joined", username="bea")
        await ann.expect("ack", client_id="a-2")
        assert (await watcher.expect("presence"))["leaves"] == ["ann"]
        assert (await watcher.expect("presence"))["joins"] == ["bea"]
        await watcher.expect("message")
        assert (await watcher.expect("message"))["message"]["username"] == "bea"
        assert stored(database, "username", "body") == [("ann", "as ann"), ("bea", "as bea")]
        bob = await server.welcomed()
        assert (await bob.join("ann"))["username"] == "ann"

    server.run(scenario)


def test_a_refused_switch_keeps_the_name_held(server: ChatServer) -> None:
    async def scenario(server: ChatServer) -> None:
        ann = await server.welcomed()
        bob = await server.welcomed()
        await ann.join("ann")
        await bob.join("bob")
        await ann.send({"type": "join", "username": "bob"})
        assert await error_code(ann) == "username_taken"
        await ann.post("still ann", "a-1")
        await ann.expect("ack", client_id="a-1")
        assert (await bob.expect("message"))["message"]["username"] == "ann"
        carl = await server.welcomed()
        await carl.send({"type": "join", "username": "ann"})
        assert await error_code(carl) == "username_taken"

    server.run(scenario)


# -- refused bodies and refused names --------------------------------------------------------


@pytest.mark.parametrize("body", ["", "   \n\t ", "x" * 2001, "nul\x00here", "bell\x07"])
def test_the_first_posts_username_is_established_even_if_its_body_is_refused(
    server: ChatServer, database: str, body: str
) -> None:
    async def scenario(server: ChatServer) -> None:
        watcher = await server.welcomed()
        ann = await server.welcomed()
        await ann.post(body, "a-1", username="ann")
        joined = await ann.expect("joined")
        assert joined["username"] == "ann"
        error = await ann.expect("error", client_id="a-1")
        assert error["code"] == "invalid_body"
        assert ann.kinds().index("joined") < ann.kinds().index("error")
        assert (await watcher.expect("presence"))["joins"] == ["ann"]
        assert stored(database, "username", "body") == []
        await ann.post("a proper one", "a-2")
        await ann.expect("ack", client_id="a-2")
        assert stored(database, "username", "body") == [("ann", "a proper one")]

    server.run(scenario)


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
        watcher, ann = await server.watched_join("ann")
        viewer = await server.welcomed()
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
        await viewer.settle()
        assert "joined" not in viewer.kinds()
        await viewer.post("hello", "v-1")
        assert (await viewer.expect("error", client_id="v-1"))["code"] == "identity_required"
        await ann.post("still ann", "a-1")
        await ann.expect("ack", client_id="a-1")
        assert stored(database, "username", "body") == [("ann", "still ann")]
        assert user_names(database) == ["ann"]
        await server.joined("zed")
        assert await watcher.expect("presence") == {
            "type": "presence",
            "joins": ["zed"],
            "leaves": [],
            "total_users": 2,
        }

    server.run(scenario)


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
        client = await server.welcomed()
        joined = await client.join(name)
        assert joined["username"] == unicodedata.normalize("NFKC", name)

    server.run(scenario)
