"""A post is checked in the contract's order, over real WebSocket connections:
identity (`identity_required`), the body (`invalid_body`), the rate
(`rate_limited`). Each refusal is answered with its error frame, stores
nothing and keeps the connection; a body within the rules is stored trimmed."""

from __future__ import annotations

import asyncio

import pytest

from chatter.throttle import POST_BURST
from tests.harness.client import EMPTY_HISTORY
from tests.harness.contract import check_error
from tests.harness.data import stored
from tests.harness.server import ChatServer

pytestmark = pytest.mark.usefixtures("untroubled")
"""No refused post crashes a session, or anything else."""

# -- identity_required -------------------------------------------------------------------------


def test_a_post_without_a_name_gets_identity_required(server: ChatServer, database: str) -> None:
    async def scenario(server: ChatServer) -> None:
        client = await server.welcomed()
        await client.post("who am I", "v-1")
        check_error(await client.expect("error"), "identity_required", "v-1")
        await client.post("who am I", "v-2", username=None)  # null counts as absent
        check_error(await client.expect("error"), "identity_required", "v-2")
        await client.post("no client id either")
        check_error(await client.expect("error"), "identity_required", None)
        # Identity comes before the body: a bad body from a viewer is still identity_required.
        await client.post("", "v-3")
        check_error(await client.expect("error"), "identity_required", "v-3")
        assert await client.settle() == EMPTY_HISTORY
        assert stored(database, "body", "client_id") == []

    server.run(scenario)


# -- invalid_body ------------------------------------------------------------------------------


INVALID_BODIES = {
    "empty": "",
    "a space": " ",
    "whitespace only": " \n\t \r\n \u3000\u00a0",
    "2,001 characters": "x" * 2001,
    "2,001 characters inside spaces": "  " + "x" * 2001 + "  ",
    "NUL": "a\x00b",
    "only NUL": "\x00",
    "a bell": "ding\x07",
    "escape": "\x1b[31mred",
    "a lone carriage return": "a\rb",
    "DEL": "a\x7fb",
    "C1 control NEL": "a\x85b",
    "C1 control U+009F": "a\x9fb",
    "a lone surrogate": "a\ud800b",
}


@pytest.mark.parametrize("case", list(INVALID_BODIES))
def test_a_body_that_breaks_the_rules_gets_invalid_body_and_nothing_is_stored(
    server: ChatServer, database: str, case: str
) -> None:
    async def scenario(server: ChatServer) -> None:
        client = await server.joined("ann")
        await client.post(INVALID_BODIES[case], "b-1")
        check_error(await client.expect("error"), "invalid_body", "b-1")
        await client.post(INVALID_BODIES[case])
        check_error(await client.expect("error"), "invalid_body", None)
        await client.post("fine", "b-2")
        await client.expect("ack", client_id="b-2")
        assert stored(database, "body", "client_id") == [("fine", "b-2")]

    server.run(scenario)


VALID_BODIES = {
    # case: (body as sent, body as stored)
    "a tab and newlines": ("a\tb\nc\n\nd", "a\tb\nc\n\nd"),
    "2,000 characters": ("x" * 2000, "x" * 2000),
    "2,000 characters inside spaces": ("  " + "y" * 2000 + "\n ", "y" * 2000),
    "trimmed": ("  padded \t\n", "padded"),
    "CRLF becomes LF": ("a\r\nb", "a\nb"),
    "one character": ("x", "x"),
    "format characters": ("a\u200db\u202e", "a\u200db\u202e"),
    "markup is just text": ("<script>alert(1)</script>", "<script>alert(1)</script>"),
    "astral characters": ("\U0001f600 ok", "\U0001f600 ok"),
}


@pytest.mark.parametrize("case", list(VALID_BODIES))
def test_a_body_within_the_rules_is_stored_trimmed(
    server: ChatServer, database: str, case: str
) -> None:
    sent, kept = VALID_BODIES[case]

    async def scenario(server: ChatServer) -> None:
        client = await server.welcomed()
        await client.post(sent, "b-1", username="ann")
        await client.expect("ack", client_id="b-1")
        assert (await client.expect("message"))["message"]["body"] == kept
        assert stored(database, "body", "client_id") == [(kept, "b-1")]

    server.run(scenario)


# -- rate_limited ------------------------------------------------------------------------------


def test_a_burst_of_posts_beyond_5_is_rate_limited_and_nothing_refused_is_stored(
    server: ChatServer, database: str
) -> None:
    burst = 2 * POST_BURST

    async def scenario(server: ChatServer) -> None:
        client = await server.joined("ann")
        for n in range(burst):
            await client.post(f"post {n}", f"r-{n}")
        answers = [await client.answer("ack", "error") for _ in range(burst)]
        by_id = {a["client_id"]: a for a in answers}
        assert sorted(by_id) == sorted(f"r-{n}" for n in range(burst))
        acked = [n for n in range(burst) if by_id[f"r-{n}"]["type"] == "ack"]
        refused = [n for n in range(burst) if by_id[f"r-{n}"]["type"] == "error"]
        # About 5 at once (a 6th or 7th only if the burst took half a second or more),
        # the earliest ones; then refusals.
        assert 5 <= len(acked) <= 7, answers
        assert acked == list(range(len(acked)))
        for n in refused:
            check_error(by_id[f"r-{n}"], "rate_limited", f"r-{n}")
        assert stored(database, "body", "client_id") == [(f"post {n}", f"r-{n}") for n in acked]

        # After waiting as long as the server said, posting works again, and a
        # refused post sent again with its client_id is stored once.
        retry_ms = by_id[f"r-{refused[-1]}"]["retry_after_ms"]
        assert retry_ms <= 1000  # one token at 2 per second
        await asyncio.sleep(retry_ms / 1000)  # the wait the answer asked for is the point
        await client.post(f"post {refused[0]}", f"r-{refused[0]}")
        await client.expect("ack", client_id=f"r-{refused[0]}")
        assert stored(database, "body", "client_id") == [
            (f"post {n}", f"r-{n}") for n in [*acked, refused[0]]
        ]

    server.run(scenario)


def test_refused_posts_do_not_use_up_the_post_rate(server: ChatServer, database: str) -> None:
    """Only posts that reach the rate check take a token: bad ones cost nothing."""

    async def scenario(server: ChatServer) -> None:
        client = await server.joined("ann")
        for n in range(20):
            await client.post("", f"bad-{n}")
        for n in range(20):
            check_error(await client.expect("error"), "invalid_body", f"bad-{n}")
        for n in range(5):
            await client.post(f"good {n}", f"good-{n}")
        for n in range(5):
            await client.expect("ack", client_id=f"good-{n}")
        assert len(stored(database, "body", "client_id")) == 5

    server.run(scenario)
