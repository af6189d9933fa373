"""The fault suite: a real server under live clients, a fault injected on
purpose, and the same verdict after each (`tests.faults._traffic`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import EventLog
from tests.integration.chat_server import ChatServer


@pytest.fixture
def server(database: str) -> Iterator[ChatServer]:
    """Chatter in this process (its own loop thread), on an empty database."""
    chat = ChatServer(database)
    yield chat
    chat.stop()


@pytest.fixture
def log(server: ChatServer) -> EventLog:
    return EventLog(server.tree.events)
