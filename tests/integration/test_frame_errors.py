"""Frames of the wrong shape or size, client_ids that break the rules, floods
of frames and history's limit, over real WebSocket connections: each is
answered as the wire contract says and the connection stays up, or is closed
with the code the contract names; no session crashes."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from tornado.websocket import WebSocketClosedError

from tests.harness.client import EMPTY_HISTORY, SENTINEL, Client
from tests.harness.contract import MAX_FRAME_BYTES, MAX_SEQ, check_error
from tests.harness.data import seed_messages, stored
from tests.harness.server import ChatServer

pytestmark = pytest.mark.usefixtures("untroubled")
"""No frame a test sends crashes a session, or anything else."""

FRAME_BURST = 50

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
    server: ChatServer, case: str
) -> None:
    frame, echo = BAD_FRAMES[case]
    if isinstance(frame, str | bytes):
        assert len(frame) <= MAX_FRAME_BYTES, "the frame must fit the limit"

    async def scenario(server: ChatServer) -> None:
        client = await server.welcomed()
        await client.send(frame)
        check_error(await client.expect("error"), "bad_request", echo)
        assert await client.settle() == EMPTY_HISTORY
        await client.post("still here", "ok-1", username="ann")
        await client.expect("ack", client_id="ok-1")

    server.run(scenario)


def test_frames_sent_before_the_welcome_are_answered_after_it_in_order(server: ChatServer) -> None:
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

    server.run(scenario)


def test_an_unknown_field_is_ignored(server: ChatServer) -> None:
    async def scenario(server: ChatServer) -> None:
        client = await server.welcomed()
        await client.send({"type": "join", "username": "ann", "colour": "red", "n": [1, {}]})
        await client.expect("joined", username="ann")
        await client.send({"type": "post", "body": "hi", "client_id": "c-1", "extra": None})
        await client.expect("ack", client_id="c-1")
        await client.send({"type": "history", "before": 0, "whatever": 10**400})
        assert await client.expect("history") == EMPTY_HISTORY
        assert "error" not in [f["type"] for f in client.frames]

    server.run(scenario)


def padded(size: int) -> str:
    """A history frame of exactly `size` bytes."""
    head = '{"type": "history", "before": 0, "pad": "'
    text = head + "x" * (size - len(head) - 2) + '"}'
    assert len(text.encode()) == size
    return text


OVER_THE_FRAME_LIMIT = {
    "one byte more": padded(MAX_FRAME_BYTES + 1),
    # 100,000 levels take 200,000 bytes: the size limit, not the parser, stops them.
    "100,000 nested arrays": nested_arrays(100_000),
}


@pytest.mark.parametrize("case", list(OVER_THE_FRAME_LIMIT))
def test_a_frame_of_exactly_64_kib_is_accepted_and_a_larger_one_closes_with_1009(
    server: ChatServer, case: str
) -> None:
    async def scenario(server: ChatServer) -> None:
        client = await server.welcomed()
        await client.send(padded(MAX_FRAME_BYTES))
        assert await client.expect("history") == EMPTY_HISTORY
        await client.send(OVER_THE_FRAME_LIMIT[case])
        assert await client.closed() == 1009

    server.run(scenario)


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
    server: ChatServer, database: str, client_id: str, case: str
) -> None:
    async def scenario(server: ChatServer) -> None:
        client = await server.joined("ann")
        await client.post("hello", client_id)
        check_error(await client.expect("error"), "invalid_body", client_id, strict_echo=False)
        await client.post("hello", "x" * 64)  # the longest allowed
        await client.expect("ack", client_id="x" * 64)
        assert stored(database, "body", "client_id") == [("hello", "x" * 64)]

    server.run(scenario)


def test_a_client_id_with_a_lone_surrogate_does_not_crash_the_session(server: ChatServer) -> None:
    """JSON carries a lone surrogate as an escape, so a client can send one in any
    string: its errors are answered like any other, and the session lives on."""

    async def scenario(server: ChatServer) -> None:
        client = await server.welcomed()
        await client.send({"type": "post", "body": 5, "client_id": "\ud800"})
        check_error(await client.expect("error"), "bad_request", "\ud800", strict_echo=False)
        await client.send({"type": "post", "body": "hi", "client_id": "\udfff"})
        check_error(await client.expect("error"), "identity_required", "\udfff", strict_echo=False)
        await client.send({"type": "join", "username": "a b", "client_id": "x\udc00"})
        check_error(await client.expect("error"), "invalid_username", "x\udc00", strict_echo=False)
        assert await client.settle() == EMPTY_HISTORY

    server.run(scenario)


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
    server: ChatServer, client_id: str
) -> None:
    """The contract: `client_id` is echoed when the frame carried one (for bad_request,
    a string one, whatever its content). JSON can carry any string back, escaped."""

    async def scenario(server: ChatServer) -> None:
        client = await server.welcomed()
        await client.send({"type": "history", "before": "x", "client_id": client_id})
        check_error(await client.expect("error"), "bad_request", client_id)
        assert await client.settle() == EMPTY_HISTORY

    server.run(scenario)


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
    server: ChatServer, case: str
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
        flooder, calm = await server.welcomed(), await server.welcomed()
        await asyncio.gather(flood(flooder), keep_calm(calm))
        assert await calm.settle() == EMPTY_HISTORY
        assert calm.closed_code is None

    server.run(scenario)


def test_a_flood_of_posts_is_rate_limited_without_closing_before_the_flood_limit(
    server: ChatServer,
) -> None:
    posts = FRAME_BURST - 20  # the refused ones count against the flood limit: under it

    async def scenario(server: ChatServer) -> None:
        client = await server.joined("ann")
        for n in range(posts):
            await client.post(f"post {n}", f"p-{n}")
        answers = [await client.answer("ack", "error") for _ in range(posts)]
        codes = [a.get("code", "ack") for a in answers]
        assert set(codes) == {"ack", "rate_limited"}
        assert await client.settle() == EMPTY_HISTORY

    server.run(scenario)


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
    server: ChatServer, database: str, limit: int | None, count: int
) -> None:
    seed_messages(database, "old", [f"m{n}" for n in range(1, 151)])

    async def scenario(server: ChatServer) -> None:
        client = await server.welcomed()
        frame: dict[str, Any] = {"type": "history", "before": MAX_SEQ}
        if limit is not None:
            frame["limit"] = limit
        await client.send(frame)
        page = await client.expect("history")
        assert [m["body"] for m in page["messages"]] == [f"m{n}" for n in range(151 - count, 151)]
        assert page["has_more"] is True

    server.run(scenario)
