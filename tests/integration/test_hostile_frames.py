"""Hostile WebSocket frames against a real server: frames that break RFC 6455
are failed with the close code it names, and one address cannot pin more
unread output than its budget however many connections it opens. An honest
client chats through each attack and loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import pytest

from tests.harness.data import seed_messages
from tests.harness.honest import attack
from tests.harness.raw import raw_socket, welcomed_raw_socket
from tests.harness.server import ChatServer, ServerFactory
from tests.harness.waiting import eventually


def test_an_unmasked_client_frame_fails_the_connection_with_1002(
    start_server: ServerFactory,
) -> None:
    server = start_server()

    async def scenario(server: ChatServer) -> None:
        with welcomed_raw_socket(server.port, source="127.0.0.5") as raw:
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
    start_server: ServerFactory, payload: bytes
) -> None:
    server = start_server()

    async def scenario(server: ChatServer) -> None:
        with welcomed_raw_socket(server.port, source="127.0.0.5") as raw:
            raw.send_frame(0x1, payload)
            assert await asyncio.to_thread(raw.close_code) == 1007

    attack(server, scenario)


def test_masked_utf8_frames_still_reach_the_session(start_server: ServerFactory) -> None:
    server = start_server()

    async def scenario(server: ChatServer) -> None:
        with welcomed_raw_socket(server.port, source="127.0.0.5") as raw:
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


def test_one_address_cannot_pin_more_unread_output_than_its_budget(
    start_server: ServerFactory, database: str, caplog: pytest.LogCaptureFixture
) -> None:
    seed_messages(database, "seed", [BODY] * SEEDED)
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
