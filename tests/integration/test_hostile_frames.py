"""Hostile WebSocket frames against a real server: frames that break RFC 6455
are failed with the close code it names, and one address cannot pin more
unread output than its budget however many connections it opens. An honest
client chats through each attack and loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import psycopg
import pytest

from tests.integration.chat_server import ChatServer
from tests.integration.hostile import attack, eventually, raw_socket


def test_an_unmasked_client_frame_fails_the_connection_with_1002(start_server: Any) -> None:
    server = start_server()

    async def scenario(server: ChatServer) -> None:
        with raw_socket(server.port, source="127.0.0.5") as raw:
            assert raw.upgrade() == 101
            raw.expect("welcome")
            raw.send_frame(0x1, b'{"type": "history", "before": 5}', masked=False)
            assert await asyncio.to_thread(raw.close_code) == 1002
            assert await asyncio.to_thread(raw.closed_by_server)

    attack(server, scenario)


@pytest.mark.parametrize(
    "payload",
    [b"\xff\xfe", b'{"type": "post", "body": "\xc3"}', b"\xed\xa0\x80"],
    ids=["garbage", "cut-sequence", "surrogate"],
)
def test_a_text_frame_that_is_not_utf8_fails_the_connection_with_1007(
    start_server: Any, payload: bytes
) -> None:
    server = start_server()

    async def scenario(server: ChatServer) -> None:
        with raw_socket(server.port, source="127.0.0.5") as raw:
            assert raw.upgrade() == 101
            raw.expect("welcome")
            raw.send_frame(0x1, payload)
            assert await asyncio.to_thread(raw.close_code) == 1007

    attack(server, scenario)


def test_masked_utf8_frames_still_reach_the_session(start_server: Any) -> None:
    server = start_server()

    async def scenario(server: ChatServer) -> None:
        with raw_socket(server.port, source="127.0.0.5") as raw:
            assert raw.upgrade() == 101
            raw.expect("welcome")
            raw.send_text(json.dumps({"type": "join", "username": "zoë"}))
            assert raw.expect("joined")["username"] == "zoë"

    attack(server, scenario)


# -- the memory one address may pin ----------------------------------------------------------

BODY = "x" * 2000
SEEDED = 100
HISTORY_FRAMES = 34
"""History pages of 100 messages of 2,000 characters each attacker asks for:
about 7 MB, under the per-connection bound (8 MiB) whatever the kernel keeps."""
ADDRESS_BUDGET = 2 * 1024 * 1024
ATTACKERS = 3


def seed_long_messages(database: str) -> None:
    with psycopg.connect(database) as conn:
        row = conn.execute(
            "INSERT INTO users (username, username_key) VALUES ('seed', 'seed') RETURNING id"
        ).fetchone()
        assert row is not None
        conn.execute(
            "INSERT INTO messages (user_id, body) SELECT %s, %s FROM generate_series(1, %s)",
            (row[0], BODY, SEEDED),
        )


def test_one_address_cannot_pin_more_unread_output_than_its_budget(
    start_server: Any, database: str, caplog: pytest.LogCaptureFixture
) -> None:
    seed_long_messages(database)
    server = start_server(max_output_per_address=ADDRESS_BUDGET)
    caplog.set_level(logging.WARNING, logger="web.socket")

    async def scenario(server: ChatServer) -> None:
        with contextlib.ExitStack() as stack:
            attackers = [
                stack.enter_context(
                    raw_socket(server.port, source="127.0.0.6", receive_buffer=4096)
                )
                for _ in range(ATTACKERS)
            ]
            for raw in attackers:
                assert raw.upgrade() == 101
            history = json.dumps({"type": "history", "before": 10**9, "limit": 100})
            for raw in attackers:
                for _ in range(HISTORY_FRAMES):
                    raw.send_text(history)  # and never read a byte of the answers
            await eventually(
                lambda: "its address holds too much unread output" in caplog.text,
                "an attacker dropped for its address's backlog",
                timeout_s=30,
            )
            closed = await asyncio.gather(
                *(asyncio.to_thread(raw.closed_by_server) for raw in attackers)
            )
            assert any(closed)
            # What the address still holds is within its budget, plus at most
            # the one flush that took it over.
            still = server.call(lambda: server.limits.by_address().get("127.0.0.6", 0))
            assert still < ATTACKERS
            assert "stopped reading" not in caplog.text  # no connection met its own bound

    attack(server, scenario)
