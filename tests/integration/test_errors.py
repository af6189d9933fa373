"""Every error code and every bad input of the wire contract, over real WebSocket
connections: each is answered with the right error frame and the connection
stays up; the flood and frame-size limits close it; random frames never crash
a session."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tornado.websocket import WebSocketClosedError

from supervision import EventKind, EventStream, SupervisionEvent
from tests.integration.chat_server import ChatServer, Client, run_scenario

Scenario = Callable[[ChatServer], Awaitable[None]]

CODES = frozenset(
    {
        "bad_request",
        "invalid_username",
        "username_taken",
        "identity_required",
        "invalid_body",
        "rate_limited",
        "unavailable",
    }
)
MAX_FRAME_BYTES = 64 * 1024
MAX_SEQ = 2**63 - 1
FRAME_BURST = 50
EMPTY_HISTORY = {"type": "history", "messages": [], "has_more": False}
SENTINEL = {"type": "history", "before": 0}
"""Always answered with `EMPTY_HISTORY`: no message has a seq below 1."""


@pytest.fixture
def server(database: str) -> Iterator[ChatServer]:
    chat = ChatServer(database)
    yield chat
    chat.stop()


def run(server: ChatServer, scenario: Scenario) -> None:
    asyncio.run(run_scenario(server, scenario))


class TreeWatch:
    """Every supervision event of a server's tree, to prove nothing crashed."""

    def __init__(self, stream: EventStream) -> None:
        self._lock = threading.Lock()
        self._events: list[SupervisionEvent] = []
        self.unsubscribe = stream.subscribe(self._record)

    def _record(self, event: SupervisionEvent) -> None:
        with self._lock:
            self._events.append(event)

    def troubles(self) -> list[SupervisionEvent]:
        """Restarts, surrenders, and exits that were crashes or kills."""
        with self._lock:
            events = list(self._events)
        return [
            e
            for e in events
            if e.kind in (EventKind.RESTARTED, EventKind.GAVE_UP)
            or (e.kind is EventKind.EXITED and (e.reason or "").startswith(("crashed", "killed")))
        ]

    def session_exits(self) -> int:
        with self._lock:
            return sum(
                1 for e in self._events if e.supervisor == "sessions" and e.kind is EventKind.EXITED
            )


@pytest.fixture
def tree(server: ChatServer) -> Iterator[TreeWatch]:
    watch = TreeWatch(server.tree.events)
    yield watch
    watch.unsubscribe()


def stored(conninfo: str) -> list[tuple[str, str | None]]:
    """(body, client_id) of every stored message, in seq order."""
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute("SELECT body, client_id FROM messages ORDER BY seq").fetchall()
    return [(row[0], row[1]) for row in rows]


def seed_messages(conninfo: str, count: int) -> None:
    """`count` messages m1..mN by "old", straight into the database."""
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "INSERT INTO users (username, username_key) VALUES ('old', 'old') RETURNING id"
        ).fetchone()
        assert row is not None
        with conn.cursor().copy("COPY messages (user_id, body) FROM STDIN") as copy:
            for n in range(count):
                copy.write_row((row[0], f"m{n + 1}"))


async def connected(server: ChatServer) -> Client:
    client = await server.connect()
    await client.welcome()
    return client


async def answer(client: Client, *kinds: str) -> dict[str, Any]:
    """The first unread frame of any of `kinds`; frames of other kinds stay unread."""
    for index, frame in enumerate(client.unread):
        if frame["type"] in kinds:
            return client.unread.pop(index)
    while True:
        received = await client.receive()
        if received is None:
            raise AssertionError(f"closed ({client.closed_code}) while waiting for {kinds}")
        if received["type"] in kinds:
            return received
        client.unread.append(received)


async def still_up(client: Client) -> None:
    """Prove the connection works: a frame sent now is answered."""
    await client.send(SENTINEL)
    assert await client.expect("history", messages=[], has_more=False) == EMPTY_HISTORY


def is_text(value: str) -> bool:
    """Whether UTF-8 can carry `value` as it is (no lone surrogates)."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def check_error(
    frame: dict[str, Any], code: str, client_id: str | None, *, strict_echo: bool = True
) -> None:
    """An error frame as the contract shapes it. Without `strict_echo`, a client_id
    that is not valid text may be left out instead of echoed (whether it must be
    echoed is proved on its own, in one test, so the other tests do not fail for it)."""
    assert frame["type"] == "error"
    assert frame["code"] == code, frame
    assert isinstance(frame["message"], str)
    assert frame["message"]
    if client_id is None:
        assert "client_id" not in frame, frame
    elif not strict_echo and not is_text(client_id) and "client_id" not in frame:
        pass
    else:
        assert frame.get("client_id") == client_id, frame
    if code == "rate_limited":
        assert isinstance(frame["retry_after_ms"], int)
        assert frame["retry_after_ms"] >= 1
    else:
        assert "retry_after_ms" not in frame, frame


# -- bad_request: frames of the wrong shape ------------------------------------------------------


def nested_arrays(depth: int) -> str:
    return "[" * depth + "]" * depth


def nested_objects(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


BAD_FRAMES: dict[str, tuple[str | bytes | dict[str, Any], str | None]] = {
    # case: (frame, the client_id the error must echo)
    "not JSON": ("hello", None),
    "truncated JSON": ('{"type": "post", "body": "x"', None),
    "empty text": ("", None),
    "trailing junk": ('{"type": "leave"} x', None),
    "single quotes": ("{'type': 'leave'}", None),
    "a JSON array": ('["post", "hello"]', None),
    "an empty JSON array": ("[]", None),
    "a JSON number": ("42", None),
    "a JSON string": ('"post"', None),
    "JSON null": ("null", None),
    "JSON true": ("true", None),
    "no type": ({"body": "hello", "client_id": "c-1"}, "c-1"),
    "type null": ({"type": None}, None),
    "type a number": ({"type": 1, "client_id": "c-2"}, "c-2"),
    "type a list": ({"type": ["post"]}, None),
    "type an object": ({"type": {"post": True}}, None),
    "unknown type": ({"type": "shout", "body": "hi", "client_id": "c-3"}, "c-3"),
    "type in capitals": ({"type": "POST", "body": "hi"}, None),
    "type with a space": ({"type": "post ", "body": "hi"}, None),
    "empty type": ({"type": ""}, None),
    "post without body": ({"type": "post", "client_id": "c-4"}, "c-4"),
    "body a number": ({"type": "post", "body": 5, "client_id": "c-5"}, "c-5"),
    "body null": ({"type": "post", "body": None}, None),
    "body a list": ({"type": "post", "body": ["hi"]}, None),
    "body an object": ({"type": "post", "body": {"text": "hi"}}, None),
    "body true": ({"type": "post", "body": True}, None),
    "username a list": (
        {"type": "post", "body": "hi", "username": ["ann"], "client_id": "c-6"},
        "c-6",
    ),
    "username a number": ({"type": "post", "body": "hi", "username": 7}, None),
    "username false": ({"type": "post", "body": "hi", "username": False}, None),
    "client_id a number": ({"type": "post", "body": "hi", "client_id": 5}, None),
    "client_id a list": ({"type": "post", "body": "hi", "client_id": ["c-7"]}, None),
    "client_id true": ({"type": "post", "body": "hi", "client_id": True}, None),
    "join without username": ({"type": "join", "client_id": "c-8"}, "c-8"),
    "join username null": ({"type": "join", "username": None}, None),
    "join username a number": ({"type": "join", "username": 42, "client_id": "c-9"}, "c-9"),
    "join username a list": ({"type": "join", "username": ["ann"]}, None),
    "history without before": ({"type": "history", "client_id": "c-10"}, "c-10"),
    "before null": ({"type": "history", "before": None}, None),
    "before a string": ({"type": "history", "before": "5", "client_id": "c-11"}, "c-11"),
    "before a float": ({"type": "history", "before": 5.5}, None),
    "before true": ({"type": "history", "before": True}, None),
    "before false": ({"type": "history", "before": False}, None),
    "before a list": ({"type": "history", "before": [5]}, None),
    "before negative": ({"type": "history", "before": -1}, None),
    "before 2**63": ({"type": "history", "before": MAX_SEQ + 1}, None),
    "before 2**70": ({"type": "history", "before": 2**70, "client_id": "c-12"}, "c-12"),
    "before 10**400 literal": ('{"type": "history", "before": 1' + "0" * 400 + "}", None),
    "before -10**400 literal": ('{"type": "history", "before": -1' + "0" * 400 + "}", None),
    "before 1e400 (infinite float)": ('{"type": "history", "before": 1e400}', None),
    "before NaN": ('{"type": "history", "before": NaN}', None),
    "before with 5,000 digits": ('{"type": "history", "before": ' + "9" * 5000 + "}", None),
    "limit a string": ({"type": "history", "before": 5, "limit": "5"}, None),
    "limit a float": ({"type": "history", "before": 5, "limit": 2.5}, None),
    "limit true": ({"type": "history", "before": 5, "limit": True, "client_id": "c-13"}, "c-13"),
    "32,768 nested arrays (64 KiB exactly)": (nested_arrays(MAX_FRAME_BYTES // 2), None),
    "10,000 nested objects": (nested_objects(10_000), None),
    "deep junk in a post": (
        '{"type": "post", "body": "hi", "client_id": "c-14", "junk": '
        + nested_arrays(30_000)
        + "}",
        None,
    ),
    "a binary frame of JSON": (b'{"type": "history", "before": 1}', None),
    "a binary frame of junk": (bytes(range(256)), None),
    "an empty binary frame": (b"", None),
}


@pytest.mark.parametrize("case", list(BAD_FRAMES))
def test_a_malformed_frame_gets_bad_request_and_the_connection_stays_up(
    server: ChatServer, tree: TreeWatch, case: str
) -> None:
    frame, echo = BAD_FRAMES[case]
    if isinstance(frame, str | bytes):
        assert len(frame) <= MAX_FRAME_BYTES, "the frame must fit the limit"

    async def scenario(server: ChatServer) -> None:
        client = await connected(server)
        await client.send(frame)
        check_error(await client.expect("error"), "bad_request", echo)
        await still_up(client)
        await client.post("still here", "ok-1", username="ann")
        await client.expect("ack", client_id="ok-1")

    run(server, scenario)
    assert tree.troubles() == []


def test_frames_sent_before_the_welcome_are_answered_after_it_in_order(
    server: ChatServer, tree: TreeWatch
) -> None:
    async def scenario(server: ChatServer) -> None:
        client = await server.connect()
        await client.send("not json")
        await client.send({"type": "join", "username": "ann", "client_id": "j-1"})
        await client.send({"type": "post", "body": 5, "client_id": "p-1"})
        await client.send({"type": "post", "body": "", "client_id": "p-2"})
        await client.send(SENTINEL)
        answers: list[dict[str, Any]] = []
        while not answers or answers[-1]["type"] != "history":
            frame = await client.receive()
            assert frame is not None
            if frame["type"] != "presence":
                answers.append(frame)
        assert [(a["type"], a.get("code"), a.get("client_id")) for a in answers] == [
            ("welcome", None, None),
            ("error", "bad_request", None),
            ("joined", None, None),
            ("error", "bad_request", "p-1"),
            ("error", "invalid_body", "p-2"),
            ("history", None, None),
        ]

    run(server, scenario)
    assert tree.troubles() == []


def test_an_unknown_field_is_ignored(server: ChatServer, tree: TreeWatch) -> None:
    async def scenario(server: ChatServer) -> None:
        client = await connected(server)
        await client.send({"type": "join", "username": "ann", "colour": "red", "n": [1, {}]})
        await client.expect("joined", username="ann")
        await client.send({"type": "post", "body": "hi", "client_id": "c-1", "extra": None})
        await client.expect("ack", client_id="c-1")
        await client.send({"type": "history", "before": 0, "whatever": 10**400})
        assert await client.expect("history") == EMPTY_HISTORY
        assert "error" not in [f["type"] for f in client.frames]

    run(server, scenario)
    assert tree.troubles() == []


def test_a_frame_of_exactly_64_kib_is_accepted_and_one_byte_more_closes_with_1009(
    server: ChatServer, tree: TreeWatch
) -> None:
    def padded(size: int) -> str:
        head = '{"type": "history", "before": 0, "pad": "'
        text = head + "x" * (size - len(head) - 2) + '"}'
        assert len(text.encode()) == size
        return text

    async def scenario(server: ChatServer) -> None:
        client = await connected(server)
        await client.send(padded(MAX_FRAME_BYTES))
        assert await client.expect("history") == EMPTY_HISTORY
        await client.send(padded(MAX_FRAME_BYTES + 1))
        assert await client.closed() == 1009

    run(server, scenario)
    assert tree.troubles() == []


def test_100_000_nested_arrays_are_over_the_frame_limit_and_close_with_1009(
    server: ChatServer, tree: TreeWatch
) -> None:
    """100,000 levels take 200,000 bytes: the size limit, not the parser, stops them."""

    async def scenario(server: ChatServer) -> None:
        client = await connected(server)
        await client.send(nested_arrays(100_000))
        assert await client.closed() == 1009

    run(server, scenario)
    assert tree.troubles() == []


# -- client_id: wrong type, too long, not printable ----------------------------------------------


@pytest.mark.parametrize(
    ("client_id", "case"),
    [
        ("x" * 65, "65 characters"),
        ("", "empty"),
        ("a\nb", "a newline"),
        ("a\tb", "a tab"),
        ("a\x00b", "NUL"),
        ("a\u200bb", "a zero-width space"),
        ("\ud800", "a lone surrogate"),
    ],
)
def test_a_client_id_that_breaks_the_rules_gets_invalid_body_and_nothing_is_stored(
    server: ChatServer, tree: TreeWatch, database: str, client_id: str, case: str
) -> None:
    async def scenario(server: ChatServer) -> None:
        client = await connected(server)
        await client.join("ann")
        await client.post("hello", client_id)
        check_error(await client.expect("error"), "invalid_body", client_id, strict_echo=False)
        await client.post("hello", "x" * 64)  # the longest allowed
        await client.expect("ack", client_id="x" * 64)
        assert stored(database) == [("hello", "x" * 64)]

    run(server, scenario)
    assert tree.troubles() == [], case


def test_a_client_id_with_a_lone_surrogate_does_not_crash_the_session(
    server: ChatServer, tree: TreeWatch
) -> None:
    """JSON carries a lone surrogate as an escape, so a client can send one in any
    string: its errors are answered like any other, and the session lives on."""

    async def scenario(server: ChatServer) -> None:
        client = await connected(server)
        await client.send({"type": "post", "body": 5, "client_id": "\ud800"})
        check_error(await client.expect("error"), "bad_request", "\ud800", strict_echo=False)
        await client.send({"type": "post", "body": "hi", "client_id": "\udfff"})
        check_error(await client.expect("error"), "identity_required", "\udfff", strict_echo=False)
        await client.send({"type": "join", "username": "a b", "client_id": "x\udc00"})
        check_error(await client.expect("error"), "invalid_username", "x\udc00", strict_echo=False)
        await still_up(client)

    run(server, scenario)
    assert tree.troubles() == []


@pytest.mark.parametrize(
    "client_id",
    ["", " ", "x" * 65, "x" * 5000, "\U0001f600", "a\u202eb", "a\x00b", "\ud800"],
    ids=[
        "empty",
        "a space",
        "65 characters",
        "5,000 characters",
        "emoji",
        "bidi",
        "NUL",
        "a lone surrogate",
    ],
)
def test_a_bad_frame_echoes_its_string_client_id_whatever_it_holds(
    server: ChatServer, tree: TreeWatch, client_id: str
) -> None:
    """The contract: `client_id` is echoed when the frame carried one (for bad_request,
    a string one, whatever its content). JSON can carry any string back, escaped."""

    async def scenario(server: ChatServer) -> None:
        client = await connected(server)
        await client.send({"type": "history", "before": "x", "client_id": client_id})
        check_error(await client.expect("error"), "bad_request", client_id)
        await still_up(client)

    run(server, scenario)
    assert tree.troubles() == []


# -- identity_required -------------------------------------------------------------------------


def test_a_post_without_a_name_gets_identity_required(
    server: ChatServer, tree: TreeWatch, database: str
) -> None:
    async def scenario(server: ChatServer) -> None:
        client = await connected(server)
        await client.post("who am I", "v-1")
        check_error(await client.expect("error"), "identity_required", "v-1")
        await client.post("who am I", "v-2", username=None)  # null counts as absent
        check_error(await client.expect("error"), "identity_required", "v-2")
        await client.post("no client id either")
        check_error(await client.expect("error"), "identity_required", None)
        # Identity comes before the body: a bad body from a viewer is still identity_required.
        await client.post("", "v-3")
        check_error(await client.expect("error"), "identity_required", "v-3")
        await still_up(client)
        assert stored(database) == []

    run(server, scenario)
    assert tree.troubles() == []


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
    server: ChatServer, tree: TreeWatch, database: str, case: str
) -> None:
    async def scenario(server: ChatServer) -> None:
        client = await connected(server)
        await client.join("ann")
        await client.post(INVALID_BODIES[case], "b-1")
        check_error(await client.expect("error"), "invalid_body", "b-1")
        await client.post(INVALID_BODIES[case])
        check_error(await client.expect("error"), "invalid_body", None)
        await client.post("fine", "b-2")
        await client.expect("ack", client_id="b-2")
        assert stored(database) == [("fine", "b-2")]

    run(server, scenario)
    assert tree.troubles() == []


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
    server: ChatServer, tree: TreeWatch, database: str, case: str
) -> None:
    sent, kept = VALID_BODIES[case]

    async def scenario(server: ChatServer) -> None:
        client = await connected(server)
        await client.post(sent, "b-1", username="ann")
        await client.expect("ack", client_id="b-1")
        assert (await client.expect("message"))["message"]["body"] == kept
        assert stored(database) == [(kept, "b-1")]

    run(server, scenario)
    assert tree.troubles() == []


# -- rate_limited ------------------------------------------------------------------------------


def test_a_burst_of_posts_beyond_5_is_rate_limited_and_nothing_refused_is_stored(
    server: ChatServer, tree: TreeWatch, database: str
) -> None:
    burst = 10

    async def scenario(server: ChatServer) -> None:
        client = await connected(server)
        await client.join("ann")
        for n in range(burst):
            await client.post(f"post {n}", f"r-{n}")
        answers = [await answer(client, "ack", "error") for _ in range(burst)]
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
        assert stored(database) == [(f"post {n}", f"r-{n}") for n in acked]

        # After waiting as long as the server said, posting works again, and a
        # refused post sent again with its client_id is stored once.
        retry_ms = by_id[f"r-{refused[-1]}"]["retry_after_ms"]
        assert retry_ms <= 1000  # one token at 2 per second
        await asyncio.sleep(retry_ms / 1000)
        await client.post(f"post {refused[0]}", f"r-{refused[0]}")
        await client.expect("ack", client_id=f"r-{refused[0]}")
        assert stored(database) == [(f"post {n}", f"r-{n}") for n in [*acked, refused[0]]]

    run(server, scenario)
    assert tree.troubles() == []


def test_refused_posts_do_not_use_up_the_post_rate(
    server: ChatServer, tree: TreeWatch, database: str
) -> None:
    """Only posts that reach the rate check take a token: bad ones cost nothing."""

    async def scenario(server: ChatServer) -> None:
        client = await connected(server)
        await client.join("ann")
        for n in range(20):
            await client.post("", f"bad-{n}")
        for n in range(20):
            check_error(await client.expect("error"), "invalid_body", f"bad-{n}")
        for n in range(5):
            await client.post(f"good {n}", f"good-{n}")
        for n in range(5):
            await client.expect("ack", client_id=f"good-{n}")
        assert len(stored(database)) == 5

    run(server, scenario)
    assert tree.troubles() == []


# -- the flood limit -----------------------------------------------------------------------------


FLOODS: dict[str, str | bytes | dict[str, Any]] = {
    "history frames": {"type": "history", "before": 0},
    "leave frames": {"type": "leave"},
    "frames that are not JSON": "junk",
    "binary frames": b"\x00\x01",
    "frames of unknown type": {"type": "ping"},
}


@pytest.mark.parametrize("case", list(FLOODS))
def test_a_flood_of_frames_is_closed_with_1008_and_a_calm_client_is_not(
    server: ChatServer, tree: TreeWatch, case: str
) -> None:
    frame = FLOODS[case]

    async def flood(flooder: Client) -> None:
        with contextlib.suppress(WebSocketClosedError):
            for _ in range(500):
                await flooder.send(frame)
        assert await flooder.closed() == 1008
        answered = sum(1 for f in flooder.frames if f["type"] in ("history", "left", "error"))
        assert answered < 200, "closed early in the flood, the rest not answered"

    async def keep_calm(calm: Client) -> None:
        # Busy, within the limits: a join, a burst of 40 history requests, a post.
        await calm.join("calm")
        for _ in range(FRAME_BURST - 10):
            await calm.send(SENTINEL)
        for _ in range(FRAME_BURST - 10):
            assert await calm.expect("history") == EMPTY_HISTORY
        await calm.post("still calm", "calm-1")
        await calm.expect("ack", client_id="calm-1")

    async def scenario(server: ChatServer) -> None:
        flooder, calm = await connected(server), await connected(server)
        await asyncio.gather(flood(flooder), keep_calm(calm))
        await still_up(calm)
        assert calm.closed_code is None

    run(server, scenario)
    assert tree.troubles() == []


def test_a_flood_of_posts_is_rate_limited_without_closing_before_the_flood_limit(
    server: ChatServer, tree: TreeWatch
) -> None:
    async def scenario(server: ChatServer) -> None:
        client = await connected(server)
        await client.join("ann")
        for n in range(30):
            await client.post(f"post {n}", f"p-{n}")
        answers = [await answer(client, "ack", "error") for _ in range(30)]
        codes = [a.get("code", "ack") for a in answers]
        assert set(codes) == {"ack", "rate_limited"}
        await still_up(client)

    run(server, scenario)
    assert tree.troubles() == []


# -- history limit -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "count"),
    [
        (0, 1),
        (-5, 1),
        (-(10**400), 1),
        (1, 1),
        (50, 50),
        (100, 100),
        (101, 100),
        (1000, 100),
        (10**400, 100),
        (None, 100),
    ],
)
def test_history_limit_is_clamped_to_1_to_100(
    server: ChatServer, tree: TreeWatch, database: str, limit: int | None, count: int
) -> None:
    seed_messages(database, 150)

    async def scenario(server: ChatServer) -> None:
        client = await connected(server)
        frame: dict[str, Any] = {"type": "history", "before": MAX_SEQ}
        if limit is not None:
            frame["limit"] = limit
        await client.send(frame)
        page = await client.expect("history")
        assert [m["body"] for m in page["messages"]] == [f"m{n}" for n in range(151 - count, 151)]
        assert page["has_more"] is True

    run(server, scenario)
    assert tree.troubles() == []


# -- random frames -------------------------------------------------------------------------------

FRAME_TYPES = ("post", "join", "history", "leave")

# Text of every kind, lone surrogates included (JSON carries them as escapes), and
# some strings at the edges of the rules.
edge_text = st.sampled_from(
    ["", " ", "\x00", "\ud800", "a\udfffb", "<b>", "\uff41\uff4e\uff4e", "\u202e"]
)
any_text = st.text(st.characters(exclude_categories=()), max_size=12) | edge_text
names = st.sampled_from(
    ["ann", "Ann", "bob", "\u0440\u0430\u0443\u0440\u0430l", "paypal", "a b", "", "x" * 33]
)
integers = st.integers(min_value=-(2**70), max_value=2**70) | st.sampled_from(
    [0, 1, MAX_SEQ, MAX_SEQ + 1, -1, 10**400]
)
scalars = (
    st.none()
    | st.booleans()
    | integers
    | st.floats(allow_nan=False, allow_infinity=False)
    | any_text
)
json_values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(any_text, children, max_size=3)
    ),
    max_leaves=6,
)
bodies = st.sampled_from(["hi", "", "  ", "x" * 2001, "a\x00", "a\tb\n"]) | any_text
client_ids = st.sampled_from(["c-1", "c-2", "x" * 65, "", "\ud800"]) | any_text
# Frames of the real types with fields of the right types (their values may
# still break the rules: names, bodies, client_ids, limits).
well_formed = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("post"), "body": bodies},
        optional={
            "username": st.none() | names | any_text,
            "client_id": st.none() | client_ids,
            "extra": json_values,
        },
    ),
    st.fixed_dictionaries(
        {"type": st.just("join"), "username": names | any_text},
        optional={"client_id": client_ids},
    ),
    st.fixed_dictionaries(
        {"type": st.just("history"), "before": st.integers(0, MAX_SEQ)},
        optional={"limit": st.none() | integers, "client_id": client_ids},
    ),
    st.fixed_dictionaries({"type": st.just("leave")}, optional={"client_id": client_ids}),
)
# Objects with a real type or junk for one, and fields of any type.
random_objects = st.fixed_dictionaries(
    {"type": st.sampled_from(FRAME_TYPES) | any_text | json_values},
    optional={
        "body": bodies | json_values,
        "username": names | json_values,
        "client_id": client_ids | json_values,
        "before": integers | json_values,
        "limit": integers | json_values,
        "extra": json_values,
    },
)
frames: st.SearchStrategy[str | bytes] = st.one_of(
    well_formed.map(json.dumps),
    well_formed.map(json.dumps),
    random_objects.map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=30),
    st.binary(max_size=30),
)


@dataclass(frozen=True)
class Expected:
    """What the contract says about a frame: is its shape bad (so exactly one
    bad_request), and which client_id an error must echo."""

    bad: bool
    echo: str | None
    is_history: bool = False


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def expected(frame: str | bytes) -> Expected:
    """The contract's rules for a frame's shape, written out independently."""
    if isinstance(frame, bytes):
        return Expected(bad=True, echo=None)
    try:
        value = json.loads(frame)
    except (ValueError, RecursionError):
        return Expected(bad=True, echo=None)
    if not isinstance(value, dict):
        return Expected(bad=True, echo=None)
    client_id = value.get("client_id")
    echo = client_id if isinstance(client_id, str) else None
    kind = value.get("type")

    def optional_string(name: str) -> bool:
        return value.get(name) is None or isinstance(value[name], str)

    if kind == "post":
        ok = isinstance(value.get("body"), str) and all(
            optional_string(name) for name in ("username", "client_id")
        )
    elif kind == "join":
        ok = isinstance(value.get("username"), str)
    elif kind == "history":
        before, limit = value.get("before"), value.get("limit")
        ok = (
            isinstance(before, int)
            and _is_int(before)
            and 0 <= before <= MAX_SEQ
            and (limit is None or _is_int(limit))
        )
        return Expected(bad=not ok, echo=echo, is_history=ok)
    elif kind == "leave":
        ok = True
    else:
        ok = False
    return Expected(bad=not ok, echo=echo)


async def exchange(client: Client, frame: str | bytes) -> list[dict[str, Any]]:
    """Send `frame` then a sentinel; the error frames that came before the
    sentinel's answer (errors are sent at once, so all of the frame's are there)."""
    want = expected(frame)
    start = len(client.frames)
    await client.send(frame)
    await client.send(SENTINEL)
    # A valid history frame is answered with a history frame too, perhaps after the
    # sentinel's: wait for both.
    histories = 2 if want.is_history else 1
    while sum(1 for f in client.frames[start:] if f["type"] == "history") < histories:
        received = await client.receive()
        assert received is not None, f"closed ({client.closed_code}) after {frame!r}"
    return [f for f in client.frames[start:] if f["type"] == "error"]


def test_random_frames_get_contract_errors_and_crash_nothing(
    server: ChatServer, tree: TreeWatch
) -> None:
    seen: collections.Counter[str] = collections.Counter()

    async def example(server: ChatServer, batch: list[str | bytes]) -> None:
        # A fresh connection per example: a few frames stay far inside the flood
        # limit (50 at once) and the post burst (5).
        client = await connected(server)
        for frame in batch:
            errors = await exchange(client, frame)
            want = expected(frame)
            seen["bad shape" if want.bad else "well-formed"] += 1
            seen.update(error["code"] for error in errors)
            if want.bad:
                assert len(errors) == 1, (frame, errors)
                check_error(errors[0], "bad_request", want.echo, strict_echo=False)
            else:
                assert len(errors) <= 1, (frame, errors)
                for error in errors:
                    assert error["code"] in CODES - {"bad_request"}, (frame, error)
                    check_error(error, error["code"], want.echo, strict_echo=False)
        await still_up(client)

    @settings(
        max_examples=100,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(batch=st.lists(frames, min_size=1, max_size=4))
    def random_frames(batch: list[str | bytes]) -> None:
        run(server, lambda server: example(server, batch))

    random_frames()
    assert tree.troubles() == []
    # The frames were of both kinds, and drew more than bad_request.
    assert seen["bad shape"] > 0, seen
    assert seen["well-formed"] > 0, seen
    assert len(CODES & set(seen)) > 1, seen
    assert tree.session_exits() >= 1  # the watch saw the examples' sessions end
