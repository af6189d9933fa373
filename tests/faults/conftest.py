"""The fault suite: a real server under live clients, a fault injected on
purpose, and the same verdict after each (`tests.faults._traffic`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chatter.throttle import Limit, NameClaimLimits
from tests.conftest import EventLog
from tests.integration.chat_server import ChatServer

CROWD_CLAIMS = NameClaimLimits(per_address=Limit(1000, 100.0))
"""A crowd's clients stand for people at many addresses, but all come from
127.0.0.1: the address may take as many names as they need (each connection
keeps the contract's own limit)."""


@pytest.fixture
def server(database: str) -> Iterator[ChatServer]:
    """Chatter in this process (its own loop thread), on an empty database."""
    chat = ChatServer(database, name_claims=CROWD_CLAIMS)
    yield chat
    chat.stop()


@pytest.fixture
def log(server: ChatServer) -> EventLog:
    return EventLog(server.tree.events)
