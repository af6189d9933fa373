"""Hostile clients over real WebSocket connections to a real server (issue #12).

Name claims: every claim of a new name, by `join` or by a `post` carrying a
`username`, counts against a limit of its own, per connection and per client
address (every test client has the same one, 127.0.0.1). A refused claim is
answered with `rate_limited` and `retry_after_ms`, and holds nothing, tells
nobody and writes no user row.

Idempotency: a `client_id` is scoped to its poster, so guessing another
client's id takes nothing from it.

Counts of what got through are bounded by the burst plus the refill over the
time the test took (measured, never assumed), so a busy machine cannot make
them fail.
"""

from __future__ import annotations

import asyncio
import math

import psycopg
import pytest
import tornado.websocket

from chatter.throttle import (
    ADDRESS_NAME_CLAIM_BURST,
    FRAME_BURST,
    NAME_CLAIM_BURST,
    NAME_CLAIM_RATE_PER_S,
    Limit,
    NameClaimLimits,
)
from tests.harness.client import Client, Frame
from tests.harness.contract import check_rate_limited
from tests.harness.data import stored, user_names
from tests.harness.http import healthz
from tests.harness.server import ChatServer, ServerFactory

CLOSE_POLICY = 1008

GENEROUS = Limit(1000, 1000.0)
"""A limit no test here reaches: for the side a test does not exercise."""
NO_REFILL = 1e-6
"""Tokens a second for a limit that must not refill while a test runs."""


def allowed(burst: float, per_s: float, elapsed_s: float) -> int:
    """The most actions a bucket lets through in `elapsed_s`, starting full."""
    return math.floor(burst + per_s * elapsed_s)


async def next_answer(client: Client) -> Frame:
    """The next `joined` or `error` frame (other frames stay unread)."""
    return await client.answer("joined", "error")


def unharmed(server: ChatServer) -> None:
    """No actor restarted, and the server says it is healthy."""
    assert server.log.restarts() == [], server.log.events
    assert healthz(server.url)[0] == 200


# -- claims by post and by join, per connection --------------------------------------------


def test_name_claims_by_post_are_rate_limited_per_connection(
    server: ChatServer, database: str
) -> None:
    claims = 300

    async def scenario(server: ChatServer) -> None:
        honest = await server.joined("honest")
        await honest.post("before", "h-1")
        before = await honest.expect("ack", client_id="h-1")
        assert (await honest.expect("message"))["message"]["id"] == before["id"]
        users_before = len(user_names(database))

        attacker = await server.welcomed()
        loop = asyncio.get_running_loop()
        started = loop.time()
        for n in range(claims):
            await attacker.post("", f"c-{n}", username=f"mallory{n}")
        await attacker.settle()  # every post above is answered
        bound = allowed(NAME_CLAIM_BURST, NAME_CLAIM_RATE_PER_S, loop.time() - started)

        joined = attacker.received("joined")
        assert 1 <= len(joined) <= bound
        errors = attacker.received("error")
        assert sorted(e["client_id"] for e in errors) == sorted(f"c-{n}" for n in range(claims))
        granted = [e for e in errors if e["code"] == "invalid_body"]  # empty bodies
        refused = [e for e in errors if e["code"] != "invalid_body"]
        assert len(granted) == len(joined)
        assert len(refused) == claims - len(joined)
        for error in refused:
            check_rate_limited(error)
        assert len(user_names(database)) - users_before == len(joined)
        assert stored(database, "username", "body") == [("honest", "before")]

        # Its leave, once it goes, is the last presence frame about it that anyone gets.
        last_name = joined[-1]["username"]
        attacker.close()
        await honest.expect("presence", joins=[], leaves=[last_name])
        about_attacker = [
            frame
            for frame in honest.received("presence")
            if any(name.startswith("mallory") for name in frame["joins"] + frame["leaves"])
        ]
        # At most a leave and a join per name, against 2 * 300 without the limit.
        assert len(about_attacker) <= 2 * bound

        await honest.post("after", "h-2")
        after = await honest.expect("ack", client_id="h-2")
        assert (await honest.expect("message"))["message"]["id"] == after["id"]

    server.run(scenario, timeout_s=120)
    unharmed(server)


def test_name_claims_by_join_are_rate_limited_per_connection(
    server: ChatServer, database: str
) -> None:
    claims = FRAME_BURST - 10  # under the flood limit: every join is answered

    async def scenario(server: ChatServer) -> None:
        client = await server.welcomed()
        loop = asyncio.get_running_loop()
        started = loop.time()
        for n in range(claims):
            await client.send({"type": "join", "username": f"mallory{n}", "client_id": f"j-{n}"})
        await client.settle()
        bound = allowed(NAME_CLAIM_BURST, NAME_CLAIM_RATE_PER_S, loop.time() - started)
        joined = client.received("joined")
        assert 1 <= len(joined) <= bound
        refused = client.received("error")
        assert len(refused) == claims - len(joined)
        for error in refused:
            check_rate_limited(error)
            assert error["client_id"].startswith("j-")
        assert len(user_names(database)) == len(joined)
        held = joined[-1]["username"]
        client.unread.clear()  # counted above: what follows answers what is sent next

        # Without a token: a post with a new name is refused and not stored...
        await client.post("a real body", "p-1", username="someone_new")
        check_rate_limited(await client.expect("error", client_id="p-1"))
        # ...while the held name, re-joined or posted under, is no claim at all.
        await client.send({"type": "join", "username": held.upper()})
        assert (await client.expect("joined"))["username"] == held
        await client.post("as myself", "p-2", username=held)
        await client.expect("ack", client_id="p-2")
        await client.post("as myself again", "p-3")
        await client.expect("ack", client_id="p-3")
        assert stored(database, "username", "body") == [
            (held, "as myself"),
            (held, "as myself again"),
        ]
        assert len(user_names(database)) == len(joined)

    server.run(scenario, timeout_s=120)
    assert server.log.restarts() == [], server.log.events


def test_a_flood_of_joins_is_closed_by_the_flood_limit_having_taken_at_most_the_burst(
    server: ChatServer, database: str
) -> None:
    async def scenario(server: ChatServer) -> None:
        client = await server.welcomed()
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            for n in range(300):
                await client.send({"type": "join", "username": f"mallory{n}"})
        except tornado.websocket.WebSocketClosedError:
            pass  # closed by the server while still sending: the point of the test
        assert await client.closed() == CLOSE_POLICY
        bound = allowed(NAME_CLAIM_BURST, NAME_CLAIM_RATE_PER_S, loop.time() - started)
        assert len(client.received("joined")) <= bound
        assert len(user_names(database)) <= bound

    server.run(scenario, timeout_s=120)
    assert server.log.restarts() == [], server.log.events


# -- per address -----------------------------------------------------------------------------


def test_connections_from_one_address_share_its_limit(
    start_server: ServerFactory, database: str
) -> None:
    # The contract's bursts; the address's bucket does not refill while the
    # test runs, so that exactly its burst gets through, however slow the machine.
    limits = NameClaimLimits(per_address=Limit(ADDRESS_NAME_CLAIM_BURST, NO_REFILL))
    server = start_server(name_claims=limits)
    connections, each = 8, 10  # up to 8 * 3 = 24 claims by the connections' limits
    assert connections * NAME_CLAIM_BURST > ADDRESS_NAME_CLAIM_BURST

    async def scenario(server: ChatServer) -> None:
        clients = [await server.welcomed() for _ in range(connections)]
        loop = asyncio.get_running_loop()
        started = loop.time()
        for n in range(each):
            for c, client in enumerate(clients):
                await client.send({"type": "join", "username": f"mallory{c}x{n}"})
        for client in clients:
            await client.settle()
        per_connection = allowed(NAME_CLAIM_BURST, NAME_CLAIM_RATE_PER_S, loop.time() - started)

        joined = [len(client.received("joined")) for client in clients]
        assert all(n <= per_connection for n in joined), joined
        assert sum(joined) == ADDRESS_NAME_CLAIM_BURST
        refused = [error for client in clients for error in client.received("error")]
        assert len(refused) == connections * each - sum(joined)
        for error in refused:
            check_rate_limited(error)
        assert len(user_names(database)) == sum(joined)

        # A new connection from the address, its own bucket full, is refused too.
        late = await server.welcomed()
        await late.send({"type": "join", "username": "latecomer"})
        check_rate_limited(await next_answer(late))
        assert "latecomer" not in user_names(database)

    server.run(scenario, timeout_s=120)
    unharmed(server)


# -- waiting as told --------------------------------------------------------------------------


async def refused_claim(client: Client, prefix: str) -> Frame:
    """Claim new names one at a time until one is refused; that refusal.
    (A slow machine may see the bucket refill between two claims: claim again.)"""
    for n in range(100):
        await client.send({"type": "join", "username": f"{prefix}{n}"})
        answer = await next_answer(client)
        if answer["type"] == "error":
            check_rate_limited(answer)
            return answer
    raise AssertionError("no claim was refused")


@pytest.mark.parametrize(
    "limits",
    [
        pytest.param(NameClaimLimits(Limit(1, 1.0), GENEROUS), id="per-connection"),
        pytest.param(NameClaimLimits(GENEROUS, Limit(1, 1.0)), id="per-address"),
    ],
)
def test_a_refused_claim_is_granted_after_waiting_retry_after_ms(
    start_server: ServerFactory, limits: NameClaimLimits
) -> None:
    server = start_server(name_claims=limits)

    async def scenario(server: ChatServer) -> None:
        client = await server.welcomed()
        error = await refused_claim(client, "eager")
        # The protocol's promise: retrying after retry_after_ms is allowed
        # (nothing else draws on these buckets meanwhile).
        await asyncio.sleep(error["retry_after_ms"] / 1000)
        await client.send({"type": "join", "username": "patient"})
        answer = await next_answer(client)
        assert (answer["type"], answer.get("username")) == ("joined", "patient"), answer

    server.run(scenario, timeout_s=120)


def test_reclaiming_a_name_with_a_token_is_not_a_claim(start_server: ServerFactory) -> None:
    server = start_server(name_claims=NameClaimLimits(GENEROUS, Limit(2, NO_REFILL)))

    async def scenario(server: ChatServer) -> None:
        ann = await server.welcomed()
        token = (await ann.join("ann"))["token"]
        await server.joined("bob")
        cy = await server.welcomed()
        await cy.send({"type": "join", "username": "cy"})
        check_rate_limited(await next_answer(cy))  # the address has no token left

        ann.close()
        again = await server.welcomed(token=token)
        welcome = await again.welcome()
        assert welcome["you"] == {"username": "ann"}
        assert (await again.expect("joined"))["username"] == "ann"
        await again.post("back", "a-1")
        await again.expect("ack", client_id="a-1")

    server.run(scenario, timeout_s=120)


# -- client_id per poster ---------------------------------------------------------------------


def test_same_client_id_from_another_identity_is_a_different_post(
    server: ChatServer, database: str
) -> None:
    async def scenario(server: ChatServer) -> None:
        viewer = await server.welcomed()
        ann = await server.welcomed()
        bob = await server.welcomed()
        await ann.post("from ann", "x", username="ann")
        token = (await ann.expect("joined"))["token"]
        ann_ack = await ann.expect("ack", client_id="x")
        ann_message = (await viewer.expect("message"))["message"]
        assert (ann_message["id"], ann_message["body"]) == (ann_ack["id"], "from ann")

        # Bob happens on (or guesses) the same id: his post is his own.
        await bob.post("from bob", "x", username="bob")
        bob_ack = await bob.expect("ack", client_id="x")
        bob_message = (await viewer.expect("message"))["message"]
        assert (bob_message["id"], bob_message["body"]) == (bob_ack["id"], "from bob")
        assert bob_message["username"] == "bob"
        assert bob_ack["id"] != ann_ack["id"]
        assert bob_ack["seq"] > ann_ack["seq"]

        # Resent by its poster, on this connection or a new one with the token,
        # "x" is acked with the stored message again and broadcast no more.
        await ann.post("from ann, resent", "x")
        assert await ann.expect("ack", client_id="x") == ann_ack
        ann.close()
        again = await server.welcomed(token=token)
        await again.expect("joined")
        await again.post("from ann, resent again", "x")
        assert await again.expect("ack", client_id="x") == ann_ack
        await bob.post("from bob, resent", "x")
        assert await bob.expect("ack", client_id="x") == bob_ack

        # The room delivers in order: a new message after the resends, and
        # nothing between, means no resend was broadcast.
        await bob.post("the end", "y")
        await bob.expect("ack", client_id="y")
        assert (await viewer.expect("message"))["message"]["body"] == "the end"
        assert [f["message"]["body"] for f in viewer.received("message")] == [
            "from ann",
            "from bob",
            "the end",
        ]
        assert stored(database, "username", "body") == [
            ("ann", "from ann"),
            ("bob", "from bob"),
            ("bob", "the end"),
        ]

    server.run(scenario, timeout_s=120)


# -- a claim that fails ----------------------------------------------------------------------


def test_a_name_whose_user_cannot_be_recorded_costs_no_name_claim(
    start_server: ServerFactory, database: str
) -> None:
    """Presence grants the name, then the database refuses its user row: the
    client is told to retry and keeps every claim it had."""
    limits = NameClaimLimits(
        per_connection=Limit(NAME_CLAIM_BURST, NO_REFILL), per_address=GENEROUS
    )
    server = start_server(name_claims=limits)
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(REFUSE_UNRECORDABLE)
    try:

        async def scenario(server: ChatServer) -> None:
            client = await server.welcomed()
            for n in range(NAME_CLAIM_BURST + 2):
                await client.send({"type": "join", "username": f"unrecordable{n}"})
                answer = await next_answer(client)
                assert (answer["type"], answer["code"]) == ("error", "unavailable"), answer
            for n in range(NAME_CLAIM_BURST):
                await client.send({"type": "join", "username": f"recorded{n}"})
                assert (await next_answer(client))["type"] == "joined"

        server.run(scenario)
    finally:
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute("DROP TRIGGER refuse_unrecordable ON users")
    assert not any(name.startswith("unrecordable") for name in user_names(database))
    unharmed(server)


REFUSE_UNRECORDABLE = """
CREATE OR REPLACE FUNCTION refuse_unrecordable() RETURNS trigger AS $$
BEGIN
    IF NEW.username LIKE 'unrecordable%' THEN
        RAISE EXCEPTION 'refused for the test';
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER refuse_unrecordable BEFORE INSERT ON users
    FOR EACH ROW EXECUTE FUNCTION refuse_unrecordable();
"""
