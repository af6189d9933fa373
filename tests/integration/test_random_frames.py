"""Random frames, of the contract's types and of junk, over real WebSocket
connections (hypothesis): each gets exactly the errors the contract's rules
give it, and no session crashes."""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatter.sessions import is_sessions_partition
from supervision import EventKind
from tests.harness.client import EMPTY_HISTORY, SENTINEL, Client
from tests.harness.contract import CODES, MAX_SEQ, check_error
from tests.harness.server import ChatServer

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


def test_random_frames_get_contract_errors_and_crash_nothing(server: ChatServer) -> None:
    seen: collections.Counter[str] = collections.Counter()

    async def example(server: ChatServer, batch: list[str | bytes]) -> None:
        # A fresh connection per example: a few frames stay far inside the flood
        # limit (50 at once) and the post burst (5).
        client = await server.welcomed()
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
        assert await client.settle() == EMPTY_HISTORY

    @settings(
        max_examples=100,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(batch=st.lists(frames, min_size=1, max_size=4))
    def random_frames(batch: list[str | bytes]) -> None:
        server.run(lambda server: example(server, batch))

    random_frames()
    assert server.log.troubles() == []
    # The frames were of both kinds, and drew more than bad_request.
    assert seen["bad shape"] > 0, seen
    assert seen["well-formed"] > 0, seen
    assert len(CODES & set(seen)) > 1, seen
    assert (
        server.log.count(EventKind.EXITED, supervisor=is_sessions_partition) >= 1
    )  # the watch saw the examples' sessions end
