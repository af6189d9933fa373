"""Integration tests use the `postgres` and `database` fixtures of tests/conftest.py,
and `start_server` to run servers of their own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from chatter.config import Settings
from tests.integration.chat_server import ChatServer, ServerFactory


@pytest.fixture
def start_server(database: str) -> Iterator[ServerFactory]:
    """Start a server with the settings and app options a test needs; every
    one started is stopped at the end."""
    started: list[ChatServer] = []

    def start(settings: Settings | None = None, **app_options: Any) -> ChatServer:
        server = ChatServer(database, settings=settings, **app_options)
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()
